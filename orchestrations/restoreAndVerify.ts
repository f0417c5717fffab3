/**
 * The restore orchestration: one retried activity (core streams the whole backup with bounded memory);
 * the orchestration gives it durable status, retries and deduplicated starts. Its status carries core's
 * progress counts: 0 of 0 while the activity runs (an orchestrator does no I/O and hears from its
 * activity only when it ends), the activity's final counts when done. (Verify fans out: verifyBackup.ts.)
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { Activities, OperationProgressStatus, RestoreOrchestrationInput, RestoreResult, WithProgress } from './contracts';
import { countsOf, NO_PROGRESS } from './progress';
import { retryOptions } from './retry';
import { outcome } from './activityOutcome';

export const restoreDiskOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as RestoreOrchestrationInput;
  context.df.setCustomStatus({ phase: 'restoring', backupId: input.backupId, ...NO_PROGRESS } satisfies OperationProgressStatus);
  const { retry, requestFingerprint: _fingerprint, ...activityInput } = input;
  const { progress, ...result } = outcome<WithProgress<RestoreResult>>(yield context.df.callActivityWithRetry(Activities.restoreBackup, retryOptions(retry), activityInput));
  context.df.setCustomStatus({ phase: 'done', backupId: input.backupId, ...countsOf(progress) } satisfies OperationProgressStatus);
  return result;
};
