/**
 * Timer trigger: on the schedule in app setting PAGEWISE_BACKUP_SCHEDULE (NCRONTAB), start a backup of
 * every policy disk due today. A disk whose state has not changed since its last backup derives the
 * same backup ID, finds the completed instance, and is not backed up twice. Each run is incremental on
 * the disk's newest backup when it can be, full when the policy says so for today (policy.ts fullDue).
 * A policy with `retention` then starts the retention orchestration: once the run's backups are done it
 * forgets by the rules and, where the app's role may delete, prunes (issue #13). A policy with `vms`
 * (#16) also starts one VM backup per VM its due entries name.
 * #17: in start mode `queue` (the default) the timer starts nothing itself: it enqueues one start message
 * per due disk and VM, and the queue trigger (functions/backupStartQueue.ts) starts them within the start
 * budget; the retention run then waits for the firing's start records.
 */
import * as df from 'durable-functions';
import type { InvocationContext, Timer } from '@azure/functions';
import { DAY_MS, describeSelector, displayUrl, forEachLimited, redact, vmsInScope } from '../core';
import type { ConsistencyLevel } from '../core';
import { Orchestrators, RetainByPolicyInput } from '../orchestrations/contracts';
import { backupInstanceId, retentionInstanceId, vmBackupInstanceId } from '../orchestrations/instanceIds';
import { startDiskBackup } from './backupStarts';
import { BackupPolicy, disksDue, fullDue, loadPolicy, policyDiskIdentity, vmsDue } from './policy';
import { sealRef } from './sealedRefs';
import { startMode, startRecordDays, startsContainer, startsQueue } from './startBudget';
import { pruneStartRecords } from './startRecords';
import { encodeStartMessage, firedAtOf, firingOf, StartMessage, startIdFor } from './startMessages';
import { startVmBackup } from './vmBackupStarts';
import { vmCompute } from './vmCompute';
import { appRole, assertAllowedAccount, BACKUP_SCHEDULE_SETTING, mayDelete, policySource, readSettings, readUserKey } from './settings';
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
  /** #17: start mode `queue` — the start IDs enqueued (disks, then VMs); `started`/`skipped` stay empty then. */
  queued?: string[];
  /** #17: start mode `queue` — start records older than PAGEWISE_START_RECORD_DAYS this run deleted. */
  startRecordsDeleted?: number;
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

/** A due VM: each VM once however many entries name it — full when any of them says so today, the first entry's consistency. */
interface DueVm {
  vmId: string;
  full: boolean;
  consistency?: ConsistencyLevel;
}

/**
 * The due VM entries expanded into VMs (Compute lists, Resource Graph for tags). An entry whose VMs
 * cannot be listed is logged and counted in `run.failed`; it does not stop the others.
 */
async function dueVms(context: InvocationContext, policy: BackupPolicy, now: Date, run: ScheduledVmRun): Promise<DueVm[]> {
  const wanted = new Map<string, DueVm>();
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
  return [...wanted.values()];
}

/** One VM backup orchestration per due VM (start mode `direct`). One VM that fails is logged and does not stop the others. */
export async function runScheduledVmBackups(client: df.DurableClient, context: InvocationContext, policy: BackupPolicy, now: Date): Promise<ScheduledVmRun> {
  const run: ScheduledVmRun = { due: 0, started: [], skipped: [], failed: [] };
  const wanted = await dueVms(context, policy, now, run);
  run.due = wanted.length;
  // The VM backup ID names the firing to the minute: a firing delivered twice joins its own runs.
  const firedAt = new Date(firedAtOf(now));
  for (const vm of wanted) {
    try {
      const started = await startVmBackup(client, { vmId: vm.vmId, ...(vm.full ? { full: true } : {}), ...(vm.consistency ? { consistency: vm.consistency } : {}) }, firedAt, 'timer');
      (started.started ? run.started : run.skipped).push(started.vmBackupId);
    } catch (err) {
      run.failed.push(vm.vmId);
      context.error(`scheduled backup of VM ${vm.vmId} not started: ${redact(String(err))}`);
    }
  }
  context.log(`scheduled VM backups at ${now.toISOString()}: ${run.due} VMs due, ${run.started.length} started, ${run.skipped.length} already started, ${run.failed.length} failed`);
  return run;
}

/**
 * Start mode `queue` (#17): one start message per due disk and VM, in the order of the policy. A disk
 * whose message cannot be made (an account not allowed) is counted failed and logged; the queue being
 * unreachable fails the firing (the timer runs again at the next schedule; the start IDs are the same
 * for a firing delivered twice, and a start of a backup that exists joins it).
 */
