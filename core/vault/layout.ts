/** Blob names of the vault layout (docs/FORMAT.md §2) and the backup ID / block ID rules. */
import { createHash } from 'node:crypto';
import { PagewiseError } from '../errors';

export const VAULT_MARKER = 'pagewise-vault.json';
export const BACKUP_ID_RE = /^pw-[0-9a-f]{24}$|^[a-z0-9][a-z0-9-]{2,62}$/;

const pad8 = (n: number) => String(n).padStart(8, '0');

export function validateBackupId(id: string): string {
  if (typeof id !== 'string' || !BACKUP_ID_RE.test(id)) {
    throw new PagewiseError('BadInput', `"${String(id).slice(0, 80)}" is not a backup ID (expected pw- and 24 hex digits, or 3–63 lowercase letters, digits and dashes)`);
  }
  return id;
}

export const layout = {
  backupPrefix: (id: string) => `backups/${id}/`,
  plan: (id: string) => `backups/${id}/plan.json`,
  batch: (id: string, batch: number) => `backups/${id}/batches/${pad8(batch)}.json`,
  segment: (id: string, segment: number) => `backups/${id}/segments/${pad8(segment)}.seg`,
  index: (id: string, segment: number) => `backups/${id}/index/${pad8(segment)}.pwi`,
  manifest: (id: string) => `backups/${id}/manifest.json`,
};

/** Block ID of the block staged by page `page`: base64("pw1-" + 16-digit page index). */
export function blockIdOf(page: number): string {
  return Buffer.from(`pw1-${String(page).padStart(16, '0')}`, 'ascii').toString('base64');
}

/** The ID recipe (docs/FORMAT.md §8.1): its version is part of every ID key. */
const BACKUP_ID_RECIPE = 'pagewise/backup-id/v2';

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
