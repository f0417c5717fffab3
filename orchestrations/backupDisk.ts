/**
 * The backup orchestrations. `backupDiskOrchestrator` plans (activity), copies every batch through
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
  Orchestrators,
  RangeOrchestrationInput,
  RangeSummary,
} from './contracts';
import { rangeInstanceId } from './instanceIds';
import { batchIndexes, BATCHES_IN_FLIGHT, childRanges, CHILDREN_IN_FLIGHT, waves } from './plan';
import { retryOptions } from './retry';
import { outcome } from './activityOutcome';
import type { PlanRef } from '../core/types';

export const EMPTY_SUMMARY: RangeSummary = {
  batches: 0,
  resumedBatches: 0,
  pages: 0,
  holePages: 0,
  zeroPages: 0,
  dedupedPages: 0,
  bytesRead: 0,
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
  };
}

export const backupDiskOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as BackupOrchestrationInput;
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

function* backupStages(context: OrchestrationContext, input: BackupOrchestrationInput): Generator<Task, BackupOrchestrationOutput, unknown> {
  const retry = retryOptions(input.retry);
  const status = (phase: BackupProgressStatus['phase'], batchesTotal: number, batchesDone: number) =>
    context.df.setCustomStatus({ phase, backupId: input.backupId, batchesTotal, batchesDone } satisfies BackupProgressStatus);

  status('planning', 0, 0);
  const plan = outcome<PlanRef>(yield context.df.callActivityWithRetry(Activities.planBackup, retry, activityInput(input)));

  let batches = { ...EMPTY_SUMMARY };
  let rangeOrchestrations = 0;
  if (!plan.alreadyComplete && plan.batchCount > 0) {
    const all = { first: 0, count: plan.batchCount };
    const ranges = childRanges(all) ?? [all];
    rangeOrchestrations = ranges.length;
    status('copying', plan.batchCount, 0);
    for (const wave of waves(ranges, CHILDREN_IN_FLIGHT)) {
      const tasks: Task[] = wave.map((range) =>
        context.df.callSubOrchestrator(
          Orchestrators.backupBatchRange,
          { ...input, range } satisfies RangeOrchestrationInput,
          rangeInstanceId(context.df.instanceId, range),
        ),
      );
      batches = addSummaries(batches, (yield context.df.Task.all(tasks)) as RangeSummary[]);
      status('copying', plan.batchCount, batches.batches);
    }
  }

  status('finalizing', plan.batchCount, batches.batches);
  const result = outcome<BackupResult>(yield context.df.callActivityWithRetry(Activities.finalizeBackup, retry, activityInput(input)));
  status('done', plan.batchCount, batches.batches);
  return {
    backupId: input.backupId,
    alreadyComplete: plan.alreadyComplete,
    batches,
    rangeOrchestrations,
    result,
  } satisfies BackupOrchestrationOutput;
}

/** Copies one range of batches: itself (a leaf) or through child ranges (a larger range). */
export const backupBatchRangeOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as RangeOrchestrationInput;
  const retry = retryOptions(input.retry);
  const children = childRanges(input.range);
  let summary = { ...EMPTY_SUMMARY };

  if (children) {
    for (const wave of waves(children, CHILDREN_IN_FLIGHT)) {
      const tasks: Task[] = wave.map((range) =>
        context.df.callSubOrchestrator(
          Orchestrators.backupBatchRange,
          { ...input, range } satisfies RangeOrchestrationInput,
          rangeInstanceId(context.df.instanceId, range),
        ),
      );
      summary = addSummaries(summary, (yield context.df.Task.all(tasks)) as RangeSummary[]);
      context.df.setCustomStatus({ batchesTotal: input.range.count, batchesDone: summary.batches });
    }
    return summary;
  }

  for (const wave of waves(batchIndexes(input.range), input.batchesInFlight ?? BATCHES_IN_FLIGHT)) {
    const tasks: Task[] = wave.map((batchIndex) =>
      context.df.callActivityWithRetry(Activities.runBackupBatch, retry, {
        ...activityInput(input),
        batchIndex,
      } satisfies BatchActivityInput),
    );
    summary = addSummaries(summary, ((yield context.df.Task.all(tasks)) as unknown[]).map((r) => outcome<BatchSummary>(r)));
    context.df.setCustomStatus({ batchesTotal: input.range.count, batchesDone: summary.batches });
  }
  return summary;
};
