/**
 * Replays an ext3/4 internal journal (JBD2) into an in-memory overlay, as the kernel's fs/jbd2/recovery.c
 * does at mount: PASS_SCAN finds the last committed transaction, PASS_REVOKE gathers revoke records,
 * PASS_REPLAY copies each logged block that is not revoked to its home. Layout: the kernel's
 * Documentation/filesystems/ext4/journal.rst (big-endian). The volume is never written; every count and
 * offset in the journal is bounded before use (the disk may be hostile).
 */
import { PagewiseError, isPagewiseError } from '../errors';
import { crc32BeUpdate, crc32cUpdate } from './crc32c';
import type { DiskReader } from './disk-reader';
import { type BlockRun, mapInodeRuns, readExtInode } from './ext-inode';
import {
  EXT_COMPAT_HAS_JOURNAL, EXT_INCOMPAT_JOURNAL_DEV, EXT_INCOMPAT_RECOVER, EXT_SUPERBLOCK_BYTES, EXT_SUPERBLOCK_OFFSET,
  type ExtSuperblock, parseExtSuperblock,
} from './ext-superblock';
import type { OverlayDisk } from './overlay-disk';

export interface JournalReplay {
  /** The superblock says needs_recovery and the journal holds a log (s_start ≠ 0: the kernel's "recovery required"). */
  needed: boolean;
  /** The journal was read and its committed transactions are in the overlay. */
  replayed: boolean;
  /** Committed transactions replayed. */
  transactions: number;
  /** Block writes replayed (a block logged by two transactions counts twice, as the kernel counts). */
  blocks: number;
  /** Logged blocks left out because a later revoke record cancels them. */
  revoked: number;
  firstSequence?: number;
  lastSequence?: number;
  /** Why the journal was not (or not wholly) replayed. */
  warning?: string;
}

const JBD2_MAGIC = 0xc03b3998;
const DESCRIPTOR_BLOCK = 1;
const COMMIT_BLOCK = 2;
const SUPERBLOCK_V1 = 3;
const SUPERBLOCK_V2 = 4;
const REVOKE_BLOCK = 5;

const COMPAT_CHECKSUM = 0x1;
const INCOMPAT_REVOKE = 0x1;
const INCOMPAT_64BIT = 0x2;
const INCOMPAT_ASYNC_COMMIT = 0x4;
const INCOMPAT_CSUM_V2 = 0x8;
const INCOMPAT_CSUM_V3 = 0x10;
const INCOMPAT_FAST_COMMIT = 0x20;
const KNOWN_INCOMPAT = INCOMPAT_REVOKE | INCOMPAT_64BIT | INCOMPAT_ASYNC_COMMIT | INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3 | INCOMPAT_FAST_COMMIT;
const CSUM_TYPE_CRC32C = 4;
const CRC32_CHKSUM = 1;
const CRC32_CHKSUM_SIZE = 4;
const DEFAULT_FAST_COMMIT_BLOCKS = 256;

const FLAG_ESCAPE = 0x1;
const FLAG_SAME_UUID = 0x2;
const FLAG_LAST_TAG = 0x8;

/** The kernel refuses journals this small (JBD2_MIN_JOURNAL_BLOCKS); mke2fs makes at most 10,240,000 blocks. */
const MIN_JOURNAL_BLOCKS = 1024;
const MAX_JOURNAL_BLOCKS = 10_240_000;
/** Revoke records kept at most: a real journal holds far fewer; a shaped one must not fill memory. */
const MAX_REVOKE_RECORDS = 1024 * 1024;
/** Journal bytes read at once (the log is read sequentially). */
const READ_AHEAD_BYTES = 256 * 1024;

/** Sequence numbers wrap at 2^32: the kernel's tid_gt / tid_geq. */
const tidGt = (x: number, y: number) => ((x - y) | 0) > 0;
const tidGeq = (x: number, y: number) => ((x - y) | 0) >= 0;

interface Journal {
  blockSize: number;
  maxLen: number;
  first: number;
  /** The log wraps here (s_maxlen, less the fast-commit area). */
  last: number;
  sequence: number;
  start: number;
  compat: number;
  incompat: number;
  csumSeed: number;
  tagBytes: number;
  read(offset: number): Promise<Buffer>;
}

class JournalProblem extends Error {}

