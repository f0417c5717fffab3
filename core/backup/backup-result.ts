/** Shaping a backup's result (pure: the single-process engine and the orchestrator share it). */
import type { BackupResult, BatchSummary } from '../types';

/**
 * A start of a disk state that was already backed up: the result describes the existing backup, but
 * this run read nothing (bytesRead 0, so no read speed is implied).
 */
export function asAlreadyExisted(result: BackupResult): BackupResult {
  return { ...result, alreadyExisted: true, bytesRead: 0, bytesReadNow: 0, cacheHighWaterBytes: 0 };
}

/** A batch's summary from what both formats' batch records hold, plus what each counts its own way. */
export function summaryOf(
  record: { backupId: string; batchNumber: number; pageCount: number; zeroPages: number; bytesRead: number; pages: unknown[] },
  own: Pick<BatchSummary, 'dedupedPages' | 'bytesStaged' | 'cacheHighWaterBytes' | 'resumed'>,
): BatchSummary {
  return {
    backupId: record.backupId,
    batchNumber: record.batchNumber,
    pages: record.pages.length + record.zeroPages,
    holePages: record.pageCount - record.pages.length,
    zeroPages: record.zeroPages,
    bytesRead: record.bytesRead,
    ...own,
  };
}
