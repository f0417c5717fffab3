/**
 * The single-process engine's account of one backup run (both formats): progress after each page and
 * each resumed batch, the source bytes this run read, and the run's own figures on the final result.
 */
import type { ScratchCache } from '../cache/scratch-cache';
import type { BackupResult, BatchSummary, OperationProgress } from '../types';
import type { PageLimits } from './page-pump';

export class CopyProgress {
  /** Source bytes this run read (progress.bytesDone also counts batches an earlier run read: resumed). */
  bytesReadNow = 0;
  private readonly progress: OperationProgress;

  constructor(pagesTotal: number, bytesTotal: number, private readonly report?: (progress: OperationProgress) => void) {
    this.progress = { phase: 'copying', pagesDone: 0, pagesTotal, bytesDone: 0, bytesTotal };
  }

  /** A page read from the source and stored. */
  readonly pageDone = (_page: number, bytes: number): void => {
    this.bytesReadNow += bytes;
    this.progress.pagesDone++;
    this.progress.bytesDone += bytes;
    this.report?.({ ...this.progress });
  };

  /** A batch finished: one an earlier run had done counts whole at once. */
  batchDone(summary: BatchSummary): void {
    if (!summary.resumed) return;
    this.progress.pagesDone += summary.pages;
    this.progress.bytesDone += summary.bytesRead;
    this.report?.({ ...this.progress });
  }

  /** The finalized result with this run's figures: cache, pages in memory, bytes read now, whole duration. */
  result(finalized: BackupResult, cache: ScratchCache, limits: PageLimits, started: number): BackupResult {
    return {
      ...finalized,
      cacheCapacityBytes: cache.capacityBytes,
      cacheHighWaterBytes: cache.highWaterBytes,
      pagesInMemoryHighWater: limits.uploads.highWater,
      bytesReadNow: this.bytesReadNow,
      durationMs: Date.now() - started,
    };
  }
}
