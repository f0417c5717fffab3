/**
 * File-level restore end to end (#14) against Azurite: real images (mkfs -d, sfdisk, mkswap, mkfs.vfat, mkntfs)
 * uploaded as page blobs, backed up, then read back file by file through BackupFiles, extractFiles and the CLI.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { backupDisk, encodeKeyFile, uploadImage, type StorageLocation } from '../core';
import { BackupFiles } from '../core/files/backup-files';
import { extractFiles } from '../core/files/extract';
import { openBackupSource } from '../core/repo/backup-source';
import { v2names } from '../core/repo/v2/names';
import type { PageRecord2 } from '../core/repo/v2/records';
import { captureIO, run } from '../cli/main';
import { ensureTools } from '../testkit/debian-tools';
import {
  debugfs,
  deleteFile,
  describeTree,
  fileBlocks,
  journalWrite,
  makeExtImage,
  makePartitionedImage,
  makeTree,
  osLikeTree,
  seededBytes,
  type TreeEntry,
  type TreeNode,
} from '../testkit/fs-images';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

jest.setTimeout(120_000);

/** Small pages, so that the bytes-fetched bound (whole pages are fetched) says something at this scale. */
const PAGE_SIZE = 256 * KiB;
const BLOCK = 4096;

let env: TestEnv;
let tools: Record<'mkswap' | 'mkfs.vfat' | 'mkntfs', string>;
let keyFile: string;
beforeAll(async () => {
  tools = ensureTools(['mkfs.ext4', 'debugfs', 'sfdisk', 'mkswap', 'mkfs.vfat', 'mkntfs']);
  env = await startEnv();
  keyFile = path.join(env.tmp, 'user.key');
  await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
});
afterAll(async () => env?.stop());

async function backupImage(image: string, name: string, vault: StorageLocation = env.vault): Promise<string> {
  await uploadImage(image, { url: env.az.sasUrl('src', 'disks', name) });
  const result = await backupDisk({ source: { url: env.sourceUrl(name) }, vault, userKey: env.userKey, pageSize: PAGE_SIZE, cacheBytes: 4 * MiB });
  return result.backupId;
}

