/**
 * Live progress of a backup. Each orchestration of the tree publishes its own progress as custom status
 * when a wave of its work completes, plus the instance IDs of the sub-orchestrations it is waiting on;
 * the parent learns a child's batches only when the child ends, so a reader adds the running children's
 * progress to the parent's (`withLiveProgress`). Publishing stays deterministic (no I/O in orchestrators);
 * the lookups happen on the reading side.
 */

/** What a range orchestration (and the root, while copying) publishes. */
export interface RangeProgress {
  batchesTotal: number;
  /** Batches whose activities have completed, in this instance's finished waves. */
  batchesDone: number;
  /** Pages and source bytes those batches read. */
  pagesDone: number;
  bytesRead: number;
  /** Sub-orchestrations in flight: their progress is not yet in the counts above. */
  running?: string[];
}

/** Deepest tree a reader follows (a tree of 1,000 × 1,000 leaves has depth 2 below the root). */
const MAX_DEPTH = 4;

function isRangeProgress(value: unknown): value is RangeProgress {
  const v = value as Partial<RangeProgress> | null;
  return typeof v === 'object' && v !== null && typeof v.batchesTotal === 'number' && typeof v.batchesDone === 'number';
}

/**
 * The progress in `customStatus` with the progress of its running sub-orchestrations added (read with
 * `customStatusOf`), capped at the total; any other status is returned as it is. `running` is dropped.
 */
export async function withLiveProgress(customStatus: unknown, customStatusOf: (instanceId: string) => Promise<unknown>, depth = 0): Promise<unknown> {
  if (!isRangeProgress(customStatus)) return customStatus;
  const { running, ...own } = customStatus;
  const sum = { batchesDone: own.batchesDone, pagesDone: own.pagesDone ?? 0, bytesRead: own.bytesRead ?? 0 };
  if (depth < MAX_DEPTH) {
    for (const instanceId of running ?? []) {
      const child = await withLiveProgress(await customStatusOf(instanceId), customStatusOf, depth + 1);
      if (!isRangeProgress(child)) continue;
      sum.batchesDone += child.batchesDone;
      sum.pagesDone += child.pagesDone ?? 0;
      sum.bytesRead += child.bytesRead ?? 0;
    }
  }
  return { ...own, ...sum, batchesDone: Math.min(sum.batchesDone, own.batchesTotal) };
}
