/**
 * The verify orchestrations (#17): `planVerify` (activity: opens the backup, checks it whole, counts its
 * windows) → every window through `verifyWindowRangeOrchestrator` sub-orchestrations (windowFanOut.ts:
 * leaves of ≤ BATCHES_PER_LEAF `verifyWindow` activities, `windowsInFlight` at a time) → the result,
 * made here from the plan and the windows' sum (core verifyResultOf: pure, the same as the CLI's). A
 * backup that does not verify fails the orchestration, naming its first problems. Deterministic.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { addVerifySummaries, NO_VERIFY_WINDOWS, verifyResultOf } from '../core';
import type { BatchRange } from './backupTree';
import {
  Activities,
  Orchestrators,
  RetrySettings,
  VerifyOrchestrationInput,
  VerifyPlanOutput,
  VerifyProgressStatus,
  VerifyRangeInput,
  VerifyWindowInput,
  VerifyWindowProgress,
  VerifyWindowsInput,
  VerifyWindowSummary,
} from './contracts';
import { outcome } from './activityOutcome';
import { NO_PROGRESS } from './progress';
import { retryOptions } from './retry';
import { FanOutRun, runAllWindows, runWindowRange, WindowFanOut } from './windowFanOut';

const VERIFY_FAN: WindowFanOut<VerifyWindowSummary> = {
  rangeOrchestrator: Orchestrators.verifyWindowRange,
  windowActivity: Activities.verifyWindow,
  zero: NO_VERIFY_WINDOWS,
  add: addVerifySummaries,
};

/** The windows' progress a summary amounts to, with the ranges still in flight. */
function windowProgress(windowsTotal: number, summary: VerifyWindowSummary, running: string[]): VerifyWindowProgress {
  return { windowsTotal, windowsDone: summary.windows, pagesDone: summary.pagesChecked, bytesDone: summary.pageBytes, ...(running.length ? { running } : {}) };
}

/** How the root and every range run windows: the same inputs, retries and bound, passed down the tree. */
function fanOutRun(windows: VerifyWindowsInput, windowsInFlight: number, retry: RetrySettings | undefined, publish: FanOutRun<VerifyWindowSummary>['publish']): FanOutRun<VerifyWindowSummary> {
  return {
    retry: retryOptions(retry),
    inFlight: windowsInFlight,
    rangeInput: (range: BatchRange) => ({ windows, range, windowsInFlight, ...(retry ? { retry } : {}) }) satisfies VerifyRangeInput,
    windowInput: (window: number) => ({ ...windows, window }) satisfies VerifyWindowInput,
    publish,
  };
}

export const verifyBackupOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as VerifyOrchestrationInput;
  // Replay-safe clock: the result's duration runs from this orchestration's start to its end.
  const startedAt = context.df.currentUtcDateTime.getTime();
  const status = (s: VerifyProgressStatus) => context.df.setCustomStatus(s);
  status({ phase: 'verifying', backupId: input.backupId, ...NO_PROGRESS });
  const { retry, requestFingerprint: _fingerprint, trigger: _trigger, ...planInput } = input;
  const plan = outcome<VerifyPlanOutput>(yield context.df.callActivityWithRetry(Activities.planVerify, retryOptions(retry), planInput));
  const totals = { pagesTotal: plan.pagesTotal, bytesTotal: plan.bytesTotal };
  const windows: VerifyWindowsInput = {
    backupId: input.backupId,
    readData: plan.readData,
    windowPages: plan.windowPages,
    ...(plan.manifestName ? { manifestName: plan.manifestName } : {}),
    // A source whose size is not the backup's is the plan's problem: the windows do not compare with it.
    ...(plan.compare && input.source ? { source: input.source } : {}),
  };
  const publish = (summary: VerifyWindowSummary, running: string[]) =>
    status({ phase: 'verifying', backupId: input.backupId, ...totals, ...windowProgress(plan.windowCount, summary, running) });
  const summary = yield* runAllWindows(context, VERIFY_FAN, fanOutRun(windows, plan.windowsInFlight, retry, publish), plan.windowCount);
  const result = verifyResultOf(plan, summary, context.df.currentUtcDateTime.getTime() - startedAt);
  status({ phase: 'done', backupId: input.backupId, ...totals, ...windowProgress(plan.windowCount, summary, []), ok: result.ok });
  // A backup that does not verify is a failed verification, not a successful one with a flag.
  if (!result.ok) throw new Error(`backup ${input.backupId} failed verification: ${result.problems.slice(0, 5).join('; ')}`);
  return result;
};

/** Checks one range of windows: itself (a leaf) or through child ranges. */
export const verifyWindowRangeOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as VerifyRangeInput;
  const publish = (summary: VerifyWindowSummary, running: string[]) => context.df.setCustomStatus(windowProgress(input.range.count, summary, running));
  return yield* runWindowRange(context, VERIFY_FAN, fanOutRun(input.windows, input.windowsInFlight, input.retry, publish), input.range);
};
