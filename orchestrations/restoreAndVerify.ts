/**
 * The verify orchestration: one retried activity (core streams the whole backup with bounded memory);
 * the orchestration gives it durable status, retries and deduplicated starts. Its status carries core's
 * progress counts: 0 of 0 while the activity runs (an orchestrator does no I/O and hears from its
 * activity only when it ends), the activity's final counts when done. Restores: orchestrations/restoreDisk.ts.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { Activities, OperationProgressStatus, VerifyOrchestrationInput, VerifyResult, WithProgress } from './contracts';
import { countsOf, NO_PROGRESS } from './progress';
import { retryOptions } from './retry';
import { outcome } from './activityOutcome';

export const verifyBackupOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as VerifyOrchestrationInput;
  context.df.setCustomStatus({ phase: 'verifying', backupId: input.backupId, ...NO_PROGRESS } satisfies OperationProgressStatus);
  const { retry, requestFingerprint: _fingerprint, ...activityInput } = input;
  const { progress, ...result } = outcome<WithProgress<VerifyResult>>(yield context.df.callActivityWithRetry(Activities.verifyBackup, retryOptions(retry), activityInput));
  context.df.setCustomStatus({ phase: 'done', backupId: input.backupId, ...countsOf(progress), ok: result.ok } satisfies OperationProgressStatus);
  // A backup that does not verify is a failed verification, not a successful one with a flag.
  if (!result.ok) throw new Error(`backup ${input.backupId} failed verification: ${result.problems.slice(0, 5).join('; ')}`);
  return result;
};
