/**
 * One batch of a version-2 backup: for each page of its window that changed since the base (a full:
 * each allocated page), read it through the scratch cache (the shared data-agent loop), skip it as a
 * hole when all zero, else name it by content ID and reuse the base's block for the same page, or a
 * block this batch already stored, or store a new block in this writer's pack. The batch record is
 * written last, after the packs are committed and indexed (§17.1).
 */
import { summaryOf } from '../backup-result';
import { abortedError, PagewiseError } from '../../errors';
import { ScratchCache } from '../../cache/scratch-cache';
import { ZeroTest } from '../../processor/page-processor';
import { encodeBlock2 } from '../../repo/v2/block';
import { PackWriter } from '../../repo/v2/pack-writer';
import { BatchRecordV2, ChunkRef, PageRecord2 } from '../../repo/v2/records';
import { readBatch2, writeBatch2 } from '../../repo/v2/staging';
import { ByteRange, PageGrid, PageRanges, pagesOfRangesAsync } from '../../source/page-grid';
import { BackupRequest, BatchSummary } from '../../types';
import { effectiveCacheBytes, resolveSettings } from '../settings';
import { PumpRun, pumpPages } from '../page-pump';
import { BackupContextV2, baseOfPlan, openBackupContextV2, openPlannedSourceV2, requireNotExpired } from './context';
import { PageRuns } from './page-runs';
import { baseRecordsOf } from './tables';

/** A batch run: the data agent's loop (page-pump.ts) over the batch's window, for this backup. */
export interface BatchRunV2 extends Omit<PumpRun, 'grid'> {
  ctx: BackupContextV2;
}

/** The batch number at `planPosition` in the plan's list of batches to run. */
export function batchAtV2(ctx: BackupContextV2, planPosition: number): number {
  const batch = ctx.plan.batches[planPosition];
  if (!Number.isSafeInteger(planPosition) || batch === undefined) {
    throw new PagewiseError('BadInput', `backup ${ctx.plan.backupId} has no batch at plan position ${planPosition} (its plan lists ${ctx.plan.batches.length} batches)`);
  }
  return batch;
}

/** Runs the batch at `planPosition`, or reports it resumed when its record exists. */
export async function runBatchV2(run: BatchRunV2, planPosition: number): Promise<BatchSummary> {
  const batch = batchAtV2(run.ctx, planPosition);
  const existing = await readBatch2(run.ctx.vault, run.ctx.keyring, run.ctx.plan.backupId, batch);
  if (existing) {
    run.onDownloaded?.();
    return summarizeV2(existing, 0, true);
  }
  return copyBatchV2(run, batch);
}

type Processed =
  | { kind: 'zero' }
  | { kind: 'base'; chunk: ChunkRef }
  | { kind: 'block'; id: string; contentId: Buffer; length: number; block?: Buffer };

