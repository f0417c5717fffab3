/**
 * The pseudo-disk: presents the scratch cache as the local source of the data to back up. Readers (the
 * page processor, verify against source) read `(offset, length)` from it like a local disk; pages resident
 * in the cache are served from their slots, unallocated ranges read as zeros, and a missing page is
 * downloaded into a slot first. The data agent fills it with `loadRun(pages)`, a run of pages one slot
 * each, and frees a slot with `evict(page)` once the page's backed-up block is stored.
 */
import { PagewiseError } from '../errors';
import { withRetry } from '../retry';
import { ByteRange, PageGrid, pagesOfRanges } from '../source/page-grid';
import { SourceDisk } from '../source/source-disk';
import { CacheSlot, ScratchCache } from './scratch-cache';

export class PseudoDisk {
  private readonly resident = new Map<number, CacheSlot>();
  private readonly loading = new Map<number, Promise<CacheSlot>>();
  /** Bytes downloaded from the cloud account through this pseudo-disk (each byte once, retries aside). */
  bytesRead = 0;

  constructor(
    readonly source: SourceDisk,
    readonly grid: PageGrid,
    readonly cache: ScratchCache,
  ) {}

  /**
   * Downloads one page into a cache slot: only the page's allocated ranges are fetched into it, the rest
   * reads as zeros. Waits for a free slot when the cache is full.
   */
  async load(page: number, allocated?: ByteRange[], abortSignal?: AbortSignal): Promise<CacheSlot> {
    const existing = this.resident.get(page) ?? this.loading.get(page);
    if (existing) return existing;
    const pending = (async () => {
      await this.loadRun([{ page, ranges: allocated ?? (await this.allocatedRangesOf(page)) }], abortSignal);
      return this.resident.get(page)!;
    })();
    this.loading.set(page, pending);
    return pending.finally(() => this.loading.delete(page));
  }

  /**
   * Downloads a run of pages, one page per slot. Allocated ranges that continue across page borders
   * are fetched with one ranged read and split into the pages' slots as the bytes stream in: fewer,
   * larger requests, and still no unallocated byte is read.
   */
  async loadRun(pages: Array<{ page: number; ranges: ByteRange[] }>, abortSignal?: AbortSignal): Promise<void> {
    const slots = await this.cache.acquireMany(pages.length);
    const slotOf = new Map<number, CacheSlot>();
    try {
      for (const [k, { page }] of pages.entries()) {
        await slots[k].prepare(this.grid.pageLength(page));
        slotOf.set(page, slots[k]);
      }
      for (const span of spansOf(pages.flatMap((p) => p.ranges))) {
        // A retried span is fetched again from its start into the same slot positions.
        const received = await withRetry(
          async () => {
            const writer = new SlotWriter(this.grid, slotOf);
            const n = await this.source.download(span, (chunk, position) => writer.write(span.offset + position, chunk), abortSignal);
            await writer.flush();
            return n;
          },
          { abortSignal },
        );
        this.bytesRead += received;
      }
    } catch (err) {
      slots.forEach((slot) => this.cache.release(slot));
      throw err;
    }
    for (const [page, slot] of slotOf) this.resident.set(page, slot);
  }

  private async allocatedRangesOf(page: number): Promise<ByteRange[]> {
    const window = { offset: this.grid.pageStart(page), length: this.grid.pageLength(page) };
    const ranges: ByteRange[] = [];
    for await (const r of this.source.allocatedRanges(window)) ranges.push(r);
    for (const p of pagesOfRanges(this.grid, ranges)) return p.ranges;
    return [];
  }

  /** The whole page as a buffer (`into`'s first bytes when given), loading it into the cache if it is not resident. */
  async readPage(page: number, into?: Buffer): Promise<Buffer> {
    const slot = await this.load(page);
    return slot.read(0, slot.length, into?.subarray(0, slot.length));
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

/** Merges ascending ranges that touch into spans, each fetched with one ranged read. */
function spansOf(ranges: ByteRange[]): ByteRange[] {
  const spans: ByteRange[] = [];
  for (const r of ranges) {
    const last = spans[spans.length - 1];
    if (last && last.offset + last.length === r.offset) last.length += r.length;
    else spans.push({ ...r });
  }
  return spans;
}

/** Bytes gathered before one file write: the network hands over ~64 KiB chunks. */
const COALESCE_BYTES = 1024 * 1024;

/**
 * Routes a span's bytes, as they stream in, into the slots of the pages they belong to, gathering
 * consecutive chunks into writes of about 1 MiB (one `writev` each: the chunks are not copied).
 */
class SlotWriter {
  private slot: CacheSlot | undefined;
  private start = 0;
  private parts: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly grid: PageGrid, private readonly slotOf: Map<number, CacheSlot>) {}

  async write(offset: number, chunk: Buffer): Promise<void> {
    let done = 0;
    while (done < chunk.length) {
      const at = offset + done;
      const page = this.grid.pageOf(at);
      const slot = this.slotOf.get(page);
      if (!slot) throw new PagewiseError('BadInput', `byte ${at} belongs to page ${page}, which is not being loaded`);
      const within = at - this.grid.pageStart(page);
      const take = Math.min(chunk.length - done, slot.length - within);
      if (this.bytes > 0 && (slot !== this.slot || this.start + this.bytes !== within)) await this.flush();
      if (this.bytes === 0) {
        this.slot = slot;
        this.start = within;
      }
      this.parts.push(chunk.subarray(done, done + take));
      this.bytes += take;
      if (this.bytes >= COALESCE_BYTES) await this.flush();
      done += take;
    }
  }

  async flush(): Promise<void> {
    if (this.bytes === 0) return;
    await this.slot!.writeGathered(this.parts, this.start);
    this.parts = [];
    this.bytes = 0;
  }
}
