/**
 * Starting the backup of one VM, shared by the HTTP and timer triggers: the VM ID checked strictly,
 * the VM backup ID derived from (VM, time), the orchestration started under `vmbackup-<id>` at most
 * once — and never beside another running backup of the same VM (two captures of one VM at once would
 * each release the other's as "older").
 */
import * as df from 'durable-functions';
import type { DurableClient } from 'durable-functions';
import { parseVmId, PagewiseError, vmBackupIdFor, vmIdOf } from '../core';
import type { ConsistencyLevel } from '../core';
import { vmBackupIdOfInstance, vmBackupInstanceId } from '../orchestrations/instanceIds';
import type { OperationTrigger } from '../orchestrations/contracts';
import { DEFAULT_VM_DISK_CONCURRENCY, MAX_VM_DISK_CONCURRENCY, VmBackupOrchestrationInput, VmCaptureMode, VmOrchestrators } from '../orchestrations/vmContracts';
import { checkVaultExists } from './prechecks';
import { appSettings, Env, readSettings } from './settings';
import { findStatus, startOnce, StartOnceResult } from './starter';

export interface VmBackupStartRequest {
  vmId: string;
  full?: boolean;
  consistency?: ConsistencyLevel;
  mode?: VmCaptureMode;
}

export interface VmBackupStart extends StartOnceResult {
  vmBackupId: string;
  vmId: string;
}

/** PAGEWISE_VM_DISK_CONCURRENCY: disks of one VM backed up at once (1…16, default 4). */
export function vmDiskConcurrency(env: Env = appSettings()): number {
  const raw = env.PAGEWISE_VM_DISK_CONCURRENCY?.trim();
  if (!raw) return DEFAULT_VM_DISK_CONCURRENCY;
  const n = Number(raw);
  if (!/^\d{1,2}$/.test(raw) || n < 1 || n > MAX_VM_DISK_CONCURRENCY) {
    throw new PagewiseError('BadInput', `app setting PAGEWISE_VM_DISK_CONCURRENCY must be a whole number from 1 to ${MAX_VM_DISK_CONCURRENCY}, got "${raw.slice(0, 16)}"`);
  }
  return n;
}

/** The running (or pending) VM backup of this VM, if any: its instance ID. */
async function runningBackupOf(client: DurableClient, vmId: string): Promise<string | undefined> {
  const active = await client.getStatusBy({ runtimeStatus: [df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending] });
  for (const s of active) {
    if (vmBackupIdOfInstance(s.instanceId) === undefined) continue;
    const input = (s.input ?? (await findStatus(client, s.instanceId))?.input) as Partial<VmBackupOrchestrationInput> | undefined;
    if (typeof input?.vmId === 'string' && input.vmId.toLowerCase() === vmId.toLowerCase()) return s.instanceId;
  }
  return undefined;
}

export async function startVmBackup(client: DurableClient, request: VmBackupStartRequest, now: Date, trigger: OperationTrigger = 'http'): Promise<VmBackupStart> {
  const { vmBackupId, vmId, instanceId, input } = await prepareVmBackup(client, request, now, trigger);
  const started = await startOnce(client, VmOrchestrators.backupVm, instanceId, input, { restartFailed: true });
  return { ...started, vmBackupId, vmId };
}

/** A VM backup ready to start: the checks passed, its IDs and orchestration input. */
export interface PreparedVmBackup {
  vmBackupId: string;
  vmId: string;
  instanceId: string;
  input: VmBackupOrchestrationInput;
}

/** The checks, IDs and input of a VM backup start, without starting it (a queued start takes its slot in between). */
export async function prepareVmBackup(client: DurableClient, request: VmBackupStartRequest, now: Date, trigger: OperationTrigger = 'http'): Promise<PreparedVmBackup> {
  const vmId = vmIdOf(parseVmId(request.vmId, 'vmId'));
  const settings = readSettings();
  const diskConcurrency = vmDiskConcurrency();
  const vmBackupId = vmBackupIdFor(vmId, now);
  const instanceId = vmBackupInstanceId(vmBackupId);
  // The same request again (same VM, same time slot) finds its instance; another one of the VM waits its turn.
  const running = await runningBackupOf(client, vmId);
  if (running && running !== instanceId) {
    throw new PagewiseError('Locked', `a backup of VM ${vmId} is already running (${running}); start another when it has finished`);
  }
  await checkVaultExists(settings);
  const input: VmBackupOrchestrationInput = {
    vmBackupId,
    vmId,
    ...(request.full ? { full: true } : {}),
    ...(request.consistency ? { consistency: request.consistency } : {}),
    ...(request.mode ? { mode: request.mode } : {}),
    diskConcurrency,
    ...(settings.batchesInFlight ? { batchesInFlight: settings.batchesInFlight } : {}),
    trigger,
  };
  return { vmBackupId, vmId, instanceId, input };
}
