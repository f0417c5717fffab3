/**
 * BackupFiles over image files (no vault): volumes, listing with pages, stat, byte-identical reads, walk
 * (loop-safe), the journal replayed on first use, error mapping, a Corrupt from the disk named by file.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatVolumePath, MAX_WALK_HELD_NAMES, parseVolumePath, PagewiseError, type DiskReader } from '../core';
import { ensureTools } from '../testkit/debian-tools';
import { debugfs, fileBlocks, journalWrite, makeExtImage, makePartitionedImage, makeTree, osLikeTree, type TreeEntry } from '../testkit/fs-images';
import { Opened, rejection, bytesOf } from './harness/file-images';

const MiB = 1024 * 1024;
let dir: string;
let image: string;
let tree: TreeEntry[];
const opened = new Opened();

beforeAll(async () => {
  ensureTools(['mkfs.ext4', 'debugfs', 'sfdisk']);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-facade-'));
  tree = await makeTree(path.join(dir, 'tree'), osLikeTree({ bigFileBytes: 3 * MiB + 5 }));
  image = path.join(dir, 'disk.img');
  await makeExtImage(image, path.join(dir, 'tree'), { kind: 'ext4', sizeBytes: 32 * MiB, label: 'rootfs' });
});

afterAll(async () => {
  await opened.closeAll();
  await fs.rm(dir, { recursive: true, force: true });
});

test('a bare ext4 disk: one volume "disk", every entry with its type, mode, mtime, size, link target, and its bytes', async () => {
  const files = await opened.image(image);
  expect(files.layout.scheme).toBe('none');
  expect(files.volumes().map((v) => [v.name, v.identity.kind, v.identity.openable, v.identity.label])).toEqual([['disk', 'ext4', true, 'rootfs']]);
  for (const expected of tree) {
    const entry = await files.stat(expected.path);
    expect({ path: entry.path, type: entry.type, mode: entry.mode, mtimeMs: entry.mtimeMs }).toEqual({
      path: expected.path,
      type: expected.type,
      mode: expected.mode,
      mtimeMs: Math.floor(expected.mtimeMs / 1000) * 1000,
    });
    expect(entry.volume).toBe('disk');
    if (expected.type !== 'directory') expect(entry.size).toBe(expected.size);
    if (expected.type === 'symlink') expect(entry.target).toBe(expected.target);
    if (expected.type === 'file') {
      const bytes = await bytesOf(files.read(expected.path));
      expect(bytes.length).toBe(expected.size);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(expected.sha256);
    }
  }
  const hard = await files.stat('/home/user/big-again.bin');
  expect(hard.ino).toBe((await files.stat('/home/user/big.bin')).ino);
  expect(hard.nlink).toBe(2);
  expect(files.stats()).toMatchObject({ volumesOpened: 1, journalsReplayed: 0, bytesFetched: 0 });
  expect(files.volumes()[0].journal).toMatchObject({ needed: false, replayed: false });
});

test('many reads and listings at once on one volume all come back right', async () => {
  const files = await opened.image(image);
  const wanted = tree.filter((e) => e.type === 'file');
  const [contents, listings] = await Promise.all([
    Promise.all(wanted.map(async (e) => createHash('sha256').update(await bytesOf(files.read(e.path))).digest('hex'))),
    Promise.all(['/etc', '/usr/bin', '/home/user', '/var/log'].map(async (d) => (await files.list(d)).entries.map((x) => x.name))),
  ]);
  expect(contents).toEqual(wanted.map((e) => e.sha256));
  expect(listings).toEqual([
    ['fstab', 'hostname', 'localtime', 'shadow', 'ssh'],
    ['tool', 'tool-link'],
    ['big-again.bin', 'big.bin', 'docs', 'up'],
    ['empty.log', 'syslog'],
  ]);
});

test('listing: sorted by byte order, without . and .., in pages that join up to the whole directory', async () => {
  const files = await opened.image(image);
  const root = await files.list('/');
  expect(root.entries.map((e) => e.name)).toEqual(['etc', 'home', 'lost+found', 'tmp', 'usr', 'var']);
  expect(root.next).toBeUndefined();
  const whole = (await files.list('disk:/etc')).entries.map((e) => e.name);
  expect(whole).toEqual(['fstab', 'hostname', 'localtime', 'shadow', 'ssh']);
  const first = await files.list('/etc', { limit: 2 });
  expect(first.entries.map((e) => e.name)).toEqual(['fstab', 'hostname']);
  expect(first.next).toBe('hostname');
  const second = await files.list('/etc', { limit: 2, after: first.next });
  expect(second.entries.map((e) => e.name)).toEqual(['localtime', 'shadow']);
  const third = await files.list('/etc', { limit: 2, after: second.next });
  expect(third.entries.map((e) => e.name)).toEqual(['ssh']);
  expect(third.next).toBeUndefined();
  expect(third.entries[0]).toMatchObject({ type: 'directory', path: '/etc/ssh', mode: 0o755 });
  // UTF-8 names come back as written, sorted by their bytes.
  expect((await files.list('/home/user/docs')).entries.map((e) => e.name)).toEqual(['my notes.txt', 'résumé ✓.txt']);
  // A symlink to a directory is followed when listed (as ls does), resolved inside the volume.
  expect((await files.list('/home/user/up')).entries.map((e) => e.name)).toEqual(whole);
  for (const limit of [0, 10_001, 1.5]) {
    expect((await rejection(files.list('/etc', { limit }))).message).toBe(`limit ${limit} must be a whole number from 1 to 10000`);
  }
});

test('paths: missing, not a directory, not a file, relative, dot-dot, unknown volume — each its own error', async () => {
  const files = await opened.image(image);
  const missing = await rejection(files.stat('/etc/nope'));
  expect([missing.code, missing.message]).toEqual(['PathNotFound', 'disk:/etc/nope does not exist']);
  expect((await rejection(files.list('/etc/hostname/x'))).code).toBe('PathNotFound');
  const notDir = await rejection(files.list('/etc/hostname'));
  expect([notDir.code, notDir.message]).toEqual(['BadInput', 'disk:/etc/hostname is not a directory']);
  const notFile = await rejection(bytesOf(files.read('/etc')));
  expect([notFile.code, notFile.message]).toEqual(['BadInput', 'disk:/etc is a directory, not a regular file']);
  // A link to /etc resolves inside the image, never on this machine.
  expect((await rejection(bytesOf(files.read('/etc/localtime/../../../etc/passwd')))).message).toMatch(/"\." or "\.\." component/);
  expect(await bytesOf(files.read('/etc/localtime'))).toEqual(await fs.readFile(path.join(dir, 'tree/usr/share/zoneinfo/UTC')));
  expect((await rejection(files.stat('etc/hostname'))).message).toMatch(/is relative/);
  expect((await rejection(files.stat('p3:/etc'))).message).toBe('the path "p3:/etc" names volume "p3", which the disk does not have (it has disk)');
  expect((await rejection(files.stat('/etc\0/x'))).message).toMatch(/NUL/);
  expect((await rejection(files.stat('/' + 'a'.repeat(4096)))).message).toMatch(/longer than 4096 bytes/);
});

test('parseVolumePath and formatVolumePath', () => {
  const vols = [
    { name: 'p1', openable: false },
    { name: 'p2', openable: true },
  ];
  expect(parseVolumePath('p1:', vols)).toEqual({ volume: 'p1', path: '/' });
  expect(parseVolumePath('p2://etc//ssh/', vols)).toEqual({ volume: 'p2', path: '/etc/ssh' });
  expect(parseVolumePath('/etc/a:b', vols)).toEqual({ volume: 'p2', path: '/etc/a:b' });
  expect(() => parseVolumePath('/etc', [...vols, { name: 'p3', openable: true }])).toThrow('the path "/etc" does not say which volume: write it as <volume>:/etc (the disk has p1, p2, p3)');
  expect(() => parseVolumePath('p2:/etc/./x', vols)).toThrow(/"\." or "\.\." component/);
  expect(() => parseVolumePath('p2:etc', vols)).toThrow(/is relative/);
  expect(formatVolumePath({ volume: 'p2', path: '/etc' }, 2)).toBe('p2:/etc');
  expect(formatVolumePath({ volume: 'disk', path: '/etc' }, 1)).toBe('/etc');
});

test('walk: pre-order, relative names, symlinks not followed; a hard-linked directory loop is met once and not entered', async () => {
  const looped = path.join(dir, 'loop.img');
  await fs.copyFile(image, looped);
  // A directory entry naming an ancestor directory: walking it naively never ends.
  debugfs(looped, ['link /home /home/user/docs/back'], true);
  const files = await opened.image(looped);
  const seen: string[] = [];
  const skipped: string[] = [];
  for await (const item of files.walk('/home')) {
    seen.push(item.relative.join('/'));
    expect(item.path).toBe(item.relative.length ? `/home/${item.relative.join('/')}` : '/home');
    if (item.skip) skipped.push(`${item.path}: ${item.skip}`);
  }
  expect(seen).toEqual([
    '',
    'user',
    'user/big-again.bin',
    'user/big.bin',
    'user/docs',
    'user/docs/back',
    'user/docs/my notes.txt',
    'user/docs/résumé ✓.txt',
    'user/up',
  ]);
  expect(skipped).toEqual(['/home/user/docs/back: a directory already met at another path (a hard-linked directory)']);
});

test('walk: the names held over all the open directories are bounded together, and released as each is left', async () => {
  const nested = path.join(dir, 'held.img');
  await fs.copyFile(image, nested);
  // /held: a x y; /held/a: b p q; /held/a/b: c r s — 3 names each, 9 held at /held/a/b.
  // /flat: d1 d2 d3, each holding 3 files — never more than 6 held at once.
  const commands = ['mkdir /held', 'cd /held', 'mkdir a', 'mkdir x', 'mkdir y', 'cd a', 'mkdir b', 'mkdir p', 'mkdir q', 'cd b', 'mkdir c', 'mkdir r', 'mkdir s'];
  commands.push('cd /', 'mkdir flat', 'cd flat');
  for (const d of ['d1', 'd2', 'd3']) commands.push(`mkdir ${d}`, `cd ${d}`, 'mknod f1 p', 'mknod f2 p', 'mknod f3 p', 'cd ..');
  debugfs(nested, commands, true);
  const files = await opened.image(nested);
  const walkAll = async (at: string, maxHeldNames: number) => {
    const paths: string[] = [];
    for await (const item of files.walk(at, { maxHeldNames })) paths.push(item.path);
    return paths;
  };
  const err = await rejection(walkAll('/held', 8));
  expect(err).toMatchObject({ code: 'LimitExceeded', message: 'disk:/held/a/b holds 3 entries, and the directories above it 6: more than the 8 names a walk holds at once' });
  expect(await walkAll('/held', 9)).toHaveLength(10);
  expect(await walkAll('/flat', 6)).toHaveLength(13);
  expect((await rejection(walkAll('/flat', MAX_WALK_HELD_NAMES + 1))).message).toBe(`maxHeldNames ${MAX_WALK_HELD_NAMES + 1} must be a whole number from 1 to ${MAX_WALK_HELD_NAMES}`);
});

test('walk: a directory deeper than the bound below the start is yielded with skip and not entered', async () => {
  // The default bound is 256; each level costs a lookup from the root (quadratic), so a smaller bound keeps this fast.
  const deep = path.join(dir, 'deep.img');
  await fs.copyFile(image, deep);
  const commands = ['mkdir /deep', 'cd /deep'];
  for (let i = 0; i < 10; i++) commands.push('mkdir a', 'cd a');
  debugfs(deep, commands, true);
  const files = await opened.image(deep);
  const items: Array<{ depth: number; skip?: string }> = [];
  for await (const item of files.walk('/deep', { maxDepth: 6 })) items.push({ depth: item.relative.length, skip: item.skip });
  expect(items).toHaveLength(8);
  expect(items[6]).toEqual({ depth: 6, skip: undefined });
  expect(items[7]).toEqual({ depth: 7, skip: 'deeper than 6 directories' });
  expect((await rejection((async () => { for await (const _ of files.walk('/deep', { maxDepth: 257 })); })())).message).toBe('maxDepth 257 must be a whole number from 0 to 256');
});

test('a journal transaction the VM never replayed is replayed in memory on first use; the image is not written', async () => {
  const dirty = path.join(dir, 'dirty.img');
  await fs.copyFile(image, dirty);
  const block = fileBlocks(dirty, '/etc/hostname')[0];
  const data = Buffer.alloc(4096);
  data.write('vm-99\n');
  await journalWrite(dirty, [{ block, data }]);
  const before = createHash('sha256').update(await fs.readFile(dirty)).digest('hex');
  const files = await opened.image(dirty);
  expect(files.volumes()[0].journal).toBeUndefined();
  expect((await bytesOf(files.read('/etc/hostname'))).toString()).toBe('vm-99\n');
  expect(files.volumes()[0].journal).toMatchObject({ needed: true, replayed: true, transactions: 1, blocks: 1 });
  expect(files.stats()).toMatchObject({ volumesOpened: 1, journalsReplayed: 1 });
  await files.close();
  expect(createHash('sha256').update(await fs.readFile(dirty)).digest('hex')).toBe(before);
});

test('a journal whose log cannot be read: the volume opens as the disk holds it, with a warning', async () => {
  const dirty = path.join(dir, 'dirty-broken.img');
  await fs.copyFile(image, dirty);
  const data = Buffer.alloc(4096);
  data.write('vm-77\n');
  await journalWrite(dirty, [{ block: fileBlocks(dirty, '/etc/hostname')[0], data }]);
  // Journal block 2: the logged copy of the block (0 is the journal superblock, 1 the descriptor, 3 the commit). Its
  // second read fails: the scan passes, the replay breaks midway, and the half-filled overlay must be dropped.
  const log = new Set(fileBlocks(dirty, '<8>').slice(2, 3));
  let hits = 0;
  let armed = false; // identifying the volume reads its first 64 KiB, where this small file system keeps its journal
  const files = await opened.image(dirty, (disk) => ({
    size: disk.size,
    async read(position, length) {
      for (let b = Math.floor(position / 4096); b * 4096 < position + length; b++) {
        if (armed && log.has(b) && ++hits > 1) throw new PagewiseError('Corrupt', `disk bytes ${b * 4096}–${b * 4096 + 4096} (page 0): unreadable`);
      }
      return disk.read(position, length);
    },
  }));
  armed = true;
  expect((await bytesOf(files.read('/etc/hostname'))).toString()).toBe('vm-14\n');
  expect(files.volumes()[0].journal).toMatchObject({ needed: true, replayed: false, transactions: 0 });
  expect(files.volumes()[0].journal?.warning).toMatch(/^the disk: disk bytes \d+–\d+ \(page 0\): unreadable; files are as the disk held them/);
  expect(files.stats()).toMatchObject({ volumesOpened: 1, journalsReplayed: 0 });
});

test('a partitioned disk: volumes named by partition, a bare path goes to the one ext volume, the other is refused with why', async () => {
  const partitioned = path.join(dir, 'mbr.img');
  await makePartitionedImage(partitioned, {
    scheme: 'mbr',
    sizeBytes: 48 * MiB,
    partitions: [
      { sizeBytes: 8 * MiB, type: '83' },
      { sizeBytes: 34 * MiB, type: '83', image },
    ],
  });
  const files = await opened.image(partitioned);
  expect(files.layout.scheme).toBe('mbr');
  expect(files.volumes().map((v) => [v.name, v.identity.kind, v.identity.openable])).toEqual([
    ['p1', 'empty', false],
    ['p2', 'ext4', true],
  ]);
  expect((await bytesOf(files.read('/etc/hostname'))).toString()).toBe('vm-14\n');
  expect((await files.list('p2:/etc', { limit: 1 })).entries[0]).toMatchObject({ name: 'fstab', path: '/etc/fstab', type: 'file' });
  const refused = await rejection(files.list('p1:/'));
  expect(refused.code).toBe('UnsupportedFileSystem');
  expect(refused.message).toBe(files.volumes()[0].identity.why);
  expect(refused.message).toMatch(/^p1 /);
  expect(files.stats()).toMatchObject({ volumesOpened: 1 });
});

test('a Corrupt read under a file passes through the file system and is named by the file', async () => {
  const blocks = fileBlocks(image, '/home/user/big.bin');
  const bad = blocks[blocks.length >> 1] * 4096;
  const broken = (disk: DiskReader): DiskReader => ({
    size: disk.size,
    async read(position, length) {
      if (position < bad + 4096 && bad < position + length) throw new PagewiseError('Corrupt', `disk bytes ${bad}–${bad + 4096} (page 3): the block's checksum does not match`);
      return disk.read(position, length);
    },
  });
  const files = await opened.image(image, broken);
  expect((await files.stat('/home/user/big.bin')).size).toBe(3 * MiB + 5);
  const failed = await rejection(bytesOf(files.read('/home/user/big.bin')));
  expect(failed.code).toBe('Corrupt');
  expect(failed.message).toBe(`file disk:/home/user/big.bin cannot be read: disk bytes ${bad}–${bad + 4096} (page 3): the block's checksum does not match`);
  // The volume stays usable: other files read fine.
  expect((await bytesOf(files.read('/etc/hostname'))).toString()).toBe('vm-14\n');
});

test('a Corrupt read under a directory is named by the directory, in a listing and in a walk', async () => {
  const bad = fileBlocks(image, '/usr/bin')[0] * 4096;
  const files = await opened.image(image, (disk) => ({
    size: disk.size,
    async read(position, length) {
      if (position < bad + 4096 && bad < position + length) throw new PagewiseError('Corrupt', `disk bytes ${bad}–${bad + 4096} (page 0): gone`);
      return disk.read(position, length);
    },
  }));
  const listed = await rejection(files.list('/usr/bin'));
  expect([listed.code, listed.message]).toEqual(['Corrupt', `disk:/usr/bin cannot be read: disk bytes ${bad}–${bad + 4096} (page 0): gone`]);
  const walked: string[] = [];
  const failed = await rejection((async () => {
    for await (const item of files.walk('/usr')) walked.push(item.path);
  })());
  expect(failed.message).toBe(listed.message);
  expect(walked).toEqual(['/usr', '/usr/bin']);
});

test('a file system whose group descriptors are garbage: Corrupt naming the volume, never a crash', async () => {
  const garbled = path.join(dir, 'garbled.img');
  await fs.copyFile(image, garbled);
  const handle = await fs.open(garbled, 'r+');
  await handle.write(Buffer.alloc(4096, 0xa5), 0, 4096, 4096); // block 1: the group descriptor table
  await handle.close();
  const files = await opened.image(garbled);
  expect(files.volumes()[0].identity).toMatchObject({ kind: 'ext4', openable: true });
  const failed = await rejection(files.list('/'));
  expect(failed.code).toBe('Corrupt');
  expect(failed.message).toMatch(/^disk: the ext file system cannot be opened: it points outside its volume \(bytes -?\d+–-?\d+ of 33554432\)$/);
});

test('random bytes: not openable, the message says what was found', async () => {
  const noise = path.join(dir, 'noise.img');
  await fs.writeFile(noise, createHash('sha512').update('x').digest().toString('hex').repeat(4096));
  const files = await opened.image(noise);
  expect(files.volumes()).toHaveLength(1);
  const refused = await rejection(files.list('/'));
  expect(refused.code).toBe('UnsupportedFileSystem');
  expect(refused.message).toBe(files.volumes()[0].identity.why ?? '(no why)');
});
