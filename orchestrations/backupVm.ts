/**
 * The VM backup orchestrations (#16). `backupVmOrchestrator`: capture the VM (activity) → each disk
 * through a `backupVmDiskOrchestrator` sub-orchestration, at most `diskConcurrency` at once → write
 * the VM manifest and release older captures (activity), or, when a disk failed, abandon this capture
 * (activity: its restore point or snapshots deleted, every grant revoked). `backupVmDiskOrchestrator`:
 * grant read of the disk's capture (activity, a sealed DiskRef) → the existing `backupDisk`
 * orchestration → revoke the grant, after a failure too. Deterministic: no I/O, clock or randomness
 * outside `context.df`; custom status carries per-disk state and figures.
 */
import type { OrchestrationContext, OrchestrationHandler, Task } from 'durable-functions';
import type { DiskOutcome, VmManifest } from '../core';
import { BackupOrchestrationInput, BackupOrchestrationOutput, Orchestrators } from './contracts';
import { outcome } from './activityOutcome';
import { backupInstanceId, vmBackupInstanceId, vmDiskInstanceId } from './instanceIds';
import { retryOptions } from './retry';
import { waves } from './backupTree';
import {
  DEFAULT_VM_DISK_CONCURRENCY,
  MAX_VM_DISK_CONCURRENCY,
  SealedCapture,
  VmActivities,
  VmBackupOrchestrationInput,
  VmBackupOutput,
  VmBackupStatus,
  VmDiskGrant,
  VmDiskOrchestrationInput,
  VmDiskProgress,
  VmDiskStatus,
  VmFinalizeInput,
  VmOrchestrators,
} from './vmContracts';

/** Longest error text a disk's outcome carries (into the status, the VM's failure and the CLI's view). */
const MAX_ERROR_CHARS = 600;

/** The message of an error as a durable failure carries it, without the stack frames the runtime appends, on one line. */
function messageOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines = text.split('\n').filter((line) => !/^\s+at\s/.test(line));
  const flat = lines.join(' ').replace(/\s+/g, ' ').trim();
  return flat.length > MAX_ERROR_CHARS ? `${flat.slice(0, MAX_ERROR_CHARS)}…` : flat;
}

/** Disks at once: the input's (bounded — an orchestration may be started with any input), else the default. */
function concurrencyOf(input: VmBackupOrchestrationInput): number {
  const n = input.diskConcurrency;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 ? Math.min(n, MAX_VM_DISK_CONCURRENCY) : DEFAULT_VM_DISK_CONCURRENCY;
}

export const backupVmOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as VmBackupOrchestrationInput;
  const retry = retryOptions(input.retry);
  const status: VmBackupStatus = { phase: 'capturing', vmBackupId: input.vmBackupId, vmId: input.vmId, disks: [] };
  const publish = () => context.df.setCustomStatus(status);
  publish();

  const sealed = outcome<SealedCapture>(
    yield context.df.callActivityWithRetry(VmActivities.captureVm, retry, {
      vmBackupId: input.vmBackupId,
      vmId: input.vmId,
      ...(input.consistency ? { consistency: input.consistency } : {}),
      ...(input.mode ? { mode: input.mode } : {}),
    }),
  );
  const { capture } = sealed;
  const parentId = context.df.instanceId || vmBackupInstanceId(input.vmBackupId);
  status.phase = 'backing-up';
  status.capture = capture.capture;
  status.requestedConsistency = capture.requestedConsistency;
  status.consistency = capture.consistency;
  status.notCaptured = capture.notCaptured;
  status.disks = capture.disks.map((d) => ({
    lun: d.lun,
    role: d.role,
    diskName: d.disk.name,
    sizeBytes: d.disk.sizeBytes,
    state: 'pending',
    instanceId: vmDiskInstanceId(parentId, d.lun),
  }));
  publish();

  const outcomes: DiskOutcome[] = [];
  try {
    yield* backUpDisks(context, input, sealed, status, outcomes, publish);
  } catch (err) {
    // A disk sub-orchestration returns its outcome; one failing anyway (its input refused) abandons the capture too.
    outcomes.push({ lun: null, ok: false, error: messageOf(err) });
  }

  const failed = outcomes.filter((o) => !o.ok);
  if (failed.length > 0) {
    // Nothing of this capture stays behind: its restore point or snapshots are deleted, every grant revoked.
    status.phase = 'abandoning';
    publish();
    let abandoned = 'its capture was abandoned';
    try {
      outcome(yield context.df.callActivityWithRetry(VmActivities.abandonVmCapture, retry, sealed));
    } catch (err) {
      abandoned = `abandoning its capture failed too (${messageOf(err)})`;
    }
    const which = failed.map((o) => `${o.lun === null ? 'OS disk' : `data disk LUN ${o.lun}`}: ${o.ok ? '' : o.error}`).join('; ');
    status.phase = 'failed';
    publish();
    throw new Error(`VM backup ${input.vmBackupId} failed (${failed.length} of ${capture.disks.length} disks); ${abandoned}: ${which}`);
  }

  status.phase = 'finalizing';
  publish();
  // A finalize that fails after retries leaves this capture (it may be a disk's newest base); the next
  // finalize of this VM releases whatever Pagewise took that no manifest needs.
  const finalized = outcome<{ manifest: VmManifest; released: string[]; kept: string[]; releaseProblem?: string }>(
    yield context.df.callActivityWithRetry(VmActivities.finalizeVmBackup, retry, { ...sealed, outcomes } satisfies VmFinalizeInput),
  );
  status.phase = 'done';
  publish();
  return {
    vmBackupId: input.vmBackupId,
    vmId: input.vmId,
    capture: finalized.manifest.capture,
    consistency: finalized.manifest.consistency,
    disks: status.disks,
    notCaptured: finalized.manifest.notCaptured,
    released: finalized.released,
    kept: finalized.kept,
    ...(finalized.releaseProblem ? { releaseProblem: finalized.releaseProblem } : {}),
  } satisfies VmBackupOutput;
};

