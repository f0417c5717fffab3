/**
 * The backup orchestrations. `backupDiskOrchestrator` plans (activity) — full, or incremental with only
 * the batches holding a changed page listed — copies every listed batch through
 * `backupBatchRangeOrchestrator` sub-orchestrations — a leaf runs ≤ BATCHES_PER_LEAF batch activities in
 * waves of `batchesInFlight`; a larger range splits into child ranges, run one at a time — then
 * finalizes (activity),
 * which writes the manifest last. Deterministic: no I/O, clock or randomness outside `context.df`.
 */
import type { OrchestrationContext, OrchestrationHandler, Task } from 'durable-functions';
import {
  Activities,
  BackupActivityInput,
  BackupOrchestrationInput,
  BackupOrchestrationOutput,
  BackupProgressStatus,
  BackupResult,
  BatchActivityInput,
  BatchSummary,
  FinalizeActivityInput,
  Orchestrators,
  RangeOrchestrationInput,
  RangeSummary,
} from './contracts';
import { rangeInstanceId } from './instanceIds';
import { BatchRange, BATCHES_IN_FLIGHT, childRanges, CHILDREN_IN_FLIGHT, planPositions, waves } from './backupTree';
import type { RangeProgress } from './progress';
import { retryOptions } from './retry';
import { outcome } from './activityOutcome';
import type { PlanRef } from '../core';

export const EMPTY_SUMMARY: RangeSummary = {
  batches: 0,
  resumedBatches: 0,
  pages: 0,
  holePages: 0,
  zeroPages: 0,
  dedupedPages: 0,
  bytesRead: 0,
  bytesReadNow: 0,
  bytesStaged: 0,
  cacheHighWaterBytes: 0,
};

/** Adds batch summaries (or range summaries) into one range summary. */
export function addSummaries(total: RangeSummary, parts: Array<BatchSummary | RangeSummary>): RangeSummary {
  return parts.reduce<RangeSummary>(
    (sum, part) => {
      const isRange = 'batches' in part;
      return {
        batches: sum.batches + (isRange ? part.batches : 1),
        resumedBatches: sum.resumedBatches + (isRange ? part.resumedBatches : part.resumed ? 1 : 0),
        pages: sum.pages + part.pages,
        holePages: sum.holePages + part.holePages,
        zeroPages: sum.zeroPages + part.zeroPages,
        dedupedPages: sum.dedupedPages + part.dedupedPages,
        bytesRead: sum.bytesRead + part.bytesRead,
        bytesReadNow: (sum.bytesReadNow ?? 0) + (isRange ? part.bytesReadNow ?? 0 : part.resumed ? 0 : part.bytesRead),
        bytesStaged: sum.bytesStaged + part.bytesStaged,
        cacheHighWaterBytes: Math.max(sum.cacheHighWaterBytes, part.cacheHighWaterBytes),
      };
    },
    { ...total },
  );
}

function activityInput(input: BackupOrchestrationInput): BackupActivityInput {
  return {
    backupId: input.backupId,
    source: input.source,
    ...(input.expectedEtag ? { expectedEtag: input.expectedEtag } : {}),
    ...(input.settings ? { settings: input.settings } : {}),
    ...(input.vmCapture ? { vmCapture: true } : {}),
  };
}

/** The progress a range summary amounts to, plus the sub-orchestrations still in flight. */
function progressOf(total: number, summary: RangeSummary, running: string[] = []): RangeProgress {
  return { batchesTotal: total, batchesDone: summary.batches, pagesDone: summary.pages, bytesDone: summary.bytesRead, ...(running.length ? { running } : {}) };
}

/**
 * Runs ranges as sub-orchestrations, one wave at a time, publishing progress (with the wave's instance
 * IDs, so readers can add the children's own progress) before each wave and after it.
 */
function* runRanges(
  context: OrchestrationContext,
  input: BackupOrchestrationInput,
  ranges: BatchRange[],
  publish: (summary: RangeSummary, running: string[]) => void,
): Generator<Task, RangeSummary, unknown> {
  let summary = { ...EMPTY_SUMMARY };
  for (const wave of waves(ranges, CHILDREN_IN_FLIGHT)) {
    const ids = wave.map((range) => rangeInstanceId(context.df.instanceId, range));
    const tasks: Task[] = wave.map((range, i) =>
      context.df.callSubOrchestrator(Orchestrators.backupBatchRange, { ...input, range } satisfies RangeOrchestrationInput, ids[i]),
    );
    publish(summary, ids);
    summary = addSummaries(summary, (yield context.df.Task.all(tasks)) as RangeSummary[]);
    publish(summary, []);
  }
  return summary;
}

export const backupDiskOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as BackupOrchestrationInput;
  // A VM disk's grant is the VM disk orchestration's to revoke (orchestrations/backupVm.ts).
  if (input.source.grantedBy === 'compute' && !input.vmCapture) return yield* revokingGrantOnFailure(context, input);
  if (!input.settle) return yield* backupStages(context, input);
  try {
    return yield* backupStages(context, input);
  } catch (err) {
    // Started from an event: a blob that changed under the backup is watched again until it settles
    // (the activity decides from the blob's state, not from the message); the failure names the next step.
    const message = err instanceof Error ? err.message : String(err);
    const next = outcome<{ note: string }>(
      yield context.df.callActivityWithRetry(Activities.watchChangedBlob, retryOptions(input.retry), {
        source: input.source,
        backupId: input.backupId,
        expectedEtag: input.expectedEtag,
        settle: input.settle,
      }),
    );
    throw new Error(next.note ? `${message}; ${next.note}` : message);
  }
};

