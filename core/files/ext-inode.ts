/**
 * Enough of ext2/3/4 to find an inode's blocks without libext2fs (the journal inode, before the file
 * system is mounted): group descriptors → inode record → extent tree (any depth) or ext2/3 block map
 * (direct, indirect, double, triple). Layouts: the kernel's Documentation/filesystems/ext4/ (group_descr,
 * inodes, ifork). Every number read is checked against the volume before it is used; walks are bounded.
 */
import { PagewiseError } from '../errors';
import type { DiskReader } from './disk-reader';
import { EXT_INCOMPAT_META_BG, EXT_SUPERBLOCK_OFFSET, type ExtSuperblock } from './ext-superblock';

export interface ExtInode { mode: number; size: number; flags: number; block: Buffer /* i_block, 60 bytes */ }

/** A stretch of logical blocks [logical, logical + length) stored at [physical, physical + length). */
export interface BlockRun { logical: number; physical: number; length: number }

export const EXT_INODE_EXTENTS_FL = 0x80000;
export const EXT_INODE_INLINE_DATA_FL = 0x10000000;
const EXTENT_MAGIC = 0xf30a;
/** The kernel's EXT4_MAX_EXTENT_DEPTH. */
const MAX_EXTENT_DEPTH = 5;
/** Logical blocks mapInodeBlocks lists at most (4 Mi: a 16 GiB file on 4 KiB blocks); runs are compact and may span more. */
export const MAX_MAPPED_BLOCKS = 4 * 1024 * 1024;
/** ext's logical block numbers are 32-bit. */
const MAX_LOGICAL_BLOCKS = 2 ** 32;
/** Separate runs one call returns at most: a legitimate journal has a handful; a shredded map is refused. */
export const MAX_BLOCK_RUNS = 256 * 1024;
const RO_COMPAT_SPARSE_SUPER = 0x1;
const COMPAT_SPARSE_SUPER2 = 0x200;

const corrupt = (what: string, detail: string) => new PagewiseError('Corrupt', `${what} is damaged: ${detail}`);

async function readBlock(disk: DiskReader, sb: ExtSuperblock, block: number, what: string, purpose: string): Promise<Buffer> {
  if (!Number.isSafeInteger(block) || block < sb.firstDataBlock || block >= sb.blocksCount || (block + 1) * sb.blockSize > disk.size) {
    throw corrupt(what, `${purpose} points at block ${block}, outside the volume (${Math.min(sb.blocksCount, Math.floor(disk.size / sb.blockSize))} blocks)`);
  }
  return disk.read(block * sb.blockSize, sb.blockSize);
}

/** Whether group `g` carries a superblock backup (and so, without meta_bg, a descriptor table copy). */
function hasSuperblockCopy(g: number, sb: ExtSuperblock, raw: Buffer): boolean {
  if (g === 0) return true;
  if (sb.featureCompat & COMPAT_SPARSE_SUPER2) return g === raw.readUInt32LE(0x24c) || g === raw.readUInt32LE(0x250);
  if (!(sb.featureRoCompat & RO_COMPAT_SPARSE_SUPER) || g === 1) return true;
  if (g % 2 === 0) return false;
  for (const base of [3, 5, 7]) {
    let p = base;
    while (p < g) p *= base;
    if (p === g) return true;
  }
  return false;
}

/** The block holding group `g`'s descriptor (plain layout, or meta_bg past s_first_meta_bg). */
async function descriptorBlock(disk: DiskReader, sb: ExtSuperblock, g: number, what: string): Promise<number> {
  const perBlock = sb.blockSize / sb.descSize;
  const descBlock = Math.floor(g / perBlock);
  if (!(sb.featureIncompat & EXT_INCOMPAT_META_BG)) return sb.firstDataBlock + 1 + descBlock;
  const raw = await disk.read(EXT_SUPERBLOCK_OFFSET, 1024);
  const firstMetaBg = raw.readUInt32LE(0x104);
  if (descBlock < firstMetaBg) return sb.firstDataBlock + 1 + descBlock;
  // meta_bg: each meta group's descriptors sit in its first group (after a superblock copy, if any).
  const first = descBlock * perBlock;
  return sb.firstDataBlock + first * sb.blocksPerGroup + (hasSuperblockCopy(first, sb, raw) ? 1 : 0);
}