/** Reads logical journal blocks through the journal inode's runs, a chunk at a time. */
function journalReader(volume: DiskReader, runs: BlockRun[], blockSize: number, maxLen: number): (offset: number) => Promise<Buffer> {
  let chunkStart = -1;
  let chunk: Buffer = Buffer.alloc(0);
  return async (offset) => {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= maxLen) throw new JournalProblem(`a read of journal block ${offset} lies past its end (${maxLen} blocks)`);
    if (chunkStart >= 0 && offset >= chunkStart && offset < chunkStart + chunk.length / blockSize) {
      const at = (offset - chunkStart) * blockSize;
      return chunk.subarray(at, at + blockSize);
    }
    let lo = 0;
    let hi = runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const run = runs[mid];
      if (offset < run.logical) hi = mid - 1;
      else if (offset >= run.logical + run.length) lo = mid + 1;
      else {
        const count = Math.min(run.logical + run.length - offset, maxLen - offset, Math.max(1, READ_AHEAD_BYTES / blockSize));
        chunk = await volume.read((run.physical + offset - run.logical) * blockSize, count * blockSize);
        chunkStart = offset;
        return chunk.subarray(0, blockSize);
      }
    }
    throw new JournalProblem(`journal block ${offset} is not mapped to the volume`);
  };
}

/** Opens the journal: its inode, block map and superblock, checked as jbd2_journal_load checks them. */
async function openJournal(volume: DiskReader, sb: ExtSuperblock, what: string): Promise<Journal> {
  const inode = await readExtInode(volume, sb, sb.journalInode, `the journal inode of ${what}`);
  const inodeBlocks = Math.floor(inode.size / sb.blockSize);
  if (inodeBlocks < MIN_JOURNAL_BLOCKS || inodeBlocks > MAX_JOURNAL_BLOCKS) throw new JournalProblem(`the journal inode claims ${inode.size} bytes`);
  const runs = await mapInodeRuns(volume, sb, inode, inodeBlocks, `the journal of ${what}`);
  const head = (await journalReader(volume, runs, sb.blockSize, inodeBlocks)(0)).subarray(0, 1024);
  if (head.readUInt32BE(0) !== JBD2_MAGIC) throw new JournalProblem('the journal superblock has no JBD2 magic');
  const version = head.readUInt32BE(4);
  if (version !== SUPERBLOCK_V1 && version !== SUPERBLOCK_V2) throw new JournalProblem(`the journal superblock has block type ${version}`);
  const blockSize = head.readUInt32BE(12);
  const maxLen = head.readUInt32BE(16);
  const first = head.readUInt32BE(20);
  if (blockSize !== sb.blockSize) throw new JournalProblem(`the journal's block size ${blockSize} differs from the file system's (${sb.blockSize})`);
  if (maxLen < MIN_JOURNAL_BLOCKS || maxLen > inodeBlocks) throw new JournalProblem(`the journal claims ${maxLen} blocks but its inode holds ${inodeBlocks}`);
  if (first < 1 || first >= maxLen) throw new JournalProblem(`the journal's log starts at block ${first} of ${maxLen}`);
  const v2 = version === SUPERBLOCK_V2;
  const compat = v2 ? head.readUInt32BE(36) : 0;
  const incompat = v2 ? head.readUInt32BE(40) : 0;
  if (incompat & ~KNOWN_INCOMPAT) throw new JournalProblem(`the journal uses features Pagewise does not know (0x${(incompat & ~KNOWN_INCOMPAT).toString(16)})`);
  const csum = incompat & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3);
  if (csum === (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3)) throw new JournalProblem('the journal claims both checksum v2 and v3');
  let csumSeed = 0;
  if (csum) {
    if (head.readUInt8(0x50) !== CSUM_TYPE_CRC32C) throw new JournalProblem(`the journal's checksum type ${head.readUInt8(0x50)} is not crc32c`);
    const copy = Buffer.from(head);
    const stored = copy.readUInt32BE(0xfc);
    copy.writeUInt32BE(0, 0xfc);
    if (crc32cUpdate(0xffffffff, copy) !== stored) throw new JournalProblem('the journal superblock fails its checksum');
    csumSeed = crc32cUpdate(0xffffffff, head.subarray(0x30, 0x40));
  }
  let last = maxLen;
  if (incompat & INCOMPAT_FAST_COMMIT) {
    const fcBlocks = head.readUInt32BE(0x54) || DEFAULT_FAST_COMMIT_BLOCKS;
    if (fcBlocks >= maxLen || maxLen - fcBlocks < MIN_JOURNAL_BLOCKS) throw new JournalProblem(`the journal's fast-commit area (${fcBlocks} blocks) leaves no log`);
    last = maxLen - fcBlocks;
  }
  const start = head.readUInt32BE(28);
  if (start !== 0 && (start < first || start >= last)) throw new JournalProblem(`the journal's log head ${start} lies outside its log (${first}–${last - 1})`);
  // journal_tag_bytes(): tag3 is 16 bytes; the old tag is 12, +2 with csum v2, −4 without 64bit.
  const tagBytes = incompat & INCOMPAT_CSUM_V3 ? 16 : 12 + (incompat & INCOMPAT_CSUM_V2 ? 2 : 0) - (incompat & INCOMPAT_64BIT ? 0 : 4);
  return {
    blockSize, maxLen, first, last, sequence: head.readUInt32BE(24), start, compat, incompat, csumSeed, tagBytes,
    read: journalReader(volume, runs, sb.blockSize, maxLen),
  };
}

