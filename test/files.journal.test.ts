/**
 * The ext journal replayed into an in-memory overlay (core/files/ext-journal.ts) against debugfs `jr` on a
 * copy as the oracle, hostile journals refused without a big allocation, the overlay's bound, and the inode
 * block mapper (extents, ext2/3 indirect maps up to triple) against debugfs `stat`.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_OVERLAY_MAX_BYTES, OverlayDisk, PagewiseError, replayExtJournal, type JournalReplay } from '../core';
import { crc32BeUpdate, crc32cUpdate } from '../core/files/crc32c';
import { fileDiskReader, type DiskReader } from '../core/files/disk-reader';
import { MAX_MAPPED_BLOCKS, mapInodeBlocks, readExtInode, type ExtInode } from '../core/files/ext-inode';
import { parseExtSuperblock, type ExtSuperblock } from '../core/files/ext-superblock';
import { MiB } from '../core/limits';
import { ensureTools } from '../testkit/debian-tools';
import { debugfs, fileBlocks, makeExtImage, seededBytes } from '../testkit/fs-images';
import { JournalWarnings } from '../core/files/ext-journal';

let tmp: string;
let tree: string;
beforeAll(async () => {
  ensureTools(['mkfs.ext4', 'debugfs']);
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-journal-test-'));
  tree = path.join(tmp, 'tree');
  await fs.mkdir(path.join(tree, 'etc'), { recursive: true });
  await fs.writeFile(path.join(tree, 'etc/hostname'), 'vm-1\n');
  await fs.writeFile(path.join(tree, 'data.bin'), seededBytes(300_000, 1));
});
afterAll(async () => fs.rm(tmp, { recursive: true, force: true }));

let counter = 0;
const imagePath = (name: string) => path.join(tmp, `${name}-${++counter}.img`);
const JBD2_MAGIC = 0xc03b3998;

/** A block of `size` bytes; `escaped` starts it with the JBD2 magic (the journal must escape it). */
function blockOf(size: number, seed: number, escaped = false): Buffer {
  const data = seededBytes(size, seed);
  if (escaped) data.writeUInt32BE(JBD2_MAGIC, 0);
  return data;
}

/** Writes transactions with debugfs in one session: each `jw` is one committed transaction. */
async function writeJournal(image: string, steps: Array<{ block?: number; data?: Buffer; revoke?: number }>, checksum: boolean): Promise<void> {
  const commands = [checksum ? 'jo -c' : 'jo'];
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    if (step.revoke !== undefined) {
      commands.push(`jw -r ${step.revoke}`);
    } else {
      const file = path.join(tmp, `jw-${counter}-${i}`);
      await fs.writeFile(file, step.data!);
      commands.push(`jw -b ${step.block} ${file}`);
    }
  }
  commands.push('jc');
  debugfs(image, commands, true);
}

interface Opened { disk: DiskReader & { close(): Promise<void> }; overlay: OverlayDisk; replay: JournalReplay }

async function replay(image: string, blockSize: number, maxBytes = DEFAULT_OVERLAY_MAX_BYTES): Promise<Opened> {
  const disk = await fileDiskReader(image);
  const overlay = new OverlayDisk(disk, blockSize, maxBytes);
  try {
    return { disk, overlay, replay: await replayExtJournal(disk, overlay, 'the test volume') };
  } catch (error) {
    await disk.close();
    throw error;
  }
}

/**
 * Replays `image` into an overlay and a copy with debugfs `jr`; every block but the superblock and the
 * journal's own must be equal. Returns the replay and the blocks that differ from the image as it was.
 */
async function expectSameAsJr(image: string, blockSize: number): Promise<{ replay: JournalReplay; changed: number[]; overlay: OverlayDisk }> {
  const oracle = `${image}.jr`;
  await fs.copyFile(image, oracle);
  debugfs(oracle, ['jr'], true);
  const skip = new Set(fileBlocks(image, '<8>'));
  skip.add(blockSize === 1024 ? 1 : 0);
  const { disk, overlay, replay: result } = await replay(image, blockSize);
  try {
    const want = await fs.readFile(oracle);
    const before = await fs.readFile(image);
    const got = await overlay.read(0, overlay.size);
    const differs: number[] = [];
    const changed: number[] = [];
    for (let b = 0; b * blockSize < got.length; b++) {
      if (skip.has(b)) continue;
      const range = [b * blockSize, (b + 1) * blockSize] as const;
      if (!got.subarray(...range).equals(want.subarray(...range))) differs.push(b);
      if (!got.subarray(...range).equals(before.subarray(...range))) changed.push(b);
    }
    expect(differs).toEqual([]);
    return { replay: result, changed, overlay };
  } finally {
    await disk.close();
  }
}