const openFiles = (backupId: string, vault: StorageLocation = env.vault) => BackupFiles.open({ vault, backupId, userKey: env.userKey });

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
  const code = await run([...args, '--vault', env.vault.url, '--key-file', keyFile], io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

/** What a comparison looks at: everything but atime (and a directory's size, which is the file system's own). */
const comparable = (entries: TreeEntry[]) => entries.map((e) => (e.type === 'directory' ? { ...e, size: 0 } : e));

/** Asserts an extracted folder holds exactly `expected` (paths relative to it), byte for byte, modes and mtimes. */
async function expectTree(dir: string, expected: TreeEntry[]): Promise<void> {
  expect(comparable(await describeTree(dir))).toEqual(comparable(expected));
}

async function writeAt(image: string, offset: number, data: Buffer): Promise<void> {
  const handle = await fs.open(image, 'r+');
  try {
    await handle.write(data, 0, data.length, offset);
  } finally {
    await handle.close();
  }
}

/** Renames a directory entry in place in an ext2/3 image (no directory checksums): names mkdir refuses to make. */
async function renameEntry(image: string, dir: string, from: string, to: string, blockSize: number, partitionOffset = 0): Promise<void> {
  expect(Buffer.byteLength(from)).toBe(Buffer.byteLength(to));
  const [block] = fileBlocks(image, dir);
  const handle = await fs.open(image, 'r+');
  try {
    const bytes = Buffer.alloc(blockSize);
    await handle.read(bytes, 0, blockSize, partitionOffset + block * blockSize);
    const at = bytes.indexOf(Buffer.from(from));
    expect(at).toBeGreaterThan(8);
    expect(bytes[at - 2]).toBe(Buffer.byteLength(from)); // name_len: the match is a whole name
    Buffer.from(to).copy(bytes, at);
    await handle.write(bytes, 0, blockSize, partitionOffset + block * blockSize);
  } finally {
    await handle.close();
  }
}

describe('a whole-disk ext4 file system', () => {
  let tree: string;
  let expected: TreeEntry[];
  let backupId: string;
  const BIG = 10 * MiB;

  beforeAll(async () => {
    tree = path.join(env.tmp, 'ext4-tree');
    const spec: TreeNode[] = [...osLikeTree({ bigFileBytes: BIG }), { type: 'file', path: 'var/log/old.log', size: 20 * KiB, text: true, seed: 77 }];
    expected = await makeTree(tree, spec);
    const image = path.join(env.tmp, 'ext4.img');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 48 * MiB, label: 'rootfs' });
    deleteFile(image, '/var/log/old.log');
    // A crash right after the VM rewrote /etc/hostname: the new bytes only in a committed journal transaction.
    const [hostBlock] = fileBlocks(image, '/etc/hostname');
    const renamed = Buffer.alloc(BLOCK);
    renamed.write('vm-99\n');
    await journalWrite(image, [{ block: hostBlock, data: renamed }]);
    expect(debugfs(image, ['stats'])).toMatch(/needs_recovery/);
    // What the file system holds as the VM would see it: old.log gone, hostname as journaled (debugfs rm leaves
    // the directory's mtime as it was, so /var/log still has the tree's).
    expected = expected.filter((e) => e.path !== '/var/log/old.log');
    const host = expected.find((e) => e.path === '/etc/hostname')!;
    host.sha256 = createHash('sha256').update('vm-99\n').digest('hex');
    backupId = await backupImage(image, 'ext4.vhd');
  });

  test('lists every file, reads the journaled change, leaves the deleted file out, and extracts it all byte-identical with modes and mtimes', async () => {
    const files = await openFiles(backupId);
    try {
      expect(files.layout.scheme).toBe('none');
      expect(files.volumes().map((v) => [v.name, v.identity.kind, v.identity.openable, v.identity.label])).toEqual([['disk', 'ext4', true, 'rootfs']]);

      const walked: string[] = [];
      for await (const entry of files.walk('/')) walked.push(entry.path);
      expect(walked.filter((p) => p !== '/' && !p.startsWith('/lost+found')).sort()).toEqual(expected.map((e) => e.path).sort());
      await expect(files.stat('/var/log/old.log')).rejects.toMatchObject({ code: 'PathNotFound' });
      expect((await files.stat('/etc/localtime')).target).toBe('/usr/share/zoneinfo/UTC');
      expect(files.volumes()[0].journal).toMatchObject({ needed: true, replayed: true, transactions: 1 });

      const to = path.join(env.tmp, 'ext4-out');
      const result = await extractFiles({ files, paths: ['/'], to });
      expect(result.journalReplayed).toEqual(['disk']);
      expect(result.skipped).toEqual([]);
      const root = path.join(to, 'disk');
      await fs.rm(path.join(root, 'lost+found'), { recursive: true });
      await expectTree(root, expected);
      expect(await fs.readFile(path.join(root, 'etc/hostname'), 'utf8')).toBe('vm-99\n');
      expect(await fs.readlink(path.join(root, 'home/user/up'))).toBe('../../etc'); // a link, never followed
    } finally {
      await files.close();
    }
  });

  test('extracting the 10 MiB file fetches its bytes plus at most a page at each end and the metadata', async () => {
    const files = await openFiles(backupId);
    try {
      const to = path.join(env.tmp, 'big-out');
      const result = await extractFiles({ files, paths: ['/home/user/big.bin'], to });
      expect(result).toMatchObject({ files: 1, bytes: BIG });
      expect((await describeTree(to)).map((e) => [e.path, e.sha256])).toEqual([['/big.bin', expected.find((e) => e.path === '/home/user/big.bin')!.sha256]]);
      // The file's pages are random data (stored as they are), so the fetch is at least the file; on top of it:
      // the partial pages at its two ends, and the metadata a mount and a lookup read (superblock, group
      // descriptors, bitmaps' page, the inodes and directories on the way, the journal's first blocks),
      // which at 256 KiB pages of mostly zeros compress to little — 1 MiB covers it with room. Measured:
      // 10,713,070 bytes (1.022 × the file, 227 KB over it) in 50 requests.
      const { bytesFetched, requests } = result.stats;
      expect(bytesFetched).toBeGreaterThanOrEqual(BIG);
      expect(bytesFetched).toBeLessThanOrEqual(BIG + 2 * PAGE_SIZE + 1 * MiB);
      expect(requests).toBeLessThan(200);
    } finally {
      await files.close();
    }
  });

  test('the CLI extracts a file and says the journal was replayed', async () => {
    const to = path.join(env.tmp, 'cli-ext4-out');
    const out = await cli(['extract', backupId, '/etc/hostname', '/home/user/docs', '--to', to, '--json']);
    expect(out.code).toBe(0);
    const summary = JSON.parse(out.stdout);
    expect(summary).toMatchObject({ files: 3, directories: 1, journalReplayed: ['disk'] });
    expect(await fs.readFile(path.join(to, 'hostname'), 'utf8')).toBe('vm-99\n');
    expect(await fs.readFile(path.join(to, 'docs', 'résumé ✓.txt'), 'utf8')).toBe('UTF-8 name\n');
    expect((await fs.stat(path.join(to, 'docs', 'my notes.txt'))).mode & 0o7777).toBe(0o600);
    expect(out.stderr).toMatch(/replayed 1 journal transaction/);
  });
});

