/** Releasing the source snapshots Pagewise took for earlier backups of a disk, once a newer one is the base. */
import { isSnapshotTime, sourceBlobClient } from '../storage/clients';
import { StorageLocation } from '../types';
import { TAKEN_METADATA } from './source-disk';

export interface ReleasedSnapshots {
  /** Deleted now, or already gone (404). */
  deleted: string[];
  /** Could not be checked or deleted (denied, unreachable): left for the next backup to release. */
  failed: string[];
  /** Named in `taken` but not released: `keep`, or a snapshot without Pagewise's metadata (not Pagewise's to delete). */
  kept: string[];
}

/**
 * After a backup of the blob at `location` completed that reads `keep` (the next incremental's base),
 * deletes the snapshots in `taken` (those earlier manifests of the disk name with takenByPagewise) that
 * still carry the metadata Pagewise sets when it takes one (pagewise=taken). Never `keep`, never a
 * snapshot without that metadata (a user's own, even if a manifest names it), never anything not in
 * `taken`. Failures are reported, not thrown: the backup is complete whatever becomes of old snapshots.
 */
export async function releaseOlderSnapshots(location: StorageLocation, keep: string, taken: string[]): Promise<ReleasedSnapshots> {
  const result: ReleasedSnapshots = { deleted: [], failed: [], kept: [] };
  let client;
  try {
    client = sourceBlobClient(location).client;
  } catch {
    // e.g. its SAS expired since the backup began: nothing can be released now.
    result.failed.push(...new Set(taken.filter((s) => s !== keep)));
    if (taken.includes(keep)) result.kept.push(keep);
    return result;
  }
  for (const snapshot of new Set(taken)) {
    if (snapshot === keep) {
      result.kept.push(snapshot);
      continue;
    }
    // A value that is not a snapshot time would address the live blob (withSnapshot('') drops the parameter).
    if (!isSnapshotTime(snapshot)) {
      result.failed.push(snapshot);
      continue;
    }
    const one = client.withSnapshot(snapshot);
    try {
      const props = await one.getProperties();
      if (props.metadata?.pagewise !== TAKEN_METADATA.pagewise) {
        result.kept.push(snapshot);
        continue;
      }
      // The ETag condition: the snapshot checked is the one deleted (a snapshot never changes; belt and braces).
      await one.delete({ conditions: { ifMatch: props.etag } });
      result.deleted.push(snapshot);
    } catch (err) {
      if ((err as { statusCode?: number })?.statusCode === 404) result.deleted.push(snapshot);
      else result.failed.push(snapshot);
    }
  }
  return result;
}
