/**
 * Retention after a scheduled run (issue #13): waits on durable timers until the run's backups have
 * finished (bounded), forgets by the policy's retention rules (tombstones only), then prunes when the
 * app's role allows it. Deterministic: the looks at the backups are activities, the waits durable timers.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { Activities, ForgetReport, PruneReport, RetainByPolicyInput, RetainByPolicyOutput } from './contracts';
import { outcome } from './activityOutcome';
import { retryOptions } from './retry';

export const DEFAULT_POLL_MINUTES = 5;
/** A scheduled run's backups normally finish within hours; past this the policy runs on what is complete. */
export const DEFAULT_MAX_WAIT_MINUTES = 12 * 60;
const MAX_MINUTES = 7 * 24 * 60;

function minutes(value: number | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_MINUTES ? value : fallback;
}

export const retainByPolicyOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  // Any input may arrive through the durable webhook: the activities check the IDs; prune only when said exactly.
  const input = (context.df.getInput() ?? {}) as Partial<RetainByPolicyInput>;
  const backupInstances = Array.isArray(input.backupInstances) ? input.backupInstances : [];
  const poll = minutes(input.pollMinutes, DEFAULT_POLL_MINUTES);
  const rounds = Math.ceil(minutes(input.maxWaitMinutes, DEFAULT_MAX_WAIT_MINUTES) / poll);
  const retry = retryOptions(input.retry);
  let waitedRounds = 0;
  let stillRunning = 0;
  // #17: a queued run's backups are found through its start records (the activity counts those not settled).
  const queuedRun = input.queuedRun && typeof input.queuedRun === 'object' ? input.queuedRun : undefined;
  if (backupInstances.length > 0 || queuedRun) {
    for (;;) {
      stillRunning = outcome<{ running: number }>(
        yield context.df.callActivityWithRetry(Activities.backupsSettled, retry, { instanceIds: backupInstances, ...(queuedRun ? { queuedRun } : {}) }),
      ).running;
      if (stillRunning === 0 || waitedRounds >= rounds) break;
      context.df.setCustomStatus({ phase: 'waiting', running: stillRunning });
      waitedRounds++;
      yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + poll * 60_000));
    }
  }
  context.df.setCustomStatus({ phase: 'forgetting' });
  const forget = outcome<ForgetReport>(yield context.df.callActivityWithRetry(Activities.forgetByPolicy, retry, {}));
  const output: RetainByPolicyOutput = { waitedRounds, stillRunning, forget };
  if (input.prune === true) {
    context.df.setCustomStatus({ phase: 'pruning' });
    output.prune = outcome<PruneReport>(yield context.df.callActivityWithRetry(Activities.pruneVaultActivity, retry, {}));
  }
  context.df.setCustomStatus({ phase: 'done', forgotten: forget.forgotten.length, ...(output.prune ? { bytesReclaimed: output.prune.bytesReclaimed } : {}) });
  return output;
};
