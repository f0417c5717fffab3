/**
 * Timer trigger: on the schedule in app setting PAGEWISE_BACKUP_SCHEDULE (NCRONTAB), start a backup of
 * every policy disk due today. A disk whose state has not changed since its last backup derives the
 * same backup ID, finds the completed instance, and is not backed up twice. Each run is incremental on
 * the disk's newest backup when it can be, full when the policy says so for today (policy.ts fullDue).
 * A policy with `retention` then starts the retention orchestration: once the run's backups are done it
 * forgets by the rules and, where the app's role may delete, prunes (issue #13). A policy with `vms`
 * (#16) also starts one VM backup per VM its due entries name.
 */
import * as df from 'durable-functions';
import type { InvocationContext, Timer } from '@azure/functions';
import { describeSelector, displayUrl, redact, vmsInScope } from '../core';
import type { ConsistencyLevel } from '../core';
import { Orchestrators, RetainByPolicyInput } from '../orchestrations/contracts';
import { backupInstanceId, retentionInstanceId, vmBackupInstanceId } from '../orchestrations/instanceIds';
import { startDiskBackup } from './backupStarts';
import { BackupPolicy, disksDue, fullDue, loadPolicy, vmsDue } from './policy';
import { startVmBackup } from './vmBackupStarts';
import { vmCompute } from './vmCompute';
import { appRole, assertAllowedAccount, BACKUP_SCHEDULE_SETTING, mayDelete, policySource, readSettings } from './settings';
import { startOnce } from './starter';

export interface ScheduledRun {
  due: number;
  started: string[];
  skipped: string[];
  failed: string[];
  /** The retention orchestration this run started (a policy with `retention`). */
  retention?: string;
  /** VM backups this run started (a policy with `vms`, #16). */
  vms?: ScheduledVmRun;
}

export interface ScheduledVmRun {
  /** Distinct VMs the due entries named. */
  due: number;
  /** VM backup IDs started, and those already started for this run (a firing delivered twice). */
  started: string[];
  skipped: string[];
  /** VMs (IDs) whose backup did not start, and entries (described) whose VMs could not be listed. */
  failed: string[];
}

/**
 * The due VM entries expanded into VMs (Compute lists, Resource Graph for tags), each VM once however
 * many entries name it — full when any of them says so today, the first entry's consistency — then one
 * VM backup orchestration per VM. One entry or VM that fails is logged and does not stop the others.
 */
export async function runScheduledVmBackups(client: df.DurableClient, context: InvocationContext, policy: BackupPolicy, now: Date): Promise<ScheduledVmRun> {
  const run: ScheduledVmRun = { due: 0, started: [], skipped: [], failed: [] };
  const wanted = new Map<string, { vmId: string; full: boolean; consistency?: ConsistencyLevel }>();
  for (const entry of vmsDue(policy, now)) {
    let ids: string[];
    try {
      ids = await vmsInScope(vmCompute(), entry);
    } catch (err) {
      run.failed.push(describeSelector(entry));
      context.error(`scheduled VM backups of ${describeSelector(entry)} not started: ${redact(String(err))}`);
      continue;
    }
    for (const vmId of ids) {
      const key = vmId.toLowerCase();
      const seen = wanted.get(key);
      const full = fullDue(entry, now);
      if (seen) seen.full ||= full;
      else wanted.set(key, { vmId, full, ...(entry.consistency ? { consistency: entry.consistency } : {}) });
    }
  }
  run.due = wanted.size;
  // The VM backup ID names the firing to the minute: a firing delivered twice joins its own runs.
  const firedAt = new Date(Math.floor(now.getTime() / 60_000) * 60_000);
  for (const vm of wanted.values()) {
    try {
      const started = await startVmBackup(client, { vmId: vm.vmId, ...(vm.full ? { full: true } : {}), ...(vm.consistency ? { consistency: vm.consistency } : {}) }, firedAt);
      (started.started ? run.started : run.skipped).push(started.vmBackupId);
    } catch (err) {
      run.failed.push(vm.vmId);
      context.error(`scheduled backup of VM ${vm.vmId} not started: ${redact(String(err))}`);
    }
  }
  context.log(`scheduled VM backups at ${now.toISOString()}: ${run.due} VMs due, ${run.started.length} started, ${run.skipped.length} already started, ${run.failed.length} failed`);
  return run;
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
  if (policy.vms?.length) run.vms = await runScheduledVmBackups(client, context, policy, now);
  if (policy.retention) {
    // The VM backups of this run too: their retention waits for them as for the disks'.
    const vmInstances = run.vms ? [...run.vms.started, ...run.vms.skipped].map(vmBackupInstanceId) : [];
    const input: RetainByPolicyInput = { backupInstances: [...[...run.started, ...run.skipped].map(backupInstanceId), ...vmInstances], prune: mayDelete(appRole()) };
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
