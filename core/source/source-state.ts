/** A source disk's current state (blob, snapshot, ETag, size) and the backup ID it derives: what a backup started now would be pinned to. */
import { backupIdFor } from '../repo/backup-id';
import { StorageLocation } from '../types';
import { SourceDisk } from './source-disk';

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

/** The default backup ID of a source disk in its current state (blob, snapshot, ETag) at a page size. */
export async function deriveBackupId(source: StorageLocation, pageSize: number): Promise<string> {
  return (await sourceState(source, pageSize)).backupId;
}
