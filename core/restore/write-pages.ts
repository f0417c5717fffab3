/** Writes a backup's pages into a sink: the one page writer of the streaming restore and of a restore window. */
import { forEachLimited } from '../concurrency';
import { throwIfAborted } from '../errors';
import { MAX_PUT_PAGE_BYTES, MiB, PAGE_CONCURRENCY, SECTOR } from '../limits';
import type { BackupSource, PageRef } from '../repo/backup-source';
import type { PageSink } from './file-target';

const SECTOR_ZEROS = Buffer.alloc(SECTOR);
/** A run's plaintext bound (version 2's RUN_MAX_BYTES, version 1's blockRuns): the unit the memory bound is stated in. */
const RUN_BYTES = 16 * MiB;

/**
 * The 512-byte-aligned runs of a buffer that hold a non-zero byte, coalesced. A restore tests every sector
 * of every page: a sector is non-zero at its first word nearly always (tested through a 32-bit view, no
 * allocation), and otherwise compared in place with zeros (Buffer#compare over ranges, no sub-buffers):
 * about a quarter of the CPU of a sub-buffer and `equals` per sector, which made 2 objects per sector.
 */
export function* nonZeroRuns(data: Buffer): Generator<{ start: number; end: number }> {
  const length = data.length;
  const words = data.byteOffset % 4 === 0 ? new Uint32Array(data.buffer, data.byteOffset, length >>> 2) : undefined;
  let start = -1;
  for (let at = 0; at < length; at += SECTOR) {
    const end = Math.min(length, at + SECTOR);
    const zero = (words === undefined || end - at < 4 || words[at >>> 2] === 0) && data.compare(SECTOR_ZEROS, 0, end - at, at, end) === 0;
    if (!zero && start < 0) start = at;
    if (zero && start >= 0) {
      yield { start, end: at };
      start = -1;
    }
  }
  if (start >= 0) yield { start, end: length };
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

/** A page whose bytes are on their way: reported (and its memory given back) once its last write is done. */
interface PendingPage {
  plainLength: number;
  writes: number;
  memory: ArrayBuffer | undefined;
}

/**
 * Page memory no writer holds, kept for the next pages of any writer in this process: the windows of a
 * fan-out restore run one after another (or side by side) in one worker, and each window's writer taking
 * fresh memory for every page made each window pay for new external memory (page faults on first write,
 * and V8 collections its churn starts; measured in a fan-out's profile: 3× the copy time of the stream).
 * At most IDLE_PAGE_BYTES (one writer's bound at the default 4: 4 read ahead + 4 written + 2 runs of 16
 * MiB), dropped IDLE_PAGE_MS after the last page given back, so a host that restored once does not keep it.
 */
const idlePages = { list: [] as ArrayBuffer[], bytes: 0, timer: undefined as NodeJS.Timeout | undefined };
const IDLE_PAGE_BYTES = 10 * RUN_BYTES;
const IDLE_PAGE_MS = 10_000;

/** Drops the idle page memory now (tests; a host that wants it back at once). */
export function dropIdlePageMemory(): void {
  idlePages.list.length = 0;
  idlePages.bytes = 0;
  if (idlePages.timer) clearTimeout(idlePages.timer);
  idlePages.timer = undefined;
}

/** The idle page memory kept for the next writer: pieces and bytes (tests). */
export function idlePageMemory(): { pieces: number; bytes: number } {
  return { pieces: idlePages.list.length, bytes: idlePages.bytes };
}

/**
 * Memory for a page of `bytes`: a piece of the process's idle page memory when one fits (at least the page, at
 * most twice it; the one given back last first, the likeliest still in the CPU's caches), else fresh and
 * uninitialised. Stale bytes never reach a target: readRun writes every byte of a page from its chunks (zero
 * chunks with zeros) and returns no page whose chunks do not cover it.
 */
function takePageMemory(bytes: number): Buffer {
  let k = idlePages.list.length - 1;
  while (k >= 0 && !(idlePages.list[k].byteLength >= bytes && idlePages.list[k].byteLength <= 2 * bytes)) k--;
  if (k < 0) return Buffer.allocUnsafeSlow(bytes);
  const memory = idlePages.list.splice(k, 1)[0];
  idlePages.bytes -= memory.byteLength;
  return Buffer.from(memory, 0, bytes);
}

/** A page's memory, every write from it done (no request holds it any more): idle, for the next page of any writer. */
function givePageMemory(memory: ArrayBuffer): void {
  if (idlePages.bytes + memory.byteLength > IDLE_PAGE_BYTES) return;
  idlePages.list.push(memory);
  idlePages.bytes += memory.byteLength;
  if (idlePages.timer) clearTimeout(idlePages.timer);
  idlePages.timer = setTimeout(dropIdlePageMemory, IDLE_PAGE_MS);
  idlePages.timer.unref();
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
 * A page's memory is reused for a later page, of this writer or another in the process, once every write
 * from it is done (the process keeps at most IDLE_PAGE_BYTES of it idle, for ten seconds), so a
 * sink must not hold `data` after its write settles. Writing the same entries twice writes the same bytes: a
 * retried window rewrites its pages.
 */
export async function writePages<E extends PageRef>(reader: BackupSource<E>, entries: E[] | AsyncIterable<E[]>, sink: PageSink, options: WritePagesOptions = {}): Promise<void> {
  const signal = options.abortSignal;
  const concurrency = options.concurrency ?? PAGE_CONCURRENCY.default;
  const ahead = Math.max(1, options.readAhead ?? concurrency);
  const decoded = readAhead(reader, entries, ahead, signal);
  const pageDone = (page: PendingPage) => {
    options.onPage?.(page.plainLength);
    if (page.memory) givePageMemory(page.memory);
  };
  await forEachLimited(coalesce(extentsOf(reader, decoded, sink.dense, pageDone)), concurrency, async (extent: Extent) => {
    throwIfAborted(signal, 'the restore was interrupted');
    const data = extent.parts.length === 1 ? extent.parts[0] : Buffer.concat(extent.parts, extent.length);
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

interface ReadPage<E> {
  entry: E;
  plain: Buffer;
  /** The page's memory, when it was taken from the page memory (takePageMemory). */
  memory: ArrayBuffer | undefined;
}

/**
 * The decoded pages of each run, in order, with up to `ahead` runs read at once before they are asked for.
 * Slow start: the first run is read alone, and one more run may be in flight for each run handed on, up to
 * `ahead`. Runs read side by side share the CPU and the link, so `ahead` runs started at once all finish late
 * and the target waits for the first write that long — once per restore, and once per window of a fan-out.
 */
async function* readAhead<E extends PageRef>(reader: BackupSource<E>, entries: E[] | AsyncIterable<E[]>, ahead: number, signal: AbortSignal | undefined): AsyncGenerator<Array<ReadPage<E>>> {
  const queue: Array<Promise<{ ok: Array<ReadPage<E>> } | { failed: unknown }>> = [];
  const start = (run: E[]) => {
    throwIfAborted(signal, 'the restore was interrupted');
    const taken = new Set<ArrayBufferLike>();
    // Settled into a value at once: a read that fails while earlier runs are written is no unhandled rejection.
    queue.push(
      reader.readRun(run, { take: (bytes) => { const b = takePageMemory(bytes); taken.add(b.buffer); return b; } }).then(
        (reads) => {
          const ok: Array<ReadPage<E>> = [];
          for (const { entry, plain, error } of reads) {
            if (error) return { failed: error };
            ok.push({ entry, plain: plain!, memory: taken.has(plain!.buffer) ? (plain!.buffer as ArrayBuffer) : undefined });
          }
          return { ok };
        },
        (failed: unknown) => ({ failed }),
      ),
    );
  };
  let handedOn = 0;
  const take = async () => {
    const done = await queue.shift()!;
    if ('failed' in done) throw done.failed;
    handedOn++;
    return done.ok;
  };
  try {
    for await (const batch of Array.isArray(entries) ? [entries] : entries) {
      for (const run of reader.runs(batch)) {
        while (queue.length >= Math.min(ahead, 1 + handedOn)) yield await take();
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
async function* extentsOf<E extends PageRef>(reader: BackupSource<E>, runs: AsyncIterable<Array<ReadPage<E>>>, dense: boolean, pageDone: (page: PendingPage) => void): AsyncGenerator<Extent> {
  for await (const pages of runs) {
    for (const { entry, plain, memory } of pages) {
      const base = entry.page * reader.pageSize;
      const page: PendingPage = { plainLength: plain.length, writes: 0, memory }; // the page's real length: the disk's last page may be short
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
