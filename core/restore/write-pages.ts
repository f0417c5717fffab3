/** Writes a backup's pages into a sink: the one page writer of the streaming restore and of a restore window. */
import { forEachLimited } from '../concurrency';
import { throwIfAborted } from '../errors';
import { MAX_PUT_PAGE_BYTES, PAGE_CONCURRENCY, SECTOR } from '../limits';
import type { BackupSource, PageRef } from '../repo/backup-source';
import type { PageSink } from './file-target';

const SECTOR_ZEROS = Buffer.alloc(SECTOR);

/** The 512-byte-aligned runs of a buffer that hold a non-zero byte, coalesced. */
export function* nonZeroRuns(data: Buffer): Generator<{ start: number; end: number }> {
  let start = -1;
  for (let at = 0; at < data.length; at += SECTOR) {
    const end = Math.min(data.length, at + SECTOR);
    const zero = data.subarray(at, end).equals(SECTOR_ZEROS.subarray(0, end - at));
    if (!zero && start < 0) start = at;
    if (zero && start >= 0) {
      yield { start, end: at };
      start = -1;
    }
  }
  if (start >= 0) yield { start, end: data.length };
}

export interface WritePagesOptions {
  /** Writes in flight at once, and runs read ahead of them (see writePages for the memory this bounds). */
  concurrency?: number;
  /** Runs being read or waiting decoded ahead of the writes (default: `concurrency`). */
  readAhead?: number;
  abortSignal?: AbortSignal;
  /** Each data write, after it is done (bytes sent to the sink). */
  onWrite?: (bytes: number) => void;
  /** Each page, once all its bytes are written, with its plaintext length. */
  onPage?: (plainLength: number) => void;
}

/** A page whose bytes are on their way: reported once its last write is done. */
interface PendingPage {
  plainLength: number;
  writes: number;
  run: HeldRun;
}

/** A run's memory, held until every page in it is written (or had nothing to write). */
interface HeldRun {
  pages: number;
  memory: Buffer | undefined;
}

/**
 * The memory of written runs, reused for the next runs' reads: a fresh buffer per run is external memory
 * to V8, and its churn makes it collect (measured: GC was the largest cost of a restore's read side).
 * Buffers in use and kept idle together stay at most `most`; a kept buffer is only as large as a run read.
 */
class RunBuffers {
  private readonly idle: Buffer[] = [];
  private live = 0;
  constructor(private readonly most: number) {}

  take(bytes: number): Buffer {
    this.live++;
    const k = this.idle.findIndex((b) => b.length >= bytes);
    if (k >= 0) return this.idle.splice(k, 1)[0];
    // None large enough: the smallest idle one goes, so the count stays bounded.
    if (this.live + this.idle.length > this.most) this.idle.sort((a, b) => a.length - b.length).shift();
    return Buffer.allocUnsafe(bytes);
  }

  /** A run's buffer, every write from it done: no request holds it any more. */
  give(buffer: Buffer): void {
    this.live--;
    if (this.live + this.idle.length < this.most) this.idle.push(buffer);
  }
}

/** One write to the sink: contiguous bytes of one or more pages, at most MAX_PUT_PAGE_BYTES. */
interface Extent {
  offset: number;
  parts: Buffer[];
  length: number;
  pages: PendingPage[];
}

/**
 * Reads `entries` (page order; an array or batches of arrays, e.g. a backup's groups) and writes each
 * page at its offset. A dense sink gets the whole page; over a zeroed target, zero runs inside a page
 * stay unwritten (as sparse as the source). Reads run ahead of the writes: up to `readAhead` runs are
 * fetched and decoded (in order) while up to `concurrency` writes are in flight, and adjacent runs of
 * bytes, within and across pages, go out as one write of at most 4 MiB (a page blob's Put Page limit).
 * Memory: at most readAhead + concurrency + 2 runs' plaintext (a run is ≤ 16 MiB, or one page): those read
 * ahead, those the writes in flight hold, the write being gathered (≤ 4 MiB, over at most two runs' ends).
 * A run's memory is reused for a later run once every write from it is done (RunBuffers: buffers in use
 * and kept idle together stay within that count), so a sink must not hold `data` after its write settles;
 * a write joining two runs is a copy (≤ 4 MiB each, within the writes in flight).
 * Writing the same entries twice writes the same bytes: a retried
 * window rewrites its pages.
 */
