/** Pagewise core: the engine. No Azure Functions imports here. */
export * from './types';
export { PagewiseError, isPagewiseError } from './errors';
export type { PagewiseErrorCode } from './errors';
export { redact, displayUrl } from './redact';
export { parseBytes, formatBytes } from './units';
export * as limits from './limits';
export { planBackup } from './backup/plan-backup';
export { runBackupBatch } from './backup/run-batch';
export { finalizeBackup } from './backup/finalize-backup';
export { backupDisk } from './backup/backup-disk';
export { resolveSettings, effectiveCacheBytes } from './backup/settings';
export type { ResolvedSettings } from './backup/settings';
export { restoreBackup, isBlobTarget } from './restore/restore';
export { verifyBackup } from './verify/verify';
export { listBackups } from './vault/catalog';
export { loadUserKey, writeNewKeyFile, decodeUserKey, encodeKeyFile, generateKey, keyId } from './crypto/keys';
export { parseStorageUrl } from './storage/clients';
export { configureRequestsPerAccount, accountHighWater, DEFAULT_REQUESTS_PER_ACCOUNT } from './storage/account-gate';
export { SourceDisk, assertNotCopying } from './source/source-disk';
export { uploadImage } from './source/upload-image';
export type { UploadImageResult } from './source/upload-image';
export { backupIdFor, validateBackupId } from './vault/layout';

import { SourceDisk } from './source/source-disk';
import { backupIdFor } from './vault/layout';
import { StorageLocation } from './types';

/** The default backup ID of a source disk in its current state (blob, snapshot, ETag). */
export async function deriveBackupId(source: StorageLocation): Promise<string> {
  return (await sourceState(source)).backupId;
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
export async function sourceState(source: StorageLocation): Promise<SourceState> {
  const disk = await SourceDisk.open(source);
  return {
    backupId: backupIdFor(disk.identity),
    etag: disk.identity.etag,
    diskBytes: disk.diskBytes,
    ...(disk.copyStatus ? { copyStatus: disk.copyStatus } : {}),
    ...(disk.lastModified ? { lastModified: disk.lastModified.toISOString() } : {}),
  };
}