describe('an MBR disk: ext4, ext3 and swap in a logical partition', () => {
  let backupId: string;
  let ext4Tree: TreeEntry[];
  let ext3Tree: TreeEntry[];

  beforeAll(async () => {
    const t4 = path.join(env.tmp, 'mbr-p1');
    ext4Tree = await makeTree(t4, osLikeTree({ bigFileBytes: 1 * MiB, seed: 41 }));
    const t3 = path.join(env.tmp, 'mbr-p2');
    ext3Tree = await makeTree(t3, [
      { type: 'dir', path: 'data', mode: 0o750, mtime: new Date('2022-02-02T02:02:02Z') },
      { type: 'file', path: 'data/report.csv', size: 200 * KiB + 5, text: true, seed: 5, mode: 0o640, mtime: new Date('2022-02-01T00:00:00Z') },
      { type: 'file', path: 'data/blob.bin', size: 3 * MiB + 1, seed: 6, mode: 0o600, mtime: new Date('2021-12-31T23:59:59Z') },
      { type: 'dir', path: 'evil', mode: 0o755 },
      { type: 'file', path: 'evil/AAAAAAA', content: 'escaped!\n' },
      { type: 'file', path: 'evil/XX', content: 'escaped too!\n' },
      { type: 'file', path: 'evil/fine.txt', content: 'fine\n' },
    ]);
    const p1 = path.join(env.tmp, 'mbr-p1.img');
    const p2 = path.join(env.tmp, 'mbr-p2.img');
    const swap = path.join(env.tmp, 'mbr-swap.img');
    await makeExtImage(p1, t4, { kind: 'ext4', sizeBytes: 20 * MiB });
    await makeExtImage(p2, t3, { kind: 'ext3', sizeBytes: 16 * MiB, blockSize: 1024 });
    // Names no mkdir would make, as a hostile VM owner could leave them in a directory block.
    await renameEntry(p2, '/evil', 'AAAAAAA', '../../x', 1024);
    await renameEntry(p2, '/evil', 'XX', '..', 1024);
    await fs.writeFile(swap, '');
    await fs.truncate(swap, 8 * MiB);
    execFileSync(tools.mkswap, ['-L', 'swap0', swap], { stdio: 'pipe' });
    const image = path.join(env.tmp, 'mbr.img');
    await makePartitionedImage(image, {
      scheme: 'mbr',
      sizeBytes: 64 * MiB,
      partitions: [
        { sizeBytes: 20 * MiB, type: '83', image: p1, bootable: true },
        { sizeBytes: 16 * MiB, type: '83', image: p2 },
        { sizeBytes: 20 * MiB, type: '5' },
        { sizeBytes: 8 * MiB, type: '82', logical: true, image: swap },
      ],
    });
    backupId = await backupImage(image, 'mbr.vhd');
  });

  test('the volumes are found and named as Linux names them; swap is refused with a clear reason', async () => {
    const files = await openFiles(backupId);
    try {
      expect(files.layout.scheme).toBe('mbr');
      const byName = new Map(files.volumes().map((v) => [v.name, v]));
      expect(byName.get('p1')).toMatchObject({ offset: MiB, size: 20 * MiB, identity: { kind: 'ext4', openable: true } });
      expect(byName.get('p2')).toMatchObject({ size: 16 * MiB, identity: { kind: 'ext3', openable: true } });
      expect(byName.get('p5')).toMatchObject({ size: 8 * MiB, identity: { kind: 'swap', openable: false } });
      await expect(files.list('p5:/')).rejects.toMatchObject({ code: 'UnsupportedFileSystem', message: expect.stringMatching(/p5.*swap/i) });
    } finally {
      await files.close();
    }
  });

  test('both file systems extract byte-identical with modes and mtimes; hostile names never leave --to', async () => {
    const files = await openFiles(backupId);
    const sandbox = path.join(env.tmp, 'mbr-sandbox');
    await fs.mkdir(sandbox);
    const to = path.join(sandbox, 'to');
    try {
      const result = await extractFiles({ files, paths: ['p1:/', 'p2:/data', 'p2:/evil'], to });
      expect(result.journalReplayed).toEqual([]);
      await fs.rm(path.join(to, 'p1', 'lost+found'), { recursive: true });
      await expectTree(path.join(to, 'p1'), ext4Tree);
      await expectTree(
        path.join(to, 'data'),
        ext3Tree.filter((e) => e.path.startsWith('/data/')).map((e) => ({ ...e, path: e.path.slice('/data'.length) })),
      );
      // '../../x' is skipped and reported; '..' is not a name a directory can hold as a file (left out or reported).
      expect(result.skipped).toEqual(expect.arrayContaining([expect.objectContaining({ path: expect.stringContaining('../../x') })]));
      expect((await fs.readdir(path.join(to, 'evil'))).sort()).toEqual(['fine.txt']);
      expect(await fs.readdir(sandbox)).toEqual(['to']);
      expect((await fs.readdir(env.tmp)).filter((n) => n === 'x')).toEqual([]);
    } finally {
      await files.close();
    }
    // A path that climbs is refused before anything is read or written.
    const climbing = await cli(['extract', backupId, 'p2:/../../x', '--to', path.join(sandbox, 'climb')]);
    expect(climbing.code).toBe(2);
    expect(climbing.stderr).toMatch(/\.\./);
    expect(await fs.readdir(sandbox)).toEqual(['to']);
  });

  test('pagewise ls shows the partition table, then a directory', async () => {
    const table = await cli(['ls', backupId]);
    expect(table.code).toBe(0);
    for (const want of [/p1\b.*ext4/, /p2\b.*ext3/, /p5\b.*swap/]) expect(table.stdout).toMatch(want);
    const dir = await cli(['ls', backupId, 'p2:/data']);
    expect(dir.code).toBe(0);
    expect(dir.stdout).toMatch(/-rw-r-----\s+204805\s.*report\.csv/);
    expect(dir.stdout).toMatch(/-rw-------\s+3145729\s.*blob\.bin/);
  });
});

