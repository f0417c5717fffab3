/**
 * The ext2/3/4 superblock fields file-level restore needs (identifying the file system and replaying its
 * journal), parsed from the 1024 bytes at offset 1024 of the volume. Layout: the kernel's
 * Documentation/filesystems/ext4/super.rst (little-endian). Every value is checked before it is used as a
 * size or count: the bytes come from a backed-up disk, which an attacker may have shaped.
 */
import { PagewiseError } from '../errors';

export const EXT_SUPERBLOCK_OFFSET = 1024;
export const EXT_SUPERBLOCK_BYTES = 1024;
const EXT_MAGIC = 0xef53;

/** Feature bits (super.rst). */
export const EXT_COMPAT_HAS_JOURNAL = 0x4;
export const EXT_INCOMPAT_FILETYPE = 0x2;
export const EXT_INCOMPAT_RECOVER = 0x4;
export const EXT_INCOMPAT_JOURNAL_DEV = 0x8;
export const EXT_INCOMPAT_META_BG = 0x10;
export const EXT_INCOMPAT_EXTENTS = 0x40;
export const EXT_INCOMPAT_64BIT = 0x80;
export const EXT_INCOMPAT_FLEX_BG = 0x200;
export const EXT_INCOMPAT_ENCRYPT = 0x10000;
export const EXT_INCOMPAT_INLINE_DATA = 0x8000;
export const EXT_RO_COMPAT_METADATA_CSUM = 0x400;

export interface ExtSuperblock {
  inodesCount: number;
  blocksCount: number;
  firstDataBlock: number;
  /** Bytes per block: 1024 << s_log_block_size (1 KiB to 64 KiB). */
  blockSize: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  /** Bytes per inode record (128 for old file systems). */
  inodeSize: number;
  /** Bytes per group descriptor: 32, or s_desc_size with the 64bit feature. */
  descSize: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  /** The file system's UUID, as blkid prints it. */
  uuid: string;
  /** The volume label (s_volume_name), empty when none. */
  label: string;
  /** Inode of the journal (usually 8), 0 without one. */
  journalInode: number;
  /** Device number of an external journal, 0 when the journal is internal. */
  journalDevice: number;
  /** Last mount point recorded (s_last_mounted), empty when none. */
  lastMounted: string;
  /** Seconds since the epoch of the last write (s_wtime), 0 when never. */
  writeTime: number;
}

/** Which of ext2, ext3, ext4 a superblock describes, as blkid names it (journal → ext3; an ext4-only feature → ext4). */
export function extKind(sb: ExtSuperblock): 'ext2' | 'ext3' | 'ext4' {
  const ext4Only = EXT_INCOMPAT_EXTENTS | EXT_INCOMPAT_64BIT | EXT_INCOMPAT_FLEX_BG | EXT_INCOMPAT_INLINE_DATA | EXT_INCOMPAT_META_BG;
  if (sb.featureIncompat & ext4Only || sb.featureRoCompat & ~0x7) return 'ext4';
  return sb.featureCompat & EXT_COMPAT_HAS_JOURNAL ? 'ext3' : 'ext2';
}

/** Whether `bytes` (the 1024 bytes at offset 1024 of a volume) carry the ext magic. */
export function hasExtMagic(bytes: Buffer): boolean {
  return bytes.length >= 58 && bytes.readUInt16LE(56) === EXT_MAGIC;
}

/**
 * Parses a superblock: undefined when `bytes` carry no ext magic; Corrupt when they do but a field is out
 * of its range (`what` names the volume in the message).
 */
export function parseExtSuperblock(bytes: Buffer, what: string): ExtSuperblock | undefined {
  if (bytes.length < EXT_SUPERBLOCK_BYTES || !hasExtMagic(bytes)) return undefined;
  const bad = (field: string, value: number | bigint) => new PagewiseError('Corrupt', `the ext superblock of ${what} is damaged: ${field} ${value} is out of range`);
  const logBlock = bytes.readUInt32LE(24);
  if (logBlock > 6) throw bad('s_log_block_size', logBlock);
  const blockSize = 1024 << logBlock;
  const featureCompat = bytes.readUInt32LE(92);
  const featureIncompat = bytes.readUInt32LE(96);
  const featureRoCompat = bytes.readUInt32LE(100);
  const is64 = (featureIncompat & EXT_INCOMPAT_64BIT) !== 0;
  const blocks = BigInt(bytes.readUInt32LE(4)) + (is64 ? BigInt(bytes.readUInt32LE(336)) << 32n : 0n);
  if (blocks === 0n || blocks > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('s_blocks_count', blocks);
  const revLevel = bytes.readUInt32LE(76);
  const inodeSize = revLevel === 0 ? 128 : bytes.readUInt16LE(88);
  if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) throw bad('s_inode_size', inodeSize);
  const descSize = is64 ? bytes.readUInt16LE(254) : 32;
  if (descSize < 32 || descSize > 1024 || (descSize & (descSize - 1)) !== 0) throw bad('s_desc_size', descSize);
  const blocksPerGroup = bytes.readUInt32LE(32);
  if (blocksPerGroup === 0 || blocksPerGroup > 8 * blockSize) throw bad('s_blocks_per_group', blocksPerGroup);
  const inodesPerGroup = bytes.readUInt32LE(40);
  if (inodesPerGroup === 0 || inodesPerGroup > 8 * blockSize) throw bad('s_inodes_per_group', inodesPerGroup);
  const firstDataBlock = bytes.readUInt32LE(20);
  if (firstDataBlock > 1) throw bad('s_first_data_block', firstDataBlock);
  const text = (at: number, length: number) => {
    const raw = bytes.subarray(at, at + length);
    const end = raw.indexOf(0);
    return raw.subarray(0, end < 0 ? length : end).toString('utf8');
  };
  const hex = bytes.subarray(104, 120).toString('hex');
  return {
    inodesCount: bytes.readUInt32LE(0),
    blocksCount: Number(blocks),
    firstDataBlock,
    blockSize,
    blocksPerGroup,
    inodesPerGroup,
    inodeSize,
    descSize,
    featureCompat,
    featureIncompat,
    featureRoCompat,
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    label: text(120, 16),
    lastMounted: text(136, 64),
    journalInode: featureCompat & EXT_COMPAT_HAS_JOURNAL ? bytes.readUInt32LE(224) : 0,
    journalDevice: featureCompat & EXT_COMPAT_HAS_JOURNAL ? bytes.readUInt32LE(228) : 0,
    writeTime: bytes.readUInt32LE(48),
  };
}