/** Reads/writes the journal's logical blocks in an image, through the journal inode's map (debugfs). */
async function journalBlocks(image: string): Promise<{ physical: number[]; blockSize: number }> {
  const blockSize = Number(/Block size:\s+(\d+)/.exec(debugfs(image, ['stats']))![1]);
  return { physical: fileBlocks(image, '<8>'), blockSize };
}

async function patchImage(image: string, position: number, bytes: Buffer): Promise<void> {
  const handle = await fs.open(image, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, position);
  } finally {
    await handle.close();
  }
}

/** Edits the journal superblock (big-endian fields) and re-seals its checksum when the journal has one. */
async function editJournalSuperblock(image: string, edit: (jsb: Buffer) => void): Promise<void> {
  const { physical, blockSize } = await journalBlocks(image);
  const bytes = await fs.readFile(image);
  const jsb = Buffer.from(bytes.subarray(physical[0] * blockSize, physical[0] * blockSize + 1024));
  edit(jsb);
  if (jsb.readUInt32BE(40) & 0x18) {
    jsb.writeUInt32BE(0, 0xfc);
    jsb.writeUInt32BE(crc32cUpdate(0xffffffff, jsb), 0xfc);
  }
  await patchImage(image, physical[0] * blockSize, jsb);
}

/** The journal block (logical) of each block type debugfs logdump reports. */
function logdumpBlocks(image: string, type: number): number[] {
  return [...debugfs(image, ['logdump']).matchAll(new RegExp(`type ${type} \\([a-z ]+\\) at block (\\d+)`, 'g'))].map((m) => Number(m[1]));
}

