/**
 * The retention activities (issue #13): prune the vault, forget by the policy's retention rules, and look
 * at how many of a scheduled run's backups still run. Inputs are checked here (the durable webhook starts
 * an orchestration with any input); permanent failures come back as values, transient ones are retried.
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { DAY_MS, describeSelector, forgetBackups, ForgetReport, forgetVmBackupsByPolicy, isPagewiseError, KeepPolicy, pruneVault, PruneReport, redact, uniqueVmIds, vmsInScope } from '../core';
import type { StorageLocation } from '../core';
import { Activities } from '../orchestrations/contracts';
import { reportingPermanentFailures } from './permanentFailures';
import { pruneActivityInput, settledActivityInput } from './activityInputs';
import { BackupPolicy, loadPolicy, policyDiskIdentity, retentionOf } from './policy';
import { policySource, pruneMinGraceDays, readSettings, readUserKey } from './settings';
import { shutdownSignal } from './shutdown';
import { findStatus } from './starter';
import { startsContainer } from './startBudget';
import { listStartRecords } from './startRecords';
import { vmCompute } from './vmCompute';

const RUNNING = new Set(['Running', 'Pending', 'ContinuedAsNew']);

/** core pruneVault with the app's vault and key; `maxUnused` and `repack` as the request says. */
export async function pruneWithAppSettings(input: unknown): Promise<PruneReport> {
  const { dryRun, maxUnused, repack } = pruneActivityInput(input);
  const settings = readSettings();
  return pruneVault({
    vault: settings.vault,
    userKey: readUserKey(),
    dryRun: dryRun ?? false,
    ...(maxUnused !== undefined && maxUnused !== null ? { params: { maxUnused } } : {}),
    ...(repack !== undefined && repack !== null ? { repack } : {}),
    minGraceMs: pruneMinGraceDays() * DAY_MS,
    ...(settings.engine.scratchDir ? { scratchDir: settings.engine.scratchDir } : {}), // index compaction's spill files
    abortSignal: shutdownSignal(),
  });
}

/** What the policy's retention did to the VM backups of its `vms` selectors (FORMAT §27.6). */
export interface VmRetentionReport {
  forgotten: { vmId: string; vmBackupId: string; graceEndsAt: string; diskBackups: string[] }[];
  kept: { vmId: string; vmBackupId: string; reasons: string[] }[];
  /** A selector whose VMs could not be listed, or a VM whose backups could not be forgotten: why (the others went on). */
  problems?: { what: string; problem: string }[];
}

/** The retention report: per disk as core's, and the VM backups' when the policy names VMs. */
export type PolicyForgetReport = ForgetReport & { vmBackups?: VmRetentionReport };

/**
 * The policy's keep rules over the VM backups of every VM its `vms` selectors name now (each VM once):
 * the VM backups they do not keep forgotten with their disk backups. One selector or VM failing is said
 * and does not stop the others; a VM without VM backups yet has nothing to forget.
 */
export async function forgetVmsByPolicy(policy: BackupPolicy, keep: KeepPolicy, graceMs: number | undefined, vault: StorageLocation, userKey: Buffer): Promise<VmRetentionReport> {
  const report: VmRetentionReport = { forgotten: [], kept: [] };
  const problems: NonNullable<VmRetentionReport['problems']> = [];
  const ids: string[] = [];
  for (const selector of policy.vms ?? []) {
    try {
      ids.push(...(await vmsInScope(vmCompute(), selector)));
    } catch (err) {
      problems.push({ what: describeSelector(selector), problem: redact(err instanceof Error ? err.message : String(err)) });
    }
  }
  for (const vmId of uniqueVmIds(ids)) {
    try {
      const one = await forgetVmBackupsByPolicy(vault, userKey, vmId, keep, graceMs !== undefined ? { graceMs } : {});
      report.forgotten.push(...one.forgotten.map((f) => ({ vmId, ...f })));
      report.kept.push(...one.kept.map((k) => ({ vmId, ...k })));
      for (const p of one.problems ?? []) problems.push({ what: p.id, problem: p.problem });
    } catch (err) {
      if (isPagewiseError(err, 'BackupNotFound')) continue;
      if (!isPagewiseError(err)) throw err; // transient: the activity is retried
      problems.push({ what: vmId, problem: redact(err.message) });
    }
  }
  return problems.length > 0 ? { ...report, problems } : report;
}