/** Inode `ino`'s record (mode, size, flags, i_block); Corrupt when the group tables point outside the volume. */
export async function readExtInode(disk: DiskReader, sb: ExtSuperblock, ino: number, what: string): Promise<ExtInode> {
  const groups = Math.ceil((sb.blocksCount - sb.firstDataBlock) / sb.blocksPerGroup);
  if (!Number.isSafeInteger(ino) || ino < 1 || ino > sb.inodesCount || ino > groups * sb.inodesPerGroup) {
    throw corrupt(what, `inode ${ino} does not exist (the file system has ${sb.inodesCount} inodes)`);
  }
  const group = Math.floor((ino - 1) / sb.inodesPerGroup);
  const index = (ino - 1) % sb.inodesPerGroup;
  const gdBlock = await descriptorBlock(disk, sb, group, what);
  const gd = await readBlock(disk, sb, gdBlock, what, `the descriptor of group ${group}`);
  const at = (group % (sb.blockSize / sb.descSize)) * sb.descSize;
  const tableLo = gd.readUInt32LE(at + 8);
  const tableHi = sb.descSize >= 64 ? gd.readUInt32LE(at + 0x28) : 0;
  const table = tableHi * 2 ** 32 + tableLo;
  const byteInTable = index * sb.inodeSize;
  const block = table + Math.floor(byteInTable / sb.blockSize);
  const data = await readBlock(disk, sb, block, what, `the inode table of group ${group}`);
  const record = data.subarray(byteInTable % sb.blockSize, (byteInTable % sb.blockSize) + sb.inodeSize);
  const size = record.readUInt32LE(0x6c) * 2 ** 32 + record.readUInt32LE(4);
  if (!Number.isSafeInteger(size)) throw corrupt(what, `inode ${ino} claims a size of ${size} bytes`);
  return { mode: record.readUInt16LE(0), size, flags: record.readUInt32LE(0x20), block: Buffer.from(record.subarray(40, 100)) };
}

/** Collects runs in logical order, merging neighbours, within the caps. */
class RunList {
  readonly runs: BlockRun[] = [];
  constructor(private readonly what: string) {}
  add(logical: number, physical: number, length: number): void {
    const last = this.runs[this.runs.length - 1];
    if (last && last.logical + last.length === logical && last.physical + last.length === physical) {
      last.length += length;
      return;
    }
    if (this.runs.length >= MAX_BLOCK_RUNS) throw corrupt(this.what, `its block map is split into more than ${MAX_BLOCK_RUNS} pieces`);
    this.runs.push({ logical, physical, length });
  }
}

/**
 * The mapped stretches of logical blocks [first, count) of an inode, in logical order (holes and unwritten
 * extents left out): extent trees of any depth (≤ 5, loop-safe) and ext2/3 block maps. Every physical block
 * lies inside the volume, or Corrupt. `first` > 0 maps a window of a large file: subtrees wholly before it
 * are not read, and runs are cut at it.
 */
