/**
 * One batch of a version-2 backup: for each page of its window that changed since the base (a full:
 * each allocated page), read it through the scratch cache (the shared data-agent loop), cut it into
 * chunks and name them in a worker thread (a page of zero chunks is a hole), then take each non-zero
 * chunk from its base, from this batch, or from the vault's content index (chunk-reuse.ts), and compress
 * and seal only the rest (in a worker) into this writer's pack. The batch record is written last, after
 * the packs are committed and indexed (§17.1).
 */
import { summaryOf } from '../backup-result';
import { abortedError, PagewiseError } from '../../errors';
import { ScratchCache } from '../../cache/scratch-cache';
import { chunkPoolFor, PageChunk } from '../../processor/chunk-pool';
import { ZeroTest } from '../../processor/page-processor';
import { DEFAULT_ABANDON_AFTER_MS } from '../../prune/protocol';
import { BlobNotFoundError } from '../../repo/store/blob-store';
import { v2names } from '../../repo/v2/names';
import { PackWriter } from '../../repo/v2/pack-writer';
import { zeroChunk } from '../../repo/v2/page-table';
import { BatchRecordV2, ChunkRef, PageRecord2 } from '../../repo/v2/records';
import { readBatch2, writeBatch2 } from '../../repo/v2/staging';
import { Vault } from '../../repo/vault';
import { ByteRange, PageGrid, PageRanges, pagesOfRangesAsync } from '../../source/page-grid';
import { BackupRequest, BatchSummary } from '../../types';
import { effectiveCacheBytes, resolveSettings } from '../settings';
import { PumpRun, pumpPages } from '../page-pump';
import { ChunkReuse, PackCreated } from './chunk-reuse';
import { BackupContextV2, baseOfPlan, contentIndexOf, openBackupContextV2, openPlannedSourceV2, requireNotExpired } from './context';
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

/** A chunk of a processed page: zero, reused (base, batch or vault), or to store with its block. */
type Part =
  | { kind: 'zero'; length: number }
  | { kind: 'reuse'; chunk: ChunkRef | Promise<ChunkRef> }
  | { kind: 'store'; contentId: Buffer; length: number; block: number };

type Processed = { kind: 'zero' } | { kind: 'chunks'; length: number; parts: Part[]; blocks: Buffer[] };

