/**
 * Live progress of the orchestrations, in core's one progress shape (`OperationProgress`: pagesDone,
 * pagesTotal, bytesDone, bytesTotal) under the orchestration's phase. Restore and verify publish the
 * counts their activity returns. A backup's orchestrations each publish their own progress as custom
 * status when a wave of their work completes, plus the instance IDs of the sub-orchestrations they wait
 * on; the parent learns a child's batches only when the child ends, so a reader adds the running
 * children's progress to the parent's (`withLiveProgress`). Publishing stays deterministic (no I/O in
 * orchestrators): the counts come from activity results and sub-orchestration outputs, the lookups
 * happen on the reading side.
 */
import type { OperationProgress } from '../core';

/** The counts of an OperationProgress, without its phase (the orchestration names its own). */
export type ProgressCounts = Omit<OperationProgress, 'phase'>;

/** Nothing done of nothing known yet (before a plan, or before an activity reports its totals). */
export const NO_PROGRESS: ProgressCounts = { pagesDone: 0, pagesTotal: 0, bytesDone: 0, bytesTotal: 0 };

/** The counts of a progress report; none (an activity of an older version returned none) reads as NO_PROGRESS. */
export function countsOf(progress: OperationProgress | undefined): ProgressCounts {
  if (!progress) return { ...NO_PROGRESS };
  const { pagesDone, pagesTotal, bytesDone, bytesTotal } = progress;
  return { pagesDone, pagesTotal, bytesDone, bytesTotal };
}

/** What a range orchestration (and the root, while copying) publishes: its batches, and their pages and source bytes read. */
export interface RangeProgress {
  batchesTotal: number;
  /** Batches whose activities have completed, in this instance's finished waves. */
  batchesDone: number;
  /** Pages and source bytes those batches read. */
  pagesDone: number;
  bytesDone: number;
  /** Sub-orchestrations in flight: their progress is not yet in the counts above. */
  running?: string[];
}

/** Deepest tree a reader follows (a tree of 1,000 × 1,000 leaves has depth 2 below the root). */
const MAX_DEPTH = 4;

/** What a fanned-out status counts its units in: a backup's batches, a restore's or verification's windows (#17). */
type Unit = 'batches' | 'windows';

function unitOf(value: unknown): Unit | undefined {
  const v = value as Record<string, unknown> | null;
  if (typeof v !== 'object' || v === null) return undefined;
  return (['batches', 'windows'] as const).find((unit) => typeof v[`${unit}Total`] === 'number' && typeof v[`${unit}Done`] === 'number');
}

/**
 * The progress in `customStatus` with the progress of its running sub-orchestrations added (read with
 * `customStatusOf`), capped at the totals; any other status is returned as it is. `running` is dropped.
 * Batches (a backup) or windows (a restore, a verification), whichever the status counts.
 */
export async function withLiveProgress(customStatus: unknown, customStatusOf: (instanceId: string) => Promise<unknown>, depth = 0): Promise<unknown> {
  const unit = unitOf(customStatus);
  if (!unit) return customStatus;
  const [doneKey, totalKey] = [`${unit}Done`, `${unit}Total`] as const;
  const { running, ...own } = customStatus as Record<string, unknown> & { running?: string[] } & Partial<ProgressCounts>;
  const sum = { units: own[doneKey] as number, pagesDone: own.pagesDone ?? 0, bytesDone: own.bytesDone ?? 0 };
  if (depth < MAX_DEPTH) {
    for (const instanceId of running ?? []) {
      const child = (await withLiveProgress(await customStatusOf(instanceId), customStatusOf, depth + 1)) as Record<string, unknown> & Partial<ProgressCounts>;
      if (unitOf(child) !== unit) continue;
      sum.units += child[doneKey] as number;
      sum.pagesDone += child.pagesDone ?? 0;
      sum.bytesDone += child.bytesDone ?? 0;
    }
  }
  // A child that ended between the two reads is counted in both: no count passes its total.
  const capped = (done: number, total: unknown) => (typeof total === 'number' ? Math.min(done, total) : done);
  return {
    ...own,
    [doneKey]: capped(sum.units, own[totalKey]),
    pagesDone: capped(sum.pagesDone, own.pagesTotal),
    bytesDone: capped(sum.bytesDone, own.bytesTotal),
  };
}
