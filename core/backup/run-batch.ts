/**
 * One batch of a backup, the data agent's loop: list the allocated ranges of the batch's window, download
 * each page that holds data into a scratch-cache slot (the cache bounds what is in flight), process it
 * from the cache, stage its block in the secondary copy's segment blob, free the slot. When nothing is
 * left to download, the pages still in the cache are processed and stored (drained) before the batch
 * record is written: a record exists only for a batch whose every block is staged.
 */
import { whileBackingUp } from './running-backups';
import { forEachLimited, Limiter } from '../concurrency';
import { abortedError, PagewiseError } from '../errors';
import { ScratchCache } from '../cache/scratch-cache';
import { PageBuffers } from '../cache/page-buffers';
import { PseudoDisk } from '../cache/pseudo-disk';
import { BatchDedupe, DedupeIndex, PageProcessor } from '../processor/page-processor';
import { PageGrid, pagesOfRangesAsync, runsOf, ByteRange } from '../source/page-grid';
import { SourceDisk } from '../source/source-disk';
import { BackupRequest, BatchSummary } from '../types';
import { BatchRecord, PageRecord } from '../repo/batch-record';
import { BackupContext, openBackupContext, openPlannedSource } from './backup-context';
import { effectiveCacheBytes, resolveSettings } from './settings';

export interface BatchRun {
  ctx: BackupContext;
  source: SourceDisk;
  cache: ScratchCache;
  dedupe: DedupeIndex;
  concurrency: number;
  abortSignal?: AbortSignal;
  onPageDone?: (page: number, bytesRead: number) => void;
  /** Called once every page of the batch is downloaded (its last pages may still be processing). */
  onDownloaded?: () => void;
  /** Bounds shared by batches that overlap (one draining while the next downloads); else per batch. */
  limits?: PageLimits;
}

/** How many pages may be between read-back and staged block, and how many of those are processed at once. */
export interface PageLimits {
  uploads: Limiter;
  cpu: Limiter;
  /** Buffers the pages being processed are read back into, reused (one per `cpu` place). */
  buffers: PageBuffers;
}

export function pageLimits(concurrency: number, pageSize: number): PageLimits {
  return { uploads: new Limiter(concurrency), cpu: new Limiter(PAGES_PROCESSED_AT_ONCE), buffers: new PageBuffers(pageSize, PAGES_PROCESSED_AT_ONCE) };
}

/**
 * Durable-activity entry point: rebuilds everything from references and runs the batch at `planPosition`
 * (an index into the plan's list of batches with data; batch number `plan.batches[planPosition]`).
 */
export async function runBackupBatch(req: BackupRequest & { backupId: string; planPosition: number }): Promise<BatchSummary> {
  return whileBackingUp(req.source, () => runOneBatch(req));
}

async function runOneBatch(req: BackupRequest & { backupId: string; planPosition: number }): Promise<BatchSummary> {
  const settings = resolveSettings(req);
  const ctx = await openBackupContext(req, req.backupId);
  const batch = batchAt(ctx, req.planPosition);
  const existing = await ctx.writer.batchRecord(batch);
  if (existing) return summarize(existing, 0, true); // resumed: no source, no cache needed
  const source = await openPlannedSource(req, ctx.plan);
  const cache = await ScratchCache.create({
    capacityBytes: effectiveCacheBytes(settings, ctx.plan.pageCount),
    pageSize: ctx.plan.pageSize,
    dir: settings.scratchDir,
  });
  try {
    return await copyBatch({ ctx, source, cache, dedupe: new DedupeIndex(), concurrency: settings.concurrency, abortSignal: req.abortSignal }, batch);
  } catch (err) {
    throw req.abortSignal?.aborted ? abortedError(req.abortSignal) : err;
  } finally {
    await cache.dispose();
  }
}

/** The batch number at `planPosition` in the plan's list of batches with data. */
export function batchAt(ctx: BackupContext, planPosition: number): number {
  const batch = ctx.plan.batches[planPosition];
  if (!Number.isSafeInteger(planPosition) || batch === undefined) {
    throw new PagewiseError('BadInput', `backup ${ctx.plan.backupId} has no batch at plan position ${planPosition} (its plan lists ${ctx.plan.batches.length} batches with data)`);
  }
  return batch;
}

/** Runs the batch at `planPosition`, or reports it resumed when its record exists. */
export async function runBatch(run: BatchRun, planPosition: number): Promise<BatchSummary> {
  const batch = batchAt(run.ctx, planPosition);
  const existing = await run.ctx.writer.batchRecord(batch);
  if (existing) {
    run.onDownloaded?.();
    return summarize(existing, 0, true);
  }
  return copyBatch(run, batch);
}