export async function mapInodeRuns(disk: DiskReader, sb: ExtSuperblock, inode: ExtInode, count: number, what: string, first = 0): Promise<BlockRun[]> {
  if (!Number.isSafeInteger(count) || count < 0 || count > MAX_LOGICAL_BLOCKS) throw corrupt(what, `${count} blocks is not a block count`);
  if (!Number.isSafeInteger(first) || first < 0 || first > count) throw corrupt(what, `${first} is not a first block below ${count}`);
  const volumeBlocks = Math.min(sb.blocksCount, Math.floor(disk.size / sb.blockSize));
  const runs = new RunList(what);
  const inVolume = (physical: number, length: number, purpose: string) => {
    if (physical < sb.firstDataBlock || physical + length > volumeBlocks) {
      const blocks = length === 1 ? `block ${physical}` : `blocks ${physical}–${physical + length - 1}`;
      throw corrupt(what, `${purpose} points at ${blocks}, outside the volume (${volumeBlocks} blocks)`);
    }
  };
  if (count === first) return runs.runs;
  if (inode.flags & EXT_INODE_INLINE_DATA_FL) throw corrupt(what, 'its data is stored inline in the inode, not in blocks');
  if (inode.flags & EXT_INODE_EXTENTS_FL) {
    const visited = new Set<number>();
    let nextLogical = 0; // extents must come in increasing order: a tree that goes back is damaged
    const walk = async (node: Buffer, expectDepth: number | undefined, purpose: string): Promise<void> => {
      const magic = node.readUInt16LE(0);
      const entries = node.readUInt16LE(2);
      const max = node.readUInt16LE(4);
      const depth = node.readUInt16LE(6);
      if (magic !== EXTENT_MAGIC) throw corrupt(what, `${purpose} has no extent header`);
      if (max === 0 || 12 + max * 12 > node.length || entries > max) throw corrupt(what, `${purpose} claims ${entries} of ${max} extents`);
      if (depth > MAX_EXTENT_DEPTH || (expectDepth !== undefined && depth !== expectDepth)) throw corrupt(what, `${purpose} has depth ${depth}`);
      for (let i = 0; i < entries; i++) {
        const e = 12 + i * 12;
        const logical = node.readUInt32LE(e);
        if (logical >= count) return;
        if (depth === 0) {
          let length = node.readUInt16LE(e + 4);
          const unwritten = length > 32768;
          if (unwritten) length -= 32768;
          const physical = node.readUInt16LE(e + 6) * 2 ** 32 + node.readUInt32LE(e + 8);
          if (length === 0 || logical < nextLogical) throw corrupt(what, `${purpose} holds an extent out of order (logical block ${logical})`);
          inVolume(physical, length, purpose);
          nextLogical = logical + length;
          const skip = Math.max(0, first - logical);
          const take = Math.min(length, count - logical) - skip;
          if (!unwritten && take > 0) runs.add(logical + skip, physical + skip, take); // unwritten extents read as zeros: a hole
        } else {
          const child = node.readUInt16LE(e + 8) * 2 ** 32 + node.readUInt32LE(e + 4);
          const next = i + 1 < entries ? node.readUInt32LE(e + 12) : undefined;
          if (next !== undefined && next <= logical) throw corrupt(what, `${purpose} holds an index out of order`);
          if (next !== undefined && next <= first) continue; // wholly before the window
          if (visited.has(child)) throw corrupt(what, `its extent tree visits block ${child} twice`);
          // Each tree block must lead to some of the `count` blocks, and to a run: more blocks than that is a shaped tree.
          const most = Math.min(Math.max(64, count - first), MAX_BLOCK_RUNS);
          if (visited.size >= most) throw corrupt(what, `its extent tree has more than ${most} blocks for ${count - first} data blocks`);
          visited.add(child);
          await walk(await readBlock(disk, sb, child, what, purpose), depth - 1, `extent tree block ${child}`);
        }
      }
    };
    await walk(inode.block, undefined, 'the inode\'s extent root');
    return runs.runs;
  }
  // ext2/3 block map: 12 direct pointers, then single, double and triple indirect blocks.
  const perBlock = sb.blockSize / 4;
  const pointer = (physical: number, logical: number, purpose: string) => {
    if (physical === 0) return; // a hole
    inVolume(physical, 1, purpose);
    runs.add(logical, physical, 1);
  };
  for (let i = first; i < 12 && i < count; i++) pointer(inode.block.readUInt32LE(i * 4), i, 'the inode\'s block map');
  // Maps the subtree under `block` (levels of indirection) for logical blocks starting at `start`.
  const indirect = async (block: number, level: number, start: number): Promise<void> => {
    const span = perBlock ** (level - 1);
    if (block === 0 || start >= count || start + span * perBlock <= first) return;
    const data = await readBlock(disk, sb, block, what, `indirect block ${block}`);
    for (let i = 0; i < perBlock; i++) {
      const logical = start + i * span;
      if (logical >= count) return;
      if (logical + span <= first) continue; // wholly before the window
      const p = data.readUInt32LE(i * 4);
      if (level === 1) pointer(p, logical, `indirect block ${block}`);
      else await indirect(p, level - 1, logical);
    }
  };
  await indirect(inode.block.readUInt32LE(48), 1, 12);
  await indirect(inode.block.readUInt32LE(52), 2, 12 + perBlock);
  await indirect(inode.block.readUInt32LE(56), 3, 12 + perBlock + perBlock ** 2);
  return runs.runs;
}

/** Physical block of each logical block [0, count) of an inode (0 for a hole or an unwritten extent). */
export async function mapInodeBlocks(disk: DiskReader, sb: ExtSuperblock, inode: ExtInode, count: number, what: string): Promise<number[]> {
  if (!Number.isSafeInteger(count) || count < 0 || count > MAX_MAPPED_BLOCKS) {
    throw new PagewiseError('LimitExceeded', `${what}: ${count} blocks are more than the ${MAX_MAPPED_BLOCKS} one block list may hold`);
  }
  const runs = await mapInodeRuns(disk, sb, inode, count, what);
  const blocks = new Array<number>(count).fill(0);
  for (const run of runs) for (let i = 0; i < run.length; i++) blocks[run.logical + i] = run.physical + i;
  return blocks;
}