describe('journal replay against debugfs jr', () => {
  test.each([
    ['checksum v3', true, 4096],
    ['no checksums', false, 4096],
    ['checksum v3, 1 KiB blocks', true, 1024],
  ] as const)('ext4 (%s): several transactions, a revoked block, an escaped block, a block logged twice', async (_name, checksum, bs) => {
    const image = imagePath('ext4');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB, blockSize: bs });
    const later = blockOf(bs, 14);
    await writeJournal(image, [
      { block: 5000, data: blockOf(bs, 10) },
      { block: 5002, data: blockOf(bs, 12, true) },
      { block: 5003, data: blockOf(bs, 13) },
      { block: 5003, data: later },
      { revoke: 5000 },
    ], checksum);
    const { replay: result, changed, overlay } = await expectSameAsJr(image, bs);
    expect(result).toEqual({ needed: true, replayed: true, transactions: 5, blocks: 3, revoked: 1, firstSequence: 1, lastSequence: 5 });
    expect(changed).toEqual([5002, 5003]);
    expect(overlay.blocks).toBe(2);
    const escaped = await overlay.read(5002 * bs, bs);
    expect(escaped.readUInt32BE(0)).toBe(JBD2_MAGIC);
    expect(escaped).toEqual(blockOf(bs, 12, true));
    expect(await overlay.read(5003 * bs, bs)).toEqual(later);
  });

  test('ext3 on 1 KiB blocks: a block-mapped journal with 32-bit tags', async () => {
    const image = imagePath('ext3');
    await makeExtImage(image, tree, { kind: 'ext3', sizeBytes: 16 * MiB, blockSize: 1024 });
    const journalInode = debugfs(image, ['stat <8>']);
    expect(journalInode).not.toMatch(/EXTENTS/);
    await writeJournal(image, [
      { block: 9000, data: blockOf(1024, 20) },
      { block: 9001, data: blockOf(1024, 21, true) },
      { revoke: 9000 },
      { block: 9002, data: blockOf(1024, 22) },
    ], false);
    const { replay: result, changed } = await expectSameAsJr(image, 1024);
    expect(result).toMatchObject({ needed: true, replayed: true, transactions: 4, blocks: 2, revoked: 1 });
    expect(changed).toEqual([9001, 9002]);
  });

  test.each([
    ['checksum v3', true],
    ['no checksums', false],
  ])('a torn last transaction (commit block zeroed) is dropped (%s)', async (_name, checksum) => {
    const image = imagePath('torn');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB });
    await writeJournal(image, [{ block: 5000, data: blockOf(4096, 30) }, { block: 5001, data: blockOf(4096, 31) }], checksum);
    const commits = logdumpBlocks(image, 2);
    expect(commits).toHaveLength(2);
    const { physical } = await journalBlocks(image);
    await patchImage(image, physical[commits[1]] * 4096, Buffer.alloc(4096));
    const { replay: result, changed } = await expectSameAsJr(image, 4096);
    expect(result).toMatchObject({ transactions: 1, blocks: 1, lastSequence: 1 });
    expect(result.warning).toBeUndefined();
    expect(changed).toEqual([5000]);
  });

  test('a commit block whose checksum fails ends the replay before its transaction, with a warning', async () => {
    const image = imagePath('badcommit');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB });
    await writeJournal(image, [{ block: 5000, data: blockOf(4096, 40) }, { block: 5001, data: blockOf(4096, 41) }], true);
    const commits = logdumpBlocks(image, 2);
    const { physical } = await journalBlocks(image);
    await patchImage(image, physical[commits[1]] * 4096 + 200, Buffer.from([0xff])); // a byte of padding in the commit block
    const { replay: result, changed } = await expectSameAsJr(image, 4096);
    expect(result).toMatchObject({ transactions: 1, blocks: 1 });
    expect(result.warning).toMatch(/transaction 2's commit block fails its checksum/);
    expect(changed).toEqual([5000]);
  });

  test.each([
    ['all sums right: every transaction replayed', false],
    ['the last sum wrong: its transaction dropped', true],
  ])('the old COMPAT_CHECKSUM (crc32_be over each transaction) (%s)', async (_name, spoilLast) => {
    const image = imagePath('crc32be');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB });
    await writeJournal(image, [{ block: 5000, data: blockOf(4096, 55) }, { block: 5001, data: blockOf(4096, 56) }, { block: 5002, data: blockOf(4096, 57) }], false);
    // debugfs cannot write these: sum each transaction's descriptor and data blocks as the kernel's calc_chksums does.
    const { physical } = await journalBlocks(image);
    const bytes = await fs.readFile(image);
    const logBlock = (b: number) => bytes.subarray(physical[b] * 4096, (physical[b] + 1) * 4096);
    const descriptors = logdumpBlocks(image, 1);
    const commits = logdumpBlocks(image, 2);
    expect(commits).toHaveLength(3);
    for (let t = 0; t < commits.length; t++) {
      let sum = 0xffffffff;
      for (let b = descriptors[t]; b < commits[t]; b++) sum = crc32BeUpdate(sum, logBlock(b));
      const fields = Buffer.alloc(8);
      fields.writeUInt8(1, 0); // h_chksum_type JBD2_CRC32_CHKSUM
      fields.writeUInt8(4, 1); // h_chksum_size
      fields.writeUInt32BE(spoilLast && t === commits.length - 1 ? (sum ^ 1) >>> 0 : sum, 4);
      await patchImage(image, physical[commits[t]] * 4096 + 12, fields);
    }
    await editJournalSuperblock(image, (sb) => sb.writeUInt32BE(sb.readUInt32BE(36) | 0x1, 36));
    const { replay: result, changed } = await expectSameAsJr(image, 4096);
    expect(result.transactions).toBe(spoilLast ? 2 : 3);
    expect(changed).toEqual(spoilLast ? [5000, 5001] : [5000, 5001, 5002]);
  });

  test('checksum v2 (16-bit tag sums, 14-byte tags), converted by hand from a v3 journal', async () => {
    const image = imagePath('csum2');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB });
    await writeJournal(image, [{ block: 5000, data: blockOf(4096, 58) }, { block: 5001, data: blockOf(4096, 59, true) }, { revoke: 5000 }, { block: 5002, data: blockOf(4096, 60) }], true);
    const { physical } = await journalBlocks(image);
    const bytes = await fs.readFile(image);
    const logBlock = (b: number) => Buffer.from(bytes.subarray(physical[b] * 4096, (physical[b] + 1) * 4096));
    const seed = crc32cUpdate(0xffffffff, logBlock(0).subarray(0x30, 0x40));
    const sealTail = (block: Buffer) => {
      block.writeUInt32BE(0, 4092);
      block.writeUInt32BE(crc32cUpdate(seed, block), 4092);
    };
    for (const d of logdumpBlocks(image, 1)) {
      const v3 = logBlock(d);
      const v2 = Buffer.alloc(4096);
      v3.copy(v2, 0, 0, 12);
      const sequence = v3.subarray(8, 12);
      let from = 12;
      let to = 12;
      let data = d + 1;
      for (;;) {
        const flags = v3.readUInt32BE(from + 4);
        v2.writeUInt32BE(v3.readUInt32BE(from), to);
        v2.writeUInt16BE(crc32cUpdate(crc32cUpdate(seed, sequence), logBlock(data++)) & 0xffff, to + 4);
        v2.writeUInt16BE(flags, to + 6);
        v2.writeUInt32BE(v3.readUInt32BE(from + 8), to + 8);
        from += 16;
        to += 14;
        if (!(flags & 0x2)) {
          v3.copy(v2, to, from, from + 16);
          from += 16;
          to += 16;
        }
        if (flags & 0x8) break;
      }
      sealTail(v2);
      await patchImage(image, physical[d] * 4096, v2);
    }
    await editJournalSuperblock(image, (sb) => sb.writeUInt32BE((sb.readUInt32BE(40) & ~0x10) | 0x8, 40));
    const { replay: result, changed } = await expectSameAsJr(image, 4096);
    expect(result).toMatchObject({ transactions: 4, blocks: 2, revoked: 1 });
    expect(result.warning).toBeUndefined();
    expect(changed).toEqual([5001, 5002]);
    // A logged block whose 16-bit sum no longer matches is left out, as the kernel leaves it out.
    const descriptors = logdumpBlocks(image, 1);
    const last = logBlock(descriptors[descriptors.length - 1]);
    last.writeUInt16BE(last.readUInt16BE(12 + 4) ^ 1, 12 + 4);
    sealTail(last);
    await patchImage(image, physical[descriptors[descriptors.length - 1]] * 4096, last);
    const spoiled = await replay(image, 4096);
    await spoiled.disk.close();
    expect(spoiled.replay).toMatchObject({ transactions: 4, blocks: 1 });
    expect(spoiled.replay.warning).toMatch(/logged copy of block 5002 in transaction 4 fails its checksum and was left out/);
  });

  test('a log that wraps around the end of the journal', async () => {
    const image = imagePath('wrap');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB });
    await writeJournal(image, [
      { block: 5000, data: blockOf(4096, 50) },
      { block: 5001, data: blockOf(4096, 51, true) },
      { revoke: 5000 },
      { block: 5002, data: blockOf(4096, 52) },
    ], true);
    // Rotate the log so that it starts two blocks before the end: its transactions then wrap to s_first.
    const { physical, blockSize } = await journalBlocks(image);
    const bytes = await fs.readFile(image);
    const jsb = bytes.subarray(physical[0] * blockSize);
    const maxLen = jsb.readUInt32BE(16);
    const first = jsb.readUInt32BE(20);
    const start = jsb.readUInt32BE(28);
    const length = maxLen - first;
    const shift = length - 2;
    const moved = (b: number) => first + ((b - first + shift) % length);
    const log = Array.from({ length }, (_, i) => Buffer.from(bytes.subarray(physical[first + i] * blockSize, (physical[first + i] + 1) * blockSize)));
    for (let i = 0; i < length; i++) await patchImage(image, physical[moved(first + i)] * blockSize, log[i]);
    await editJournalSuperblock(image, (sb) => sb.writeUInt32BE(moved(start), 28));
    expect(logdumpBlocks(image, 1)[0]).toBe(maxLen - 2);
    const { replay: result, changed } = await expectSameAsJr(image, blockSize);
    expect(result).toMatchObject({ transactions: 4, blocks: 2, revoked: 1 });
    expect(changed).toEqual([5001, 5002]);
  });
});

