import { makeFsTree, makeFsImage, makeClone, dataRanges } from '../lib/fs-disk';
(async () => {
  const size = Number(process.argv[2]) * 1024 * 1024;
  let t = Date.now();
  const facts = await makeFsTree('/tmp/bench15/tree', size);
  console.log('tree', facts, Date.now() - t); t = Date.now();
  await makeFsImage('/tmp/bench15/tree', '/tmp/bench15/fs.img', size);
  console.log('image', Date.now() - t); t = Date.now();
  console.log(await makeClone('/tmp/bench15/fs.img', '/tmp/bench15/c1.img', 1, '/tmp/bench15/scratch'));
  const r = await dataRanges('/tmp/bench15/fs.img');
  console.log('ranges', r.length, r.reduce((s, x) => s + x.length, 0), Date.now() - t);
})();