describe('a GPT disk: an EFI system partition (vfat) and ext4', () => {
  test('the ext4 partition extracts; the EFI partition is identified and refused', async () => {
    const t = path.join(env.tmp, 'gpt-p2');
    const treeEntries = await makeTree(t, osLikeTree({ bigFileBytes: 512 * KiB, seed: 61 }));
    const efi = path.join(env.tmp, 'gpt-efi.img');
    await fs.writeFile(efi, '');
    await fs.truncate(efi, 16 * MiB);
    execFileSync(tools['mkfs.vfat'], ['-n', 'EFI', efi], { stdio: 'pipe' });
    const root = path.join(env.tmp, 'gpt-p2.img');
    await makeExtImage(root, t, { kind: 'ext4', sizeBytes: 24 * MiB });
    const image = path.join(env.tmp, 'gpt.img');
    await makePartitionedImage(image, {
      scheme: 'gpt',
      sizeBytes: 48 * MiB,
      partitions: [
        { sizeBytes: 16 * MiB, type: 'U', name: 'EFI System Partition', image: efi },
        { sizeBytes: 24 * MiB, type: 'L', name: 'rootfs', image: root },
      ],
    });
    const backupId = await backupImage(image, 'gpt.vhd');
    const files = await openFiles(backupId);
    try {
      expect(files.layout.scheme).toBe('gpt');
      expect(files.volumes().map((v) => [v.name, v.partition?.label, v.identity.kind, v.identity.openable])).toEqual([
        ['p1', 'EFI System Partition', 'vfat', false],
        ['p2', 'rootfs', 'ext4', true],
      ]);
      await expect(files.list('p1:/')).rejects.toMatchObject({ code: 'UnsupportedFileSystem' });
      const to = path.join(env.tmp, 'gpt-out');
      await extractFiles({ files, paths: ['p2:/'], to });
      await fs.rm(path.join(to, 'p2', 'lost+found'), { recursive: true });
      await expectTree(path.join(to, 'p2'), treeEntries);
    } finally {
      await files.close();
    }
  });
});

