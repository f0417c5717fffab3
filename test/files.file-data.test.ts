/**
 * The direct file-data path (core/files/ext-file-data.ts): byte for byte the libext2fs path on ext2 (1 KiB
 * blocks, double-indirect), ext3, ext4 (a fragmented extent tree of depth 1, holes, an unwritten extent, a
 * partial last block), inline data falling back, a journal-only change seen through the overlay, an
 * encrypted file refused, a hostile map Corrupt — and far fewer disk reads than libext2fs makes.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BackupFiles, ExtVolume, fileDiskReader, type DiskReader } from '../core';
import { mapInodeRuns, readExtInode } from '../core/files/ext-inode';
import { planFileData, readFileData } from '../core/files/ext-file-data';
import { parseExtSuperblock, type ExtSuperblock } from '../core/files/ext-superblock';
import { ensureTools } from '../testkit/debian-tools';
import { debugfs, fileBlocks, journalWrite, makeExtImage, seededBytes } from '../testkit/fs-images';
import { Opened, rejection, bytesOf } from './harness/file-images';

const KiB = 1024;
const MiB = 1024 * KiB;
let dir: string;
const opened = new Opened();

/** Counts the reads (and bytes) that reach the disk. */
function counting(inner: DiskReader): DiskReader & { reads: number; bytes: number } {
  const c = {
    size: inner.size,
    reads: 0,
    bytes: 0,
    read(position: number, length: number) {
      c.reads++;
      c.bytes += length;
      return inner.read(position, length);
    },
  };
  return c;
}

interface Mounted {
  volume: ExtVolume;
  disk: ReturnType<typeof counting>;
  sb: ExtSuperblock;
}

async function mountImage(image: string): Promise<Mounted> {
  const reader = await fileDiskReader(image);
  opened.push(reader);
  const disk = counting(reader);
  const volume = await ExtVolume.mount(disk, 'disk');
  opened.push(volume);
  const sb = parseExtSuperblock(await reader.read(1024, 1024), 'disk')!;
  return { volume, disk, sb };
}

/** Reads a file both ways: the bytes and the disk reads of each. */
async function bothWays(m: Mounted, file: string, chunkBytes?: number) {
  m.disk.reads = 0;
  const direct = await bytesOf(m.volume.readFile(file, { chunkBytes }));
  const directReads = m.disk.reads;
  m.disk.reads = 0;
  const viaLib = await bytesOf(m.volume.readFile(file, { chunkBytes, direct: false }));
  return { direct, directReads, viaLib, libReads: m.disk.reads };
}

/** The file's runs (as the direct path maps them) and its inode. */
async function runsOf(m: Mounted, file: string) {
  const ino = (await m.volume.lstat(file)).ino;
  const inode = await readExtInode(m.disk, m.sb, ino, file);
  return { inode, runs: await mapInodeRuns(m.disk, m.sb, inode, Math.ceil(inode.size / m.sb.blockSize), file) };
}

/**
 * The most reads a direct read may make: the inode (descriptor + table block), the extent/indirect blocks
 * (≤ the file's blocks ÷ pointers a block, + 2), one read per run per chunk it meets, and what libext2fs's
 * open + fstat read (the path's directory and inode blocks: ≤ 8 here).
 */
function readBound(runs: Array<{ logical: number; length: number }>, size: number, blockSize: number, chunkBytes: number): number {
  let perChunk = 0;
  for (const run of runs) {
    const first = Math.floor((run.logical * blockSize) / chunkBytes);
    const last = Math.floor(((run.logical + run.length) * blockSize - 1) / chunkBytes);
    perChunk += last - first + 1;
  }
  const mapBlocks = Math.ceil(Math.ceil(size / blockSize) / (blockSize / 12)) + 2;
  return 2 + mapBlocks + perChunk + 8;
}

/** A file of `size` random bytes with holes: data in [0, 3 blocks), a hole, data in [8, 11 blocks) cut short, a hole at the end. */
async function sparseFile(file: string, blockSize: number): Promise<Buffer> {
  const size = 20 * blockSize;
  const bytes = Buffer.alloc(size);
  seededBytes(3 * blockSize, 31).copy(bytes, 0);
  seededBytes(3 * blockSize - 100, 32).copy(bytes, 8 * blockSize);
  const handle = await fs.open(file, 'w');
  await handle.write(bytes, 0, 3 * blockSize, 0);
  await handle.write(bytes, 8 * blockSize, 3 * blockSize - 100, 8 * blockSize);
  await handle.truncate(size);
  await handle.close();
  return bytes;
}

