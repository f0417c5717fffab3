/**
 * The single-process engine: plan, run every batch through one shared scratch cache (the pseudo-disk's
 * cache storage area, smaller than the disk), then finalize. The durable orchestration runs the same
 * three steps as activities. A version-2 vault's backup runs through v2/backup-all.ts.
 */
import { CopyProgress } from './copy-progress';
import { whileBackingUp } from './running-backups';
import { ScratchCache } from '../cache/scratch-cache';
import { DedupeIndex } from '../processor/page-processor';
import { BackupRequest, BackupResult } from '../types';
import { openBackupContext, openPlannedSource } from './backup-context';
import { asAlreadyExisted } from './backup-result';
import { finalizeBackup, resultOf } from './finalize-backup';
import { planBackup } from './plan-backup';
import { pageLimits, runBatch } from './run-batch';
import { effectiveCacheBytes, resolveSettings } from './settings';
import { runBatchesOverlapped } from './batch-overlap';
import { backupAllV2 } from './v2/backup-all';

export async function backupDisk(req: BackupRequest): Promise<BackupResult> {
  return whileBackingUp(req.source, () => backupAll(req));
}

async function backupAll(req: BackupRequest): Promise<BackupResult> {
  const started = Date.now();
  const settings = resolveSettings(req);
  const ref = await planBackup(req);
  if (ref.formatVersion === 2) return backupAllV2(req, ref, started);
  const ctx = await openBackupContext(req, ref.backupId);
  const capacity = effectiveCacheBytes(settings, ctx.plan.pageCount);
  if (ref.alreadyComplete) {
    return asAlreadyExisted(resultOf(await ctx.writer.readManifest(req.userKey), Date.now() - started, capacity));
  }
  const source = await openPlannedSource(req, ctx.plan);
  const cache = await ScratchCache.create({ capacityBytes: capacity, pageSize: ctx.plan.pageSize, dir: settings.scratchDir });
  const dedupe = new DedupeIndex();
  const limits = pageLimits(settings.concurrency, ctx.plan.pageSize);
  const progress = new CopyProgress(ctx.plan.allocatedPages, ctx.plan.allocatedBytes, req.onProgress);
  const batchesPerSegment = ctx.plan.pagesPerSegment / ctx.plan.pagesPerBatch;
  // Batches are run by their position in the plan's list of batches with data; `batches[position]` is the batch number.
  const segmentAt = (position: number) => Math.floor(ctx.plan.batches[position] / batchesPerSegment);
  const startBatch = (position: number, onDownloaded: () => void, signal: AbortSignal): Promise<void> =>
    runBatch({ ctx, source, cache, dedupe, concurrency: settings.concurrency, limits, abortSignal: signal, onDownloaded, onPageDone: progress.pageDone }, position).then((summary) => {
      progress.batchDone(summary);
      // No later batch shares the segment: its dedupe entries can go.
      if (position + 1 >= ctx.plan.batches.length || segmentAt(position + 1) !== segmentAt(position)) dedupe.forgetSegment(segmentAt(position));
    });
  try {
    await runBatchesOverlapped(ctx.plan.batches.length, startBatch, req.abortSignal);
  } finally {
    await cache.dispose();
  }
  return progress.result(await finalizeBackup({ ...req, backupId: ref.backupId }), cache, limits, started);
}