/** Copies batch number `batch` (which has no record yet) and writes its record. */
async function copyBatch(run: BatchRun, batch: number): Promise<BatchSummary> {
  const { ctx, source, cache, dedupe } = run;
  const { plan, writer, dataKey } = ctx;

  const grid = new PageGrid(plan.diskBytes, plan.pageSize);
  const firstPage = batch * plan.pagesPerBatch;
  const pageCount = Math.min(plan.pagesPerBatch, plan.pageCount - firstPage);
  const window: ByteRange = { offset: grid.pageStart(firstPage), length: Math.min(plan.diskBytes, grid.pageStart(firstPage + pageCount)) - grid.pageStart(firstPage) };
  const disk = new PseudoDisk(source, grid, cache);
  const batchDedupe = new BatchDedupe(dedupe);
  const processor = new PageProcessor(dataKey, plan.backupId, batchDedupe, plan.pagesPerSegment);
  const records: PageRecord[] = [];
  let zeroPages = 0;
  let dedupedPages = 0;
  let bytesStaged = 0;

  // Memory follows the pages being worked on, not the cache: a page waiting for its turn holds only its
  // (file-backed) slot. At most `concurrency` pages are between read-back and staged block, and of those
  // only a few are being processed (plaintext + block in memory) at once.
  const { uploads, cpu, buffers } = run.limits ?? pageLimits(run.concurrency, plan.pageSize);
  const backUpPage = (page: number, bytes: number): Promise<void> => uploads.run(() => backUpCachedPage(page, bytes));
  const backUpCachedPage = async (page: number, bytes: number): Promise<void> => {
    try {
      // read the cached page through the pseudo-disk, then process it for backup
      const done = await cpu.run(async () => {
        const plain = buffers.take(grid.pageLength(page));
        try {
          return await processor.process(page, await disk.readPage(page, plain));
        } finally {
          buffers.give(plain); // the block (or its absence) no longer refers to the plaintext
        }
      });
      if (done.kind === 'zero') zeroPages++;
      else if (done.kind === 'duplicate') {
        dedupedPages++;
        records.push({ i: page, h: done.hash, n: done.plainLength, b: done.sameAs, c: 0, l: 0 });
      } else {
        await writer.stageBlock(page, done.block.bytes);
        bytesStaged += done.block.bytes.length;
        processor.stored(page, done.hash);
        records.push({ i: page, h: done.hash, n: done.plainLength, b: page, c: done.block.codec, l: done.block.bytes.length });
      }
    } finally {
      disk.evict(page); // the page's blocks are stored: its slot goes back to the cache
    }
    run.onPageDone?.(page, bytes);
  };

  // Consecutive pages are downloaded as one run (one ranged read where their data is contiguous, up to
  // 16 MiB), each page into its own slot. A run's download ends its lane: its pages are processed and
  // staged in the background while the next runs download, so downloads and uploads overlap. What is
  // in flight is bounded by the cache, since a page keeps its slot until its block is stored.
  const { runPages, runsInFlight } = runShape(plan.pageSize, cache.slotCount, run.concurrency);
  const processing = new Set<Promise<void>>();
  let failure: unknown;
  await forEachLimited(runsOf(pagesOfRangesAsync(grid, source.allocatedRanges(window)), runPages), runsInFlight, async (pages) => {
    if (failure) throw failure;
    if (run.abortSignal?.aborted) throw abortedError(run.abortSignal);
    await disk.loadRun(pages, run.abortSignal); // the data agent: download into cache slots
    for (const p of pages) {
      const task: Promise<void> = backUpPage(p.page, p.ranges.reduce((sum, r) => sum + r.length, 0)).catch((err) => {
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

  records.sort((a, b) => a.i - b.i);
  // A duplicate's record carries its block's codec and length once known (the block is in this backup).
  const byPage = new Map(records.map((r) => [r.i, r]));
  for (const r of records) {
    if (r.b !== r.i) {
      const owner = byPage.get(r.b);
      if (owner) {
        r.c = owner.c;
        r.l = owner.l;
      }
    }
  }
  const record: BatchRecord = {
    format: 'pagewise-batch',
    version: 1,
    backupId: plan.backupId,
    batchNumber: batch,
    firstPage,
    pageCount,
    bytesRead: disk.bytesRead,
    bytesStaged,
    zeroPages,
    dedupedPages,
    pages: records,
  };
  await writer.recordBatch(record);
  batchDedupe.publish();
  return summarize(record, cache.highWaterBytes, false);
}

function summarize(record: BatchRecord, cacheHighWaterBytes: number, resumed: boolean): BatchSummary {
  return {
    backupId: record.backupId,
    batchNumber: record.batchNumber,
    pages: record.pages.length + record.zeroPages,
    holePages: record.pageCount - record.pages.length,
    zeroPages: record.zeroPages,
    dedupedPages: record.dedupedPages,
    bytesRead: record.bytesRead,
    bytesStaged: record.bytesStaged,
    cacheHighWaterBytes,
    resumed,
  };
}

/** Pages read back and processed at once per batch (hash, compress, encrypt are CPU-bound). */
export const PAGES_PROCESSED_AT_ONCE = 2;

/** Largest read the data agent issues for a run of pages: per-request cost dominates below it. */
export const MAX_RUN_BYTES = 16 * 1024 * 1024;

/** How many pages one run holds and how many runs may be in flight, within the cache's slots. */
export function runShape(pageSize: number, slotCount: number, concurrency: number): { runPages: number; runsInFlight: number } {
  const runPages = Math.max(1, Math.min(Math.floor(MAX_RUN_BYTES / pageSize), Math.floor(slotCount / Math.min(concurrency, slotCount))));
  const runsInFlight = Math.max(1, Math.min(concurrency, Math.floor(slotCount / runPages)));
  return { runPages, runsInFlight };
}
