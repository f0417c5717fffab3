/**
 * The scratch cache: the pseudo-disk's cache storage area on local ephemeral disk. One file in a private
 * directory (see scratch-dir.ts), split into page-sized slots at fixed offsets and read and written
 * positionally, so the cache holds one file descriptor whatever its page count (512-byte pages in a
 * 256 MiB cache are 524,288 slots). Its capacity is configured in bytes and is smaller than the disk. A
 * page is downloaded straight into a slot, processed from it, and the slot is freed once the page's
 * block is stored. The high-water mark of bytes held is recorded.
 */
import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { PagewiseError } from '../errors';
import { createScratchDir, ScratchDir } from './scratch-dir';

export interface ScratchCacheOptions {
  capacityBytes: number;
  pageSize: number;
  /** Parent directory; a private subdirectory is created in it. Default: the OS temp dir. */
  dir?: string;
}

/**
 * One page's place in the scratch file. Created when the slot is lent and dropped when it is released,
 * so memory follows the slots in use, not the cache's slot count.
 */
export class CacheSlot {
  /** Bytes of the page held (the last page of a disk may be short). */
  length = 0;
  /**
   * The byte ranges written since `prepare`, flat [start, end, start, end, ...] ascending and apart.
   * The rest of the slot reads as zeros, as a fresh sparse slot would, without zeros being written: the
   * file still holds whatever page used the slot before.
   */
  private written: number[] = [];
  private readonly base: number;

  constructor(readonly index: number, pageSize: number, private readonly handle: FileHandle) {
    this.base = index * pageSize;
  }

  /** Makes the slot hold `length` zero bytes, ready for allocated ranges to be written in. */
  async prepare(length: number): Promise<void> {
    this.length = length;
    this.written = [];
  }

  /** Writes consecutive `parts` at `position` (relative to the page start) with one gathered write, no copy. */
  async writeGathered(parts: Buffer[], position: number): Promise<void> {
    const total = parts.reduce((sum, p) => sum + p.length, 0);
    if (position < 0 || position + total > this.length) {
      throw new PagewiseError('Corrupt', `a write of ${total} bytes at ${position} does not fit scratch slot ${this.index} (${this.length} bytes)`);
    }
    let pending = parts;
    let at = position;
    while (pending.length > 0) {
      let { bytesWritten } = await this.handle.writev(pending, this.base + at);
      if (bytesWritten === 0) throw new PagewiseError('Corrupt', `scratch slot ${this.index} accepted no bytes (is the scratch disk full?)`);
      at += bytesWritten;
      // a short write: drop what was written and go on with the rest
      let k = 0;
      while (k < pending.length && bytesWritten >= pending[k].length) bytesWritten -= pending[k++].length;
      pending = k < pending.length ? [pending[k].subarray(bytesWritten), ...pending.slice(k + 1)] : [];
    }
    this.mark(position, position + total);
  }

  /** Reads `length` bytes at `position` of the slot: written ranges from the file, the rest zeros. */
  async read(position: number, length: number, into?: Buffer): Promise<Buffer> {
    const buffer = into ?? Buffer.allocUnsafe(length);
    const end = position + length;
    let at = position;
    for (let k = 0; k < this.written.length && at < end; k += 2) {
      const from = Math.max(at, this.written[k]);
      const to = Math.min(end, this.written[k + 1]);
      if (to <= from) continue;
      buffer.fill(0, at - position, from - position);
      await this.readFile(buffer, from - position, to - from, from);
      at = to;
    }
    buffer.fill(0, at - position, length);
    return buffer;
  }

