/**
 * The verify orchestrations (#17): `planVerify` (activity: opens the backup, checks it whole, counts its
 * windows) → every window through `verifyWindowRangeOrchestrator` sub-orchestrations (windowFanOut.ts:
 * leaves of ≤ BATCHES_PER_LEAF `verifyWindow` activities, `windowsInFlight` at a time) → the result,
 * made here from the plan and the windows' sum (core verifyResultOf: pure, the same as the CLI's). A
 * backup that does not verify fails the orchestration, naming its first problems. Every end — verified,
 * failed, or stopped by an error — is recorded last by `recordVerification` (#18). Deterministic.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import type { Task } from 'durable-functions';
import { addVerifySummaries, MAX_RECORD_PROBLEMS, NO_VERIFY_WINDOWS, redact, verifyResultOf } from '../core';
import type { VerifiedBy, VerifyResult } from '../core';
import type { BatchRange } from './backupTree';
import {
  Activities,
  Orchestrators,
  RecordVerificationInput,
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
  const { trigger, ...request } = input;
  const by: VerifiedBy = trigger === 'timer' ? 'schedule' : trigger === 'cli' ? 'cli' : 'http';
  let result: VerifyResult;
  try {
    result = yield* verifyAll(context, request);
  } catch (err) {
    // Could not run to its end (the backup unreadable, storage gone past the retries): a failed record too.
    yield* recordOutcome(context, input, by, false, [redact(errorText(err))]);
    throw err;
  }
  yield* recordOutcome(context, input, by, result.ok, result.problems);
  // A backup that does not verify is a failed verification, not a successful one with a flag.
  if (!result.ok) throw new Error(`backup ${input.backupId} failed verification: ${result.problems.slice(0, 5).join('; ')}`);
  return result;
};

/** The plan, every window, the result (core verifyResultOf: pure, the same as the CLI's). */
function* verifyAll(context: OrchestrationContext, input: Omit<VerifyOrchestrationInput, 'trigger'>): Generator<Task, VerifyResult, unknown> {
  // Replay-safe clock: the result's duration runs from this orchestration's start to its end.
  const startedAt = context.df.currentUtcDateTime.getTime();
  const status = (s: VerifyProgressStatus) => context.df.setCustomStatus(s);
  status({ phase: 'verifying', backupId: input.backupId, ...NO_PROGRESS });
  const { retry, requestFingerprint: _fingerprint, ...planInput } = input;
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
  return result;
}

/**
 * #18: the verification's record in the vault (and a failed scheduled one's error line), at the
 * orchestration's replay-safe end time. A record that cannot be written does not change the verdict:
 * the activity logs it, and the next nights' samples see the backup as its previous record left it.
 */
function* recordOutcome(context: OrchestrationContext, input: VerifyOrchestrationInput, by: VerifiedBy, ok: boolean, problems: string[]): Generator<Task, void, unknown> {
  const record: RecordVerificationInput = {
    backupId: input.backupId,
    instanceId: context.df.instanceId,
    by,
    at: context.df.currentUtcDateTime.toISOString(),
    ok,
    readData: input.readData ?? true,
    ...(ok ? {} : { problems: problems.slice(0, MAX_RECORD_PROBLEMS) }),
  };
  try {
    yield context.df.callActivityWithRetry(Activities.recordVerification, retryOptions(input.retry), record);
  } catch {
    // Said by the activity's own error log; the verdict stands.
  }
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Checks one range of windows: itself (a leaf) or through child ranges. */
export const verifyWindowRangeOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as VerifyRangeInput;
  const publish = (summary: VerifyWindowSummary, running: string[]) => context.df.setCustomStatus(windowProgress(input.range.count, summary, running));
  return yield* runWindowRange(context, VERIFY_FAN, fanOutRun(input.windows, input.windowsInFlight, input.retry, publish), input.range);
};