const files: Record<string, Buffer> = {};

beforeAll(async () => {
  ensureTools(['mkfs.ext4', 'debugfs']);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-file-data-'));
  const tree = path.join(dir, 'tree');
  await fs.mkdir(path.join(tree, 'd'), { recursive: true });
  files['/big'] = seededBytes(2 * MiB + 123, 1); // ext2 1 KiB blocks: past 268 blocks → double-indirect; a partial last block
  files['/d/small'] = seededBytes(100, 2);
  files['/empty'] = Buffer.alloc(0);
  files['/exact'] = seededBytes(8 * KiB, 3);
  for (const [name, bytes] of Object.entries(files)) await fs.writeFile(path.join(tree, name), bytes);
});

afterAll(async () => {
  await opened.closeAll();
  await fs.rm(dir, { recursive: true, force: true });
});

describe.each([
  { kind: 'ext2' as const, blockSize: 1024 as const },
  { kind: 'ext3' as const, blockSize: 4096 as const },
  { kind: 'ext4' as const, blockSize: 4096 as const },
  { kind: 'ext4' as const, blockSize: 1024 as const },
])('$kind with $blockSize-byte blocks', ({ kind, blockSize }) => {
  let image: string;
  let sparse: Buffer;

  beforeAll(async () => {
    const tree = path.join(dir, `tree-${kind}-${blockSize}`);
    await fs.cp(path.join(dir, 'tree'), tree, { recursive: true });
    sparse = await sparseFile(path.join(tree, 'sparse'), blockSize);
    image = path.join(dir, `${kind}-${blockSize}.img`);
    await makeExtImage(image, tree, { kind, sizeBytes: 16 * MiB, blockSize });
  });

  test('every file: the direct path equals libext2fs and the tree, in far fewer disk reads', async () => {
    const m = await mountImage(image);
    for (const [name, expected] of Object.entries(files)) {
      const got = await bothWays(m, name);
      expect(got.direct.equals(expected)).toBe(true);
      expect(got.viaLib.equals(expected)).toBe(true);
      const { runs } = await runsOf(m, name);
      expect(got.directReads).toBeLessThanOrEqual(readBound(runs, expected.length, blockSize, MiB));
      if (expected.length >= MiB) expect(got.libReads).toBeGreaterThanOrEqual(Math.ceil(expected.length / blockSize)); // a read a block
    }
    // The 2 MiB file: libext2fs reads it block by block; the direct path in a handful of large reads.
    const big = await bothWays(m, '/big');
    expect(big.libReads).toBeGreaterThan(10 * big.directReads);
  });

  test('a sparse file: holes are zeros read from nowhere, the last data block cut short', async () => {
    const m = await mountImage(image);
    const { runs, inode } = await runsOf(m, '/sparse');
    expect(inode.size).toBe(20 * blockSize);
    // Only the 6 data blocks are mapped (two runs' worth; ext2 maps block by block and merges neighbours).
    expect(runs.reduce((n, r) => n + r.length, 0)).toBe(6);
    expect(runs.map((r) => r.logical)).toEqual([0, 8]);
    const got = await bothWays(m, '/sparse');
    expect(got.direct.equals(sparse)).toBe(true);
    expect(got.viaLib.equals(sparse)).toBe(true);
    m.disk.reads = 0;
    m.disk.bytes = 0;
    await bytesOf(readFileData(m.disk, m.sb, inode, 'sparse', { chunkBytes: MiB }));
    expect(m.disk.reads).toBe(2); // one read per run, none for the holes
    expect(m.disk.bytes).toBe(6 * blockSize);
  });

  test('odd chunk sizes and small map windows give the same bytes', async () => {
    const m = await mountImage(image);
    const { inode } = await runsOf(m, '/big');
    for (const [chunkBytes, windowBlocks] of [[1000, 7], [blockSize * 3 + 1, 300], [8 * MiB, undefined]] as const) {
      const parts: Buffer[] = [];
      for await (const part of readFileData(m.disk, m.sb, inode, 'big', { chunkBytes, windowBlocks })) {
        expect(part.length).toBeLessThanOrEqual(chunkBytes);
        parts.push(part);
      }
      expect(Buffer.concat(parts).equals(files['/big'])).toBe(true);
    }
  });
});