async function enqueueScheduledStarts(context: InvocationContext, policy: BackupPolicy, now: Date, run: ScheduledRun): Promise<void> {
  const settings = readSettings();
  const userKey = readUserKey();
  const firedAt = firedAtOf(now);
  const messages: StartMessage[] = [];
  for (const disk of disksDue(policy, now)) {
    try {
      assertAllowedAccount(settings, disk.url, 'blob', 'policy disk');
      const { url, days: _days, fullOn: _fullOn, full: _full, ...overrides } = disk;
      const source = sealRef({ url }, userKey);
      const settingsOf = { ...overrides, ...(fullDue(disk, now) ? { full: true } : {}) };
      messages.push({
        v: 1,
        kind: 'disk',
        startId: startIdFor(now, 'disk', policyDiskIdentity(url)),
        firedAt,
        deferrals: 0,
        source: { url: source.url, ...(source.sealedSas ? { sealedSas: source.sealedSas } : {}) },
        ...(Object.keys(settingsOf).length > 0 ? { settings: settingsOf } : {}),
      });
    } catch (err) {
      run.failed.push(displayUrl(disk.url));
      context.error(`scheduled backup of ${displayUrl(disk.url)} not queued: ${redact(String(err))}`);
    }
  }
  if (policy.vms?.length) {
    const vms: ScheduledVmRun = { due: 0, started: [], skipped: [], failed: [] };
    const wanted = await dueVms(context, policy, now, vms);
    vms.due = wanted.length;
    run.vms = vms;
    for (const vm of wanted) {
      messages.push({
        v: 1,
        kind: 'vm',
        startId: startIdFor(now, 'vm', vm.vmId),
        firedAt,
        deferrals: 0,
        vmId: vm.vmId,
        ...(vm.full ? { full: true } : {}),
        ...(vm.consistency ? { consistency: vm.consistency } : {}),
      });
    }
  }
  const queue = startsQueue();
  await queue.createIfNotExists();
  run.queued = [];
  await forEachLimited(messages, ENQUEUE_CONCURRENCY, async (message) => {
    await queue.sendMessage(encodeStartMessage(message));
    run.queued!.push(message.startId);
  });
  context.log(`scheduled backups at ${now.toISOString()}: ${run.due} disks due, ${run.vms?.due ?? 0} VMs due, ${run.queued.length} starts queued, ${run.failed.length} failed`);
}

/** The start records older than PAGEWISE_START_RECORD_DAYS deleted; a failure is logged, it stops no backup. */
async function pruneOldStartRecords(context: InvocationContext, now: Date, run: ScheduledRun): Promise<void> {
  try {
    run.startRecordsDeleted = await pruneStartRecords(startsContainer(), new Date(now.getTime() - startRecordDays() * DAY_MS));
    if (run.startRecordsDeleted) context.log(`scheduled backups: ${run.startRecordsDeleted} start records older than ${startRecordDays()} days deleted`);
  } catch (err) {
    context.error(`scheduled backups: old start records not deleted: ${redact(String(err))}`);
  }
}

/** Start messages sent at once (a fleet of thousands enqueues in seconds, not minutes). */
const ENQUEUE_CONCURRENCY = 16;

/** One scheduled run at `now` (the clock is a parameter so the weekday logic is testable). */
export async function runScheduledBackups(client: df.DurableClient, context: InvocationContext, now: Date): Promise<ScheduledRun> {
  const settings = readSettings();
  const policy = await loadPolicy(policySource(), settings);
  const due = disksDue(policy, now);
  const run: ScheduledRun = { due: due.length, started: [], skipped: [], failed: [] };
  if (startMode() === 'queue') {
    await enqueueScheduledStarts(context, policy, now, run);
    await pruneOldStartRecords(context, now, run);
  } else {
    for (const disk of due) {
      try {
        assertAllowedAccount(settings, disk.url, 'blob', 'policy disk');
        const { url, days: _days, fullOn: _fullOn, full: _full, ...overrides } = disk;
        const started = await startDiskBackup(client, { url }, { settings: { ...overrides, ...(fullDue(disk, now) ? { full: true } : {}) }, trigger: 'timer' });
        (started.started ? run.started : run.skipped).push(started.backupId);
      } catch (err) {
        // One unreachable disk must not stop the others' backups.
        run.failed.push(displayUrl(disk.url));
        context.error(`scheduled backup of ${displayUrl(disk.url)} not started: ${redact(String(err))}`);
      }
    }
    context.log(`scheduled backups at ${now.toISOString()}: ${run.due} due, ${run.started.length} started, ${run.skipped.length} already done or running, ${run.failed.length} failed`);
    if (policy.vms?.length) run.vms = await runScheduledVmBackups(client, context, policy, now);
  }
  if (policy.retention) {
    // The VM backups of this run too: their retention waits for them as for the disks'.
    const vmInstances = run.vms ? [...run.vms.started, ...run.vms.skipped].map(vmBackupInstanceId) : [];
    const input: RetainByPolicyInput = {
      backupInstances: [...[...run.started, ...run.skipped].map(backupInstanceId), ...vmInstances],
      prune: mayDelete(appRole()),
      // Queued starts: their backups are known only once started; the wait reads the firing's start records.
      ...(run.queued ? { queuedRun: { run: firingOf(now), starts: run.queued.length } } : {}),
    };
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
