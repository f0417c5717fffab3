/**
 * The single-process engine for a version-2 backup: run the planned batches (only those holding a
 * changed page, for an incremental) through one shared scratch cache, overlapping by one, then finalize.
 */
import { CopyProgress } from '../copy-progress';
import { ScratchCache } from '../../cache/scratch-cache';
import { BackupRequest, BackupResult, PlanRef } from '../../types';
import { asAlreadyExisted } from '../backup-result';
import { runBatchesOverlapped } from '../batch-overlap';
import { finalizeBackup } from '../finalize-backup';
import { pageLimits } from '../page-pump';
import { effectiveCacheBytes, resolveSettings } from '../settings';
import { runBatchV2 } from './batch';
import { openBackupContextV2, openPlannedSourceV2 } from './context';
import { finalizeV2 } from './finalize';

export async function backupAllV2(req: BackupRequest, ref: PlanRef, started: number): Promise<BackupResult> {
  const settings = resolveSettings(req);
  if (ref.alreadyComplete) {
    return asAlreadyExisted({ ...(await finalizeBackup({ ...req, backupId: ref.backupId })), durationMs: Date.now() - started });
  }
  const ctx = await openBackupContextV2(req, ref.backupId);
  const source = await openPlannedSourceV2(req, ctx.plan);
  const cache = await ScratchCache.create({ capacityBytes: effectiveCacheBytes(settings, ctx.plan.pageCount), pageSize: ctx.plan.pageSize, dir: settings.scratchDir });
  const limits = pageLimits(settings.concurrency, ctx.plan.pageSize);
  // The totals are what this backup reads: an incremental's changed pages (PlanRef), not the disk's allocation.
  const progress = new CopyProgress(ref.allocatedPages, ref.allocatedBytes, req.onProgress);
  const startBatch = async (position: number, onDownloaded: () => void, signal: AbortSignal): Promise<void> => {
    progress.batchDone(await runBatchV2({ ctx, source, cache, concurrency: settings.concurrency, limits, abortSignal: signal, onDownloaded, onPageDone: progress.pageDone }, position));
  };
  try {
    await runBatchesOverlapped(ctx.plan.batches.length, startBatch, req.abortSignal);
  } finally {
    await cache.dispose();
  }
  const finalized = await finalizeV2({ ...req, backupId: ref.backupId }, ctx); // the context (keyring, plan, base) of the batches
  return progress.result(finalized, cache, limits, started);
}
