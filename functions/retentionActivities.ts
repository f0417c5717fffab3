/**
 * The retention activities (issue #13): prune the vault, forget by the policy's retention rules, and look
 * at how many of a scheduled run's backups still run. Inputs are checked here (the durable webhook starts
 * an orchestration with any input); permanent failures come back as values, transient ones are retried.
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { DAY_MS, forgetBackups, ForgetReport, isPagewiseError, pruneVault, PruneReport } from '../core';
import { Activities } from '../orchestrations/contracts';
import { reportingPermanentFailures } from './permanentFailures';
import { pruneActivityInput, settledActivityInput } from './activityInputs';
import { loadPolicy, policyDiskIdentity, retentionOf } from './policy';
import { policySource, pruneMinGraceDays, readSettings, readUserKey } from './settings';
import { shutdownSignal } from './shutdown';
import { findStatus } from './starter';

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

/** Forgets, disk by disk, what the policy's retention rules do not keep; an empty report when the policy has none. */
export async function forgetByAppPolicy(): Promise<ForgetReport> {
  const settings = readSettings();
  const report: ForgetReport = { forgotten: [], kept: [], alreadyForgotten: [], dryRun: false };
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
  return report;
}

export function registerRetentionActivities(o: { prune: boolean }): void {
  df.app.activity(Activities.forgetByPolicy, {
    handler: reportingPermanentFailures(async (_input: unknown, context: InvocationContext) => {
      const report = await forgetByAppPolicy();
      context.log(`retention by policy: ${report.forgotten.length} backup(s) forgotten, ${report.kept.length} kept, ${report.alreadyForgotten.length} already forgotten`);
      return report;
    }),
  });

  df.app.activity(Activities.backupsSettled, {
    extraInputs: [df.input.durableClient()],
    handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
      const { instanceIds } = settledActivityInput(input);
      const client = df.getClient(context);
      let running = 0;
      for (const id of instanceIds) {
        const status = await findStatus(client, id);
        if (status && RUNNING.has(status.runtimeStatus)) running++;
      }
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