/** The disks of a capture, `diskConcurrency` sub-orchestrations at a time; each outcome is pushed as its wave ends. */
function* backUpDisks(
  context: OrchestrationContext,
  input: VmBackupOrchestrationInput,
  sealed: SealedCapture,
  status: VmBackupStatus,
  outcomes: DiskOutcome[],
  publish: () => void,
): Generator<Task, void, unknown> {
  for (const wave of waves(status.disks, concurrencyOf(input))) {
    const tasks: Task[] = wave.map((disk) => {
      disk.state = 'running';
      const diskInput: VmDiskOrchestrationInput = {
        ...sealed,
        lun: disk.lun,
        ...(input.full ? { full: true } : {}),
        ...(input.batchesInFlight ? { batchesInFlight: input.batchesInFlight } : {}),
        ...(input.retry ? { retry: input.retry } : {}),
      };
      return context.df.callSubOrchestrator(VmOrchestrators.backupVmDisk, diskInput, disk.instanceId);
    });
    publish();
    // A disk's sub-orchestration never fails: it returns its outcome, so every disk of the wave is heard from.
    const results = (yield context.df.Task.all(tasks)) as DiskOutcome[];
    results.forEach((result, i) => {
      Object.assign(wave[i], progressOf(result));
      outcomes.push(result);
    });
    publish();
  }

}

/** A disk's entry after its sub-orchestration ended. */
function progressOf(result: DiskOutcome): Partial<VmDiskProgress> {
  if (!result.ok) return { state: 'failed', error: result.error };
  const { backupId, kind, bytesRead, bytesStored } = result.result;
  return { state: 'done', backupId, kind, bytesRead, bytesStored };
}

/**
 * One disk of a captured VM: grant → backup → revoke. Returns its outcome rather than fail, so the VM
 * orchestration hears from every disk and decides once. The revoke runs after a failure too, and again
 * on a replay after a crash between the two (Compute's revoke of an ended grant is no error).
 */
export const backupVmDiskOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as VmDiskOrchestrationInput;
  const retry = retryOptions(input.retry);
  const diskInput = { capture: input.capture, seal: input.seal, lun: input.lun };
  const status = (s: VmDiskStatus) => context.df.setCustomStatus(s);
  let result: DiskOutcome;
  let backupId: string | undefined;
  try {
    status({ state: 'granting' });
    const grant = outcome<VmDiskGrant>(yield context.df.callActivityWithRetry(VmActivities.grantVmDisk, retry, diskInput));
    backupId = grant.backupId;
    const child = backupInstanceId(grant.backupId);
    status({ state: 'backing-up', backupId, backupInstanceId: child });
    const backup: BackupOrchestrationInput = {
      backupId: grant.backupId,
      source: grant.source,
      vmCapture: true,
      ...(input.full ? { settings: { full: true } } : {}),
      ...(input.batchesInFlight ? { batchesInFlight: input.batchesInFlight } : {}),
      ...(input.retry ? { retry: input.retry } : {}),
    };
    const out = (yield context.df.callSubOrchestrator(Orchestrators.backupDisk, backup, child)) as BackupOrchestrationOutput;
    const { kind, reason, bytesRead, bytesStored } = out.result;
    result = { lun: input.lun, ok: true, result: { backupId: out.backupId, kind, reason, bytesRead, bytesStored } };
  } catch (err) {
    result = { lun: input.lun, ok: false, error: messageOf(err) };
  }
  status({ state: 'revoking', ...(backupId ? { backupId, backupInstanceId: backupInstanceId(backupId) } : {}) });
  try {
    outcome(yield context.df.callActivityWithRetry(VmActivities.revokeVmDisk, retry, diskInput));
  } catch (err) {
    // A grant left open would keep the capture's SAS alive: the disk counts as failed, and the VM's abandon revokes again.
    result = { lun: input.lun, ok: false, error: `${result.ok ? '' : `${result.error}; `}its read grant was not revoked: ${messageOf(err)}` };
  }
  status({ state: result.ok ? 'done' : 'failed', ...(backupId ? { backupId, backupInstanceId: backupInstanceId(backupId) } : {}) });
  return result;
};
