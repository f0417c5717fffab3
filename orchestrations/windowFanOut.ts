/**
 * The fan-out restores and verifications share (issue #17), in the backup tree's shape
 * (orchestrations/backupTree.ts): a range of windows is a leaf — at most BATCHES_PER_LEAF window
 * activities, `inFlight` at a time — or splits into child ranges, each a sub-orchestration of the same
 * range orchestrator, run one at a time. Generic over what a window activity returns (`S`), so each
 * operation adds its own counts. Deterministic: no I/O; instance IDs derive from the parent's.
 */
import type { OrchestrationContext, RetryOptions, Task } from 'durable-functions';
import { BatchRange, childRanges, CHILDREN_IN_FLIGHT, planPositions, waves } from './backupTree';
import { rangeInstanceId } from './instanceIds';
import { outcome } from './activityOutcome';

export interface WindowFanOut<S> {
  /** The range sub-orchestrator (registered under this name); its input is `rangeInput(range)`. */
  rangeOrchestrator: string;
  /** The window activity; its input is `windowInput(position)`. */
  windowActivity: string;
  /** The summary of nothing done, and how two summaries add (a range's children, a leaf's windows). */
  zero: S;
  add(total: S, part: S): S;
}

export interface FanOutRun<S> {
  retry: RetryOptions;
  /** Window activities a leaf keeps in flight. */
  inFlight: number;
  rangeInput(range: BatchRange): unknown;
  windowInput(position: number): unknown;
  /** Called before and after every wave with the summary so far and the sub-orchestrations in flight. */
  publish(summary: S, running: string[]): void;
}

/** Runs one range of windows: itself (a leaf) or through child range sub-orchestrations. */
export function* runWindowRange<S>(context: OrchestrationContext, fan: WindowFanOut<S>, run: FanOutRun<S>, range: BatchRange): Generator<Task, S, unknown> {
  const children = childRanges(range);
  if (children) return yield* runRanges(context, fan, run, children);
  let summary = fan.zero;
  run.publish(summary, []);
  for (const wave of waves(planPositions(range), run.inFlight)) {
    const tasks: Task[] = wave.map((position) => context.df.callActivityWithRetry(fan.windowActivity, run.retry, run.windowInput(position)));
    for (const part of (yield context.df.Task.all(tasks)) as unknown[]) summary = fan.add(summary, outcome<S>(part));
    run.publish(summary, []);
  }
  return summary;
}

/**
 * The root's part: all `windowCount` windows as range sub-orchestrations (one when they fit in a leaf),
 * so the root's own history holds only those, whatever the disk's size.
 */
export function* runAllWindows<S>(context: OrchestrationContext, fan: WindowFanOut<S>, run: FanOutRun<S>, windowCount: number): Generator<Task, S, unknown> {
  if (windowCount === 0) return fan.zero;
  const all: BatchRange = { first: 0, count: windowCount };
  return yield* runRanges(context, fan, run, childRanges(all) ?? [all]);
}

/** Range sub-orchestrations, CHILDREN_IN_FLIGHT at a time, publishing before and after each wave. */
function* runRanges<S>(context: OrchestrationContext, fan: WindowFanOut<S>, run: FanOutRun<S>, ranges: BatchRange[]): Generator<Task, S, unknown> {
  let summary = fan.zero;
  for (const wave of waves(ranges, CHILDREN_IN_FLIGHT)) {
    const ids = wave.map((range) => rangeInstanceId(context.df.instanceId, range));
    const tasks: Task[] = wave.map((range, i) => context.df.callSubOrchestrator(fan.rangeOrchestrator, run.rangeInput(range), ids[i]));
    run.publish(summary, ids);
    for (const part of (yield context.df.Task.all(tasks)) as S[]) summary = fan.add(summary, part);
    run.publish(summary, []);
  }
  return summary;
}