describe('ext4 edge cases (1 KiB blocks)', () => {
  let tree: string;

  beforeAll(async () => {
    tree = path.join(dir, 'tree-edge');
    await fs.mkdir(tree);
    // 300 one-block files; every other one deleted later leaves 150 one-block holes for a fragmented file.
    for (let i = 0; i < 300; i++) await fs.writeFile(path.join(tree, `f${String(i).padStart(3, '0')}`), seededBytes(KiB, 100 + i));
  });

  async function edgeImage(name: string, extraArgs: string[] = []): Promise<string> {
    const image = path.join(dir, `${name}.img`);
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 16 * MiB, blockSize: 1024, extraArgs });
    return image;
  }

  test('a fragmented file: an extent tree of depth 1 with several leaf blocks, read equal in any window', async () => {
    const image = await edgeImage('fragmented');
    debugfs(image, Array.from({ length: 150 }, (_, i) => `rm /f${String(2 * i).padStart(3, '0')}`), true);
    const content = seededBytes(400 * KiB + 7, 5);
    const host = path.join(dir, 'fragmented-source');
    await fs.writeFile(host, content);
    debugfs(image, [`write ${host} frag`], true);
    const extents = debugfs(image, ['ex /frag']);
    expect(extents).toMatch(/^\s*0\/\s*1\s/m); // depth 1
    expect((extents.match(/^\s*0\/\s*1\s/gm) ?? []).length).toBeGreaterThanOrEqual(2); // ≥ 2 leaf blocks
    const m = await mountImage(image);
    const { runs, inode } = await runsOf(m, '/frag');
    expect(runs.length).toBeGreaterThanOrEqual(100);
    // debugfs "blocks" lists the leaf blocks of the tree too (the index lines of "ex" name them).
    const leaves = [...extents.matchAll(/^\s*0\/\s*1\s+\d+\/\s*\d+\s+\d+\s+-\s+\d+\s+(\d+)\s/gm)].map((x) => Number(x[1]));
    const blocks = fileBlocks(image, '/frag').filter((b) => !leaves.includes(b));
    expect(runs.flatMap((r) => Array.from({ length: r.length }, (_, i) => r.physical + i))).toEqual(blocks);
    expect(blocks.length).toBe(Math.ceil(content.length / 1024));
    const got = await bothWays(m, '/frag');
    expect(got.direct.equals(content)).toBe(true);
    expect(got.viaLib.equals(content)).toBe(true);
    expect(got.directReads).toBeLessThanOrEqual(readBound(runs, content.length, 1024, MiB));
    for (const windowBlocks of [1, 5, 64, 401]) {
      expect((await bytesOf(readFileData(m.disk, m.sb, inode, 'frag', { chunkBytes: 5000, windowBlocks }))).equals(content)).toBe(true);
    }
  });

  test('an unwritten extent reads as zeros, with no read', async () => {
    const image = await edgeImage('unwritten');
    const host = path.join(dir, 'two-extents');
    const data = Buffer.alloc(60 * KiB);
    seededBytes(20 * KiB, 6).copy(data, 0);
    seededBytes(20 * KiB, 7).copy(data, 40 * KiB);
    const handle = await fs.open(host, 'w');
    await handle.write(data, 0, 20 * KiB, 0);
    await handle.write(data, 40 * KiB, 20 * KiB, 40 * KiB);
    await handle.close();
    debugfs(image, [`write ${host} u`], true);
    expect(debugfs(image, ['ex /u'])).not.toMatch(/Uninit/);
    // i_block[7] is the second extent's ee_len (and ee_start_hi 0): 20 + 32768 marks it unwritten.
    debugfs(image, ['sif /u block[7] 32788'], true);
    expect(debugfs(image, ['ex /u'])).toMatch(/40 -\s+59 .*Uninit/);
    const expected = Buffer.concat([data.subarray(0, 20 * KiB), Buffer.alloc(40 * KiB)]);
    const m = await mountImage(image);
    const got = await bothWays(m, '/u');
    expect(got.viaLib.equals(expected)).toBe(true);
    expect(got.direct.equals(expected)).toBe(true);
    const { runs, inode } = await runsOf(m, '/u');
    expect(runs).toEqual([{ logical: 0, physical: expect.any(Number), length: 20 }]);
    m.disk.reads = 0;
    await bytesOf(readFileData(m.disk, m.sb, inode, 'u', { chunkBytes: MiB }));
    expect(m.disk.reads).toBe(1);
  });

  test('inline data falls back to libext2fs, with the right bytes', async () => {
    const image = await edgeImage('inline', ['-O', 'inline_data', '-I', '256']);
    const small = seededBytes(50, 8);
    const host = path.join(dir, 'tiny');
    await fs.writeFile(host, small);
    debugfs(image, [`write ${host} tiny`], true);
    const again = await mountImage(image);
    const tiny = await again.volume.lstat('/tiny');
    const inode = await readExtInode(again.disk, again.sb, tiny.ino, 'tiny');
    expect(inode.flags & 0x10000000).toBeTruthy();
    expect(await planFileData(again.disk, again.sb, { ino: tiny.ino, mode: inode.mode, size: tiny.size }, 'tiny')).toEqual({ direct: false, why: 'its data is inline in the inode' });
    expect((await bytesOf(again.volume.readFile('/tiny'))).equals(small)).toBe(true);
    expect((await bytesOf(again.volume.readFile('/f007'))).equals(seededBytes(KiB, 107))).toBe(true);
  });

  test('an inode that disagrees with fstat is not read directly', async () => {
    const image = await edgeImage('plan');
    const m = await mountImage(image);
    const entry = await m.volume.lstat('/f010');
    const plan = await planFileData(m.disk, m.sb, { ino: entry.ino, mode: 0o100644, size: entry.size + 1 }, 'f010');
    expect(plan).toMatchObject({ direct: false, why: expect.stringMatching(/disagrees with libext2fs/) });
  });

  test('an encrypted file is refused with a clear message', async () => {
    const image = await edgeImage('encrypted');
    debugfs(image, ['sif /f003 flags 0x80800'], true);
    const reader = await fileDiskReader(image);
    opened.push(reader);
    const backup = await BackupFiles.openDisk(reader, image);
    opened.push(backup);
    const err = await rejection(bytesOf(backup.read('/f003')));
    expect(err.code).toBe('UnsupportedFileSystem');
    expect(err.message).toBe('disk:/f003 is encrypted (ext4 file encryption): Pagewise cannot decrypt it, and would only hand out ciphertext');
  });

  test('an extent pointing outside the volume: Corrupt, named by the facade', async () => {
    const image = await edgeImage('hostile');
    debugfs(image, ['sif /f005 block[5] 99999999'], true); // the first extent's ee_start_lo
    const reader = await fileDiskReader(image);
    opened.push(reader);
    const backup = await BackupFiles.openDisk(reader, image);
    opened.push(backup);
    const err = await rejection(bytesOf(backup.read('/f005')));
    expect(err.code).toBe('Corrupt');
    expect(err.message).toBe("file disk:/f005 cannot be read: the inode's extent root points at block 99999999, outside the volume (16384 blocks)");
  });

  test('a file changed only in the journal is read as replayed (the overlay wins under the direct path)', async () => {
    const image = path.join(dir, 'journal.img');
    await makeExtImage(image, path.join(dir, 'tree'), { kind: 'ext4', sizeBytes: 16 * MiB, blockSize: 4096 });
    const blocks = fileBlocks(image, '/big');
    const changed = seededBytes(4096, 9);
    await journalWrite(image, [{ block: blocks[5], data: changed }]);
    const expected = Buffer.from(files['/big']);
    changed.copy(expected, 5 * 4096);
    const reader = await fileDiskReader(image);
    opened.push(reader);
    const disk = counting(reader);
    const backup = await BackupFiles.openDisk(disk, image);
    opened.push(backup);
    await backup.stat('/big'); // mounts (and replays the journal)
    expect(backup.volumes()[0].journal).toMatchObject({ replayed: true, transactions: 1, blocks: 1 });
    disk.reads = 0;
    expect((await bytesOf(backup.read('/big'))).equals(expected)).toBe(true);
    // 2 MiB + 123 bytes in 1 MiB steps around the one replayed block: a few reads, not 513.
    expect(disk.reads).toBeLessThanOrEqual(24);
  });
});
