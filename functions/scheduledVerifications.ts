/**
 * #18: the nightly verifications. On PAGEWISE_VERIFY_SCHEDULE (NCRONTAB; unset = off, the timer is not
 * registered) pick a rotating sample of the vault's complete backups whose bytes fit
 * PAGEWISE_VERIFY_BYTES_PER_NIGHT (core pickVerifications: never verified first, then least recently
 * verified) — at most PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT of them — and start one read-data verify orchestration each, `verify-n<yyyymmdd>-<backup ID>`: a timer
 * fired again that night picks the same backups and starts nothing twice. Each verification records its
 * outcome (functions/verifyActivities.ts recordVerification); its input's `trigger: 'timer'` makes telemetry's
 * PagewiseVerifyStarted/Completed/Failed say `trigger: timer` (the alert on failed scheduled verifications).
 */
import * as df from 'durable-functions';
import type { InvocationContext, Timer } from '@azure/functions';
import { DAY_MS, formatBytes, listBackups, pickVerifications, redact, withLastVerified } from '../core';
import type { VerifySample } from '../core';
import { Orchestrators, VerifyOrchestrationInput } from '../orchestrations/contracts';
import { scheduledVerifyInstanceId, scheduledVerifyPrefix } from '../orchestrations/instanceIds';
import { readSettings, readUserKey, VERIFY_BYTES_SETTING, VERIFY_MAX_STARTS_SETTING, VERIFY_SCHEDULE_SETTING, verifyBytesPerNight, verifyMaxStartsPerNight, verifyScheduled } from './settings';
import { startOnce } from './starter';

export interface ScheduledVerifyRun {
  /** The sample: what was picked (bytes ≤ the budget), how many could have been, those too large for any night. */
  sample: VerifySample;
  /** Instance IDs started by this firing. */
  started: string[];
  /** Instance IDs that existed already (this night's earlier firing). */
  skipped: string[];
  /** Backup IDs whose verification could not be started (logged). */
  failed: string[];
}

/** The backups that have a verification instance of this night already (any state): a firing delivered again keeps them. */
async function startedTonight(client: df.DurableClient, firedAt: Date): Promise<Set<string>> {
  const prefix = scheduledVerifyPrefix(firedAt);
  // Bounded to the last two days where the task hub can filter by creation time (Azure); the prefix decides.
  const statuses = await client.getStatusBy({ createdTimeFrom: new Date(Date.now() - 2 * DAY_MS) });
  return new Set(statuses.filter((s) => s.instanceId.startsWith(prefix)).map((s) => s.instanceId.slice(prefix.length)));
}

/** One firing at `firedAt` (a parameter: tests simulate nights). */
export async function runScheduledVerifications(client: df.DurableClient, context: InvocationContext, firedAt: Date): Promise<ScheduledVerifyRun> {
  const settings = readSettings();
  const userKey = readUserKey();
  const budget = verifyBytesPerNight();
  const maxStarts = verifyMaxStartsPerNight();
  const { backups: listings, problems } = await withLastVerified(settings.vault, userKey, await listBackups(settings.vault, { userKey }));
  // An untrusted record counts as none: its backup looks unverified and is picked early.
  for (const problem of problems) context.warn(`verification record not trusted: ${redact(problem)}`);
  const sample = pickVerifications(listings, budget, await startedTonight(client, firedAt), maxStarts);
  const run: ScheduledVerifyRun = { sample, started: [], skipped: [], failed: [] };
  for (const { backupId } of sample.picked) {
    const input: VerifyOrchestrationInput = { backupId, readData: true, trigger: 'timer' };
    try {
      const started = await startOnce(client, Orchestrators.verifyBackup, scheduledVerifyInstanceId(firedAt, backupId), input, { restartFailed: false });
      (started.started ? run.started : run.skipped).push(started.instanceId);
    } catch (err) {
      // One that cannot start must not stop the others; it leads the next night's sample (still unverified).
      run.failed.push(backupId);
      context.error(`scheduled verification of backup ${backupId} not started: ${redact(String(err))}`);
    }
  }
  for (const big of sample.tooLarge) {
    context.warn(`backup ${big.backupId} (${formatBytes(big.bytes)}) is larger than ${VERIFY_BYTES_SETTING} (the nightly budget, ${formatBytes(budget)}) and is never verified by the schedule: raise it, or verify the backup by hand`);
  }
  if (sample.leftByStarts) {
    context.warn(`${sample.leftByStarts} backups fitted tonight's bytes but not ${VERIFY_MAX_STARTS_SETTING} (${maxStarts}): they lead the next night; raise it if nights never catch up`);
  }
  context.log(
    `scheduled verifications at ${firedAt.toISOString()}: ${sample.picked.length} of ${sample.candidates} backups picked (${formatBytes(sample.bytes)} of ${formatBytes(budget)}), ` +
      `${run.started.length} started, ${run.skipped.length} already started tonight, ${run.failed.length} failed, ${sample.tooLarge.length} too large`,
  );
  return run;
}

/** Registers the timer when PAGEWISE_VERIFY_SCHEDULE is set (functions/index.ts, after the app settings are in). */
export function registerScheduledVerifications(): void {
  if (!verifyScheduled()) return;
  df.app.client.timer('scheduledVerifications', {
    schedule: `%${VERIFY_SCHEDULE_SETTING}%`,
    handler: async (_timer: Timer, client: df.DurableClient, context: InvocationContext) => {
      await runScheduledVerifications(client, context, new Date());
    },
  });
}
