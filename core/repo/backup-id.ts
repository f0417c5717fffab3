/**
 * Backup IDs (docs/FORMAT.md §2, §8.1), the one place for their rules: the pattern a given ID must
 * match, the recipe that derives one from what is backed up, and "given, else derived".
 */
import { createHash } from 'node:crypto';
import { PagewiseError } from '../errors';

/**
 * `pw-` + 24 hex digits (derived), or a name the user gave: 3–63 lowercase letters, digits and dashes
 * that starts with a letter or digit. A trailing dash is allowed: IDs that earlier versions accepted
 * stay valid, so every backup already in a vault can still be named (a reader must open what exists).
 */
export const BACKUP_ID_RE = /^pw-[0-9a-f]{24}$|^[a-z0-9][a-z0-9-]{2,62}$/;

/** The ID recipe (docs/FORMAT.md §8.1): its version is part of every ID key. */
const BACKUP_ID_RECIPE = 'pagewise/backup-id/v2';

export function validateBackupId(id: string): string {
  if (typeof id !== 'string' || !BACKUP_ID_RE.test(id)) {
    throw new PagewiseError('BadInput', `"${String(id).slice(0, 80)}" is not a backup ID (expected pw- and 24 hex digits, or 3–63 lowercase letters, digits and dashes)`);
  }
  return id;
}

function derivedId(subject: string, pageSize: number): string {
  const key = `${BACKUP_ID_RECIPE}|${subject}|page-size=${pageSize}`;
  return `pw-${createHash('sha256').update(key).digest('hex').slice(0, 24)}`;
}

/**
 * Default backup ID: stable for one state of one disk at one page size, so a repeated start resumes,
 * never duplicates, and the same disk at another page size is another backup.
 */
export function backupIdFor(source: { account: string; container: string; blob: string; snapshot: string; etag: string }, pageSize: number): string {
  return derivedId(`${source.account}/${source.container}/${source.blob}@${source.snapshot}#${source.etag}`, pageSize);
}

/**
 * A managed-disk snapshot is immutable, so its ARM resource ID names its state: every delivery of its
 * event (and every fresh SAS for it) maps to the same backup ID, without reading the disk first.
 */
export function snapshotBackupIdFor(resourceId: string, pageSize: number): string {
  return derivedId(`snapshot:${resourceId.toLowerCase()}`, pageSize);
}

/** The ID a backup runs under: the one given (checked), else the one derived from the disk state. */
export function givenOrDerivedBackupId(given: string | undefined, source: Parameters<typeof backupIdFor>[0], pageSize: number): string {
  return validateBackupId(given ?? backupIdFor(source, pageSize));
}
