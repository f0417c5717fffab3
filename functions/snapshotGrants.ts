/**
 * How long a snapshot read grant lives (#17): long enough for the backup that reads through it, no longer.
 * PAGEWISE_SNAPSHOT_GRANT_MINUTES fixes it (15 … 1440); unset, it follows the snapshot's size: one hour for the
 * plan, queueing and retries, plus the disk read at a floor of 64 MiB/s (a 1 TiB disk: 5 h 33 min), within
 * 1 h … 24 h. Every grant is revoked when its backup ends (docs/VM.md "Nothing left behind"); the length only
 * bounds what a revoke that never ran (a terminated instance, a crash) leaves open until the sweeper ends it.
 */
import { PagewiseError } from '../core';
import { appSettings, Env } from './settings';

export const SNAPSHOT_GRANT_SETTING = 'PAGEWISE_SNAPSHOT_GRANT_MINUTES';
export const MIN_GRANT_MINUTES = 15;
export const MAX_GRANT_MINUTES = 24 * 60;
/** The read rate a derived grant assumes: below what one backup of a managed disk reads (batches in parallel). */
export const GRANT_FLOOR_BYTES_PER_SECOND = 64 * 1024 * 1024;
/** Added to the read time: the plan (and an incremental's diff), a wait in the queue, activity retries. */
export const GRANT_MARGIN_SECONDS = 3600;
/** A snapshot whose size Compute does not say. */
export const UNKNOWN_SIZE_GRANT_SECONDS = 6 * 3600;

/** The grant length (s) for a snapshot of `sizeBytes` (undefined: unknown), by the setting or the size rule. */
export function snapshotGrantSeconds(sizeBytes: number | undefined, env: Env = appSettings()): number {
  const raw = env[SNAPSHOT_GRANT_SETTING]?.trim();
  if (raw) {
    const n = Number(raw);
    if (!/^\d{1,5}$/.test(raw) || n < MIN_GRANT_MINUTES || n > MAX_GRANT_MINUTES) {
      throw new PagewiseError('BadInput', `app setting ${SNAPSHOT_GRANT_SETTING} must be a whole number of minutes from ${MIN_GRANT_MINUTES} to ${MAX_GRANT_MINUTES}, got "${raw.slice(0, 16)}"`);
    }
    return n * 60;
  }
  if (sizeBytes === undefined || !Number.isFinite(sizeBytes) || sizeBytes < 0) return UNKNOWN_SIZE_GRANT_SECONDS;
  const seconds = GRANT_MARGIN_SECONDS + Math.ceil(sizeBytes / GRANT_FLOOR_BYTES_PER_SECOND);
  return Math.min(MAX_GRANT_MINUTES * 60, Math.max(GRANT_MARGIN_SECONDS, seconds));
}
