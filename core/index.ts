/** Pagewise core: the engine. No Azure Functions imports here. */
export * from './types';
export { PagewiseError, isPagewiseError, isTransient, TRANSIENT_CODES, abortedError } from './errors';
export type { PagewiseErrorCode } from './errors';
export { redact, displayUrl, printable, SECRET_FIELD } from './redact';
export { parseBytes, formatBytes } from './units';
export * as limits from './limits';
export { BATCHES_IN_FLIGHT, PAGE_CONCURRENCY, REQUESTS_PER_ACCOUNT, withinBounds } from './limits';
export type { CountBounds } from './limits';
export { planBackup } from './backup/plan-backup';
export { runBackupBatch } from './backup/run-batch';
export { finalizeBackup } from './backup/finalize-backup';
export { asAlreadyExisted } from './backup/backup-result';
export { backupDisk } from './backup/backup-disk';
export { resolveSettings, effectiveCacheBytes } from './backup/settings';
export type { ResolvedSettings } from './backup/settings';
export { restoreBackup, isBlobTarget } from './restore/restore';
export { assertDiskWriteTarget, assertSourceIsNotVault, protectContainer } from './restore/target-guard';
export { whileBackingUp, sameDisk } from './backup/running-backups';
export { describeVerification, verifyBackup } from './verify/verify';
export { listBackups } from './repo/catalog';
export type { ListBackupsOptions } from './repo/catalog';
export { loadUserKey, writeNewKeyFile, decodeUserKey, encodeKeyFile, generateKey, keyId } from './repo/keys';
export { sealUrl, unsealUrl, splitSas, joinSas, taskHubSealKey, SEALED_SAS_RE } from './crypto/seal';
export type { SealedUrl } from './crypto/seal';
export { parseStorageUrl, allowedEndpointOf, sourceBlobClient } from './storage/clients';
export { defaultCredential } from './storage/credentials';
export type { TokenCredential } from './storage/credentials';
export { CLOUD_SUFFIXES, configureStorageEndpoints, configureStorageEndpointsFromEnv, parseEndpoint, parseEndpointList, endpointOf, azureEndpoint, endpointRefused, isManagedDiskEndpoint, isPathStyleHost } from './storage/endpoints';
export { configureRequestsPerAccount, accountHighWater, DEFAULT_REQUESTS_PER_ACCOUNT } from './storage/account-gate';
export { SourceDisk, assertNotCopying } from './source/source-disk';
export { sweepStaleScratchDirs } from './cache/scratch-dir';
export { assertUnsharedDir, assertUnsharedDirSync } from './shared-dir';
export { uploadImage } from './source/upload-image';
export type { UploadImageResult } from './source/upload-image';
export { BACKUP_ID_RE, backupIdFor, givenOrDerivedBackupId, snapshotBackupIdFor, validateBackupId } from './repo/backup-id';

import { SourceDisk } from './source/source-disk';
import { backupIdFor } from './repo/backup-id';
import { Vault } from './repo/vault';
import { StorageLocation } from './types';

/** The default backup ID of a source disk in its current state (blob, snapshot, ETag) at a page size. */
export async function deriveBackupId(source: StorageLocation, pageSize: number): Promise<string> {
  return (await sourceState(source, pageSize)).backupId;
}

/** Makes a vault: creates the container and writes the vault marker where absent (`pagewise init`). */
export async function initVault(vault: StorageLocation): Promise<{ containerCreated: boolean; markerWritten: boolean }> {
  return Vault.open(vault).init();
}

export interface SourceState {
  /** The backup ID this state derives. */
  backupId: string;
  etag: string;
  diskBytes: number;
  /** `pending` while a Copy Blob is still writing the blob. */
  copyStatus?: string;
  lastModified?: string;
}

/** The source disk's current state: what a backup started now would be pinned to. */
export async function sourceState(source: StorageLocation, pageSize: number): Promise<SourceState> {
  const disk = await SourceDisk.open(source);
  return {
    backupId: backupIdFor(disk.identity, pageSize),
    etag: disk.identity.etag,
    diskBytes: disk.diskBytes,
    ...(disk.copyStatus ? { copyStatus: disk.copyStatus } : {}),
    ...(disk.lastModified ? { lastModified: disk.lastModified.toISOString() } : {}),
  };
}