  private async readFile(buffer: Buffer, offset: number, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(buffer, offset + done, length - done, this.base + position + done);
      if (bytesRead === 0) throw new PagewiseError('Corrupt', `scratch slot ${this.index} is shorter than expected`);
      done += bytesRead;
    }
  }

  /** Adds [start, end) to the written ranges (chunks mostly arrive in order: usually one range grows). */
  private mark(start: number, end: number): void {
    const w = this.written;
    const n = w.length;
    if (n === 0 || start > w[n - 1]) w.push(start, end);
    else if (start >= w[n - 2]) w[n - 1] = Math.max(w[n - 1], end);
    else {
      const ranges: Array<[number, number]> = [[start, end]];
      for (let k = 0; k < n; k += 2) ranges.push([w[k], w[k + 1]]);
      ranges.sort((a, b) => a[0] - b[0]);
      const merged: number[] = [];
      for (const [s, e] of ranges) {
        const m = merged.length;
        if (m > 0 && s <= merged[m - 1]) merged[m - 1] = Math.max(merged[m - 1], e);
        else merged.push(s, e);
      }
      this.written = merged;
    }
  }
}

/** Opened without following a link and only if new: nothing but this process writes the file. */
const SCRATCH_FILE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

export class ScratchCache {
  readonly slotCount: number;
  readonly capacityBytes: number;
  readonly dir: string;
  /** Slot indices released, reused first (the file stays as small as the high-water mark). */
  private readonly released: number[] = [];
  /** Slots below this index have been lent at least once. */
  private fresh = 0;
  private readonly waiters: Array<{ count: number; resolve: (slots: CacheSlot[]) => void }> = [];
  private inUse = 0;
  private highWater = 0;
  private disposed = false;

  private constructor(
    private readonly scratch: ScratchDir,
    readonly file: string,
    readonly pageSize: number,
    slotCount: number,
    private readonly handle: FileHandle,
  ) {
    this.dir = scratch.path;
    this.slotCount = slotCount;
    this.capacityBytes = slotCount * pageSize;
  }

  static async create(options: ScratchCacheOptions): Promise<ScratchCache> {
    const { capacityBytes, pageSize } = options;
    const slotCount = Math.floor(capacityBytes / pageSize);
    if (!Number.isSafeInteger(capacityBytes) || slotCount < 1) {
      throw new PagewiseError('BadCacheSize', `the cache (${capacityBytes} bytes) is smaller than one page (${pageSize} bytes)`);
    }
    const scratch = await createScratchDir(options.dir);
    const file = path.join(scratch.path, 'slots.scratch');
    try {
      return new ScratchCache(scratch, file, pageSize, slotCount, await fs.open(file, SCRATCH_FILE_FLAGS, 0o600));
    } catch (err) {
      await scratch.remove();
      throw err;
    }
  }

  /** Bytes the cache holds now (slots in use × page size). */
  get bytesInUse(): number {
    return this.inUse * this.pageSize;
  }

  /** The most bytes the cache ever held at once. */
  get highWaterBytes(): number {
    return this.highWater;
  }

  /** Waits for a free slot. */
  async acquire(): Promise<CacheSlot> {
    return (await this.acquireMany(1))[0];
  }

  /**
   * Waits until `count` slots are free and takes them together (first come, first served), so a run of
   * consecutive pages fetched with one ranged read never deadlocks against another half-served run.
   */
  acquireMany(count: number): Promise<CacheSlot[]> {
    if (this.disposed) return Promise.reject(new PagewiseError('Aborted', 'the scratch cache is closed'));
    if (!Number.isSafeInteger(count) || count < 1 || count > this.slotCount) {
      return Promise.reject(new PagewiseError('BadCacheSize', `cannot take ${count} of the cache's ${this.slotCount} slots at once`));
    }
    return new Promise((resolve) => {
      this.waiters.push({ count, resolve });
      this.serve();
    });
  }

  release(slot: CacheSlot): void {
    slot.length = 0;
    this.inUse--;
    this.released.push(slot.index);
    this.serve();
  }

  private serve(): void {
    while (this.waiters.length > 0 && this.waiters[0].count <= this.slotCount - this.inUse) {
      const { count, resolve } = this.waiters.shift()!;
      resolve(Array.from({ length: count }, () => this.take()));
    }
  }

  private take(): CacheSlot {
    const index = this.released.pop() ?? this.fresh++;
    this.inUse++;
    this.highWater = Math.max(this.highWater, this.inUse * this.pageSize);
    return new CacheSlot(index, this.pageSize, this.handle);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.handle.close().catch(() => undefined);
    await this.scratch.remove();
  }
}
