/**
 * The vault's catalog: every backup in the vault with its status. A vault that cannot be reached fails
 * the listing (never an empty list); a backup without a manifest is listed incomplete, one whose
 * manifest is unreadable (or fails its MAC, when a key is given) damaged — none is silently dropped.
 */
import { isPagewiseError, PagewiseError } from '../errors';
import { BackupListing, StorageLocation } from '../types';
import { BACKUP_ID_RE } from './backup-id';
import { readPlan } from './backup-plan';
import { readManifestUnverified, verifyManifest } from './manifest';
import { openBackupSource } from './backup-source';
import { Vault } from './vault';
import { diskIdentityOf } from '../source/disk-identity';
import { SourceIdentity } from '../source/source-disk';
import { CatalogKeys, catalogEntries2, sourceName } from './v2/catalog2';

export interface ListBackupsOptions {
  /** With the user key, each manifest's MAC is checked: a tampered one is listed damaged. */
  userKey?: Buffer;
}

/** Complete backups first (oldest completed first), then the others by ID. */
export async function listBackups(location: StorageLocation, options: ListBackupsOptions = {}): Promise<BackupListing[]> {
  const out: BackupListing[] = [];
  for await (const entry of catalogEntries(Vault.open(location), options)) out.push(entry);
  const complete = out.flatMap((b) => (b.status === 'complete' ? [b] : [])).sort((a, b) => a.completedAt.localeCompare(b.completedAt));
  const others = out.filter((b) => b.status !== 'complete').sort((a, b) => a.backupId.localeCompare(b.backupId));
  return [...complete, ...others];
}

/** The backups of one disk, newest first (`pagewise list`). */
export interface DiskBackups {
  /** As CompleteBackupListing.disk; `(unknown disk)` for backups whose disk cannot be read. */
  disk: string;
  backups: BackupListing[];
}

export const UNKNOWN_DISK = '(unknown disk)';

/** The vault's backups grouped by disk (armDiskId where there is one, else identity; §21.1): see groupByDisk. */
export async function listBackupsByDisk(location: StorageLocation, options: ListBackupsOptions = {}): Promise<DiskBackups[]> {
  return groupByDisk(await listBackups(location, options));
}

/**
 * Groups listings by disk: in each group the newest first (completion time, else creation time), the
 * groups by their newest backup, newest first; backups of no known disk last.
 */
export function groupByDisk(listings: BackupListing[]): DiskBackups[] {
  const when = (b: BackupListing) => (b.status === 'complete' ? b.completedAt : b.createdAt) ?? '';
  const groups = new Map<string, BackupListing[]>();
  for (const b of listings) {
    const disk = b.disk ?? UNKNOWN_DISK;
    groups.set(disk, [...(groups.get(disk) ?? []), b]);
  }
  const out = [...groups].map(([disk, backups]) => ({ disk, backups: backups.sort((a, b) => when(b).localeCompare(when(a)) || a.backupId.localeCompare(b.backupId)) }));
  const newest = (g: DiskBackups) => (g.disk === UNKNOWN_DISK ? '' : when(g.backups[0]));
  return out.sort((a, b) => newest(b).localeCompare(newest(a)) || a.disk.localeCompare(b.disk));
}

/** The backups of a vault one by one, version 1 then version 2, each in name order; memory holds one manifest at a time. */
export async function* catalogEntries(vault: Vault, options: ListBackupsOptions = {}): AsyncGenerator<BackupListing> {
  const keys = new CatalogKeys(vault, options.userKey);
  for await (const prefix of vault.listPrefixes('backups/')) {
    const backupId = prefix.slice('backups/'.length).replace(/\/$/, '');
    // A name no Pagewise writes (control characters, capitals, 1000 characters...): nothing of it is read.
    if (!BACKUP_ID_RE.test(backupId)) {
      yield { backupId, status: 'damaged', problem: notABackupId(backupId) };
      continue;
    }
    const entry = await entryOf(vault, backupId, options.userKey);
    // Forgotten in an upgraded vault (§26.2): its tombstone is under the keyring's nameTag of its ID.
    yield entry.status === 'complete' ? { ...entry, ...(await keys.deletedOf(backupId, 1)) } : entry;
  }
  // Version 2 (a new vault, or the backups an upgraded one gained): §12.4.
  yield* catalogEntries2(vault, options.userKey, keys);
}

function notABackupId(name: string): string {
  return `backups/${name.slice(0, 80)}${name.length > 80 ? '…' : ''}/ was not written by Pagewise: its name is not a backup ID (pw- and 24 hex digits, or 3–63 lowercase letters, digits and dashes)`;
}

async function entryOf(vault: Vault, backupId: string, userKey: Buffer | undefined): Promise<BackupListing> {
  let envelope;
  try {
    envelope = await readManifestUnverified(vault, backupId);
    if (userKey) verifyManifest(envelope, userKey);
  } catch (err) {
    if (isPagewiseError(err, 'BackupIncomplete') || isPagewiseError(err, 'BackupNotFound')) return unfinished(vault, backupId);
    if (isPagewiseError(err, 'Corrupt')) return { backupId, status: 'damaged', problem: err.message };
    // Made with another key: its MAC cannot be checked with this one, which says nothing of damage.
    if (!isPagewiseError(err, 'WrongKey')) throw err;
  }
  const b = envelope!.body;
  return {
    backupId,
    status: 'complete',
    formatVersion: 1,
    disk: v1Disk(b.source),
    createdAt: b.createdAt,
    completedAt: b.completedAt,
    source: sourceName(b.source),
    diskBytes: b.diskBytes,
    pageSize: b.pageSize,
    bytesStored: b.stats.bytesStored,
  };
}


/**
 * A version-1 backup's disk as version 2 names it (§21.1: `blob:<account>/<container>/<blob>`), so an
 * upgraded vault lists both formats' backups of a disk together; its URL when the source names none.
 */
export function v1Disk(source: SourceIdentity): string {
  try {
    return diskIdentityOf(source).identity;
  } catch {
    return source.url;
  }
}

/** No manifest: what the plan says of the backup, when it has a readable one. */
async function unfinished(vault: Vault, backupId: string): Promise<BackupListing> {
  const problem = `backup ${backupId} is incomplete (it has no manifest) and cannot be restored; run the backup again to resume it`;
  try {
    const plan = await readPlan(vault, backupId);
    return { backupId, status: 'incomplete', problem, formatVersion: 1, disk: v1Disk(plan.source), createdAt: plan.createdAt, source: sourceName(plan.source), diskBytes: plan.diskBytes, pageSize: plan.pageSize };
  } catch (err) {
    if (isPagewiseError(err, 'BackupNotFound')) return { backupId, status: 'incomplete', problem };
    if (isPagewiseError(err, 'Corrupt')) return { backupId, status: 'damaged', problem: (err as PagewiseError).message };
    throw err;
  }
}

/**
 * Throws unless the backup is complete and the user key opens it (the manifest is there and its MAC
 * checks): what a restore or verify needs, checked before one is started.
 */
export async function checkRestorable(location: StorageLocation, backupId: string, userKey: Buffer): Promise<void> {
  await openBackupSource(location, backupId, userKey);
}
