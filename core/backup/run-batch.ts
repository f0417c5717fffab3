/**
 * One batch of a backup, the data agent's loop: list the allocated ranges of the batch's window, download
 * each page that holds data into a scratch-cache slot (the cache bounds what is in flight), process it
 * from the cache, stage its block in the secondary copy's segment blob, free the slot. When nothing is
 * left to download, the pages still in the cache are processed and stored (drained) before the batch
 * record is written: a record exists only for a batch whose every block is staged.
 */
import { summaryOf } from './backup-result';
import { whileBackingUp } from './running-backups';
import { abortedError, PagewiseError } from '../errors';
import { ScratchCache } from '../cache/scratch-cache';
import { BatchDedupe, DedupeIndex, PageProcessor } from '../processor/page-processor';
import { PageGrid, pagesOfRangesAsync, ByteRange } from '../source/page-grid';
import { BackupRequest, BatchSummary } from '../types';
import { BatchRecord, PageRecord } from '../repo/batch-record';
import { BackupContext, openBackupContext, openPlannedSource } from './backup-context';
import { effectiveCacheBytes, resolveSettings } from './settings';
import { PumpRun, pumpPages } from './page-pump';
import { formatOfBackup } from './vault-version';
import { runOneBatchV2 } from './v2/batch';
import { Vault } from '../repo/vault';
import { validateBackupId } from '../repo/backup-id';

// Moved to page-pump.ts (shared with the version-2 batch); re-exported for their callers.
export { MAX_RUN_BYTES, PAGES_PROCESSED_AT_ONCE, pageLimits, runShape } from './page-pump';
export type { PageLimits } from './page-pump';

/** A batch run: the data agent's loop (page-pump.ts) over the batch's window, for this backup. */
export interface BatchRun extends Omit<PumpRun, 'grid'> {
  ctx: BackupContext;
  dedupe: DedupeIndex;
}

/**
 * Durable-activity entry point: rebuilds everything from references and runs the batch at `planPosition`
 * (an index into the plan's list of batches with data; batch number `plan.batches[planPosition]`).
 */
export async function runBackupBatch(req: BackupRequest & { backupId: string; planPosition: number }): Promise<BatchSummary> {
  return whileBackingUp(req.source, () => runOneBatch(req));
}

async function runOneBatch(req: BackupRequest & { backupId: string; planPosition: number }): Promise<BatchSummary> {
  validateBackupId(req.backupId);
  if ((await formatOfBackup(Vault.open(req.vault), req.backupId)) === 2) return runOneBatchV2(req);
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
  const batchDedupe = new BatchDedupe(dedupe);
  const processor = new PageProcessor(dataKey, plan.backupId, batchDedupe, plan.pagesPerSegment);
  const records: PageRecord[] = [];
  let zeroPages = 0;
  let dedupedPages = 0;
  let bytesStaged = 0;

  type Processed = Awaited<ReturnType<PageProcessor['process']>>;
  const { bytesRead } = await pumpPages<Processed>({ ...run, grid }, pagesOfRangesAsync(grid, source.allocatedRanges(window)), {
    process: (page, plain) => processor.process(page, plain),
    store: async (page, done) => {
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
    },
  });

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
    bytesRead,
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
  return summaryOf(record, { dedupedPages: record.dedupedPages, bytesStaged: record.bytesStaged, cacheHighWaterBytes, resumed });
}
