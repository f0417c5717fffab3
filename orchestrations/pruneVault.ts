/**
 * The prune orchestration (issue #13): one retried activity that runs core `pruneVault` — gather, sweep,
 * repack, mark — with durable status, retries of transient trouble only (a permanent failure such as a
 * version-1 vault or a wrong key fails at once), and an instance ID the HTTP API hands out. Deterministic:
 * no I/O, clock or randomness outside `context.df`.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { Activities, PruneOrchestrationInput, PruneProgressStatus, PruneReport } from './contracts';
import { outcome } from './activityOutcome';
import { retryOptions } from './retry';

export const pruneVaultOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = (context.df.getInput() ?? {}) as PruneOrchestrationInput;
  const dryRun = input.dryRun === true;
  context.df.setCustomStatus({ phase: 'pruning', dryRun } satisfies PruneProgressStatus);
  const { retry, ...activityInput } = input;
  const report = outcome<PruneReport>(yield context.df.callActivityWithRetry(Activities.pruneVaultActivity, retryOptions(retry), activityInput));
  context.df.setCustomStatus({
    phase: 'done',
    dryRun,
    pruneId: report.pruneId,
    bytesReclaimed: report.bytesReclaimed,
    ...(report.blocked ? { blocked: report.blocked } : {}),
  } satisfies PruneProgressStatus);
  return report;
};