describe('journals that need nothing, or cannot be replayed', () => {
  test('a cleanly unmounted file system needs no replay and leaves the overlay empty', async () => {
    for (const kind of ['ext4', 'ext2'] as const) {
      const image = imagePath(kind);
      await makeExtImage(image, tree, { kind, sizeBytes: 16 * MiB });
      const { disk, overlay, replay: result } = await replay(image, 4096);
      await disk.close();
      expect(result).toEqual({ needed: false, replayed: false, transactions: 0, blocks: 0, revoked: 0 });
      expect(overlay.blocks).toBe(0);
    }
  });

  test('needs_recovery set but an empty log (s_start 0) → nothing needed, nothing read into the overlay', async () => {
    const image = imagePath('empty-log');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB });
    await writeJournal(image, [{ block: 5000, data: blockOf(4096, 65) }], true);
    await editJournalSuperblock(image, (sb) => sb.writeUInt32BE(0, 28));
    const { disk, overlay, replay: result } = await replay(image, 4096);
    await disk.close();
    expect(result).toEqual({ needed: false, replayed: false, transactions: 0, blocks: 0, revoked: 0 });
    expect(overlay.blocks).toBe(0);
  });

  test('the overlay bound is enforced: LimitExceeded naming it', async () => {
    const image = imagePath('bound');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB });
    await writeJournal(image, [{ block: 5000, data: blockOf(4096, 60) }, { block: 5001, data: blockOf(4096, 61) }], true);
    await expect(replay(image, 4096, 4096)).rejects.toMatchObject({ code: 'LimitExceeded', message: expect.stringMatching(/more than 4.00 KiB of memory \(the overlay bound, overlayMaxBytes\)/) });
    const fits = await replay(image, 4096, 8192);
    await fits.disk.close();
    expect(fits.overlay.overlayBytes).toBe(8192);
  });

  /** An ext4 image with two committed transactions and no journal checksums, for hostile edits. */
  async function plainJournal(name: string): Promise<string> {
    const image = imagePath(name);
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB });
    await writeJournal(image, [{ block: 5000, data: blockOf(4096, 70) }, { revoke: 5003 }, { block: 5001, data: blockOf(4096, 71) }], false);
    return image;
  }

  async function expectNotReplayed(image: string, why: RegExp): Promise<void> {
    const { disk, overlay, replay: result } = await replay(image, 4096);
    await disk.close();
    expect(result).toMatchObject({ needed: true, replayed: false, transactions: 0, blocks: 0 });
    expect(result.warning).toMatch(/was not cleanly unmounted and its journal cannot be replayed/);
    expect(result.warning).toMatch(why);
    expect(overlay.blocks).toBe(0);
  }

  test('a journal superblock with a hostile length, log head or block size → a warning, nothing replayed', async () => {
    const image = await plainJournal('hostile-sb');
    const pristine = await fs.readFile(image);
    await editJournalSuperblock(image, (sb) => sb.writeUInt32BE(0xffffffff, 16));
    await expectNotReplayed(image, /claims 4294967295 blocks but its inode holds 1024/);
    await fs.writeFile(image, pristine);
    await editJournalSuperblock(image, (sb) => sb.writeUInt32BE(5000, 28));
    await expectNotReplayed(image, /log head 5000 lies outside its log/);
    await fs.writeFile(image, pristine);
    await editJournalSuperblock(image, (sb) => sb.writeUInt32BE(65536, 12));
    await expectNotReplayed(image, /block size 65536 differs/);
    await fs.writeFile(image, pristine);
    await editJournalSuperblock(image, (sb) => sb.writeUInt32BE(0x80, 40));
    await expectNotReplayed(image, /features Pagewise does not know \(0x80\)/);
  });

  test('a checksummed journal superblock that fails its checksum → a warning', async () => {
    const image = imagePath('sb-csum');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: 32 * MiB });
    await writeJournal(image, [{ block: 5000, data: blockOf(4096, 75) }], true);
    const { physical } = await journalBlocks(image);
    await patchImage(image, physical[0] * 4096 + 0x60, Buffer.from([0x5a])); // padding: only the checksum notices
    await expectNotReplayed(image, /journal superblock fails its checksum/);
  });

  test('a journal inode claiming a huge size → a warning, no allocation', async () => {
    const image = await plainJournal('hostile-inode');
    const at = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(image, ['imap <8>']))!;
    await patchImage(image, Number(at[1]) * 4096 + parseInt(at[2], 16) + 0x6c, Buffer.from([0xff, 0xff, 0x00, 0x00])); // i_size_high
    await expectNotReplayed(image, /the journal inode claims \d+ bytes/);
  });

  test('a revoke block claiming more bytes than a block → a warning, nothing replayed', async () => {
    const image = await plainJournal('hostile-revoke');
    const revoke = logdumpBlocks(image, 5);
    expect(revoke).toHaveLength(1);
    const { physical } = await journalBlocks(image);
    const count = Buffer.alloc(4);
    count.writeUInt32BE(0xfffffff0);
    await patchImage(image, physical[revoke[0]] * 4096 + 12, count);
    await expectNotReplayed(image, /a revoke block of transaction 2 claims 4294967280 bytes/);
  });

  test('a log of descriptors that never commit and circle the journal → a warning, not an endless walk', async () => {
    const image = await plainJournal('circle');
    const { physical } = await journalBlocks(image);
    const bytes = await fs.readFile(image);
    const jsb = bytes.subarray(physical[0] * 4096);
    const [first, maxLen, sequence] = [jsb.readUInt32BE(20), jsb.readUInt32BE(16), jsb.readUInt32BE(24)];
    const descriptor = Buffer.alloc(4096);
    descriptor.writeUInt32BE(JBD2_MAGIC, 0);
    descriptor.writeUInt32BE(1, 4);
    descriptor.writeUInt32BE(sequence, 8);
    descriptor.writeUInt32BE(5000, 12); // one tag: block 5000, flags SAME_UUID | LAST_TAG
    descriptor.writeUInt16BE(0x2 | 0x8, 12 + 6);
    for (let b = first; b < maxLen; b++) await patchImage(image, physical[b] * 4096, descriptor);
    await expectNotReplayed(image, /runs in a circle/);
  });

  test('a failed read of the volume under the journal is thrown as it came, not taken for a damaged journal', async () => {
    const image = await plainJournal('read-fails');
    const { physical } = await journalBlocks(image);
    const file = await fileDiskReader(image);
    const broken: DiskReader = {
      size: file.size,
      read: async (at, length) => {
        if (at <= physical[0] * 4096 && physical[0] * 4096 < at + length) throw new PagewiseError('Corrupt', 'disk bytes 1–2 (page 0): the pack is damaged');
        return file.read(at, length);
      },
    };
    try {
      await expect(replayExtJournal(broken, new OverlayDisk(broken, 4096, MiB), 'p1')).rejects.toMatchObject({ code: 'Corrupt', message: 'disk bytes 1–2 (page 0): the pack is damaged' });
    } finally {
      await file.close();
    }
  });

  test('a tag naming a block outside the volume is left out with a warning; the rest is replayed', async () => {
    const image = await plainJournal('outside');
    const descriptors = logdumpBlocks(image, 1);
    const { physical } = await journalBlocks(image);
    const block = Buffer.alloc(4);
    block.writeUInt32BE(0x7fffffff);
    await patchImage(image, physical[descriptors[0]] * 4096 + 12, block); // the first tag's t_blocknr
    const { disk, overlay, replay: result } = await replay(image, 4096);
    await disk.close();
    expect(result).toMatchObject({ replayed: true, transactions: 3, blocks: 1 });
    expect(result.warning).toMatch(/logs block 2147483647, outside the volume: left out/);
    expect(overlay.has(5001)).toBe(true);
  });
});