const hasCsum = (j: Journal) => (j.incompat & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3)) !== 0;

interface Tag { block: number; flags: number; checksum: number }

/** The tags of a descriptor block, as count_tags walks them (LAST_TAG, or the end of the block, ends them). */
function tagsOf(j: Journal, descriptor: Buffer): Tag[] {
  const end = j.blockSize - (hasCsum(j) ? 4 : 0);
  const tags: Tag[] = [];
  let at = 12;
  while (at + j.tagBytes <= end) {
    const flags = descriptor.readUInt16BE(at + 6); // the low half of tag3's 32-bit t_flags sits at the same place
    const high = j.incompat & INCOMPAT_64BIT ? descriptor.readUInt32BE(at + 8) : 0;
    const checksum = j.incompat & INCOMPAT_CSUM_V3 ? descriptor.readUInt32BE(at + 12) : descriptor.readUInt16BE(at + 4);
    tags.push({ block: high * 2 ** 32 + descriptor.readUInt32BE(at), flags, checksum });
    at += j.tagBytes + (flags & FLAG_SAME_UUID ? 0 : 16);
    if (flags & FLAG_LAST_TAG) break;
  }
  return tags;
}

/** A descriptor or revoke block's tail checksum (csum v2/v3). */
function blockTailValid(j: Journal, block: Buffer): boolean {
  if (!hasCsum(j)) return true;
  const copy = Buffer.from(block);
  const stored = copy.readUInt32BE(j.blockSize - 4);
  copy.writeUInt32BE(0, j.blockSize - 4);
  return crc32cUpdate(j.csumSeed, copy) === stored;
}

function commitValid(j: Journal, block: Buffer): boolean {
  if (!hasCsum(j)) return true;
  const copy = Buffer.from(block);
  const stored = copy.readUInt32BE(16);
  copy.writeUInt32BE(0, 16);
  return crc32cUpdate(j.csumSeed, copy) === stored;
}

function tagValid(j: Journal, tag: Tag, data: Buffer, sequence: number): boolean {
  if (!hasCsum(j)) return true;
  const seq = Buffer.alloc(4);
  seq.writeUInt32BE(sequence >>> 0);
  const sum = crc32cUpdate(crc32cUpdate(j.csumSeed, seq), data);
  return j.incompat & INCOMPAT_CSUM_V3 ? sum === tag.checksum : (sum & 0xffff) === tag.checksum;
}

/**
 * A replay's warnings: the first few kept as said, the rest only counted. A hostile journal may log
 * millions of tags that each earn one (a block outside the volume, a bad checksum): holding every line
 * would be a gigabyte of strings for a warning that shows three.
 */
export class JournalWarnings {
  static readonly SHOWN = 3;
  readonly shown: string[] = [];
  length = 0;
  push(line: string): void {
    this.length++;
    if (this.shown.length < JournalWarnings.SHOWN) this.shown.push(line);
  }
}

interface ScanState {
  start: number;
  end: number;
  revokes: Map<number, number>;
  replays: number;
  revokeHits: number;
  warnings: JournalWarnings;
}

