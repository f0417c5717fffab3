/**
 * Starting the backup of one disk, shared by the HTTP, timer and Event Grid triggers: derive the
 * backup ID (deterministic from the disk state, or from the snapshot resource) and start the backup
 * orchestration under `backup-<id>` at most once.
 */
import type { DurableClient } from 'durable-functions';
import { deriveBackupId, snapshotBackupIdFor } from '../core';
import { BackupOrchestrationInput, DiskRef, EngineOverrides, Orchestrators } from '../orchestrations/contracts';
import { backupInstanceId } from '../orchestrations/instanceIds';
import { checkEngineSettings, checkSourceIsNotVault, checkVaultExists } from './prechecks';
import { readSettings } from './settings';
import { startOnce, StartOnceResult } from './starter';

export interface DiskBackupStart extends StartOnceResult {
  backupId: string;
}

export async function startDiskBackup(
  client: DurableClient,
  source: DiskRef,
  options: { backupId?: string; settings?: EngineOverrides; restartFailed?: boolean } = {},
): Promise<DiskBackupStart> {
  // Refuse now what the plan activity would refuse later, so a bad start leaves no failed instance.
  const settings = readSettings();
  const { pageSize } = checkEngineSettings(settings, options.settings);
  checkSourceIsNotVault(settings, source.url);
  const backupId = options.backupId ?? (await deriveBackupId({ url: source.url }, pageSize));
  await checkVaultExists(settings);
  const input: BackupOrchestrationInput = {
    backupId,
    source,
    ...(options.settings && Object.keys(options.settings).length > 0 ? { settings: options.settings } : {}),
    ...(settings.batchesInFlight ? { batchesInFlight: settings.batchesInFlight } : {}),
  };
  const started = await startOnce(client, Orchestrators.backupDisk, backupInstanceId(backupId), input, { restartFailed: options.restartFailed ?? true });
  return { ...started, backupId };
}

/** The backup ID of a managed-disk snapshot at the page size its backup will use (app settings). */
export function snapshotBackupId(resourceId: string): string {
  return snapshotBackupIdFor(resourceId, checkEngineSettings(readSettings()).pageSize);
}
