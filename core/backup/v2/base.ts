/**
 * Finding the base of an incremental (docs/FORMAT.md §21.2): the newest manifest of the same disk with
 * the same size, page size and chunking whose source snapshot still exists; else why the backup is full.
 */
import { readManifest2, manifestsOfDisk } from '../../repo/v2/manifest';
import { Keyring } from '../../repo/v2/keyring';
import { BaseRef, FullReason, ManifestV2 } from '../../repo/v2/records';
import { Vault } from '../../repo/vault';
import { SourceDisk } from '../../source/source-disk';

/** The chunking this writer uses (§15.2; #12 writes scheme `page`). */
export const CHUNKING = { scheme: 'page' } as const;

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
}

/** Why `m` cannot be the base of this run, or undefined when it can (its snapshot still checked apart). */
export function unusableBecause(m: ManifestV2, run: ThisRun): FullReason | undefined {
  if (m.diskBytes !== run.diskBytes) return 'size-changed';
  if (m.pageSize !== run.pageSize) return 'page-size-changed';
  if (!sameChunking(m.chunking)) return 'chunking-changed';
  if (!m.source.snapshot) return 'base-snapshot-gone'; // it read the live blob: nothing to diff against
  return undefined;
}

function sameChunking(c: ManifestV2['chunking']): boolean {
  return c.scheme === CHUNKING.scheme && Object.keys(c).length === 1;
}

/** The base for this run of the disk `identity`, or the reason of the newest candidate why there is none. */
export async function chooseBase(vault: Vault, keyring: Keyring, identity: string, source: SourceDisk, run: ThisRun): Promise<BaseChoice> {
  let newestReason: FullReason | undefined;
  let read = 0;
  for await (const entry of manifestsOfDisk(vault, keyring, identity)) {
    if (!entry.manifest) continue; // unreadable: never a base (the catalog reports it)
    let reason = unusableBecause(entry.manifest, run);
    if (!reason && !(await source.snapshotExists(entry.manifest.source.snapshot!))) reason = 'base-snapshot-gone';
    if (!reason) {
      return { base: { backupId: entry.manifest.backupId, manifest: entry.name, snapshot: entry.manifest.source.snapshot! }, manifest: entry.manifest };
    }
    newestReason ??= reason;
    if (++read >= MAX_BASE_CANDIDATES) break;
  }
  return { base: null, reason: newestReason ?? 'no-base' };
}

/** The base manifest a plan names (finalize and the batches read its tables). */
export function readBaseManifest(vault: Vault, keyring: Keyring, base: BaseRef): Promise<ManifestV2> {
  return readManifest2(vault, keyring, base.manifest);
}
