/**
 * The single-process engine: plan, run every batch through one shared scratch cache (the pseudo-disk's
 * cache storage area, smaller than the disk), then finalize. The durable orchestration runs the same
 * three steps as activities.
 */
import { ScratchCache } from '../cache/scratch-cache';
import { DedupeIndex } from '../processor/page-processor';
import { BackupRequest, BackupResult } from '../types';
import { readManifest } from '../vault/manifest';
import { openBackupContext, openPlannedSource } from './backup-context';
import { finalizeBackup, resultOf } from './finalize-backup';
import { planBackup } from './plan-backup';
import { runBatch } from './run-batch';
import { effectiveCacheBytes, resolveSettings } from './settings';

export async function backupDisk(req: BackupRequest): Promise<BackupResult> {
  const started = Date.now();
  const settings = resolveSettings(req);
  const ref = await planBackup(req);
  const ctx = await openBackupContext(req, ref.backupId);
  const capacity = effectiveCacheBytes(settings, ctx.plan.pageCount);
  if (ref.alreadyComplete) {
    const result = resultOf(await readManifest(ctx.vault, ref.backupId, req.userKey), Date.now() - started);
    return { ...result, cacheCapacityBytes: capacity };
  }
  const source = await openPlannedSource(req, ctx.plan);
  const cache = await ScratchCache.create({ capacityBytes: capacity, pageSize: ctx.plan.pageSize, dir: settings.scratchDir });
  const dedupe = new DedupeIndex();
  const progress = { pagesDone: 0, pagesTotal: ctx.plan.allocatedPages, bytesRead: 0, allocatedBytes: ctx.plan.allocatedBytes };
  try {
    const batchesPerSegment = ctx.plan.pagesPerSegment / ctx.plan.pagesPerBatch;
    for (let k = 0; k < ctx.plan.batches.length; k++) {
      const summary = await runBatch(
        {
          ctx,
          source,
          cache,
          dedupe,
          concurrency: settings.concurrency,
          abortSignal: req.abortSignal,
          onPageDone: (_page, bytes) => {
            progress.pagesDone++;
            progress.bytesRead += bytes;
            req.onProgress?.({ ...progress });
          },
        },
        k,
      );
      if (summary.resumed) {
        progress.pagesDone += summary.pages;
        progress.bytesRead += summary.bytesRead;
        req.onProgress?.({ ...progress });
      }
      const segment = Math.floor(ctx.plan.batches[k] / batchesPerSegment);
      const next = ctx.plan.batches[k + 1];
      if (next === undefined || Math.floor(next / batchesPerSegment) !== segment) dedupe.forgetSegment(segment);
    }
  } finally {
    await cache.dispose();
  }
  const result = await finalizeBackup({ ...req, backupId: ref.backupId });
  return {
    ...result,
    cacheCapacityBytes: cache.capacityBytes,
    cacheHighWaterBytes: cache.highWaterBytes,
    durationMs: Date.now() - started,
  };
}