/** One pass of do_one_pass(): walks the log from s_start, transaction by transaction. */
async function onePass(j: Journal, state: ScanState, pass: 'scan' | 'revoke' | 'replay', volume: DiskReader, overlay: OverlayDisk): Promise<void> {
  let nextCommit = j.sequence;
  let next = j.start;
  const logLength = j.last - j.first;
  let walked = 0;
  let crc32Sum = 0xffffffff;
  let lastCommitTime = 0n;
  const wrap = (n: number) => (n >= j.last ? n - logLength : n);
  const advance = (n: number) => {
    walked += n;
    // Transactions never overlap in the log: a walk longer than the log (and the one block that ends it) is a shaped circle.
    if (walked > logLength + 1) throw new JournalProblem(`the journal's log runs in a circle (more than ${logLength} blocks walked)`);
    next = wrap(next + n);
  };
  for (;;) {
    if (pass !== 'scan' && tidGeq(nextCommit, state.end)) break;
    const block = await j.read(next);
    advance(1);
    if (block.readUInt32BE(0) !== JBD2_MAGIC || block.readUInt32BE(8) !== nextCommit >>> 0) break;
    const type = block.readUInt32BE(4);
    if (type === DESCRIPTOR_BLOCK) {
      if (!blockTailValid(j, block)) {
        if (pass === 'scan') state.warnings.push(`transaction ${nextCommit >>> 0} has a descriptor block that fails its checksum: replay stops before it`);
        break;
      }
      const tags = tagsOf(j, block);
      if (pass === 'scan' && j.compat & COMPAT_CHECKSUM) {
        crc32Sum = crc32BeUpdate(crc32Sum, block);
        for (let i = 0; i < tags.length; i++) {
          const data = await j.read(next);
          advance(1);
          crc32Sum = crc32BeUpdate(crc32Sum, data);
        }
        continue;
      }
      if (pass !== 'replay') {
        advance(tags.length);
        continue;
      }
      for (const tag of tags) {
        const data = await j.read(next);
        advance(1);
        const revokedAt = state.revokes.get(tag.block);
        if (revokedAt !== undefined && !tidGt(nextCommit, revokedAt)) {
          state.revokeHits++;
          continue;
        }
        if (!tagValid(j, tag, data, nextCommit)) {
          state.warnings.push(`the logged copy of block ${tag.block} in transaction ${nextCommit >>> 0} fails its checksum and was left out`);
          continue;
        }
        if ((tag.block + 1) * j.blockSize > volume.size) {
          state.warnings.push(`transaction ${nextCommit >>> 0} logs block ${tag.block}, outside the volume: left out`);
          continue;
        }
        let home = data;
        if (tag.flags & FLAG_ESCAPE) {
          home = Buffer.from(data);
          home.writeUInt32BE(JBD2_MAGIC, 0);
        }
        overlay.putBlock(tag.block, home);
        state.replays++;
      }
      continue;
    }
    if (type === COMMIT_BLOCK) {
      if (pass === 'scan') {
        const commitTime = block.readBigUInt64BE(48);
        let valid = commitValid(j, block);
        if (j.compat & COMPAT_CHECKSUM) {
          const found = block.readUInt32BE(16);
          const kind = block.readUInt8(12);
          const size = block.readUInt8(13);
          const matches = (crc32Sum === found && kind === CRC32_CHKSUM && size === CRC32_CHKSUM_SIZE) || (kind === 0 && size === 0 && found === 0);
          valid &&= matches;
          crc32Sum = 0xffffffff;
        }
        if (!valid) {
          // An older commit time is a stale block from an earlier lap of the log; a newer one is a torn or damaged commit.
          if (commitTime >= lastCommitTime) state.warnings.push(`transaction ${nextCommit >>> 0}'s commit block fails its checksum: replay stops before it`);
          break;
        }
        lastCommitTime = commitTime;
      }
      nextCommit = (nextCommit + 1) >>> 0;
      continue;
    }
    if (type === REVOKE_BLOCK) {
      if (pass === 'scan' && !blockTailValid(j, block)) {
        state.warnings.push(`transaction ${nextCommit >>> 0} has a revoke block that fails its checksum: replay stops before it`);
        break;
      }
      if (pass === 'revoke') scanRevokes(j, block, nextCommit, state);
      continue;
    }
    break; // an unknown block type ends the log
  }
  if (pass === 'scan') state.end = nextCommit;
  else if (nextCommit !== state.end) throw new JournalProblem(`the replay ended at transaction ${nextCommit} where the scan ended at ${state.end}`);
}

/** scan_revoke_records(): r_count bytes of 4- or 8-byte block numbers after the 16-byte header. */
function scanRevokes(j: Journal, block: Buffer, sequence: number, state: ScanState): void {
  const count = block.readUInt32BE(12);
  if (count > j.blockSize - (hasCsum(j) ? 4 : 0)) throw new JournalProblem(`a revoke block of transaction ${sequence} claims ${count} bytes`);
  const record = j.incompat & INCOMPAT_64BIT ? 8 : 4;
  for (let at = 16; at + record <= count; at += record) {
    const target = record === 8 ? block.readUInt32BE(at) * 2 ** 32 + block.readUInt32BE(at + 4) : block.readUInt32BE(at);
    const known = state.revokes.get(target);
    if (known === undefined && state.revokes.size >= MAX_REVOKE_RECORDS) throw new JournalProblem(`the journal holds more than ${MAX_REVOKE_RECORDS} revoke records`);
    if (known === undefined || tidGt(sequence, known)) state.revokes.set(target, sequence);
  }
}