async function copyBatchV2(run: BatchRunV2, batch: number): Promise<BatchSummary> {
  requireNotExpired(run.ctx, `run batch ${batch}`, 'reading any page'); // §26.8
  const { plan, keyring, vault } = run.ctx;
  const grid = new PageGrid(plan.diskBytes, plan.pageSize);
  const firstPage = batch * plan.pagesPerBatch;
  const pageCount = Math.min(plan.pagesPerBatch, plan.pageCount - firstPage);
  const window: ByteRange = { offset: grid.pageStart(firstPage), length: Math.min(plan.diskBytes, grid.pageStart(firstPage + pageCount)) - grid.pageStart(firstPage) };
  const changed = plan.changedPages ? PageRuns.of(plan.changedPages, plan.pageCount, `the plan of backup ${plan.backupId}`) : null;
  // The base's chunks of this window, by content ID: an unchanged chunk anywhere in the window reuses its block.
  const baseOf = baseOfPlan(run.ctx);
  const base = baseOf ? await baseRecordsOf(run.ctx, await baseOf, firstPage, pageCount) : new Map<number, PageRecord2>();
  const index = plan.vaultDedupe ? await contentIndexOf(run.ctx) : null;
  const reuse = new ChunkReuse({ baseRecords: base.values(), index, packCreated: packCreatedIn(vault), planCreatedMs: Date.parse(plan.createdAt), abandonAfterMs: DEFAULT_ABANDON_AFTER_MS });
  const pool = chunkPoolFor(keyring);
  const packs = new PackWriter(vault, keyring);
  const zeros = new ZeroTest();
  const records: PageRecord2[] = [];
  let zeroPages = 0;
  let bytesNew = 0;
  let bytesStored = 0;

  const { bytesRead } = await pumpPages<Processed>({ ...run, grid }, onlyChanged(pagesOfRangesAsync(grid, run.source.allocatedRanges(window)), changed), {
    process: async (_page, plain) => {
      if (zeros.isZero(plain)) return { kind: 'zero' }; // here, not in a worker: no copy of a page that stores nothing
      // the page's bytes go to the worker once: cutPage's copy is handed over to the encode task
      const { chunks, bytes } = await pool.cutPage(plain, plan.chunking);
      if (chunks.every((c) => c.contentId === null)) return { kind: 'zero' };
      const toStore: PageChunk[] = [];
      const storing = new Map<string, number>(); // a content twice in one page is encoded once
      const found = await Promise.all(chunks.map((c) => (c.contentId ? reuse.find(c.contentId, c.length) : undefined)));
      const parts = chunks.map((c, k): Part => {
        if (!c.contentId) return { kind: 'zero', length: c.length };
        if (found[k]) return { kind: 'reuse', chunk: found[k]!.chunk };
        const id = c.contentId.toString('hex');
        let block = storing.get(id);
        if (block === undefined) {
          block = toStore.push(c) - 1;
          storing.set(id, block);
        }
        return { kind: 'store', contentId: c.contentId, length: c.length, block };
      });
      const blocks = toStore.length > 0 ? await pool.encodeChunks(bytes, toStore, plan.codec, { handOver: true }) : [];
      return { kind: 'chunks', length: plain.length, parts, blocks };
    },
    store: async (page, done) => {
      if (done.kind === 'zero') {
        zeroPages++;
        return;
      }
      const refs = await Promise.all(
        done.parts.map(async (part): Promise<ChunkRef> => {
          if (part.kind === 'zero') return zeroChunk(part.length);
          if (part.kind === 'reuse') return part.chunk;
          // (a page processed while its twin was being encoded carries a block too: the first to get here stores)
          const { contentId, length } = part;
          const { chunk, fresh } = reuse.storeOnce(contentId, () => packs.add(contentId, done.blocks[part.block]).then((at) => ({ contentId, length, ...at })));
          const ref = await chunk;
          if (fresh) {
            bytesNew += length;
            bytesStored += ref.storedLength;
          }
          return ref;
        }),
      );
      records.push({ page, length: done.length, chunks: refs });
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
    chunksReusedFromVault: reuse.stats.chunksReusedFromVault,
    bytesReusedFromVault: reuse.stats.bytesReusedFromVault,
    packs: written.packs,
    deltas: written.deltas,
    pages: records,
  };
  await writeBatch2(vault, keyring, record);
  return summarizeV2(record, run.cache.highWaterBytes, false);
}

/** A pack's Creation-Time by a HEAD; undefined when it is gone (a service that gives none: 0, never relied on). */
function packCreatedIn(vault: Vault): PackCreated {
  return async (pack) => {
    try {
      return (await vault.properties(v2names.pack(pack))).createdOn?.getTime() ?? 0;
    } catch (err) {
      if (err instanceof BlobNotFoundError) return undefined;
      throw err;
    }
  };
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

/**
 * Pages of a batch that needed no new block: each chunk is zero, the base's, the vault's, or a block an
 * earlier page of the batch stored (one chunk per page: the pages read less the new blocks, as before #15).
 */
export function dedupedPagesOf(record: Pick<BatchRecordV2, 'packs' | 'pages'>): number {
  const own = new Set(record.packs);
  const seen = new Set<string>();
  let deduped = 0;
  for (const p of record.pages) {
    let fresh = false;
    for (const c of p.chunks) {
      if (!own.has(c.pack)) continue;
      const at = `${c.pack}:${c.offset}`;
      if (!seen.has(at)) fresh = true;
      seen.add(at);
    }
    if (!fresh) deduped++;
  }
  return deduped;
}

function summarizeV2(record: BatchRecordV2, cacheHighWaterBytes: number, resumed: boolean): BatchSummary {
  return {
    ...summaryOf(record, { dedupedPages: dedupedPagesOf(record), bytesStaged: record.bytesStored, cacheHighWaterBytes, resumed }),
    chunksReusedFromVault: record.chunksReusedFromVault ?? 0,
    bytesReusedFromVault: record.bytesReusedFromVault ?? 0,
  };
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
