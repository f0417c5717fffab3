/**
 * The pseudo-disk: presents the scratch cache as the local source of the data to back up. Readers (the
 * page processor, verify against source) read `(offset, length)` from it like a local disk; pages resident
 * in the cache are served from their slots, unallocated ranges read as zeros, and a missing page is
 * downloaded into a slot first. The data agent fills it with `load(page)`, one page per slot, and frees a
 * slot with `evict(page)` once the page's backed-up block is stored.
 */
import { PagewiseError } from '../errors';
import { ByteRange, PageGrid, pagesOfRanges } from '../source/page-grid';
import { SourceDisk } from '../source/source-disk';
import { CacheSlot, ScratchCache } from './scratch-cache';

export class PseudoDisk {
  private readonly resident = new Map<number, CacheSlot>();
  private readonly loading = new Map<number, Promise<CacheSlot>>();
  /** Bytes downloaded from the cloud account through this pseudo-disk. */
  bytesRead = 0;

  constructor(
    readonly source: SourceDisk,
    readonly grid: PageGrid,
    readonly cache: ScratchCache,
  ) {}

  get sizeBytes(): number {
    return this.grid.diskBytes;
  }

  /**
   * Downloads one page into a cache slot: the slot is zeroed (sparse) and only the page's allocated
   * ranges are fetched into it. Waits for a free slot when the cache is full.
   */
  load(page: number, allocated?: ByteRange[], abortSignal?: AbortSignal): Promise<CacheSlot> {
    const existing = this.resident.get(page) ?? this.loading.get(page);
    if (existing) return Promise.resolve(existing);
    const pending = this.fill(page, allocated, abortSignal);
    this.loading.set(page, pending);
    return pending.finally(() => this.loading.delete(page));
  }

  private async fill(page: number, allocated: ByteRange[] | undefined, abortSignal?: AbortSignal): Promise<CacheSlot> {
    const ranges = allocated ?? (await this.allocatedRangesOf(page));
    const slot = await this.cache.acquire();
    try {
      const pageStart = this.grid.pageStart(page);
      await slot.prepare(page, this.grid.pageLength(page));
      for (const range of ranges) {
        const base = range.offset - pageStart;
        if (base < 0 || base + range.length > slot.length) {
          throw new PagewiseError('BadInput', `range ${range.offset}+${range.length} is outside page ${page}`);
        }
        const received = await this.source.download(range, (chunk, position) => slot.write(chunk, base + position), abortSignal);
        this.bytesRead += received;
      }
    } catch (err) {
      this.cache.release(slot);
      throw err;
    }
    this.resident.set(page, slot);
    return slot;
  }

  private async allocatedRangesOf(page: number): Promise<ByteRange[]> {
    const window = { offset: this.grid.pageStart(page), length: this.grid.pageLength(page) };
    const ranges: ByteRange[] = [];
    for await (const r of this.source.allocatedRanges(window)) ranges.push(r);
    for (const p of pagesOfRanges(this.grid, ranges)) return p.ranges;
    return [];
  }

  /** The whole page as a buffer, loading it into the cache if it is not resident. */
  async readPage(page: number): Promise<Buffer> {
    const slot = await this.load(page);
    return slot.read(0, slot.length);
  }

  /** Reads `(offset, length)` through the cache like a local disk. */
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.grid.diskBytes) {
      throw new PagewiseError('BadInput', `read ${offset}+${length} is outside the disk (${this.grid.diskBytes} bytes)`);
    }
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const position = offset + done;
      const page = this.grid.pageOf(position);
      const within = position - this.grid.pageStart(page);
      const take = Math.min(length - done, this.grid.pageLength(page) - within);
      const wasResident = this.resident.has(page);
      const slot = await this.load(page);
      await slot.read(within, take, out.subarray(done, done + take));
      if (!wasResident) this.evict(page);
      done += take;
    }
    return out;
  }

  isResident(page: number): boolean {
    return this.resident.has(page);
  }

  /** Frees the page's slot: its backed-up block is stored, the cache space goes back to the pool. */
  evict(page: number): void {
    const slot = this.resident.get(page);
    if (!slot) return;
    this.resident.delete(page);
    this.cache.release(slot);
  }

  /** Pages still held in the cache (the flush at the end of a backup drains these). */
  residentPages(): number[] {
    return [...this.resident.keys()].sort((a, b) => a - b);
  }
}
