/**
 * The source disks this process is backing up right now. A restore or upload must not write onto a
 * disk while it is being read for a backup: the backup would fail with SourceChanged at best, or the
 * disk the user meant to keep would be gone. Counted, so nested runs (backupDisk → planBackup) share one.
 */
import { ParsedBlobUrl, parseStorageUrl } from '../storage/clients';
import { StorageLocation } from '../types';

const running = new Map<string, number>();

/** Account and container are case-insensitive in Azure; blob names are not. The snapshot is ignored. */
export function blobKey(parsed: ParsedBlobUrl): string {
  return `${parsed.account.toLowerCase()}/${parsed.container.toLowerCase()}/${parsed.blob ?? ''}`;
}

/** Runs `work` with the source marked as being backed up. */
export async function whileBackingUp<T>(source: StorageLocation, work: () => Promise<T>): Promise<T> {
  const key = blobKey(parseStorageUrl(source.url, 'blob', 'the source disk URL'));
  running.set(key, (running.get(key) ?? 0) + 1);
  try {
    return await work();
  } finally {
    const left = (running.get(key) ?? 1) - 1;
    if (left > 0) running.set(key, left);
    else running.delete(key);
  }
}

export function isBeingBackedUp(target: ParsedBlobUrl): boolean {
  return running.has(blobKey(target));
}

/** Two page-blob URLs name the same disk (account, container and blob; endpoint and snapshot aside). */
export function sameDisk(a: string, b: string): boolean {
  return blobKey(parseStorageUrl(a, 'blob', 'a disk URL')) === blobKey(parseStorageUrl(b, 'blob', 'a disk URL'));
}
