/** The test tools themselves: the Debian tools are found (and mapped to the right packages), images are as asked. */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DebianTool, ensureTools, findTool, TOOL_PACKAGES, withInstallLock } from '../testkit/debian-tools';
import { debugfs, deleteFile, fileBlocks, journalWrite, makeExtImage, makePartitionedImage, makeTree, TreeNode } from '../testkit/fs-images';

const MiB = 1024 * 1024;
let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-fsimages-'));
});
afterAll(async () => fs.rm(tmp, { recursive: true, force: true }));

describe('debian-tools', () => {
  test('finds the installed tools by absolute path', () => {
    const tools = ensureTools(['mkfs.ext4', 'debugfs', 'sfdisk']);
    for (const [name, at] of Object.entries(tools)) {
      expect(path.isAbsolute(at)).toBe(true);
      expect(path.basename(at)).toBe(name);
      expect(spawnSync(at, ['-V']).error).toBeUndefined(); // it runs
    }
  });

  test('each tool belongs to the Debian package it is mapped to (as dpkg knows it, where installed)', () => {
    const checked: string[] = [];
    for (const [tool, pkg] of Object.entries(TOOL_PACKAGES) as Array<[DebianTool, string]>) {
      if (!findTool(tool)) continue;
      const owner = execFileSync('dpkg-query', ['-S', `*bin/${tool}`], { stdio: 'pipe' }).toString();
      expect(owner.split(':')[0].split(',').map((s) => s.trim())).toContain(pkg);
      checked.push(tool);
    }
    expect(checked).toEqual(expect.arrayContaining(['mkfs.ext4', 'debugfs', 'sfdisk']));
  });

  test('the install lock is exclusive and a dead holder does not block', async () => {
    const lock = path.join(tmp, 'install.lock');
    const order: string[] = [];
    withInstallLock(() => {
      order.push('outer');
      expect(() => withInstallLock(() => order.push('inner'), lock, 300)).toThrow(/waited 0.3 s/);
    }, lock);
    expect(order).toEqual(['outer']);
    await fs.writeFile(lock, '999999999'); // no such process: a stale lock
    expect(withInstallLock(() => 'ran', lock, 1000)).toBe('ran');
    await expect(fs.stat(lock)).rejects.toThrow(/ENOENT/);
  });
});

describe('fs-images', () => {
  const spec: TreeNode[] = [
    { type: 'dir', path: 'a/b', mode: 0o700, mtime: new Date('2019-01-02T03:04:05Z') },
    { type: 'file', path: 'a/b/x.bin', size: 5000, seed: 3, mode: 0o640, mtime: new Date('2018-05-06T07:08:09Z') },
    { type: 'file', path: 'a/é y.txt', content: 'hi\n', mode: 0o600 },
    { type: 'symlink', path: 'a/link', target: 'b/x.bin' },
    { type: 'dir', path: 'sticky', mode: 0o1777 },
  ];

  test('makeTree writes modes, times, links as asked and describes them', async () => {
    const entries = await makeTree(path.join(tmp, 'tree'), spec);
    expect(entries.map((e) => [e.path, e.type, e.mode.toString(8)])).toEqual([
      ['/a', 'directory', '755'],
      ['/a/b', 'directory', '700'],
      ['/a/b/x.bin', 'file', '640'],
      ['/a/link', 'symlink', expect.any(String)],
      ['/a/é y.txt', 'file', '600'],
      ['/sticky', 'directory', '1777'],
    ]);
    expect(entries.find((e) => e.path === '/a/b')!.mtimeMs).toBe(Date.parse('2019-01-02T03:04:05Z'));
    expect(entries.find((e) => e.path === '/a/b/x.bin')!.size).toBe(5000);
    expect(entries.find((e) => e.path === '/a/link')!.target).toBe('b/x.bin');
  });

  test('makeExtImage holds the tree; deleteFile and journalWrite edit it as debugfs does', async () => {
    const tree = path.join(tmp, 'tree2');
    await makeTree(tree, spec);
    const image = path.join(tmp, 'ext3.img');
    await makeExtImage(image, tree, { kind: 'ext3', sizeBytes: 16 * MiB, blockSize: 1024, label: 'root' });
    const stats = debugfs(image, ['stats']);
    expect(stats).toMatch(/Block size:\s+1024/);
    expect(stats).toMatch(/Filesystem volume name:\s+root/);
    expect(debugfs(image, ['stat "/a/b/x.bin"'])).toMatch(/Mode:\s+0640/);

    const [first] = fileBlocks(image, '/a/b/x.bin');
    await journalWrite(image, [{ block: first, data: Buffer.alloc(1024, 0x61) }]);
    expect(debugfs(image, ['stats'])).toMatch(/needs_recovery/);
    expect(debugfs(image, ['logdump'])).toMatch(/type 2 \(commit block\)/);
    await journalWrite(image, [{ block: first + 1, data: Buffer.alloc(1024, 0x62) }], { commit: false });
    expect(debugfs(image, ['logdump']).match(/commit block/g)).toHaveLength(1); // the second one torn

    deleteFile(image, '/a/é y.txt');
    expect(debugfs(image, ['ls -l /a'])).not.toMatch(/é y\.txt/);
    expect(() => deleteFile(image, '/nope')).toThrow(/File not found/);
  });

  test('makePartitionedImage places MBR primaries and logicals, GPT names, and copies images in', async () => {
    const fsImage = path.join(tmp, 'p.img');
    await fs.writeFile(fsImage, Buffer.concat([Buffer.alloc(MiB), Buffer.from('marker'), Buffer.alloc(100)]));
    const mbr = await makePartitionedImage(path.join(tmp, 'mbr.img'), {
      scheme: 'mbr',
      sizeBytes: 64 * MiB,
      partitions: [
        { sizeBytes: 8 * MiB, type: '83', image: fsImage, bootable: true },
        { sizeBytes: 4 * MiB, type: '82' },
        { sizeBytes: 30 * MiB, type: '5' },
        { sizeBytes: 8 * MiB, type: '83', logical: true },
        { sizeBytes: 8 * MiB, type: '83', logical: true, image: fsImage },
      ],
    });
    expect(mbr.map((p) => [p.number, p.type, p.size / MiB])).toEqual([
      [1, '83', 8],
      [2, '82', 4],
      [3, '5', 30],
      [5, '83', 8],
      [6, '83', 8],
    ]);
    const disk = await fs.readFile(path.join(tmp, 'mbr.img'));
    for (const p of [mbr[0], mbr[4]]) expect(disk.subarray(p.offset + MiB, p.offset + MiB + 6).toString()).toBe('marker');
    expect(mbr[0].offset).toBe(MiB);

    const gpt = await makePartitionedImage(path.join(tmp, 'gpt.img'), {
      scheme: 'gpt',
      sizeBytes: 32 * MiB,
      partitions: [
        { sizeBytes: 8 * MiB, type: 'U', name: 'EFI system' },
        { sizeBytes: 16 * MiB, type: 'L', name: 'root fs', image: fsImage },
      ],
    });
    expect(gpt.map((p) => [p.number, p.type, p.name])).toEqual([
      [1, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', 'EFI system'],
      [2, '0FC63DAF-8483-4772-8E79-3D69D8477DE4', 'root fs'],
    ]);
  });
});
