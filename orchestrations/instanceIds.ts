/**
 * Orchestration instance IDs. A backup's ID is derived from (disk, snapshot, ETag, page size) by core
 * `deriveBackupId`, so starting the same disk state twice names the same instance and the second
 * start finds the first instead of making a second backup. Restores and verifications are new
 * operations each time (functions/http/idempotency.ts names them).
 */
import { createHash } from 'node:crypto';
import type { BatchRange } from './backupTree';

export const backupInstanceId = (backupId: string) => `backup-${backupId}`;

/** Child instance of a range of plan positions (`r<first>+<count>`): stable across replays and restarts of the parent. */
export const rangeInstanceId = (parentInstanceId: string, range: BatchRange) =>
  `${parentInstanceId}:r${range.first}+${range.count}`;

/** The backup ID inside a `backup-…` instance ID, or undefined for other instances. */
export function backupIdOfInstance(instanceId: string): string | undefined {
  return instanceId.startsWith('backup-') && !instanceId.includes(':') ? instanceId.slice('backup-'.length) : undefined;
}

/**
 * The settle orchestration of one page blob for one cause: an event's ETag (duplicate deliveries of
 * it join one instance) or a backup that met a change. The URL's query (a SAS) is not part of it.
 */
export function settleInstanceId(blobUrl: string, cause: string): string {
  const blob = blobUrl.split('?')[0].toLowerCase();
  return `settle-${createHash('sha256').update(`${blob}\n${cause}`).digest('hex').slice(0, 24)}`;
}

/** The retention run of one timer firing (to the minute): a firing delivered twice starts it once. */
export function retentionInstanceId(firedAt: Date): string {
  return `retain-${firedAt.toISOString().slice(0, 16).replace(/[-:]/g, '')}Z`;
}

/** A prune the API started: `prune-` and 16 hex digits (random, from the starter). */
export const PRUNE_INSTANCE_RE = /^prune-[0-9a-f]{16}$/;

// VM backups (#16): `vmbackup-<VM backup ID>`, its disks `…:disk-os` / `…:disk-<lun>`; each disk's backup is a `backup-<backup ID>`.
export const vmBackupInstanceId = (vmBackupId: string) => `vmbackup-${vmBackupId}`;
export const vmDiskInstanceId = (parentInstanceId: string, lun: number | null) => `${parentInstanceId}:disk-${lun === null ? 'os' : lun}`;

/** The VM backup ID inside a `vmbackup-…` instance ID, or undefined for other instances (and its disks'). */
export function vmBackupIdOfInstance(instanceId: string): string | undefined {
  return instanceId.startsWith('vmbackup-') && !instanceId.includes(':') ? instanceId.slice('vmbackup-'.length) : undefined;
}

/**
 * #18: a nightly verification: `verify-n<yyyymmdd>-<backup ID>` (the firing's UTC date). The same night and
 * backup name the same instance, so a timer that fires again that night starts nothing twice.
 */
export const scheduledVerifyNight = (firedAt: Date) => firedAt.toISOString().slice(0, 10).replace(/-/g, '');
export const scheduledVerifyPrefix = (firedAt: Date) => `verify-n${scheduledVerifyNight(firedAt)}-`;
export const scheduledVerifyInstanceId = (firedAt: Date, backupId: string) => `${scheduledVerifyPrefix(firedAt)}${backupId}`;
/** Any night's scheduled verification instance ID (the backup ID's forms: BACKUP_ID_RE). */
export const SCHEDULED_VERIFY_RE = /^verify-n\d{8}-(pw-[0-9a-f]{24}|[a-z0-9][a-z0-9-]{2,62})$/;
