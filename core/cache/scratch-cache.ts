/**
 * The scratch cache: the pseudo-disk's cache storage area on local ephemeral disk. A directory with a
 * fixed number of page-sized slot files; its capacity is configured in bytes and is smaller than the
 * disk. A page is downloaded straight into a slot (streamed to the file), processed from it, and the slot
 * is freed once the page's block is stored. The high-water mark of bytes held is recorded.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { PagewiseError } from '../errors';

export interface ScratchCacheOptions {
  capacityBytes: number;
  pageSize: number;
  /** Parent directory; a private subdirectory is created in it. Default: the OS temp dir. */
  dir?: string;
}

export class CacheSlot {
  /** Bytes of the page held (the last page of a disk may be short). */
  length = 0;
  constructor(readonly index: number, readonly file: string, readonly handle: FileHandle) {}

  /** Makes the slot hold `length` zero bytes (sparse), ready for allocated ranges to be written in. */
  async prepare(length: number): Promise<void> {
    this.length = length;
    await this.handle.truncate(0);
    await this.handle.truncate(length);
  }

  /** Writes consecutive `parts` at `position` (relative to the page start) with one gathered write, no copy. */
  async writeGathered(parts: Buffer[], position: number): Promise<void> {
    let pending = parts;
    let at = position;
    while (pending.length > 0) {
      let { bytesWritten } = await this.handle.writev(pending, at);
      if (bytesWritten === 0) throw new PagewiseError('Corrupt', `scratch slot ${this.index} accepted no bytes (is the scratch disk full?)`);
      at += bytesWritten;
      // a short write: drop what was written and go on with the rest
      let k = 0;
      while (k < pending.length && bytesWritten >= pending[k].length) bytesWritten -= pending[k++].length;
      pending = k < pending.length ? [pending[k].subarray(bytesWritten), ...pending.slice(k + 1)] : [];
    }
  }

  /** Reads `length` bytes at `position` of the slot. */
  async read(position: number, length: number, into?: Buffer): Promise<Buffer> {
    const buffer = into ?? Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(buffer, done, length - done, position + done);
      if (bytesRead === 0) throw new PagewiseError('Corrupt', `scratch slot ${this.index} is shorter than expected`);
      done += bytesRead;
    }
    return buffer;
  }
}

export class ScratchCache {
  readonly slotCount: number;
  readonly capacityBytes: number;
  private readonly free: CacheSlot[];
  private readonly waiters: Array<{ count: number; resolve: (slots: CacheSlot[]) => void }> = [];
  private inUse = 0;
  private highWater = 0;
  private disposed = false;

  private constructor(readonly dir: string, readonly pageSize: number, private readonly slots: CacheSlot[]) {
    this.slotCount = slots.length;
    this.capacityBytes = slots.length * pageSize;
    this.free = [...slots].reverse();
  }

  static async create(options: ScratchCacheOptions): Promise<ScratchCache> {
    const { capacityBytes, pageSize } = options;
    const slotCount = Math.floor(capacityBytes / pageSize);
    if (!Number.isSafeInteger(capacityBytes) || slotCount < 1) {
      throw new PagewiseError('BadCacheSize', `the cache (${capacityBytes} bytes) is smaller than one page (${pageSize} bytes)`);
    }
    const parent = options.dir ?? os.tmpdir();
    await fs.mkdir(parent, { recursive: true });
    const dir = await fs.mkdtemp(path.join(parent, 'pagewise-cache-'));
    const slots: CacheSlot[] = [];
    try {
      for (let i = 0; i < slotCount; i++) {
        const file = path.join(dir, `slot-${String(i).padStart(5, '0')}.page`);
        slots.push(new CacheSlot(i, file, await fs.open(file, 'w+', 0o600)));
      }
    } catch (err) {
      await Promise.all(slots.map((s) => s.handle.close()));
      await fs.rm(dir, { recursive: true, force: true });
      throw err;
    }
    return new ScratchCache(dir, pageSize, slots);
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
    this.free.push(slot);
    this.serve();
  }

  private serve(): void {
    while (this.waiters.length > 0 && this.waiters[0].count <= this.free.length) {
      const { count, resolve } = this.waiters.shift()!;
      resolve(Array.from({ length: count }, () => this.take(this.free.pop()!)));
    }
  }

  private take(slot: CacheSlot): CacheSlot {
    this.inUse++;
    this.highWater = Math.max(this.highWater, this.inUse * this.pageSize);
    return slot;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(this.slots.map((s) => s.handle.close().catch(() => undefined)));
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