export async function writePages<E extends PageRef>(reader: BackupSource<E>, entries: E[] | AsyncIterable<E[]>, sink: PageSink, options: WritePagesOptions = {}): Promise<void> {
  const signal = options.abortSignal;
  const concurrency = options.concurrency ?? PAGE_CONCURRENCY.default;
  const ahead = Math.max(1, options.readAhead ?? concurrency);
  const buffers = new RunBuffers(ahead + concurrency + 2);
  const decoded = readAhead(reader, entries, ahead, buffers, signal);
  const pageDone = (page: PendingPage) => {
    options.onPage?.(page.plainLength);
    if (--page.run.pages === 0 && page.run.memory) buffers.give(page.run.memory);
  };
  await forEachLimited(coalesce(extentsOf(reader, decoded, sink.dense, pageDone)), concurrency, async (extent: Extent) => {
    throwIfAborted(signal, 'the restore was interrupted');
    const data = joined(extent);
    await sink.write(extent.offset, data, signal);
    options.onWrite?.(data.length);
    for (const page of extent.pages) {
      // An abort stops the reports too: a write of many pages must not report the rest as if the restore went on.
      throwIfAborted(signal, 'the restore was interrupted');
      if (--page.writes === 0) pageDone(page);
    }
  });
  // Aborted after the last write: the caller's restore was still interrupted (its target is abandoned).
  throwIfAborted(signal, 'the restore was interrupted');
}

/** One extent's bytes: its part alone, a view over parts adjacent in one run's memory, else a copy. */
function joined(extent: Extent): Buffer {
  const [first] = extent.parts;
  if (extent.parts.length === 1) return first;
  let end = first.byteOffset + first.length;
  for (const part of extent.parts.slice(1)) {
    if (part.buffer !== first.buffer || part.byteOffset !== end) return Buffer.concat(extent.parts, extent.length);
    end += part.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, extent.length);
}

interface ReadRun<E> {
  pages: Array<{ entry: E; plain: Buffer }>;
  run: HeldRun;
}

/** The decoded pages of each run, in order, with up to `ahead` runs read at once before they are asked for. */
async function* readAhead<E extends PageRef>(reader: BackupSource<E>, entries: E[] | AsyncIterable<E[]>, ahead: number, buffers: RunBuffers, signal: AbortSignal | undefined): AsyncGenerator<ReadRun<E>> {
  const queue: Array<Promise<{ ok: ReadRun<E> } | { failed: unknown }>> = [];
  const start = (run: E[]) => {
    throwIfAborted(signal, 'the restore was interrupted');
    const held: HeldRun = { pages: run.length, memory: undefined };
    // Settled into a value at once: a read that fails while earlier runs are written is no unhandled rejection.
    queue.push(
      reader.readRun(run, { take: (bytes) => (held.memory = buffers.take(bytes)) }).then(
        (reads) => {
          const pages: Array<{ entry: E; plain: Buffer }> = [];
          for (const { entry, plain, error } of reads) {
            if (error) return { failed: error };
            pages.push({ entry, plain: plain! });
          }
          return { ok: { pages, run: held } };
        },
        (failed: unknown) => ({ failed }),
      ),
    );
  };
  const take = async () => {
    const done = await queue.shift()!;
    if ('failed' in done) throw done.failed;
    return done.ok;
  };
  try {
    for await (const batch of Array.isArray(entries) ? [entries] : entries) {
      for (const run of reader.runs(batch)) {
        if (queue.length >= ahead) yield await take();
        start(run);
      }
    }
    while (queue.length > 0) yield await take();
  } finally {
    // Stopped early (a write failed): the reads still under way finish unobserved, their failures swallowed above.
    queue.length = 0;
  }
}

/** Each page's bytes to write, in disk order, split at 4 MiB: whole pages for a dense sink, else their non-zero runs. */
async function* extentsOf<E extends PageRef>(reader: BackupSource<E>, runs: AsyncIterable<ReadRun<E>>, dense: boolean, pageDone: (page: PendingPage) => void): AsyncGenerator<Extent> {
  for await (const { pages, run } of runs) {
    for (const { entry, plain } of pages) {
      const base = entry.page * reader.pageSize;
      const page: PendingPage = { plainLength: plain.length, writes: 0, run }; // the page's real length: the disk's last page may be short
      const parts = dense ? [{ start: 0, end: plain.length }] : [...nonZeroRuns(plain)];
      if (parts.every((p) => p.end === p.start)) {
        pageDone(page); // nothing of it to write
        continue;
      }
      for (const part of parts) {
        for (let at = part.start; at < part.end; at += MAX_PUT_PAGE_BYTES) {
          const data = plain.subarray(at, Math.min(part.end, at + MAX_PUT_PAGE_BYTES));
          page.writes++;
          yield { offset: base + at, parts: [data], length: data.length, pages: [page] };
        }
      }
    }
  }
}

/** Joins extents that follow each other on the disk into writes of at most 4 MiB. */
async function* coalesce(extents: AsyncIterable<Extent>): AsyncGenerator<Extent> {
  let open: Extent | undefined;
  for await (const next of extents) {
    if (open && open.offset + open.length === next.offset && open.length + next.length <= MAX_PUT_PAGE_BYTES) {
      open.parts.push(...next.parts);
      open.length += next.length;
      // Two parts of one page joined are one write of it.
      for (const page of next.pages) {
        if (open.pages.includes(page)) page.writes--;
        else open.pages.push(page);
      }
      continue;
    }
    if (open) yield open;
    open = next;
  }
  if (open) yield open;
}