/** Forgets, disk by disk and VM by VM, what the policy's retention rules do not keep; an empty report when the policy has none. */
export async function forgetByAppPolicy(): Promise<PolicyForgetReport> {
  const settings = readSettings();
  const report: PolicyForgetReport = { forgotten: [], kept: [], alreadyForgotten: [], dryRun: false };
  const source = policySource();
  // A prune app may run without a policy: then it only prunes.
  if (!source.inline && !source.url) return report;
  const policy = await loadPolicy(source, settings);
  const retention = retentionOf(policy);
  if (!retention) return report;
  const disks = [...new Set(policy.disks.map((d) => policyDiskIdentity(d.url)))];
  for (const disk of disks) {
    let one: ForgetReport;
    try {
      one = await forgetBackups({ vault: settings.vault, userKey: readUserKey(), policy: retention.keep, disk, ...(retention.graceMs !== undefined ? { graceMs: retention.graceMs } : {}) });
    } catch (err) {
      // A policy disk with no complete backup yet (new, or every run failed so far): nothing to forget there.
      if (isPagewiseError(err) && err.code === 'BackupNotFound') continue;
      throw err;
    }
    report.forgotten.push(...one.forgotten);
    report.kept.push(...one.kept);
    report.alreadyForgotten.push(...one.alreadyForgotten);
    if (one.problems?.length) (report.problems ??= []).push(...one.problems);
  }
  if (policy.vms?.length) report.vmBackups = await forgetVmsByPolicy(policy, retention.keep, retention.graceMs, settings.vault, readUserKey());
  return report;
}

/**
 * #17 B: of a queued run's `starts`, those not settled yet — still in the queue (no record), failing and to
 * be retried, or started and still running. A start given up (poisoned) or whose backup ended is settled.
 */
async function unsettledStarts(client: df.DurableClient, run: string, starts: number): Promise<number> {
  let settled = 0;
  for (const record of await listStartRecords(startsContainer(), { prefix: `start-${run}-`, limit: starts })) {
    if (record.state === 'poisoned') settled++;
    else if (record.state === 'started' && record.instanceId) {
      const status = await findStatus(client, record.instanceId);
      if (!status || !RUNNING.has(status.runtimeStatus)) settled++;
    }
  }
  return Math.max(0, starts - settled);
}

export function registerRetentionActivities(o: { prune: boolean }): void {
  df.app.activity(Activities.forgetByPolicy, {
    handler: reportingPermanentFailures(async (_input: unknown, context: InvocationContext) => {
      const report = await forgetByAppPolicy();
      const vms = report.vmBackups ? `; VM backups: ${report.vmBackups.forgotten.length} forgotten, ${report.vmBackups.kept.length} kept${report.vmBackups.problems ? `, ${report.vmBackups.problems.length} problem(s)` : ''}` : '';
      context.log(`retention by policy: ${report.forgotten.length} backup(s) forgotten, ${report.kept.length} kept, ${report.alreadyForgotten.length} already forgotten${vms}`);
      return report;
    }),
  });

  df.app.activity(Activities.backupsSettled, {
    extraInputs: [df.input.durableClient()],
    handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
      const { instanceIds, queuedRun } = settledActivityInput(input);
      const client = df.getClient(context);
      let running = 0;
      for (const id of instanceIds) {
        const status = await findStatus(client, id);
        if (status && RUNNING.has(status.runtimeStatus)) running++;
      }
      if (queuedRun) running += await unsettledStarts(client, queuedRun.run, queuedRun.starts);
      return { running };
    }),
  });

  if (!o.prune) return;
  df.app.activity(Activities.pruneVaultActivity, {
    handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
      const report = await pruneWithAppSettings(input ?? {});
      context.log(`prune ${report.pruneId}${report.dryRun ? ' (dry run)' : ''}: ${report.bytesReclaimed} bytes reclaimed, ${report.pending.packs + report.pending.tables + report.pending.staging} item(s) pending${report.blocked ? `; blocked: ${report.blocked}` : ''}`);
      return report;
    }),
  });
}
