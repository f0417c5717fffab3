/**
 * A regular file's bytes read straight from its blocks (inode → runs → large disk reads), without libext2fs's
 * one-block-per-call path: holes and unwritten extents as zeros with no read, the last block cut at the size.
 */
import { isPagewiseError, PagewiseError, throwIfAborted } from '../errors';
import type { DiskReader } from './disk-reader';
import { EXT_INODE_INLINE_DATA_FL, mapInodeRuns, readExtInode, type BlockRun, type ExtInode } from './ext-inode';
import type { ExtSuperblock } from './ext-superblock';

/** ext4's EXT4_ENCRYPT_FL: the blocks hold ciphertext. */
export const EXT_INODE_ENCRYPT_FL = 0x800;
/** Logical blocks mapped at once: a window's runs stay far below MAX_BLOCK_RUNS, so a shredded huge file streams in bounded memory. */
export const MAP_WINDOW_BLOCKS = 64 * 1024;

/** What the caller (libext2fs's fstat) already knows of the file; the inode read here must agree. */
export interface FileFacts {
  ino: number;
  /** st_mode, type bits included. */
  mode: number;
  size: number;
}

export interface FileDataOptions {
  /** The longest step (and disk read) handed out. */
  chunkBytes: number;
  abortSignal?: AbortSignal;
  /** Logical blocks mapped at once (tests: small windows); at most MAP_WINDOW_BLOCKS. */
  windowBlocks?: number;
}

export type FileDataPlan = { direct: true; inode: ExtInode } | { direct: false; why: string };

/**
 * Whether the file can be read directly: its inode read and checked against `facts`. Inline data, a
 * mismatch with fstat, or a map too large to walk → not direct (the caller reads through libext2fs).
 * An encrypted file is refused: either path would hand out ciphertext.
 */
export async function planFileData(disk: DiskReader, sb: ExtSuperblock, facts: FileFacts, what: string): Promise<FileDataPlan> {
  const inode = await readExtInode(disk, sb, facts.ino, what);
  if (inode.flags & EXT_INODE_ENCRYPT_FL) {
    throw new PagewiseError('UnsupportedFileSystem', `${what} is encrypted (ext4 file encryption): Pagewise cannot decrypt it, and would only hand out ciphertext`);
  }
  if (inode.flags & EXT_INODE_INLINE_DATA_FL) return { direct: false, why: 'its data is inline in the inode' };
  if (inode.mode !== (facts.mode & 0xffff) || inode.size !== facts.size) {
    return { direct: false, why: `its inode (mode ${inode.mode.toString(8)}, ${inode.size} bytes) disagrees with libext2fs (mode ${facts.mode.toString(8)}, ${facts.size} bytes)` };
  }
  return { direct: true, inode };
}

/**
 * The file's bytes in order, in steps of at most `chunkBytes`, one step read ahead while the caller takes
 * the previous one. Each step is one disk read per run it meets. Memory: two steps and one window's runs.
 */
export async function* readFileData(
  disk: DiskReader,
  sb: ExtSuperblock,
  inode: ExtInode,
  what: string,
  options: FileDataOptions,
): AsyncGenerator<Buffer> {
  yield* readAhead(fileSteps(disk, sb, inode, what, options));
}

async function* fileSteps(disk: DiskReader, sb: ExtSuperblock, inode: ExtInode, what: string, options: FileDataOptions): AsyncGenerator<Buffer> {
  const bs = sb.blockSize;
  const count = Math.ceil(inode.size / bs);
  // ext's logical block numbers are 32-bit: a larger size is a damaged (or shaped) inode, not terabytes of zeros to stream.
  if (count > 2 ** 32) throw new PagewiseError('Corrupt', `${what} is damaged: its size of ${inode.size} bytes is more than 2^32 blocks of ${bs} bytes`);
  const window = options.windowBlocks ?? MAP_WINDOW_BLOCKS;
  if (!Number.isSafeInteger(window) || window <= 0 || window > MAP_WINDOW_BLOCKS) throw new PagewiseError('BadInput', `windowBlocks ${window} must be from 1 to ${MAP_WINDOW_BLOCKS}`);
  for (let windowStart = 0; windowStart < count; windowStart += window) {
    const windowEnd = Math.min(count, windowStart + window);
    const runs = await mapInodeRuns(disk, sb, inode, windowEnd, what, windowStart);
    const stop = Math.min(inode.size, windowEnd * bs);
    let r = 0; // first run that may still overlap
    for (let at = windowStart * bs; at < stop; ) {
      throwIfAborted(options.abortSignal, `reading ${what} was cancelled`);
      const end = Math.min(stop, at + options.chunkBytes);
      while (r < runs.length && (runs[r].logical + runs[r].length) * bs <= at) r++;
      yield await readStep(disk, runs, r, at, end, bs);
      at = end;
    }
  }
}

/** Bytes [at, end) of the file: zeros where no run lies, each overlapping run's part read at once. */
async function readStep(disk: DiskReader, runs: BlockRun[], from: number, at: number, end: number, bs: number): Promise<Buffer> {
  const parts: Array<{ into: number; physical: number; length: number }> = [];
  for (let r = from; r < runs.length && runs[r].logical * bs < end; r++) {
    const run = runs[r];
    const a = Math.max(at, run.logical * bs);
    const b = Math.min(end, (run.logical + run.length) * bs);
    if (a < b) parts.push({ into: a - at, physical: run.physical * bs + (a - run.logical * bs), length: b - a });
  }
  // One run under the whole step (a contiguous file): the disk's buffer as it is.
  if (parts.length === 1 && parts[0].into === 0 && parts[0].length === end - at) return disk.read(parts[0].physical, parts[0].length);
  const out = Buffer.alloc(end - at);
  for (const part of parts) (await disk.read(part.physical, part.length)).copy(out, part.into);
  return out;
}

/** Pulls the next item while the caller handles the current one (one ahead); a pending failure is left unobserved only when the caller stops early. */
async function* readAhead(steps: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  let next = steps.next();
  next.catch(() => undefined);
  try {
    for (;;) {
      const got = await next;
      if (got.done) return;
      next = steps.next();
      next.catch(() => undefined);
      yield got.value;
    }
  } finally {
    await next.catch(() => undefined);
    await steps.return(undefined);
  }
}

/** Whether an error from planning means "read through libext2fs instead" (a map over the bounds), not damage. */
export function fallsBack(err: unknown): boolean {
  return isPagewiseError(err, 'LimitExceeded');
}
