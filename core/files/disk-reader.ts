/**
 * What file-level restore reads a disk through: a size and positioned reads. The vault pseudo-disk
 * (vault-disk.ts), a partition's window of it (slice), a journal overlay over that window
 * (overlay-disk.ts) and a local image file (tests, `fileDiskReader`) all are one.
 */
import { promises as fs } from 'node:fs';
import { PagewiseError } from '../errors';

export interface DiskReader {
  /** Bytes the disk holds; a read past it is refused. */
  readonly size: number;
  /** Exactly `length` bytes from `position` (0 ≤ position, position + length ≤ size), or throws (Corrupt names what broke). */
  read(position: number, length: number): Promise<Buffer>;
}

/** Refuses a read outside [0, size): every reader checks the same way, with the same words. */
export function checkRead(disk: { size: number }, position: number, length: number, what: string): void {
  if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0 || position + length > disk.size) {
    throw new PagewiseError('BadInput', `a read of ${length} bytes at ${position} lies outside ${what} (${disk.size} bytes)`);
  }
}

/** A window [offset, offset + size) of `disk` seen as a disk of its own (a partition). */
export function sliceReader(disk: DiskReader, offset: number, size: number, what = 'the partition'): DiskReader {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size < 0 || offset + size > disk.size) {
    throw new PagewiseError('Corrupt', `${what} (${size} bytes at ${offset}) lies outside the disk (${disk.size} bytes)`);
  }
  return {
    size,
    async read(position, length) {
      checkRead({ size }, position, length, what);
      return disk.read(offset + position, length);
    },
  };
}

/** A local image file as a disk (tests and local images): read-only, the file's size. */
export async function fileDiskReader(path: string): Promise<DiskReader & { close(): Promise<void> }> {
  const handle = await fs.open(path, 'r');
  const size = (await handle.stat()).size;
  return {
    size,
    async read(position, length) {
      checkRead({ size }, position, length, path);
      const out = Buffer.alloc(length);
      let at = 0;
      while (at < length) {
        const { bytesRead } = await handle.read(out, at, length - at, position + at);
        if (bytesRead === 0) throw new PagewiseError('Corrupt', `${path} ended at ${position + at} while ${size} bytes were expected`);
        at += bytesRead;
      }
      return out;
    },
    close: () => handle.close(),
  };
}