test('a journal earning a warning per tag keeps three lines and a count, not every line', () => {
  // A shaped journal may log ~10 million tags (MAX_JOURNAL_BLOCKS) outside the volume: one warning each.
  const warnings = new JournalWarnings();
  for (let i = 0; i < 1_000_000; i++) warnings.push(`transaction 7 logs block ${2 ** 31 + i}, outside the volume: left out`);
  expect(warnings.length).toBe(1_000_000);
  expect(warnings.shown).toEqual([0, 1, 2].map((i) => `transaction 7 logs block ${2 ** 31 + i}, outside the volume: left out`));
});

describe('OverlayDisk', () => {
  test('overlay blocks win over the base; reads may span both; misuse is refused', async () => {
    const base = Buffer.alloc(16 * 1024, 0x11);
    const disk: DiskReader = { size: base.length, read: async (at, length) => Buffer.from(base.subarray(at, at + length)) };
    const overlay = new OverlayDisk(disk, 4096, 8192);
    overlay.putBlock(1, Buffer.alloc(4096, 0x22));
    overlay.putBlock(3, Buffer.alloc(4096, 0x33));
    overlay.putBlock(1, Buffer.alloc(4096, 0x44)); // replacing a block costs nothing more
    expect(overlay.overlayBytes).toBe(8192);
    const got = await overlay.read(4000, 12_000);
    const want = Buffer.concat([Buffer.alloc(96, 0x11), Buffer.alloc(4096, 0x44), Buffer.alloc(4096, 0x11), Buffer.alloc(3712, 0x33)]);
    expect(got).toEqual(want);
    expect(() => overlay.putBlock(2, Buffer.alloc(4096))).toThrow(expect.objectContaining({ code: 'LimitExceeded' }));
    expect(() => overlay.putBlock(4, Buffer.alloc(4096))).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(/block 4 lies outside/) }));
    expect(() => overlay.putBlock(0, Buffer.alloc(100))).toThrow(expect.objectContaining({ code: 'BadInput' }));
    await expect(overlay.read(16 * 1024 - 10, 20)).rejects.toMatchObject({ code: 'BadInput' });
  });
});

