/**
 * Finalizing a backup: when every batch has its record, each segment's block list is committed (the
 * blocks of its pages in page order, identical pages of the segment sharing one block), its page-table
 * chunk is written, and only then the manifest — in one atomic write. Memory is bounded by one segment.
 */
import { whileBackingUp } from './running-backups';
import { createHash } from 'node:crypto';
import { isPagewiseError, PagewiseError } from '../errors';
import { BackupRequest, BackupResult } from '../types';
import { readBatchRecord, PageRecord } from '../repo/batch-record';
import { blockIdOf, layout } from '../repo/layout';
import { ManifestBody, readManifest, writeManifest } from '../repo/manifest';
import { encodeChunk, PageEntry } from '../repo/page-table';
import { SourceDisk } from '../source/source-disk';
import { BackupPlan } from '../repo/backup-plan';
import { openBackupContext, snapshotTakenByPagewise } from './backup-context';
import { effectiveCacheBytes, resolveSettings } from './settings';

export async function finalizeBackup(req: BackupRequest & { backupId: string }): Promise<BackupResult> {
  return whileBackingUp(req.source, () => finalize(req));
}

async function finalize(req: BackupRequest & { backupId: string }): Promise<BackupResult> {
  const started = Date.now();
  const { plan, vault, dataKey } = await openBackupContext(req, req.backupId);
  const capacity = effectiveCacheBytes(resolveSettings(req), plan.pageCount);
  if (await vault.exists(layout.manifest(plan.backupId))) {
    // (a finalize that stopped after the manifest may have left the snapshot behind)
    return { ...resultOf(await readManifest(vault, plan.backupId, req.userKey), Date.now() - started, capacity), ...(await releaseSnapshot(req, plan)) };
  }
  const batchesPerSegment = plan.pagesPerSegment / plan.pagesPerBatch;
  const segmentsWithData = [...new Set(plan.batches.map((b) => Math.floor(b / batchesPerSegment)))];

  const body: ManifestBody = {
    backupId: plan.backupId,
    createdAt: plan.createdAt,
    completedAt: '',
    source: plan.source,
    diskBytes: plan.diskBytes,
    pageSize: plan.pageSize,
    pageCount: plan.pageCount,
    pagesPerSegment: plan.pagesPerSegment,
    encryption: { algorithm: 'AES-256-GCM', keyId: plan.encryption.keyId, wrappedDataKey: plan.encryption.wrappedDataKey },
    references: [],
    segments: [],
    index: [],
    stats: { allocatedBytes: plan.allocatedBytes, bytesRead: 0, bytesStored: 0, storedBlocks: 0, dataPages: 0, zeroPages: 0, dedupedPages: 0 },
  };

  for (const segment of segmentsWithData) {
    const pages: PageRecord[] = [];
    for (const batch of plan.batches.filter((b) => Math.floor(b / batchesPerSegment) === segment)) {
      const record = await readBatchRecord(vault, plan.backupId, batch);
      if (!record) {
        throw new PagewiseError('BackupIncomplete', `batch ${batch} of backup ${plan.backupId} has not finished; the backup cannot be finalized yet`);
      }
      body.stats.bytesRead += record.bytesRead;
      body.stats.zeroPages += record.zeroPages;
      pages.push(...record.pages);
    }
    pages.sort((a, b) => a.i - b.i);
    if (pages.length === 0) continue;

    // The block of a hash is the staged block of the lowest page with that hash (every duplicate's
    // hash equals its block owner's, so resolving by hash also merges duplicates across batches).
    const owner = new Map<string, PageRecord>();
    for (const p of pages) if (p.b === p.i && !owner.has(p.h)) owner.set(p.h, p);
    const committed = [...new Set(pages.map((p) => owner.get(p.h)))].sort((a, b) => a!.i - b!.i);
    const offsets = new Map<number, number>();
    let bytes = 0;
    for (const block of committed) {
      if (!block) throw new PagewiseError('Corrupt', `segment ${segment} of backup ${plan.backupId} references a block that was never staged`);
      offsets.set(block.i, bytes);
      bytes += block.l;
    }
    const segmentBlob = layout.segment(plan.backupId, segment);
    await vault.commitBlocks(segmentBlob, committed.map((b) => blockIdOf(b!.i)));

    const entries: PageEntry[] = pages.map((p) => {
      const block = owner.get(p.h)!;
      return {
        page: p.i,
        ref: 0,
        codec: block.c,
        segment,
        offset: offsets.get(block.i)!,
        storedLength: block.l,
        plainLength: p.n,
        sha256: Buffer.from(p.h, 'hex'),
      };
    });
    const chunk = encodeChunk(entries, segment, dataKey, plan.backupId);
    const indexBlob = layout.index(plan.backupId, segment);
    await vault.putBytes(indexBlob, chunk);

    body.segments.push({ index: segment, blob: segmentBlob, blocks: committed.length, bytes });
    body.index.push({ segment, blob: indexBlob, entries: entries.length, bytes: chunk.length, sha256: createHash('sha256').update(chunk).digest('hex') });
    body.stats.bytesStored += bytes;
    body.stats.storedBlocks += committed.length;
    body.stats.dataPages += pages.length;
    body.stats.dedupedPages += pages.length - committed.length;
  }
  body.completedAt = new Date().toISOString();
  await writeManifest(vault, req.userKey, body);
  return { ...resultOf(body, Date.now() - started, capacity), ...(await releaseSnapshot(req, plan)) };
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
  };
}
