/**
 * A restore to a new managed disk in windows (issue #17): the plan creates the Upload disk (never one that
 * exists) and opens its write grant; the windows (core/restore/restore-window.ts) write pages through it;
 * finalize writes the VHD footer and revokes; abandon revokes and names the incomplete disk.
 */
import { PagewiseError, isPagewiseError, throwIfAborted } from '../errors';
import { SECTOR } from '../limits';
import { readRestoreFacts, RESTORE_PLAN_VERSION, RESTORE_WINDOW_BYTES, RestorePlan, RestorePlanRequest, RestoreStepRequest, windowPagesFor, assertPlanOf } from '../restore/restore-plan';
import { RESTORE_OPERATION_RE } from '../restore/restore-marks';
import { StorageLocation } from '../types';
import { parseDiskId } from './arm-ids';
import type { VmProvisioningCompute } from './compute';
import {
  createRestoreDisk,
  diskExistsError,
  diskPageWriter,
  grantLocation,
  incompleteDiskError,
  ManagedDiskTarget,
  RESTORE_GRANT_SECONDS,
  RESTORED_TAGS,
  targetDiskId,
  uploadDataBytes,
} from './managed-disk-steps';

/** The tag naming the restore operation that created a disk (docs/DURABLE.md "Restore fan-out"): a retried plan finds its own disk by it. */
export const RESTORE_OPERATION_TAG = 'pagewise-restore';

/** A disk in this state still takes pages: its grant is open and its footer not checked yet. */
const ACTIVE_UPLOAD = 'ActiveUpload';

export interface ManagedDiskPlanRequest extends Omit<RestorePlanRequest, 'target' | 'overwrite' | 'keepFiles'> {
  compute: VmProvisioningCompute;
  disk: ManagedDiskTarget;
  grantSeconds?: number;
}

/** The plan, and the write grant's URL (a secret: the caller seals it before it goes anywhere). */
export interface ManagedDiskPlan {
  plan: RestorePlan;
  grantUrl: string;
}

const whatOf = (name: string) => `the managed disk ${name}`;

/**
 * Checks the name free (a disk this operation created itself, still uploading, is taken up again: a retried
 * plan), reads the backup's facts, creates the Upload disk tagged with the operation, and grants write.
 * A failure after the create revokes and names the disk.
 */
export async function planManagedDiskRestore(req: ManagedDiskPlanRequest): Promise<ManagedDiskPlan> {
  throwIfAborted(req.abortSignal, 'the restore was interrupted');
  if (!RESTORE_OPERATION_RE.test(req.operationId)) throw new PagewiseError('BadInput', 'the restore operation ID must be 1 to 200 letters, digits or :+._-');
  const windowBytes = req.windowBytes ?? RESTORE_WINDOW_BYTES.default;
  windowPagesFor(windowBytes, SECTOR);
  const diskId = targetDiskId(req.disk);
  const what = whatOf(req.disk.name);
  const existing = await req.compute.getDisk(diskId).catch((err) => {
    if (isPagewiseError(err, 'TargetNotFound') || (err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  });
  const own = existing?.tags?.[RESTORE_OPERATION_TAG] === req.operationId && existing.tags?.pagewise === RESTORED_TAGS.pagewise && existing.diskState === ACTIVE_UPLOAD;
  if (existing && !own) throw diskExistsError(req.disk);
  const facts = await readRestoreFacts(req, windowBytes);
  const dataBytes = uploadDataBytes(facts.diskBytes, req.backupId);
  if (!existing) await createRestoreDisk(req.compute, req.disk, dataBytes, { [RESTORE_OPERATION_TAG]: req.operationId });
  try {
    const grantUrl = await req.compute.grantDiskWrite(diskId, req.grantSeconds ?? RESTORE_GRANT_SECONDS);
    await grantLocation(grantUrl, what, [req.vault]);
    return { plan: { ...facts, overwrite: false, kind: 'managedDisk', display: diskId, dataBytes }, grantUrl };
  } catch (err) {
    await req.compute.revokeDiskAccess(diskId).catch(() => {}); // the plan's own failure is the one to report
    throw incompleteDiskError(err, req.disk.name);
  }
}

/** A managed-disk step: the request's target is the plan's write grant (StorageLocation.managedDiskGrant). */
export interface ManagedDiskStepRequest extends RestoreStepRequest {
  compute: VmProvisioningCompute;
  target: StorageLocation;
}

async function diskOfPlan(req: ManagedDiskStepRequest, plan: RestorePlan): Promise<{ diskId: string; name: string }> {
  await assertPlanOf(req, plan);
  if (plan.kind !== 'managedDisk' || plan.version !== RESTORE_PLAN_VERSION) throw new PagewiseError('BadInput', 'the restore plan does not belong to this request: not a managed-disk restore');
  return { diskId: plan.display, name: parseDiskId(plan.display).diskName };
}

/**
 * Writes the VHD footer and revokes the grant (Compute checks the footer then: a revoked upload disk is a
 * whole one). A retried finalize that finds the disk no longer uploading finds its own work done.
 */
export async function finalizeManagedDiskRestore(req: ManagedDiskStepRequest, plan: RestorePlan): Promise<{ backupId: string; target: string; diskBytes: number }> {
  const { diskId, name } = await diskOfPlan(req, plan);
  const done = { backupId: plan.backupId, target: diskId, diskBytes: plan.dataBytes! };
  const disk = await req.compute.getDisk(diskId);
  if (disk.tags?.[RESTORE_OPERATION_TAG] !== plan.operationId) throw new PagewiseError('BadInput', `${whatOf(name)} was not created by the restore ${plan.operationId}; it was left as it is`);
  if (disk.diskState !== ACTIVE_UPLOAD) return done;
  try {
    await diskPageWriter(req.target, plan.dataBytes!, whatOf(name)).writeFooter(req.abortSignal);
    await req.compute.revokeDiskAccess(diskId);
  } catch (err) {
    throw incompleteDiskError(err, name);
  }
  return done;
}

/**
 * Revokes the grant and names the incomplete disk it leaves: never deleted (a grant cannot delete, and the
 * app's identity may not be allowed to; the operator decides). Never throws for a disk already gone.
 */
export async function abandonManagedDiskRestore(req: ManagedDiskStepRequest, plan: RestorePlan): Promise<{ removed: false; incompleteDisk?: string }> {
  const { diskId } = await diskOfPlan(req, plan);
  await req.compute.revokeDiskAccess(diskId);
  const disk = await req.compute.getDisk(diskId).catch(() => undefined);
  return disk && disk.tags?.[RESTORE_OPERATION_TAG] === plan.operationId ? { removed: false, incompleteDisk: diskId } : { removed: false };
}