describe('disks Pagewise cannot read files from', () => {
  test('an NTFS disk and a disk of random bytes are refused with UnsupportedFileSystem and a clear message', async () => {
    const ntfs = path.join(env.tmp, 'ntfs.img');
    await fs.writeFile(ntfs, '');
    await fs.truncate(ntfs, 16 * MiB);
    execFileSync(tools.mkntfs, ['-F', '-Q', '-q', '-L', 'Windows', ntfs], { stdio: 'pipe' });
    const random = path.join(env.tmp, 'random.img');
    await fs.writeFile(random, Buffer.concat([seededBytes(2 * MiB, 9), Buffer.alloc(2 * MiB)]));
    for (const [image, kind, why] of [
      [ntfs, 'ntfs', /NTFS.*ext2\/3\/4 only/],
      [random, 'unknown', /no partition table and no file system Pagewise knows/],
    ] as const) {
      const backupId = await backupImage(image, `${kind}.vhd`);
      const files = await openFiles(backupId);
      try {
        expect(files.volumes()).toEqual([expect.objectContaining({ name: 'disk', identity: expect.objectContaining({ kind, openable: false }) })]);
        await expect(files.list('disk:/')).rejects.toMatchObject({ code: 'UnsupportedFileSystem', message: expect.stringMatching(why) });
      } finally {
        await files.close();
      }
      const out = await cli(['ls', backupId, 'disk:/']);
      expect(out.code).toBe(2);
      expect(out.stderr).toMatch(why);
    }
  });
});

