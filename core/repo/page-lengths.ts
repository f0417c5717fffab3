/** Page lengths of a backed-up disk, shared by the version-1 and version-2 readers. */
import type { BackupSource } from './backup-source';

/** The real length of page `page` of a disk: whole, but the disk's last page is as short as the disk leaves it. */
export function pageLengthIn(diskBytes: number, pageSize: number, page: number): number {
  return Math.max(0, Math.min(pageSize, diskBytes - page * pageSize));
}

/**
 * Plaintext bytes of a backup's entries, each page at its real length. Only a disk whose last page is
 * short needs `lastPageIsEntry` (a look at the last group's table: is that page an entry or a hole?).
 */
export async function entryBytesOf(b: Pick<BackupSource, 'entryCount' | 'pageSize' | 'pageCount' | 'pageLength'>, lastPageIsEntry: () => Promise<boolean>): Promise<number> {
  const whole = b.entryCount * b.pageSize;
  const shortBy = b.pageSize - b.pageLength(b.pageCount - 1);
  if (shortBy === 0) return whole;
  return (await lastPageIsEntry()) ? whole - shortBy : whole;
}