/**
 * When the superblock says needs_recovery: the journal's committed transactions written into `overlay` as
 * the kernel would replay them. Never writes the volume. External journal / unreadable journal →
 * replayed: false with a warning (the caller opens the file system anyway and says so). LimitExceeded (the
 * overlay bound) and a failed read of the volume itself are thrown.
 */
export async function replayExtJournal(volume: DiskReader, overlay: OverlayDisk, what: string): Promise<JournalReplay> {
  const sb = parseExtSuperblock(await volume.read(EXT_SUPERBLOCK_OFFSET, EXT_SUPERBLOCK_BYTES), what);
  if (!sb) throw new PagewiseError('UnsupportedFileSystem', `${what} holds no ext file system: there is no journal to replay`);
  const none = { replayed: false, transactions: 0, blocks: 0, revoked: 0 };
  if (!(sb.featureIncompat & EXT_INCOMPAT_RECOVER)) return { needed: false, ...none };
  if (overlay.blockSize !== sb.blockSize) throw new PagewiseError('BadInput', `the overlay's block size ${overlay.blockSize} differs from ${what}'s (${sb.blockSize})`);
  const notReplayed = (why: string): JournalReplay => ({
    needed: true, ...none, warning: `${what} was not cleanly unmounted and its journal cannot be replayed (${why}): files are as the disk held them, maybe missing the last changes`,
  });
  if (!(sb.featureCompat & EXT_COMPAT_HAS_JOURNAL) || sb.journalInode === 0) return notReplayed('it has no internal journal');
  if (sb.journalDevice !== 0 || sb.featureIncompat & EXT_INCOMPAT_JOURNAL_DEV) return notReplayed('its journal is on another device');
  // A damaged journal is a warning; a read of the volume that fails (the vault's Corrupt, an abort) is not.
  const readFailures = new WeakSet<object>();
  const watched: DiskReader = {
    size: volume.size,
    read: (position, length) => volume.read(position, length).catch((error: unknown) => {
      if (typeof error === 'object' && error !== null) readFailures.add(error);
      throw error;
    }),
  };
  let journal: Journal;
  try {
    journal = await openJournal(watched, sb, what);
  } catch (error) {
    const damaged = error instanceof JournalProblem || (isPagewiseError(error) && (error.code === 'Corrupt' || error.code === 'LimitExceeded'));
    if (damaged && !readFailures.has(error)) return notReplayed(error.message);
    throw error;
  }
  if (journal.start === 0) return { needed: false, ...none }; // the flag is set but the log is empty: nothing to replay
  const state: ScanState = { start: journal.sequence, end: journal.sequence, revokes: new Map(), replays: 0, revokeHits: 0, warnings: new JournalWarnings() };
  try {
    await onePass(journal, state, 'scan', volume, overlay);
    await onePass(journal, state, 'revoke', volume, overlay);
  } catch (error) {
    // Nothing is in the overlay yet: the file system is opened as the disk holds it.
    if (error instanceof JournalProblem) return notReplayed(error.message);
    throw error;
  }
  try {
    await onePass(journal, state, 'replay', volume, overlay);
  } catch (error) {
    // The scan walked this same log: a failure here is a read of the volume failing, or the overlay bound.
    if (error instanceof JournalProblem) throw new PagewiseError('Corrupt', `the journal of ${what} cannot be replayed: ${error.message}`);
    throw error;
  }
  const transactions = (state.end - state.start) >>> 0;
  if (journal.incompat & INCOMPAT_FAST_COMMIT) state.warnings.push('fast-commit records (after the last full commit) are not replayed');
  return {
    needed: true, replayed: true, transactions, blocks: state.replays, revoked: state.revokeHits,
    ...(transactions > 0 ? { firstSequence: state.start, lastSequence: (state.end - 1) >>> 0 } : {}),
    ...(state.warnings.length ? { warning: `${what}: ${state.warnings.shown.join('; ')}${state.warnings.length > state.warnings.shown.length ? ` (and ${state.warnings.length - state.warnings.shown.length} more)` : ''}` } : {}),
  };
}
