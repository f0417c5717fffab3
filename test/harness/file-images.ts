/** Helpers the file-level restore tests share: images opened as BackupFiles (closed together), a generator's bytes, an expected rejection. */
import { BackupFiles, DiskReader, fileDiskReader, isPagewiseError, PagewiseError } from '../../core';

/** Things a test opened, closed together (newest first) in its afterAll. */
export class Opened {
  private readonly items: Array<{ close(): Promise<void> }> = [];

  push(item: { close(): Promise<void> }): void {
    this.items.push(item);
  }

  /** An image file as BackupFiles (`wrap` puts a reader around the file, e.g. to count or break reads). */
  async image(file: string, wrap?: (disk: DiskReader) => DiskReader): Promise<BackupFiles> {
    const reader = await fileDiskReader(file);
    this.push(reader);
    const files = await BackupFiles.openDisk(wrap ? wrap(reader) : reader, file);
    this.push(files);
    return files;
  }

  async closeAll(): Promise<void> {
    for (const o of this.items.reverse()) await o.close().catch(() => undefined);
    this.items.length = 0;
  }
}

export async function bytesOf(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of gen) parts.push(part);
  return Buffer.concat(parts);
}

/** The Pagewise error `p` rejects with; anything else (or no rejection) fails the test. */
export async function rejection(p: Promise<unknown>): Promise<PagewiseError> {
  try {
    await p;
  } catch (err) {
    if (isPagewiseError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}