/**
 * A managed-disk snapshot the app's Compute grant opened: a failed backup ends that grant (a completed one
 * ends it as it finalizes), rather than leave its SAS alive for a day.
 */
function* revokingGrantOnFailure(context: OrchestrationContext, input: BackupOrchestrationInput): Generator<Task, BackupOrchestrationOutput, unknown> {
  try {
    return yield* backupStages(context, input);
  } catch (err) {
    yield context.df.callActivity(Activities.revokeSnapshotGrant, activityInput(input));
    throw err;
  }
}

function* backupStages(context: OrchestrationContext, input: BackupOrchestrationInput): Generator<Task, BackupOrchestrationOutput, unknown> {
  const retry = retryOptions(input.retry);
  // Replay-safe clock: when this orchestration (not this replay) started; the run's duration counts from here.
  const startedAt = context.df.currentUtcDateTime.toISOString();
  // Core's totals for a backup (OperationProgress): the disk's allocated pages and bytes, from the plan.
  let pagesTotal = 0;
  let bytesTotal = 0;
  let total = 0;
  let kind: Pick<BackupProgressStatus, 'kind' | 'base' | 'reason' | 'reasonText'> = {};
  const status = (phase: BackupProgressStatus['phase'], progress: RangeProgress) =>
    context.df.setCustomStatus({ phase, backupId: input.backupId, pagesTotal, bytesTotal, ...kind, ...progress } satisfies BackupProgressStatus);

  status('planning', progressOf(0, EMPTY_SUMMARY));
  const plan = outcome<PlanRef>(yield context.df.callActivityWithRetry(Activities.planBackup, retry, activityInput(input)));
  // A plan recorded in a history before allocatedPages existed replays without it: counts stay 0, never NaN.
  pagesTotal = plan.alreadyComplete ? 0 : plan.allocatedPages ?? 0;
  bytesTotal = plan.alreadyComplete ? 0 : plan.allocatedBytes;
  // An incremental's plan lists only the batches holding a changed page: the fan-out below covers those alone.
  total = plan.alreadyComplete ? 0 : plan.batchCount;
  // A plan recorded before #12 carries no kind: the status then says nothing of it rather than guess.
  if (plan.kind) kind = { kind: plan.kind, base: plan.base ?? null, reason: plan.reason ?? null, ...(plan.reasonText ? { reasonText: plan.reasonText } : {}) };

  let batches = { ...EMPTY_SUMMARY };
  let rangeOrchestrations = 0;
  if (!plan.alreadyComplete && plan.batchCount > 0) {
    const all = { first: 0, count: plan.batchCount };
    const ranges = childRanges(all) ?? [all];
    rangeOrchestrations = ranges.length;
    batches = yield* runRanges(context, input, ranges, (summary, running) => status('copying', progressOf(total, summary, running)));
  }

  status('finalizing', progressOf(total, batches));
  const finalizeInput: FinalizeActivityInput = { ...activityInput(input), startedAt, alreadyComplete: plan.alreadyComplete };
  const finalized = outcome<BackupResult>(yield context.df.callActivityWithRetry(Activities.finalizeBackup, retry, finalizeInput));
  status('done', progressOf(total, batches));
  return {
    backupId: input.backupId,
    alreadyComplete: plan.alreadyComplete,
    batches,
    rangeOrchestrations,
    // finalizeBackup ran no cache and read no source: the batch activities' figures are the run's.
    result: plan.alreadyComplete
      ? finalized
      : { ...finalized, cacheHighWaterBytes: Math.max(finalized.cacheHighWaterBytes, batches.cacheHighWaterBytes), bytesReadNow: batches.bytesReadNow ?? 0 },
  } satisfies BackupOrchestrationOutput;
}

/** Copies one range of batches: itself (a leaf) or through child ranges (a larger range). */
export const backupBatchRangeOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as RangeOrchestrationInput;
  const retry = retryOptions(input.retry);
  const children = childRanges(input.range);
  const publish = (summary: RangeSummary, running: string[] = []) => context.df.setCustomStatus(progressOf(input.range.count, summary, running));

  if (children) return yield* runRanges(context, input, children, publish);

  let summary = { ...EMPTY_SUMMARY };
  publish(summary);
  for (const wave of waves(planPositions(input.range), input.batchesInFlight ?? BATCHES_IN_FLIGHT)) {
    const tasks: Task[] = wave.map((planPosition) =>
      context.df.callActivityWithRetry(Activities.runBackupBatch, retry, {
        ...activityInput(input),
        planPosition,
      } satisfies BatchActivityInput),
    );
    summary = addSummaries(summary, ((yield context.df.Task.all(tasks)) as unknown[]).map((r) => outcome<BatchSummary>(r)));
    publish(summary);
  }
  return summary;
};
