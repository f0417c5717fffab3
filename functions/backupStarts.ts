/**
 * Starting the backup of one disk, shared by the HTTP, timer and Event Grid triggers: derive the
 * backup ID (deterministic from the disk state, or from the snapshot resource) and start the backup
 * orchestration under `backup-<id>` at most once.
 */
import type { DurableClient } from 'durable-functions';
import { assertNotCopying, snapshotBackupIdFor, sourceState } from '../core';
import { BackupOrchestrationInput, DiskRef, EngineOverrides, OperationTrigger, Orchestrators, RetrySettings, SettleSettings } from '../orchestrations/contracts';
import { backupInstanceId } from '../orchestrations/instanceIds';
import { checkEngineSettings, checkSourceIsNotVault, checkVaultExists } from './prechecks';
import { readSettings, readUserKey } from './settings';
import { openRef, sealRef } from './sealedRefs';
import { startOnce, StartOnceResult } from './starter';

export interface DiskBackupStart extends StartOnceResult {
  backupId: string;
}

export interface DiskBackupStartOptions {
  backupId?: string;
  expectedEtag?: string;
  settings?: EngineOverrides;
  restartFailed?: boolean;
  settle?: SettleSettings;
  retry?: RetrySettings;
  /** #18: what starts it (telemetry); an event's start (settle) is `eventgrid` without saying so. */
  trigger?: OperationTrigger;
}

/** A disk backup ready to start: its ID, instance ID and orchestration input (the pre-checks passed). */
export interface PreparedDiskBackup {
  backupId: string;
  instanceId: string;
  input: BackupOrchestrationInput;
}

export async function startDiskBackup(client: DurableClient, source: DiskRef, options: DiskBackupStartOptions = {}): Promise<DiskBackupStart> {
  const { backupId, instanceId, input } = await prepareDiskBackup(source, options);
  const started = await startOnce(client, Orchestrators.backupDisk, instanceId, input, { restartFailed: options.restartFailed ?? true });
  return { ...started, backupId };
}

/** The pre-checks and the backup ID of a start, without starting it (a queued start takes its slots in between). */
export async function prepareDiskBackup(source: DiskRef, options: DiskBackupStartOptions = {}): Promise<PreparedDiskBackup> {
  // Refuse now what the plan activity would refuse later, so a bad start leaves no failed instance.
  const settings = readSettings();
  const userKey = readUserKey();
  const { pageSize } = checkEngineSettings(settings, options.settings);
  checkSourceIsNotVault(settings, source.url);
  // The ID names the state read now; the plan is pinned to it, so a disk that changes before the plan
  // runs is refused instead of being stored under the earlier state's ID.
  const state = options.backupId ? undefined : await sourceState({ url: openRef(source, userKey, 'the source disk URL') }, pageSize);
  if (state) assertNotCopying(source.url, state.copyStatus);
  const backupId = options.backupId ?? state!.backupId;
  const expectedEtag = options.expectedEtag ?? state?.etag;
  await checkVaultExists(settings);
  const input: BackupOrchestrationInput = {
    backupId,
    // The caller's SAS never enters the task hub: sealed here, opened by the activities.
    source: sealRef(source, userKey),
    ...(expectedEtag ? { expectedEtag } : {}),
    ...(options.settle ? { settle: options.settle } : {}),
    ...(options.settings && Object.keys(options.settings).length > 0 ? { settings: options.settings } : {}),
    ...(options.retry ? { retry: options.retry } : {}),
    ...(settings.batchesInFlight ? { batchesInFlight: settings.batchesInFlight } : {}),
    ...(options.trigger ? { trigger: options.trigger } : {}),
  };
  return { backupId, instanceId: backupInstanceId(backupId), input };
}

/** The backup ID of a managed-disk snapshot at the page size its backup will use (app settings). */
export function snapshotBackupId(resourceId: string): string {
  return snapshotBackupIdFor(resourceId, checkEngineSettings(readSettings()).pageSize);
}
