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
  /** The page held, or -1 when free. */
  page = -1;
  length = 0;
  constructor(readonly index: number, readonly file: string, readonly handle: FileHandle) {}

  /** Makes the slot hold `length` zero bytes (sparse), ready for allocated ranges to be written in. */
  async prepare(page: number, length: number): Promise<void> {
    this.page = page;
    this.length = length;
    await this.handle.truncate(0);
    await this.handle.truncate(length);
  }

  /** Writes `chunk` at `position` (relative to the page start). */
  async write(chunk: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, done, chunk.length - done, position + done);
      done += bytesWritten;
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
  private readonly waiters: Array<(slot: CacheSlot) => void> = [];
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

  get slotsInUse(): number {
    return this.inUse;
  }

  /** The most bytes the cache ever held at once. */
  get highWaterBytes(): number {
    return this.highWater;
  }

  /** Waits for a free slot. */
  acquire(): Promise<CacheSlot> {
    if (this.disposed) return Promise.reject(new PagewiseError('Aborted', 'the scratch cache is closed'));
    const slot = this.free.pop();
    if (slot) return Promise.resolve(this.take(slot));
    return new Promise((resolve) => this.waiters.push((s) => resolve(this.take(s))));
  }

  release(slot: CacheSlot): void {
    slot.page = -1;
    slot.length = 0;
    this.inUse--;
    const waiter = this.waiters.shift();
    if (waiter) waiter(slot);
    else this.free.push(slot);
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
