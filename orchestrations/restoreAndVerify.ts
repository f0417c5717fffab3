/**
 * Restore and verify orchestrations: one retried activity each (core streams the whole backup with
 * bounded memory); the orchestration gives them durable status, retries and deduplicated starts.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { Activities, RestoreOrchestrationInput, VerifyOrchestrationInput } from './contracts';
import { retryOptions } from './retry';
import { outcome } from './activityOutcome';

export const restoreDiskOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as RestoreOrchestrationInput;
  context.df.setCustomStatus({ phase: 'restoring', backupId: input.backupId });
  const { retry, requestFingerprint: _fingerprint, ...activityInput } = input;
  const result = outcome<unknown>(yield context.df.callActivityWithRetry(Activities.restoreBackup, retryOptions(retry), activityInput));
  context.df.setCustomStatus({ phase: 'done', backupId: input.backupId });
  return result;
};

export const verifyBackupOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as VerifyOrchestrationInput;
  context.df.setCustomStatus({ phase: 'verifying', backupId: input.backupId });
  const { retry, requestFingerprint: _fingerprint, ...activityInput } = input;
  const result = outcome<{ ok: boolean; problems: string[] }>(yield context.df.callActivityWithRetry(Activities.verifyBackup, retryOptions(retry), activityInput));
  context.df.setCustomStatus({ phase: 'done', backupId: input.backupId, ok: result.ok });
  // A backup that does not verify is a failed verification, not a successful one with a flag.
  if (!result.ok) throw new Error(`backup ${input.backupId} failed verification: ${result.problems.slice(0, 5).join('; ')}`);
  return result;
};