describe('mapInodeBlocks against debugfs stat', () => {
  /** debugfs stat's BLOCKS/EXTENTS list as logical → physical (indirect blocks left out). */
  function statMap(image: string, file: string): Map<number, number> {
    const out = debugfs(image, [`stat "${file}"`]);
    const list = /(?:BLOCKS|EXTENTS):\n([\s\S]*?)\n(?:TOTAL|$)/.exec(out)![1];
    const map = new Map<number, number>();
    for (const m of list.matchAll(/\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?/g)) {
      const [from, to, physical] = [Number(m[1]), Number(m[2] ?? m[1]), Number(m[3])];
      for (let i = 0; i <= to - from; i++) map.set(from + i, physical + i);
    }
    return map;
  }

  async function ourMap(image: string, file: string): Promise<number[]> {
    const ino = Number(/Inode: (\d+)/.exec(debugfs(image, [`stat "${file}"`]))![1]);
    const disk = await fileDiskReader(image);
    try {
      const sb = parseExtSuperblock(await disk.read(1024, 1024), 'the test volume')!;
      const inode = await readExtInode(disk, sb, ino, file);
      return await mapInodeBlocks(disk, sb, inode, Math.ceil(inode.size / sb.blockSize), file);
    } finally {
      await disk.close();
    }
  }

  function expectMatches(ours: number[], theirs: Map<number, number>): void {
    // As "logical:physical" lists: jest compares Maps pairwise (quadratic), arrays in one pass.
    const mapped = ours.flatMap((p, l) => (p ? [`${l}:${p}`] : []));
    expect(mapped).toEqual([...theirs].sort((a, b) => a[0] - b[0]).map(([l, p]) => `${l}:${p}`));
  }

  test('ext2 on 1 KiB blocks: a 20 MiB file through double-indirect blocks, a sparse file through triple', async () => {
    const dir = path.join(tmp, 'maps');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'big.bin'), randomBytes(20 * MiB)); // seededBytes takes seconds for 20 MiB
    const sparse = await fs.open(path.join(dir, 'sparse.bin'), 'w');
    for (const at of [0, 100 * 1024, 300 * 1024, 70 * MiB]) await sparse.write(Buffer.alloc(1024, 0x5a), 0, 1024, at);
    await sparse.close();
    const image = imagePath('ext2');
    await makeExtImage(image, dir, { kind: 'ext2', sizeBytes: 24 * MiB, blockSize: 1024 });
    const big = await ourMap(image, '/big.bin');
    expect(big).toHaveLength(20 * 1024);
    expectMatches(big, statMap(image, '/big.bin'));
    const holes = await ourMap(image, '/sparse.bin');
    expect(holes).toHaveLength(70 * 1024 + 1);
    expect(holes.filter((p) => p !== 0)).toHaveLength(4);
    expect(holes[70 * 1024]).not.toBe(0); // past 12 + 256 + 65,536 blocks: the triple-indirect block
    expectMatches(holes, statMap(image, '/sparse.bin'));
  });

  test('ext4: extents in the inode and an extent tree of depth 1 (a sparse file of many pieces)', async () => {
    const dir = path.join(tmp, 'extents');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'plain.bin'), randomBytes(3 * MiB));
    const sparse = await fs.open(path.join(dir, 'pieces.bin'), 'w');
    for (let i = 0; i < 12; i++) await sparse.write(Buffer.alloc(4096, i + 1), 0, 4096, i * 64 * 1024);
    await sparse.close();
    const image = imagePath('ext4-map');
    await makeExtImage(image, dir, { kind: 'ext4', sizeBytes: 32 * MiB });
    expect(debugfs(image, ['stat /pieces.bin'])).toMatch(/\(ETB0\)/); // an index block: depth ≥ 1
    expectMatches(await ourMap(image, '/plain.bin'), statMap(image, '/plain.bin'));
    const pieces = await ourMap(image, '/pieces.bin');
    expect(pieces.filter((p) => p !== 0)).toHaveLength(12);
    expectMatches(pieces, statMap(image, '/pieces.bin'));
  });
});