async function copyBatchV2(run: BatchRunV2, batch: number): Promise<BatchSummary> {
  requireNotExpired(run.ctx, `run batch ${batch}`, 'reading any page'); // §26.8
  const { plan, keyring, vault } = run.ctx;
  const grid = new PageGrid(plan.diskBytes, plan.pageSize);
  const firstPage = batch * plan.pagesPerBatch;
  const pageCount = Math.min(plan.pagesPerBatch, plan.pageCount - firstPage);
  const window: ByteRange = { offset: grid.pageStart(firstPage), length: Math.min(plan.diskBytes, grid.pageStart(firstPage + pageCount)) - grid.pageStart(firstPage) };
  const changed = plan.changedPages ? PageRuns.of(plan.changedPages, plan.pageCount, `the plan of backup ${plan.backupId}`) : null;
  // The base's records of this window, compared by content ID: an unchanged-content page reuses its block.
  const baseOf = baseOfPlan(run.ctx);
  const base = baseOf ? await baseRecordsOf(run.ctx, await baseOf, firstPage, pageCount) : new Map<number, PageRecord2>();
  const packs = new PackWriter(vault, keyring);
  const zeros = new ZeroTest();
  // Content ID (hex) → the chunk this batch stored for it, so a repeated content is stored once.
  const stored = new Map<string, Promise<ChunkRef>>();
  const records: PageRecord2[] = [];
  let zeroPages = 0;
  let bytesNew = 0;
  let bytesStored = 0;

  const { bytesRead } = await pumpPages<Processed>({ ...run, grid }, onlyChanged(pagesOfRangesAsync(grid, run.source.allocatedRanges(window)), changed), {
    process: async (page, plain) => {
      if (zeros.isZero(plain)) return { kind: 'zero' };
      const contentId = await keyring.contentIdAsync(plain); // off the event loop, like the block's crypto
      const prior = base.get(page);
      if (prior && prior.length === plain.length && prior.chunks.length === 1 && prior.chunks[0].contentId.equals(contentId)) return { kind: 'base', chunk: prior.chunks[0] };
      const id = contentId.toString('hex');
      if (stored.has(id)) return { kind: 'block', id, contentId, length: plain.length };
      return { kind: 'block', id, contentId, length: plain.length, block: await encodeBlock2(plain, contentId, keyring) };
    },
    store: async (page, done) => {
      if (done.kind === 'zero') {
        zeroPages++;
        return;
      }
      if (done.kind === 'base') {
        records.push({ page, length: done.chunk.length, chunks: [done.chunk] });
        return;
      }
      let chunk = stored.get(done.id);
      if (!chunk) {
        // (a page processed while its twin was being encoded carries a block too: the first to get here stores)
        const block = done.block!;
        chunk = packs.add(done.contentId, block).then((at) => ({ contentId: done.contentId, length: done.length, ...at }));
        stored.set(done.id, chunk);
        const ref = await chunk;
        bytesNew += done.length;
        bytesStored += ref.storedLength;
      }
      records.push({ page, length: done.length, chunks: [await chunk] });
    },
  });
  const written = await packs.finish(); // commits the open pack and indexes it: before the record (§17.1)
  records.sort((a, b) => a.page - b.page);
  const record: BatchRecordV2 = {
    format: 'pagewise-batch',
    version: 2,
    backupId: plan.backupId,
    batchNumber: batch,
    firstPage,
    pageCount,
    bytesRead,
    bytesNew,
    bytesStored,
    zeroPages,
    packs: written.packs,
    deltas: written.deltas,
    pages: records,
  };
  await writeBatch2(vault, keyring, record);
  return summarizeV2(record, run.cache.highWaterBytes, false);
}

/** The listed pages of a full backup as they are; of an incremental, only the changed ones. */
async function* onlyChanged(pages: AsyncIterable<PageRanges>, changed: PageRuns | null): AsyncGenerator<PageRanges> {
  for await (const p of pages) if (!changed || changed.has(p.page)) yield p;
}

/** Blocks a batch stored: distinct (pack, offset) among its chunks in the packs it wrote. */
export function newBlocksOf(record: Pick<BatchRecordV2, 'packs' | 'pages'>): number {
  const own = new Set(record.packs);
  const seen = new Set<string>();
  for (const p of record.pages) for (const c of p.chunks) if (own.has(c.pack)) seen.add(`${c.pack}:${c.offset}`);
  return seen.size;
}

function summarizeV2(record: BatchRecordV2, cacheHighWaterBytes: number, resumed: boolean): BatchSummary {
  // pages read that needed no new block: their content was the base's or another page's of the batch
  return summaryOf(record, { dedupedPages: record.pages.length - newBlocksOf(record), bytesStaged: record.bytesStored, cacheHighWaterBytes, resumed });
}

/** The durable activity's version-2 batch: everything rebuilt from the request and backup ID. */
export async function runOneBatchV2(req: BackupRequest & { backupId: string; planPosition: number }): Promise<BatchSummary> {
  const settings = resolveSettings(req);
  const ctx = await openBackupContextV2(req, req.backupId);
  const batch = batchAtV2(ctx, req.planPosition);
  const existing = await readBatch2(ctx.vault, ctx.keyring, ctx.plan.backupId, batch);
  if (existing) return summarizeV2(existing, 0, true); // resumed: no source, no cache needed
  requireNotExpired(ctx, `run batch ${batch}`, 'reading any page'); // before the source is even opened
  const source = await openPlannedSourceV2(req, ctx.plan);
  const cache = await ScratchCache.create({ capacityBytes: effectiveCacheBytes(settings, ctx.plan.pageCount), pageSize: ctx.plan.pageSize, dir: settings.scratchDir });
  try {
    return await copyBatchV2({ ctx, source, cache, concurrency: settings.concurrency, abortSignal: req.abortSignal }, batch);
  } catch (err) {
    throw req.abortSignal?.aborted ? abortedError(req.abortSignal) : err;
  } finally {
    await cache.dispose();
  }
}
