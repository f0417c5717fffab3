/**
 * Pure planning of the backup orchestration tree: how the plan's batches with data are split across
 * sub-orchestrations so no single history grows past a fixed bound, and how many batches of a disk
 * are in flight. Ranges hold plan positions (indexes into the plan's `batches` list, 0 … batchCount−1),
 * not batch numbers: the activity looks the batch number up in the plan. No I/O, no clock:
 * orchestrators call these during replay.
 */
import { BATCHES_IN_FLIGHT as BATCHES_IN_FLIGHT_BOUNDS } from '../core';

/** Most batches (activities) one leaf orchestration runs; bounds its history (see HISTORY_EVENT_BOUND). */
export const BATCHES_PER_LEAF = 1000;
/** Most sub-orchestrations one range orchestration starts. */
export const CHILDREN_PER_NODE = 1000;
/**
 * Batch activities one disk keeps in flight by default, and the most it may be given
 * (`PAGEWISE_BATCHES_IN_FLIGHT`, for faster premium sources): core/limits.ts says why.
 */
export const BATCHES_IN_FLIGHT = BATCHES_IN_FLIGHT_BOUNDS.default;
export const MAX_BATCHES_IN_FLIGHT = BATCHES_IN_FLIGHT_BOUNDS.max;
/**
 * Sub-orchestrations a range node keeps in flight at once: one, so a disk's batches in flight are its
 * leaf's window, whatever its size.
 */
export const CHILDREN_IN_FLIGHT = 1;

/** Consecutive plan positions [first, first+count): the batches with data a range orchestration runs. */
export interface BatchRange {
  /** First plan position in the range. */
  first: number;
  /** Number of batches (plan positions). */
  count: number;
}

export interface TreeShape {
  batchesPerLeaf: number;
  childrenPerNode: number;
}

const DEFAULT_SHAPE: TreeShape = { batchesPerLeaf: BATCHES_PER_LEAF, childrenPerNode: CHILDREN_PER_NODE };

/** Splits [first, first+count) into consecutive ranges of at most `size` batches. */
export function sliceRange(range: BatchRange, size: number): BatchRange[] {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`slice size ${size} must be a positive integer`);
  const out: BatchRange[] = [];
  for (let first = range.first; first < range.first + range.count; first += size) {
    out.push({ first, count: Math.min(size, range.first + range.count - first) });
  }
  return out;
}

/** Groups items into consecutive waves of at most `inFlight`; a wave starts when the previous ends. */
export function waves<T>(items: T[], inFlight: number): T[][] {
  if (!Number.isSafeInteger(inFlight) || inFlight < 1) throw new RangeError(`in-flight bound ${inFlight} must be a positive integer`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += inFlight) out.push(items.slice(i, i + inFlight));
  return out;
}

/** The plan positions of a range, in order. */
export function planPositions(range: BatchRange): number[] {
  return Array.from({ length: range.count }, (_, i) => range.first + i);
}

/**
 * How a range node splits its batches: a leaf (≤ batchesPerLeaf) runs them itself; otherwise the
 * range is cut into at most childrenPerNode children of equal power-of-fan-out size.
 */
export function childRanges(range: BatchRange, shape: TreeShape = DEFAULT_SHAPE): BatchRange[] | undefined {
  if (range.count <= shape.batchesPerLeaf) return undefined;
  let childSize = shape.batchesPerLeaf;
  while (Math.ceil(range.count / childSize) > shape.childrenPerNode) childSize *= shape.childrenPerNode;
  return sliceRange(range, childSize);
}

/** Worst-case history events of one orchestration that schedules `tasks` activities/sub-orchestrations. */
export function historyEventsBound(tasks: number): number {
  // ExecutionStarted + ExecutionCompleted, a scheduled and a completion event per task, and at most
  // one episode (OrchestratorStarted + OrchestratorCompleted) per completion plus the first one.
  return 2 + 2 * tasks + 2 * (tasks + 1);
}

/**
 * The activities a root calls itself besides its ranges, at most: plan, finalize (or abandon after it),
 * releaseStartSlots (a queued start's slots) and reportOperation (#18 telemetry).
 */
export const ROOT_OWN_ACTIVITIES = 4;

/** The fixed bound every Pagewise orchestration history stays under (without retries). */
export const HISTORY_EVENT_BOUND = historyEventsBound(Math.max(BATCHES_PER_LEAF, CHILDREN_PER_NODE + ROOT_OWN_ACTIVITIES));

export interface OrchestrationNode {
  orchestrator: 'backupDisk' | 'backupBatchRange';
  range: BatchRange;
  /** Activities this orchestration calls itself. */
  activities: number;
  children: OrchestrationNode[];
  /** Worst-case events in this orchestration's own history (retries excluded). */
  maxHistoryEvents: number;
}

/** The tree of orchestrations a backup of `batchCount` batches runs (root: plan + ranges + finalize + slots + report). */
export function planOrchestration(batchCount: number, shape: TreeShape = DEFAULT_SHAPE): OrchestrationNode {
  if (!Number.isSafeInteger(batchCount) || batchCount < 0) throw new RangeError(`batch count ${batchCount} is invalid`);
  const all: BatchRange = { first: 0, count: batchCount };
  const children = batchCount === 0 ? [] : (childRanges(all, shape) ?? [all]).map((r) => rangeNode(r, shape));
  const activities = ROOT_OWN_ACTIVITIES; // planBackup, finalizeBackup, releaseStartSlots, reportOperation
  return {
    orchestrator: 'backupDisk',
    range: all,
    activities,
    children,
    maxHistoryEvents: historyEventsBound(activities + children.length),
  };
}

function rangeNode(range: BatchRange, shape: TreeShape): OrchestrationNode {
  const split = childRanges(range, shape);
  const children = split ? split.map((r) => rangeNode(r, shape)) : [];
  const activities = split ? 0 : range.count;
  return {
    orchestrator: 'backupBatchRange',
    range,
    activities,
    children,
    maxHistoryEvents: historyEventsBound(activities + children.length),
  };
}

/** Every node of a tree, depth first. */
export function flattenTree(node: OrchestrationNode): OrchestrationNode[] {
  return [node, ...node.children.flatMap(flattenTree)];
}