describe('mapInodeBlocks on hostile maps (a 1 MiB volume in memory)', () => {
  const bs = 1024;
  const volume = Buffer.alloc(1024 * bs);
  const disk: DiskReader = { size: volume.length, read: async (at, length) => Buffer.from(volume.subarray(at, at + length)) };
  const sb = { blocksCount: 1024, firstDataBlock: 1, blockSize: bs, inodesCount: 128, blocksPerGroup: 8192, inodesPerGroup: 128, inodeSize: 256, descSize: 32,
    featureCompat: 0, featureIncompat: 0x40, featureRoCompat: 0 } as ExtSuperblock;
  /** An extent node: header then entries (index: [logical, child]; leaf: [logical, length, start]). */
  function node(depth: number, entries: number[][], size = 60): Buffer {
    const b = Buffer.alloc(size);
    b.writeUInt16LE(0xf30a, 0);
    b.writeUInt16LE(entries.length, 2);
    b.writeUInt16LE((size - 12) / 12, 4);
    b.writeUInt16LE(depth, 6);
    entries.forEach((e, i) => {
      const at = 12 + i * 12;
      b.writeUInt32LE(e[0], at);
      if (depth > 0) b.writeUInt32LE(e[1], at + 4);
      else {
        b.writeUInt16LE(e[1], at + 4);
        b.writeUInt32LE(e[2], at + 8);
      }
    });
    return b;
  }
  const extents = (root: Buffer): ExtInode => ({ mode: 0o100600, size: 0, flags: 0x80000, block: root });
  const map = (inode: ExtInode, count: number) => mapInodeBlocks(disk, sb, inode, count, 'the hostile file');

  test('a tree block reached twice, a wrong depth, an extent past the volume, an unwritten extent', async () => {
    node(0, [[0, 2, 100]], bs).copy(volume, 10 * bs);
    await expect(map(extents(node(1, [[0, 10], [5, 10]])), 8)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/visits block 10 twice/) });
    node(1, [[0, 10]], bs).copy(volume, 11 * bs);
    await expect(map(extents(node(1, [[0, 11]])), 8)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/has depth 1/) });
    await expect(map(extents(node(0, [[0, 8, 1020]])), 8)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/blocks 1020–1027, outside the volume \(1024 blocks\)/) });
    await expect(map(extents(node(0, [[4, 2, 100], [0, 2, 200]])), 8)).rejects.toMatchObject({ message: expect.stringMatching(/out of order/) });
    await expect(map(extents(node(1, [[0, 5000]])), 8)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/points at block 5000/) });
    expect(await map(extents(node(0, [[0, 2, 100], [3, 32768 + 2, 300]])), 6)).toEqual([100, 101, 0, 0, 0, 0]);
    expect(await map(extents(node(1, [[0, 10]])), 4)).toEqual([100, 101, 0, 0]);
  });

  test('a block map pointing outside the volume; a hostile count refused before any allocation', async () => {
    const block = Buffer.alloc(60);
    block.writeUInt32LE(7, 0);
    block.writeUInt32LE(4096, 4);
    const mapped: ExtInode = { mode: 0o100600, size: 0, flags: 0, block };
    await expect(mapInodeBlocks(disk, sb, mapped, 2, 'the hostile file')).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/block 4096/) });
    await expect(mapInodeBlocks(disk, sb, mapped, MAX_MAPPED_BLOCKS + 1, 'the hostile file')).rejects.toMatchObject({ code: 'LimitExceeded' });
  });
});
