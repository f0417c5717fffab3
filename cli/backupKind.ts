/** How the CLI says what kind of backup ran (or is listed): incremental on which base, or full and why (issue #12 item 4). */
import type { BackupResult, FullReason } from '../core';
import { formatBytes } from './output';

/** Why a backup was full, in words a user acts on. */
export const FULL_REASONS: Record<FullReason, string> = {
  'no-base': 'no earlier backup of this disk in the vault',
  'base-snapshot-gone': "the previous backup's snapshot no longer exists",
  'base-replaced': 'the disk was replaced (Put or Copy Blob) since the previous backup',
  'size-changed': "the disk's size changed",
  'page-size-changed': 'the page size differs from the previous backup',
  'chunking-changed': 'the chunking differs from the previous backup',
  'v1-base': 'the previous backup is in format 1',
  'v1-vault': 'the vault is in format 1 (pagewise upgrade makes it incremental)',
  forced: '--full',
  'other-key': 'the previous backup was made with another key',
  'base-forgotten': 'the earlier backups of this disk are forgotten (pagewise undelete restores one)',
};

export function fullReason(reason: FullReason | null | undefined): string {
  return reason ? `${reason}: ${FULL_REASONS[reason] ?? 'unknown reason'}` : 'unknown';
}

/**
 * "incremental on <base> (generation n): read X of Y allocated, changed C, new N", or "full (reason: …)".
 * `generation` is the manifest's (§20.3), when the result carries it.
 */
export function kindLine(result: BackupResult & { generation?: number }): string {
  if (result.kind === 'incremental' && result.base) {
    const generation = result.generation !== undefined ? ` (generation ${result.generation})` : '';
    return (
      `incremental on ${result.base.backupId}${generation}: read ${formatBytes(result.bytesRead)} of ${formatBytes(result.allocatedBytes)} allocated, ` +
      `changed ${formatBytes(result.bytesChanged)}, new ${formatBytes(result.bytesNew)}`
    );
  }
  return `full (reason: ${fullReason(result.reason)})`;
}
