/** Shaping a backup's result (pure: the single-process engine and the orchestrator share it). */
import type { BackupResult } from '../types';

/**
 * A start of a disk state that was already backed up: the result describes the existing backup, but
 * this run read nothing (bytesRead 0, so no read speed is implied).
 */
export function asAlreadyExisted(result: BackupResult): BackupResult {
  return { ...result, alreadyExisted: true, bytesRead: 0, bytesReadNow: 0, cacheHighWaterBytes: 0 };
}
