/**
 * Timer `sweepSnapshots` (#17): on PAGEWISE_SWEEP_SCHEDULE, core's sweeper (core/vm/snapshot-sweep.ts) deletes the
 * snapshots Pagewise took for VM backups that never got a manifest, past PAGEWISE_SWEEP_GRACE_HOURS, and ends
 * grants Pagewise left open; what runs is asked of this task hub's durable client. docs/VM.md "Nothing left behind".
 */
import * as df from 'durable-functions';
import type { DurableClient } from 'durable-functions';
import type { InvocationContext, Timer } from '@azure/functions';
import { ArmVmCompute, armSnapshotSweep, assertSubscriptionId, assertResourceGroupName, describeSweep, PagewiseError, PAGEWISE_VM_TAG, redact, sweepSnapshots, vmCaptureTag } from '../core';
import type { SnapshotSweepCompute, SweepActivity, SweepReport, SweepScope, SweptSnapshot } from '../core';
import { backupIdOfInstance, backupInstanceId, vmBackupIdOfInstance } from '../orchestrations/instanceIds';
import type { BackupOrchestrationInput } from '../orchestrations/contracts';
import type { VmBackupOrchestrationInput } from '../orchestrations/vmContracts';
import { snapshotBackupId } from './backupStarts';
import { loadPolicy } from './policy';
import { appSettings, Env, policySource, readSettings, readUserKey } from './settings';
import { findStatus } from './starter';
import { vmCompute } from './vmCompute';

export const SWEEP_SCHEDULE_SETTING = 'PAGEWISE_SWEEP_SCHEDULE';
export const SWEEP_GRACE_SETTING = 'PAGEWISE_SWEEP_GRACE_HOURS';
export const SWEEP_SCOPES_SETTING = 'PAGEWISE_SWEEP_SCOPES';
export const DEFAULT_SWEEP_GRACE_HOURS = 24;
export const MAX_SWEEP_GRACE_HOURS = 30 * 24;
/** Scopes one sweep lists at most. */
export const MAX_SWEEP_SCOPES = 100;

/** PAGEWISE_SWEEP_GRACE_HOURS (1 … 720, default 24): an orphan younger than this is kept. */
export function sweepGraceMs(env: Env = appSettings()): number {
  const raw = env[SWEEP_GRACE_SETTING]?.trim();
  if (!raw) return DEFAULT_SWEEP_GRACE_HOURS * 3600_000;
  const n = Number(raw);
  if (!/^\d{1,3}$/.test(raw) || n < 1 || n > MAX_SWEEP_GRACE_HOURS) {
    throw new PagewiseError('BadInput', `app setting ${SWEEP_GRACE_SETTING} must be a whole number of hours from 1 to ${MAX_SWEEP_GRACE_HOURS}, got "${raw.slice(0, 16)}"`);
  }
  return n * 3600_000;
}

const GUID_IN = /\/subscriptions\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/gi;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * PAGEWISE_SWEEP_SCOPES: `<subscription>` or `<subscription>/<resource group>`, comma-separated; unset, the
 * subscriptions the backup policy's VM selectors name (snapshots live beside their disks, anywhere in those).
 */
export async function sweepScopes(env: Env = appSettings()): Promise<SweepScope[]> {
  const raw = env[SWEEP_SCOPES_SETTING]?.trim();
  const scopes: SweepScope[] = [];
  if (raw) {
    for (const entry of raw.split(',').map((e) => e.trim()).filter(Boolean)) {
      const [sub, group, ...rest] = entry.split('/');
      if (rest.length > 0) throw new PagewiseError('BadInput', `app setting ${SWEEP_SCOPES_SETTING}: ${JSON.stringify(entry.slice(0, 120))} is not <subscription> or <subscription>/<resource group>`);
      const subscriptionId = assertSubscriptionId(sub, `app setting ${SWEEP_SCOPES_SETTING}'s subscription`);
      scopes.push({ subscriptionId, ...(group ? { resourceGroup: assertResourceGroupName(group, `app setting ${SWEEP_SCOPES_SETTING}'s resource group`) } : {}) });
    }
  } else {
    const source = policySource(env);
    if (!source.inline && !source.url) return [];
    const policy = await loadPolicy(source, readSettings(env));
    const subs = new Set<string>();
    for (const vm of policy.vms ?? []) {
      for (const text of [vm.id, vm.resourceGroup, vm.subscription, ...(vm.tag?.subscriptions ?? [])]) {
        if (!text) continue;
        if (GUID.test(text)) subs.add(text.toLowerCase());
        for (const m of text.matchAll(GUID_IN)) subs.add(m[1].toLowerCase());
      }
    }
    scopes.push(...[...subs].map((subscriptionId) => ({ subscriptionId })));
  }
  if (scopes.length > MAX_SWEEP_SCOPES) throw new PagewiseError('BadInput', `the sweep names ${scopes.length} scopes; at most ${MAX_SWEEP_SCOPES}`);
  return scopes;
}

