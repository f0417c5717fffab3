/**
 * The restore orchestrations (issue #17): plan (activity: checks and creates the target, cuts the disk
 * into windows) → every window through `restoreWindowRange` sub-orchestrations (orchestrations/
 * windowFanOut.ts) → finalize (activity: marks the blob complete, or renames the file into place). A
 * failure after the plan abandons (activity: removes what the plan made), then fails as it failed.
 * Deterministic: no I/O, clock or randomness outside `context.df`.
 */
import type { OrchestrationContext, OrchestrationHandler, Task } from 'durable-functions';
import { addWindowSummaries, NO_WINDOWS } from '../core';
import type { RestorePlan, RestoreWindowSummary } from '../core';
import {
  Activities,
  DiskRef,
  ManagedDiskPlanInput,
  ManagedDiskRestoreInput,
  OperationProgressStatus,
  Orchestrators,
  RestoreOrchestrationInput,
  RestoreOrchestrationOutput,
  RestorePlanInput,
  RestorePlanOutput,
  RestoreProgressStatus,
  RestoreRangeInput,
  RestoreStepInput,
  RestoreWindowInput,
} from './contracts';
import { NO_PROGRESS } from './progress';
import { retryOptions } from './retry';
import { outcome } from './activityOutcome';
import { FanOutRun, runAllWindows, runWindowRange, WindowFanOut } from './windowFanOut';

/** The restore's windows: a window activity returns what it wrote; a range adds its windows' summaries. */
export const restoreFanOut: WindowFanOut<RestoreWindowSummary> = {
  rangeOrchestrator: Orchestrators.restoreWindowRange,
  windowActivity: Activities.restoreWindow,
  zero: NO_WINDOWS,
  add: addWindowSummaries,
};

function fanOutRun(input: RestoreRangeInput, publish: FanOutRun<RestoreWindowSummary>['publish']): FanOutRun<RestoreWindowSummary> {
  return {
    retry: retryOptions(input.retry),
    inFlight: input.windowsInFlight,
    rangeInput: (range) => ({ ...input, range }) satisfies RestoreRangeInput,
    windowInput: (window) => ({ ...input.step, window }) satisfies RestoreWindowInput,
    publish,
  };
}

function statusOf(phase: OperationProgressStatus['phase'], backupId: string, plan: RestorePlan | undefined, done: RestoreWindowSummary): RestoreProgressStatus {
  if (!plan) return { phase, backupId, ...NO_PROGRESS, windowsTotal: 0, windowsDone: 0 };
  return { phase, backupId, pagesDone: done.pages, pagesTotal: plan.entryCount, bytesDone: done.bytes, bytesTotal: plan.entryBytes, windowsTotal: plan.windowCount, windowsDone: done.windows };
}

/** The activities a restore's plan, finalize and abandon are (a blob or file target, or a new managed disk), and the plan's input. */
interface RestoreSteps {
  plan: string;
  planInput: unknown;
  finalize: string;
  abandon: string;
  /** The later steps' target, unless the plan hands back its own (a managed disk's sealed grant). */
  target?: DiskRef;
}

function* runRestore(context: OrchestrationContext, input: { backupId: string; retry?: RestoreRangeInput['retry'] }, steps: RestoreSteps): Generator<Task, RestoreOrchestrationOutput, unknown> {
  const retry = retryOptions(input.retry);
  // Replay-safe clock: the restore's duration counts from the orchestration's start.
  const startedAt = context.df.currentUtcDateTime.getTime();
  context.df.setCustomStatus(statusOf('restoring', input.backupId, undefined, NO_WINDOWS));
  // A failed plan leaves nothing (it removes what it made itself, or names the disk it could not): no abandon step.
  const planned = outcome<RestorePlanOutput>(yield context.df.callActivityWithRetry(steps.plan, retry, steps.planInput));
  const { plan, windowsInFlight } = planned;
  const target = planned.target ?? steps.target;
  if (!target) throw new Error(`the ${steps.plan} activity returned no target`);
  const step: RestoreStepInput = { backupId: input.backupId, target, plan };
  // With the range sub-orchestrations in flight: a reader adds their windows done so far (orchestrations/progress.ts).
  const publish = (done: RestoreWindowSummary, running: string[]) => context.df.setCustomStatus({ ...statusOf('restoring', input.backupId, plan, done), ...(running.length ? { running } : {}) });
  try {
    const rangeInput: RestoreRangeInput = { step, range: { first: 0, count: plan.windowCount }, windowsInFlight, ...(input.retry ? { retry: input.retry } : {}) };
    const done = yield* runAllWindows(context, restoreFanOut, fanOutRun(rangeInput, publish), plan.windowCount);
    const finalized = outcome<{ backupId: string; target: string; diskBytes: number }>(yield context.df.callActivityWithRetry(steps.finalize, retry, step));
    context.df.setCustomStatus(statusOf('done', input.backupId, plan, done));
    return {
      ...finalized,
      pagesWritten: done.pages,
      bytesWritten: done.bytesWritten,
      windows: done.windows,
      durationMs: Math.max(0, context.df.currentUtcDateTime.getTime() - startedAt),
    } satisfies RestoreOrchestrationOutput;
  } catch (err) {
    try {
      yield context.df.callActivityWithRetry(steps.abandon, retry, step);
    } catch {
      // The restore's own failure is the one to report; a target abandon could not remove stays marked incomplete.
    }
    throw err;
  }
}

export const restoreDiskOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as RestoreOrchestrationInput;
  const planInput: RestorePlanInput = { backupId: input.backupId, target: input.target, ...(input.overwrite !== undefined ? { overwrite: input.overwrite } : {}), operationId: context.df.instanceId };
  return yield* runRestore(context, input, { plan: Activities.planRestore, planInput, finalize: Activities.finalizeRestore, abandon: Activities.abandonRestore, target: input.target });
};

/** #17 mdrestore: a restore to a new managed disk — the same windows, through the disk's sealed write grant. */
export const restoreManagedDiskOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as ManagedDiskRestoreInput;
  const planInput: ManagedDiskPlanInput = { backupId: input.backupId, managedDisk: input.managedDisk, operationId: context.df.instanceId };
  return yield* runRestore(context, input, { plan: Activities.planManagedDiskRestore, planInput, finalize: Activities.finalizeManagedDiskRestore, abandon: Activities.abandonManagedDiskRestore });
};

/** A range of restore windows: itself (a leaf, its window activities in waves) or through child ranges. */
export const restoreWindowRangeOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext): Generator<Task, RestoreWindowSummary, unknown> {
  const input = context.df.getInput() as RestoreRangeInput;
  // A range's own status: the restore's page totals, its own windows, the child ranges it waits on.
  const publish = (done: RestoreWindowSummary, running: string[]) =>
    context.df.setCustomStatus({ ...statusOf('restoring', input.step.backupId, input.step.plan, done), windowsTotal: input.range.count, ...(running.length ? { running } : {}) });
  return yield* runWindowRange(context, restoreFanOut, fanOutRun(input, publish), input.range);
};
