/**
 * Timer trigger: on the schedule in app setting PAGEWISE_BACKUP_SCHEDULE (NCRONTAB), start a backup of
 * every policy disk due today. A disk whose state has not changed since its last backup derives the
 * same backup ID, finds the completed instance, and is not backed up twice. Each run is incremental on
 * the disk's newest backup when it can be, full when the policy says so for today (policy.ts fullDue).
 * A policy with `retention` then starts the retention orchestration: once the run's backups are done it
 * forgets by the rules and, where the app's role may delete, prunes (issue #13).
 */
import * as df from 'durable-functions';
import type { InvocationContext, Timer } from '@azure/functions';
import { displayUrl, redact } from '../core';
import { Orchestrators, RetainByPolicyInput } from '../orchestrations/contracts';
import { backupInstanceId, retentionInstanceId } from '../orchestrations/instanceIds';
import { startDiskBackup } from './backupStarts';
import { disksDue, fullDue, loadPolicy } from './policy';
import { appRole, assertAllowedAccount, BACKUP_SCHEDULE_SETTING, mayDelete, policySource, readSettings } from './settings';
import { startOnce } from './starter';

export interface ScheduledRun {
  due: number;
  started: string[];
  skipped: string[];
  failed: string[];
  /** The retention orchestration this run started (a policy with `retention`). */
  retention?: string;
}

/** One scheduled run at `now` (the clock is a parameter so the weekday logic is testable). */
export async function runScheduledBackups(client: df.DurableClient, context: InvocationContext, now: Date): Promise<ScheduledRun> {
  const settings = readSettings();
  const policy = await loadPolicy(policySource(), settings);
  const due = disksDue(policy, now);
  const run: ScheduledRun = { due: due.length, started: [], skipped: [], failed: [] };
  for (const disk of due) {
    try {
      assertAllowedAccount(settings, disk.url, 'blob', 'policy disk');
      const { url, days: _days, fullOn: _fullOn, full: _full, ...overrides } = disk;
      const started = await startDiskBackup(client, { url }, { settings: { ...overrides, ...(fullDue(disk, now) ? { full: true } : {}) } });
      (started.started ? run.started : run.skipped).push(started.backupId);
    } catch (err) {
      // One unreachable disk must not stop the others' backups.
      run.failed.push(displayUrl(disk.url));
      context.error(`scheduled backup of ${displayUrl(disk.url)} not started: ${redact(String(err))}`);
    }
  }
  context.log(`scheduled backups at ${now.toISOString()}: ${run.due} due, ${run.started.length} started, ${run.skipped.length} already done or running, ${run.failed.length} failed`);
  if (policy.retention) {
    const input: RetainByPolicyInput = { backupInstances: [...run.started, ...run.skipped].map(backupInstanceId), prune: mayDelete(appRole()) };
    const started = await startOnce(client, Orchestrators.retainByPolicy, retentionInstanceId(now), input, { restartFailed: false });
    run.retention = started.instanceId;
  }
  return run;
}

df.app.client.timer('scheduledBackups', {
  schedule: `%${BACKUP_SCHEDULE_SETTING}%`,
  handler: async (_timer: Timer, client: df.DurableClient, context: InvocationContext) => {
    await runScheduledBackups(client, context, new Date());
  },
});
