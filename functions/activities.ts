/**
 * The durable activities: each rebuilds a core request from small references plus app settings
 * (vault, user key, engine limits) and calls the engine. Inputs never carry keys or page data.
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { asAlreadyExisted, finalizeBackup, managedCaptureAccess, planBackup, runBackupBatch, displayUrl, PagewiseError, redact } from '../core';
import { reportingPermanentFailures } from './permanentFailures';
import type { BackupRequest } from '../core';
import { Activities, BackupActivityInput } from '../orchestrations/contracts';
import { shutdownSignal } from './shutdown';
import { backupActivityInput } from './activityInputs';
import { allowedSource, engineSettings, readSettings, readUserKey } from './settings';
import { isOwnGrant, managedSnapshotAccess, snapshotAccess } from './compute';
import { snapshotRefOf } from './events/diskEvents';
import { vmCompute } from './vmCompute';

export { reportingPermanentFailures };

function backupRequest(input: BackupActivityInput): BackupRequest & { backupId: string } {
  const settings = readSettings();
  const userKey = readUserKey();
  const { full, ...overrides } = input.settings ?? {};
  return {
    ...engineSettings(settings, overrides),
    source: allowedSource(settings, input.source, userKey, 'the source disk URL'),
    ...(full ? { full: true } : {}),
    vault: settings.vault,
    userKey,
    backupId: input.backupId,
    abortSignal: shutdownSignal(),
    ...(input.expectedEtag ? { expectedEtag: input.expectedEtag } : {}),
  };
}

/** The batch activity's plan position, under its name or the one earlier orchestrations used (`batchIndex`). */
function planPositionOf(input: { planPosition?: number; batchIndex?: number }): number {
  const { planPosition, batchIndex } = input;
  if (planPosition !== undefined && batchIndex !== undefined) {
    throw new PagewiseError('BadInput', "the backup activity's input is invalid: (input) has both \"planPosition\" and its former name \"batchIndex\"");
  }
  const position = planPosition ?? batchIndex;
  if (position === undefined) throw new PagewiseError('BadInput', "the backup activity's input is invalid: (input) is missing the required field \"planPosition\"");
  return position;
}

df.app.activity(Activities.planBackup, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const checked = backupActivityInput(input);
    const req = backupRequest(checked);
    context.log(`planning backup ${req.backupId} of ${displayUrl(req.source.url)}`);
    // A managed-disk snapshot's base is an earlier snapshot resource: Compute checks it and grants its read
    // URL here, in the activity, for the diff alone (revoked by core once the diff is done); no history holds it.
    // A VM disk's base is a snapshot or a disk restore point: the VM Compute view knows both (#16).
    const managed = req.source.managedDisk ? (checked.vmCapture ? managedCaptureAccess(vmCompute()) : managedSnapshotAccess(snapshotAccess())) : undefined;
    const plan = await planBackup(managed ? { ...req, managedSnapshots: managed } : req);
    if (plan.reasonText) context.log(`backup ${req.backupId} is full (${plan.reason}): ${redact(plan.reasonText)}`);
    return plan;
  }),
});

df.app.activity(Activities.runBackupBatch, {
  handler: reportingPermanentFailures(async (input: unknown) => {
    const checked = backupActivityInput(input);
    const { planPosition: _planPosition, batchIndex: _batchIndex, ...rest } = checked;
    return runBackupBatch({ ...backupRequest(rest), planPosition: planPositionOf(checked) });
  }),
});

df.app.activity(Activities.finalizeBackup, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const { startedAt, alreadyComplete, planPosition: _planPosition, batchIndex: _batchIndex, ...rest } = backupActivityInput(input);
    const req = backupRequest(rest);
    // Every batch has read the snapshot: its grant ends before the manifest makes it the next backup's base
    // (whose plan grants it again), so this revoke never cuts that plan's diff short.
    await revokeSourceGrant(rest, context);
    const finalized = await finalizeBackup(req);
    // The whole run, from the orchestration's start (plan) to the manifest, not this step alone.
    const whole = startedAt ? { ...finalized, durationMs: Math.max(0, Date.now() - Date.parse(startedAt)) } : finalized;
    const result = alreadyComplete ? asAlreadyExisted(whole) : whole;
    context.log(`backup ${req.backupId} complete: ${result.pages} pages, ${result.bytesStored} bytes stored`);
    return result;
  }),
});

/**
 * Ends the Compute read grant of a managed-disk snapshot the backup read (the Event Grid start granted
 * it), when the backup is done with it: before finalizing, or when the backup failed. Only this app's own
 * grant names a snapshot to revoke; a failed revoke is logged, never fails the backup (the SAS expires).
 */
async function revokeSourceGrant(input: BackupActivityInput, context: InvocationContext): Promise<boolean> {
  const { source } = input;
  // A VM disk's grant is revoked by its own orchestration's revokeVmDisk, through the VM Compute view.
  if (input.vmCapture) return false;
  const resourceId = source.managedDisk?.snapshotResourceId;
  if (source.grantedBy !== 'compute' || !resourceId || !isOwnGrant(source, readUserKey())) return false;
  const ref = snapshotRefOf(resourceId);
  const access = snapshotAccess();
  if (!ref || !access.revokeRead) return false;
  try {
    await access.revokeRead(ref);
    return true;
  } catch (err) {
    context.warn(`backup ${input.backupId}: the read grant of snapshot ${ref.snapshotName} was not revoked (${redact(err instanceof Error ? err.message : String(err))}); it expires on its own`);
    return false;
  }
}

df.app.activity(Activities.revokeSnapshotGrant, {
  handler: async (input: unknown, context: InvocationContext) => ({ revoked: await revokeSourceGrant(backupActivityInput(input), context) }),
});
