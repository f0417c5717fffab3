/**
 * Finding the base of an incremental (docs/FORMAT.md §21.2): the newest manifest of the same disk with
 * the same size, page size and chunking whose source snapshot still exists (a managed disk's: its snapshot
 * resource, asked of Compute); else why the backup is full.
 */
import { isTransient } from '../../errors';
import { readManifestUnverified } from '../../repo/manifest';
import { Chunking, sameChunking } from '../../repo/v2/chunker';
import { readManifest2, manifestsOfDisk } from '../../repo/v2/manifest';
import { diskIdentityOf } from '../../source/disk-identity';
import { Keyring } from '../../repo/v2/keyring';
import { MANIFEST_NAME_RE } from '../../repo/v2/names';
import { tombstonedNameTags } from '../../retention/tombstones';
import { BaseRef, FullReason, ManifestV2 } from '../../repo/v2/records';
import { Vault } from '../../repo/vault';
import { SourceDisk } from '../../source/source-disk';
import { ManagedSnapshotAccess } from '../../types';

/**
 * Manifests read at most while looking for a base, newest first. Pagewise deletes the snapshots of older
 * backups once a newer one completes, so an older candidate almost never qualifies where the newer ones
 * did not; a full backup is never wrong (§21.2 leaves how far to look to the writer).
 */
export const MAX_BASE_CANDIDATES = 16;

export type BaseChoice = { base: BaseRef; manifest: ManifestV2 } | { base: null; reason: FullReason };

export interface ThisRun {
  diskBytes: number;
  pageSize: number;
  /** The chunking this run writes (§15.2): a base chunked otherwise makes the backup full (`chunking-changed`). */
  chunking: Chunking;
}

/**
 * The snapshots a base may be diffed from, and how to tell one still exists: a snapshot of the same page
 * blob (`source.snapshot`, a HEAD), or for a managed disk the snapshot resource its backup read
 * (`source.snapshotResourceId`, asked of Compute: the grant's blob is not that resource).
 */
export interface BaseSnapshots {
  /** The snapshot of `m` a diff would start from, or undefined when `m` names none. */
  of(m: ManifestV2): string | undefined;
  exists(snapshot: string): Promise<boolean>;
}

/** Bases of a page blob: snapshots of the same blob. */
export function blobSnapshots(source: SourceDisk): BaseSnapshots {
  return { of: (m) => m.source.snapshot || undefined, exists: (s) => source.snapshotExists(s) };
}

/** Bases of a managed disk: the snapshot resources of its earlier backups; none without Compute access. */
export function managedSnapshots(access: ManagedSnapshotAccess | undefined): BaseSnapshots {
  return { of: (m) => m.source.snapshotResourceId || undefined, exists: async (s) => (access ? access.exists(s) : false) };
}

/** Why `m` cannot be the base of this run, or undefined when it can (its snapshot still checked apart). */
export function unusableBecause(m: ManifestV2, run: ThisRun, snapshots: BaseSnapshots): FullReason | undefined {
  if (m.diskBytes !== run.diskBytes) return 'size-changed';
  if (m.pageSize !== run.pageSize) return 'page-size-changed';
  if (!sameChunking(m.chunking, run.chunking)) return 'chunking-changed';
  if (!snapshots.of(m)) return 'base-snapshot-gone'; // it read the live blob: nothing to diff against
  return undefined;
}

/**
 * The base for this run of the disk `identity`, or the reason of the newest candidate why there is none.
 * A forgotten backup (a tombstone, §26.2) is never a base, even within its grace: prune may delete it
 * (and the tables only it names) once the grace ends, while this backup still needs them. Skipped ones
 * count toward MAX_BASE_CANDIDATES; when every candidate was forgotten the reason is `base-forgotten`.
 */
export async function chooseBase(vault: Vault, keyring: Keyring, identity: string, snapshots: BaseSnapshots, run: ThisRun): Promise<BaseChoice> {
  const forgotten = await tombstonedNameTags(vault);
  let newestReason: FullReason | undefined;
  let skipped = false;
  let read = 0;
  for await (const entry of manifestsOfDisk(vault, keyring, identity)) {
    if (!entry.manifest) continue; // unreadable: never a base (the catalog reports it)
    if (forgotten.has(MANIFEST_NAME_RE.exec(entry.name)![3])) {
      skipped = true;
      if (++read >= MAX_BASE_CANDIDATES) break;
      continue;
    }
    let reason = unusableBecause(entry.manifest, run, snapshots);
    const snapshot = snapshots.of(entry.manifest)!;
    if (!reason && !(await snapshots.exists(snapshot))) reason = 'base-snapshot-gone';
    if (!reason) {
      return { base: { backupId: entry.manifest.backupId, manifest: entry.name, snapshot }, manifest: entry.manifest };
    }
    newestReason ??= reason;
    if (++read >= MAX_BASE_CANDIDATES) break;
  }
  return { base: null, reason: newestReason ?? (skipped ? 'base-forgotten' : 'no-base') };
}

/**
 * In a vault upgraded from version 1: whether a version-1 backup of the disk `identity` is there — its
 * first version-2 backup is then full with reason `v1-base` (§12.5), not `no-base`. Reads the clear
 * version-1 manifests (no key needed to tell the disk); only asked while the disk has no version-2 backup.
 */
export async function hasV1Backup(vault: Vault, identity: string): Promise<boolean> {
  for await (const prefix of vault.listPrefixes('backups/')) {
    const id = prefix.slice('backups/'.length).replace(/\/$/, '');
    try {
      if (diskIdentityOf((await readManifestUnverified(vault, id)).body.source).identity === identity) return true;
    } catch (err) {
      if (isTransient(err)) throw err; // unfinished, damaged or foreign: not a base either way
    }
  }
  return false;
}