describe('damage and history', () => {
  test('a corrupted block under a file: the read fails Corrupt naming the file, and nothing is left under its name', async () => {
    const vault = await env.makeVault('corrupt');
    const t = path.join(env.tmp, 'corrupt-tree');
    await makeTree(t, [
      { type: 'file', path: 'data/blob.bin', size: 2 * MiB, seed: 31 },
      { type: 'file', path: 'data/ok.txt', content: 'intact\n' },
    ]);
    const image = path.join(env.tmp, 'corrupt.img');
    await makeExtImage(image, t, { kind: 'ext4', sizeBytes: 16 * MiB });
    const backupId = await backupImage(image, 'corrupt.vhd', vault);

    // The page holding the middle of the file, and where its block lies in its pack.
    const blocks = fileBlocks(image, '/data/blob.bin');
    const diskOffset = blocks[blocks.length / 2] * BLOCK;
    const page = Math.floor(diskOffset / PAGE_SIZE);
    const source = await openBackupSource(vault, backupId, env.userKey);
    expect(source.formatVersion).toBe(2);
    let record: PageRecord2 | undefined;
    for await (const { entries } of source.groups()) record ??= (entries as PageRecord2[]).find((e) => e.page === page);
    // The chunk of that page (FastCDC chunks since #15) holding the file's middle block.
    let chunkStart = page * PAGE_SIZE;
    const chunk = record!.chunks.find((c) => (chunkStart += c.length) > diskOffset)!;
    expect(chunk.storedLength).toBeGreaterThan(0); // a stored chunk (random data), not a zero chunk
    const packBlob = env.az.accounts.vault.service.getContainerClient('corrupt').getBlockBlobClient(v2names.pack(chunk.pack));
    const pack = await packBlob.downloadToBuffer();
    pack[chunk.offset + Math.floor(chunk.storedLength / 2)] ^= 0x5a;
    await packBlob.uploadData(pack);

    const files = await openFiles(backupId, vault);
    const to = path.join(env.tmp, 'corrupt-out');
    try {
      expect((await files.stat('/data/ok.txt')).size).toBe(7); // the rest of the file system still reads
      const name = /file (disk:)?\/data\/blob\.bin cannot be read/;
      await expect(extractFiles({ files, paths: ['/data/blob.bin'], to })).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(name) });
      expect(await fs.readdir(to)).toEqual([]); // no half-file, no temporary
      const reading = (async () => {
        for await (const piece of files.read('/data/blob.bin')) void piece;
      })();
      await expect(reading).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(name) });
    } finally {
      await files.close();
    }
  });

  test("an incremental backup's files: a file changed between two backups reads as each backup holds it", async () => {
    const vault = await env.makeVault('history');
    const t = path.join(env.tmp, 'history-tree');
    const before = seededBytes(300 * KiB, 51, true);
    await makeTree(t, [
      { type: 'file', path: 'srv/notes.txt', content: before },
      { type: 'file', path: 'srv/static.bin', size: 1 * MiB, seed: 52 },
    ]);
    const image = path.join(env.tmp, 'history.img');
    await makeExtImage(image, t, { kind: 'ext4', sizeBytes: 24 * MiB });
    const name = 'history.vhd';
    const writable = { url: env.az.sasUrl('src', 'disks', name) };
    await uploadImage(image, writable);
    const nightly = () => backupDisk({ source: writable, vault, userKey: env.userKey, pageSize: PAGE_SIZE, takeSnapshot: true, cacheBytes: 4 * MiB });
    const first = await nightly();

    // The VM rewrites the file in place (same size): only those blocks change on the disk.
    const after = seededBytes(before.length, 53, true);
    const blocks = fileBlocks(image, '/srv/notes.txt');
    const blob = env.sourceClient(name);
    for (let i = 0; i < blocks.length; i++) {
      const data = Buffer.alloc(BLOCK);
      after.copy(data, 0, i * BLOCK, Math.min(after.length, (i + 1) * BLOCK));
      await writeAt(image, blocks[i] * BLOCK, data);
      await blob.uploadPages(data, blocks[i] * BLOCK, BLOCK);
    }
    const second = await nightly();
    expect(second).toMatchObject({ kind: 'incremental', base: { backupId: first.backupId } });

    for (const [backup, want] of [[second, after], [first, before]] as const) {
      const files = await openFiles(backup.backupId, vault);
      try {
        const parts: Buffer[] = [];
        for await (const piece of files.read('/srv/notes.txt')) parts.push(piece);
        expect(Buffer.concat(parts).equals(want)).toBe(true);
      } finally {
        await files.close();
      }
    }
  });
});
