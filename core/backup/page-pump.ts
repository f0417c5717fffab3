/**
 * The data agent's loop, shared by the version-1 and version-2 batches: download the listed pages in
 * runs into scratch-cache slots, read each back through the pseudo-disk, process it (CPU) and store it
 * (upload), free its slot; then drain what is still in the cache. The caller says what processing and
 * storing a page means.
 */
import { forEachLimited, Limiter } from '../concurrency';
import { abortedError, PagewiseError } from '../errors';
import { ScratchCache } from '../cache/scratch-cache';
import { PageBuffers } from '../cache/page-buffers';
import { PseudoDisk } from '../cache/pseudo-disk';
import { PageGrid, PageRanges, runsOf } from '../source/page-grid';
import { SourceDisk } from '../source/source-disk';

/** How many pages may be between read-back and stored block, and how many of those are processed at once. */
export interface PageLimits {
  uploads: Limiter;
  cpu: Limiter;
  /** Buffers the pages being processed are read back into, reused (one per `cpu` place). */
  buffers: PageBuffers;
}

/** Pages read back and processed at once per batch (hash, compress, encrypt are CPU-bound). */
export const PAGES_PROCESSED_AT_ONCE = 2;

/** Largest read the data agent issues for a run of pages: per-request cost dominates below it. */
export const MAX_RUN_BYTES = 16 * 1024 * 1024;

export function pageLimits(concurrency: number, pageSize: number): PageLimits {
  return { uploads: new Limiter(concurrency), cpu: new Limiter(PAGES_PROCESSED_AT_ONCE), buffers: new PageBuffers(pageSize, PAGES_PROCESSED_AT_ONCE) };
}

/** How many pages one run holds and how many runs may be in flight, within the cache's slots. */
export function runShape(pageSize: number, slotCount: number, concurrency: number): { runPages: number; runsInFlight: number } {
  const runPages = Math.max(1, Math.min(Math.floor(MAX_RUN_BYTES / pageSize), Math.floor(slotCount / Math.min(concurrency, slotCount))));
  const runsInFlight = Math.max(1, Math.min(concurrency, Math.floor(slotCount / runPages)));
  return { runPages, runsInFlight };
}

export interface PumpRun {
  source: SourceDisk;
  grid: PageGrid;
  cache: ScratchCache;
  concurrency: number;
  /** Bounds shared by batches that overlap (one draining while the next downloads); else per call. */
  limits?: PageLimits;
  abortSignal?: AbortSignal;
  /** Called once every page is downloaded (the last pages may still be processing). */
  onDownloaded?: () => void;
  onPageDone?: (page: number, bytesRead: number) => void;
}

export interface PageWork<T> {
  /** The CPU step, on the page's plaintext; the buffer is reused once the returned promise settles. */
  process(page: number, plain: Buffer): Promise<T>;
  /** The step after (staging a block): holds an upload place, not a CPU place. */
  store(page: number, processed: T): Promise<void>;
}

/** Copies `pages` (ascending, with their allocated ranges) through the cache; returns the source bytes read. */
export async function pumpPages<T>(run: PumpRun, pages: AsyncIterable<PageRanges>, work: PageWork<T>): Promise<{ bytesRead: number }> {
  const { source, grid, cache } = run;
  const disk = new PseudoDisk(source, grid, cache);
  // Memory follows the pages being worked on, not the cache: a page waiting for its turn holds only its
  // (file-backed) slot. At most `concurrency` pages are between read-back and stored block, and of those
  // only a few are being processed (plaintext + block in memory) at once.
  const { uploads, cpu, buffers } = run.limits ?? pageLimits(run.concurrency, grid.pageSize);
  const handleCachedPage = async (page: number, bytes: number): Promise<void> => {
    try {
      // read the cached page through the pseudo-disk, then process it for backup
      const done = await cpu.run(async () => {
        const plain = buffers.take(grid.pageLength(page));
        try {
          return await work.process(page, await disk.readPage(page, plain));
        } finally {
          buffers.give(plain); // the block (or its absence) no longer refers to the plaintext
        }
      });
      await work.store(page, done);
    } finally {
      disk.evict(page); // the page's blocks are stored: its slot goes back to the cache
    }
    run.onPageDone?.(page, bytes);
  };

  // Consecutive pages are downloaded as one run (one ranged read where their data is contiguous, up to
  // 16 MiB), each page into its own slot. A run's download ends its lane: its pages are processed and
  // stored in the background while the next runs download, so downloads and uploads overlap. What is
  // in flight is bounded by the cache, since a page keeps its slot until its block is stored.
  const { runPages, runsInFlight } = runShape(grid.pageSize, cache.slotCount, run.concurrency);
  const processing = new Set<Promise<void>>();
  let failure: unknown;
  await forEachLimited(runsOf(pages, runPages), runsInFlight, async (run_) => {
    if (failure) throw failure;
    if (run.abortSignal?.aborted) throw abortedError(run.abortSignal);
    await disk.loadRun(run_, run.abortSignal); // the data agent: download into cache slots
    for (const p of run_) {
      const bytes = p.ranges.reduce((sum, r) => sum + r.length, 0);
      const task: Promise<void> = uploads.run(() => handleCachedPage(p.page, bytes)).catch((err) => {
        failure ??= err;
      });
      processing.add(task);
      void task.finally(() => processing.delete(task));
    }
  }).catch((err) => {
    failure ??= err;
  });
  run.onDownloaded?.();
  // Nothing is left to download: the pages still in the cache are processed and stored.
  await Promise.all(processing);
  if (failure) throw failure;
  if (disk.residentPages().length > 0) throw new PagewiseError('Corrupt', 'pages were left in the scratch cache after the batch');
  return { bytesRead: disk.bytesRead };
}
