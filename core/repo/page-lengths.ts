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

/** What a reader knows of a backup from its manifest's grid, the same in both formats: one place for the getters. */
export abstract class BackupGrid {
  abstract readonly manifest: { backupId: string; diskBytes: number; pageSize: number; pageCount: number };

  get backupId(): string {
    return this.manifest.backupId;
  }

  get diskBytes(): number {
    return this.manifest.diskBytes;
  }

  get pageSize(): number {
    return this.manifest.pageSize;
  }

  get pageCount(): number {
    return this.manifest.pageCount;
  }

  /** The real length of a page: whole, but the disk's last page is as short as the disk leaves it. */
  pageLength(page: number): number {
    return pageLengthIn(this.diskBytes, this.pageSize, page);
  }
}