/**
 * What runs in the task hub, read once per sweep: running VM backups (by ID and by their VM's capture tag) and
 * the disks running disk backups read (by Compute's unique ID and ARM ID). Pending counts as running.
 */
async function runningWork(client: DurableClient): Promise<{ vmBackups: Set<string>; vmTags: Set<string>; disks: Set<string> }> {
  const vmBackups = new Set<string>();
  const vmTags = new Set<string>();
  const disks = new Set<string>();
  const active = await client.getStatusBy({ runtimeStatus: [df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending] });
  for (const s of active) {
    const vmBackupId = vmBackupIdOfInstance(s.instanceId);
    const backupId = vmBackupId === undefined ? backupIdOfInstance(s.instanceId) : undefined;
    if (vmBackupId === undefined && backupId === undefined) continue;
    const input = (s.input ?? (await findStatus(client, s.instanceId))?.input) as Partial<VmBackupOrchestrationInput & BackupOrchestrationInput> | undefined;
    if (vmBackupId !== undefined) {
      vmBackups.add(vmBackupId);
      if (typeof input?.vmId === 'string') vmTags.add(vmCaptureTag(input.vmId));
    } else {
      const managed = input?.source?.managedDisk;
      if (managed?.sourceUniqueId) disks.add(managed.sourceUniqueId.toLowerCase());
      if (managed?.armDiskId) disks.add(managed.armDiskId.toLowerCase());
    }
  }
  return { vmBackups, vmTags, disks };
}

/** The sweeper's questions answered by the durable client. Unsure (a status that cannot be read) is "in use". */
export async function durableSweepActivity(client: DurableClient): Promise<SweepActivity> {
  const running = await runningWork(client);
  return {
    async inUse(s: SweptSnapshot, vmBackupId: string | undefined) {
      if (vmBackupId !== undefined && running.vmBackups.has(vmBackupId)) return true;
      const vmTag = s.tags[PAGEWISE_VM_TAG];
      if (vmTag !== undefined && running.vmTags.has(vmTag)) return true;
      return [s.sourceUniqueId, s.sourceResourceId].some((d) => d !== undefined && running.disks.has(d.toLowerCase()));
    },
    async grantedByPagewise(s: SweptSnapshot) {
      return (await findStatus(client, backupInstanceId(snapshotBackupId(s.id)))) !== undefined;
    },
  };
}

/** One sweep with the app's settings (the timer's work; tests pass their clock as `now`). */
export async function runSnapshotSweep(client: DurableClient, context: InvocationContext, now: Date, compute: SnapshotSweepCompute = defaultSweepCompute()): Promise<SweepReport> {
  const scopes = await sweepScopes();
  const settings = readSettings();
  const report = await sweepSnapshots({
    compute,
    activity: await durableSweepActivity(client),
    scopes,
    vault: settings.vault,
    userKey: readUserKey(),
    graceMs: sweepGraceMs(),
    clock: () => now.getTime(),
  });
  const line = `snapshot sweep at ${now.toISOString()} over ${scopes.length} scope(s): ${describeSweep(report)}`;
  if (report.problems.length > 0) context.warn(redact(line));
  else context.log(line);
  return report;
}

function defaultSweepCompute(): SnapshotSweepCompute {
  const compute = vmCompute();
  if (!(compute instanceof ArmVmCompute)) throw new PagewiseError('BadInput', 'the snapshot sweep needs the ARM Compute view (its VM Compute was replaced)');
  return armSnapshotSweep(compute);
}

df.app.client.timer('sweepSnapshots', {
  schedule: `%${SWEEP_SCHEDULE_SETTING}%`,
  handler: async (_timer: Timer, client: DurableClient, context: InvocationContext) => {
    await runSnapshotSweep(client, context, new Date());
  },
});
