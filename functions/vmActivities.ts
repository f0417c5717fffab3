/**
 * The activities of VM backups (#16), over the engine's steps in core/vm/backup-vm.ts. Each checks its
 * input (the durable API starts orchestrations with any input): a VM ID parsed strictly, a capture only
 * with this app's seal. A granted SAS leaves an activity only sealed (grantedSource), never in a log.
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import {
  abandonVmCapture,
  captureVm,
  finalizeVmBackup,
  grantCapturedDisk,
  PagewiseError,
  parseVmId,
  redact,
  revokeCapturedDisk,
  capturedDiskBackupId,
  VM_BACKUP_ID_RE,
  vmIdOf,
} from '../core';
import type { ConsistencyLevel, DiskOutcome } from '../core';
import { CAPTURE_MODES, CONSISTENCY_LEVELS, SealedCapture, VmActivities, VmDiskGrant } from '../orchestrations/vmContracts';
import { grantedSource } from './compute';
import { snapshotGrantSeconds } from './snapshotGrants';
import { reportingPermanentFailures } from './permanentFailures';
import { engineSettings, readSettings, readUserKey } from './settings';
import { vmCompute } from './vmCompute';
import { capturedDiskAt, openCapture, sealCapture } from './vmSeal';

/** How long a VM disk's read grant lives: as a snapshot event's (functions/snapshotGrants.ts, by the disk's size); revoked when done. */
export const vmDiskGrantSeconds = (sizeBytes: number): number => snapshotGrantSeconds(sizeBytes);

const record = (input: unknown): Record<string, unknown> => (input && typeof input === 'object' ? (input as Record<string, unknown>) : {});
const bad = (what: string, detail: string) => new PagewiseError('BadInput', `the ${what} activity's input is invalid: ${detail}`);

function captureInput(input: unknown) {
  const { vmBackupId, vmId, consistency, mode, ...rest } = record(input);
  if (Object.keys(rest).length > 0) throw bad('captureVm', `unknown field ${JSON.stringify(Object.keys(rest)[0].slice(0, 64))}`);
  if (typeof vmBackupId !== 'string' || !VM_BACKUP_ID_RE.test(vmBackupId)) throw bad('captureVm', 'vmBackupId is not a VM backup ID');
  if (typeof vmId !== 'string') throw bad('captureVm', 'vmId is missing');
  if (consistency !== undefined && !CONSISTENCY_LEVELS.includes(consistency as ConsistencyLevel)) throw bad('captureVm', `consistency must be one of ${CONSISTENCY_LEVELS.join(', ')}`);
  if (mode !== undefined && !(CAPTURE_MODES as readonly unknown[]).includes(mode)) throw bad('captureVm', `mode must be one of ${CAPTURE_MODES.join(', ')}`);
  return {
    vmBackupId,
    vmId: vmIdOf(parseVmId(vmId)),
    ...(consistency ? { consistency: consistency as ConsistencyLevel } : {}),
    ...(mode ? { mode: mode as (typeof CAPTURE_MODES)[number] } : {}),
  };
}

df.app.activity(VmActivities.captureVm, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext): Promise<SealedCapture> => {
    const req = captureInput(input);
    const capture = await captureVm(vmCompute(), req);
    context.log(`VM backup ${req.vmBackupId}: captured ${capture.disks.length} disks by ${capture.capture} (${capture.consistency}-consistent)${capture.captureNote ? `: ${capture.captureNote}` : ''}`);
    return sealCapture(capture, readUserKey());
  }),
});

df.app.activity(VmActivities.grantVmDisk, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext): Promise<VmDiskGrant> => {
    const userKey = readUserKey();
    const capture = openCapture(input, userKey, 'grantVmDisk');
    const disk = capturedDiskAt(capture, record(input).lun, 'grantVmDisk');
    const settings = readSettings();
    // A capture is immutable: its ARM ID names the disk state, so a replayed or repeated grant names the same backup.
    const backupId = capturedDiskBackupId(disk, engineSettings(settings));
    const { url, managedDisk } = await grantCapturedDisk(vmCompute(), disk, vmDiskGrantSeconds(disk.disk.sizeBytes));
    context.log(`VM backup ${capture.vmBackupId}: read of ${disk.disk.name} granted for backup ${backupId}`);
    // Sealed for the task hub; the grant's MAC lets only this app's activities open it (functions/compute.ts).
    return { backupId, source: grantedSource(url, userKey, settings.allowedEndpoints, managedDisk) };
  }),
});

df.app.activity(VmActivities.revokeVmDisk, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const capture = openCapture(input, readUserKey(), 'revokeVmDisk');
    const disk = capturedDiskAt(capture, record(input).lun, 'revokeVmDisk');
    await revokeCapturedDisk(vmCompute(), disk);
    context.log(`VM backup ${capture.vmBackupId}: read of ${disk.disk.name} revoked`);
    return { revoked: true };
  }),
});

df.app.activity(VmActivities.finalizeVmBackup, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const userKey = readUserKey();
    const capture = openCapture(input, userKey, 'finalizeVmBackup');
    const outcomes = record(input).outcomes;
    if (!Array.isArray(outcomes) || outcomes.length !== capture.disks.length) throw bad('finalizeVmBackup', 'outcomes must hold one entry per captured disk');
    const done = await finalizeVmBackup(vmCompute(), readSettings().vault, userKey, capture, outcomes as DiskOutcome[]);
    context.log(`VM backup ${capture.vmBackupId} complete: ${done.manifest.disks.length} disks; ${done.released.length} older captures released, ${done.kept.length} kept`);
    if (done.releaseProblem) context.warn(`VM backup ${capture.vmBackupId}: ${done.releaseProblem}`);
    return done;
  }),
});

df.app.activity(VmActivities.abandonVmCapture, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const capture = openCapture(input, readUserKey(), 'abandonVmCapture');
    try {
      await abandonVmCapture(vmCompute(), capture);
    } catch (err) {
      context.warn(`VM backup ${capture.vmBackupId}: abandoning its capture failed: ${redact(err instanceof Error ? err.message : String(err))}`);
      throw err;
    }
    context.log(`VM backup ${capture.vmBackupId} abandoned: its capture is deleted and every grant revoked`);
    return { abandoned: true };
  }),
});
