/**
 * Finalizing a backup: when every batch has its record, each segment is committed with its page-table
 * chunk (core/repo's writer), and only then the manifest — in one atomic write. Memory is bounded by
 * one segment. A version-2 backup is finalized by v2/finalize.ts.
 */
import { whileBackingUp } from './running-backups';
import { isPagewiseError, PagewiseError } from '../errors';
import { BackupKind, BackupRequest, BackupResult } from '../types';
import { PageRecord } from '../repo/batch-record';
import { BackupWriter } from '../repo/backup-writer';
import { ManifestBody } from '../repo/manifest';
import { SourceDisk } from '../source/source-disk';
import { BackupPlan } from '../repo/backup-plan';
import { openBackupContext, snapshotTakenByPagewise } from './backup-context';
import { effectiveCacheBytes, resolveSettings } from './settings';
import { formatOfBackup } from './vault-version';
import { finalizeV2 } from './v2/finalize';
import { Vault } from '../repo/vault';
import { validateBackupId } from '../repo/backup-id';

export async function finalizeBackup(req: BackupRequest & { backupId: string }): Promise<BackupResult> {
  return whileBackingUp(req.source, () => finalize(req));
}

async function finalize(req: BackupRequest & { backupId: string }): Promise<BackupResult> {
  validateBackupId(req.backupId);
  if ((await formatOfBackup(Vault.open(req.vault), req.backupId)) === 2) return finalizeV2(req);
  const started = Date.now();
  const { plan, writer } = await openBackupContext(req, req.backupId);
  const capacity = effectiveCacheBytes(resolveSettings(req), plan.pageCount);
  if (await writer.isComplete()) {
    // (a finalize that stopped after the manifest may have left the snapshot behind)
    return { ...resultOf(await writer.readManifest(req.userKey), Date.now() - started, capacity), ...(await releaseSnapshot(req, plan)) };
  }
  const batchesPerSegment = plan.pagesPerSegment / plan.pagesPerBatch;
  const segmentsWithData = [...new Set(plan.batches.map((b) => Math.floor(b / batchesPerSegment)))];

  const body = writer.newManifest();
  for (const segment of segmentsWithData) {
    const pages: PageRecord[] = [];
    for (const batch of plan.batches.filter((b) => Math.floor(b / batchesPerSegment) === segment)) {
      const record = await writer.batchRecord(batch);
      if (!record) {
        throw new PagewiseError('BackupIncomplete', `batch ${batch} of backup ${plan.backupId} has not finished; the backup cannot be finalized yet`);
      }
      body.stats.bytesRead += record.bytesRead;
      body.stats.zeroPages += record.zeroPages;
      pages.push(...record.pages);
    }
    if (pages.length === 0) continue;
    BackupWriter.addSegment(body, await writer.commitSegment(segment, pages));
  }
  const complete = await writer.writeManifest(req.userKey, body);
  return { ...resultOf(complete, Date.now() - started, capacity), ...(await releaseSnapshot(req, plan)) };
}

/**
 * The manifest is written: the snapshot Pagewise took of the source is no longer needed (the backup is
 * the copy). A failed delete does not fail the backup; the result says the snapshot is still there.
 */
async function releaseSnapshot(req: BackupRequest, plan: BackupPlan): Promise<Pick<BackupResult, 'sourceSnapshot'>> {
  const snapshot = snapshotTakenByPagewise(req, plan);
  if (!snapshot) return {};
  try {
    await (await SourceDisk.open(req.source, undefined, snapshot)).deleteSnapshot();
    return { sourceSnapshot: { snapshot, deleted: true } };
  } catch (err) {
    if (isPagewiseError(err, 'SourceNotFound')) return { sourceSnapshot: { snapshot, deleted: true } }; // gone already
    return { sourceSnapshot: { snapshot, deleted: false } };
  }
}

/** A version-1 vault backs up in full, always (docs/FORMAT.md §12). */
export const V1_KIND: BackupKind = { kind: 'full', base: null, reason: 'v1-vault' };

/** The result of a backup from its manifest; `cacheCapacityBytes` is the capacity the run's settings give. */
export function resultOf(body: ManifestBody, durationMs: number, cacheCapacityBytes: number): BackupResult {
  return {
    backupId: body.backupId,
    diskBytes: body.diskBytes,
    allocatedBytes: body.stats.allocatedBytes,
    bytesRead: body.stats.bytesRead,
    bytesStored: body.stats.bytesStored,
    pages: body.stats.dataPages + body.stats.zeroPages,
    storedBlocks: body.stats.storedBlocks,
    zeroPages: body.stats.zeroPages,
    dedupedPages: body.stats.dedupedPages,
    pageSize: body.pageSize,
    segments: body.segments.length,
    cacheCapacityBytes,
    cacheHighWaterBytes: 0,
    alreadyExisted: false,
    bytesReadNow: 0, // finalizing reads no source; the engine running the batches fills this in
    completedAt: body.completedAt,
    durationMs,
    ...V1_KIND,
    bytesChanged: body.stats.bytesRead,
    bytesNew: body.stats.bytesStored,
    formatVersion: 1,
  };
}
