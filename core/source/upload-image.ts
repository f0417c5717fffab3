/**
 * Brings a local disk image into a cloud account as a page blob, the way a VM disk lands there: only
 * chunks that hold a non-zero byte are written (Put Page, ≤ 4 MiB each), so zero regions stay
 * unallocated. An image whose size is not a multiple of 512 is padded with zeros to the next one
 * (a page blob cannot be otherwise); the padding is reported. Used to try Pagewise on one's own images.
 */
import { constants, promises as fs } from 'node:fs';
import { RestError } from '@azure/storage-blob';
import { PagewiseError } from '../errors';
import { MAX_PAGE_BLOB_BYTES, MAX_PUT_PAGE_BYTES, SECTOR } from '../limits';
import { displayUrl } from '../redact';
import { putPages } from '../restore/restore';
import { assertDiskWriteTarget } from '../restore/target-guard';
import { targetBlobClient } from '../storage/clients';
import { StorageLocation } from '../types';
import { translateTargetError } from '../storage/storage-errors';

export interface UploadImageResult {
  target: string;
  imageBytes: number;
  diskBytes: number;
  paddedBytes: number;
  writtenBytes: number;
  durationMs: number;
}

const CHUNK_BYTES = 64 * 1024;

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'error';
}

/**
 * Opens the image and checks the opened descriptor (what is checked is what is read): only a regular
 * file. O_NONBLOCK: a FIFO (or a path swapped for one after a look) opens at once and is refused, never
 * waited on; a device such as /dev/zero or /dev/stdin is refused rather than read without end.
 */
async function openImage(file: string): Promise<{ handle: fs.FileHandle; size: number }> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new PagewiseError('BadInput', `cannot read the image ${file} (${errno(err)})`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new PagewiseError('BadInput', `${file} is not a file`);
    return { handle, size: stat.size };
  } catch (err) {
    await handle.close();
    if (err instanceof PagewiseError) throw err;
    throw new PagewiseError('BadInput', `cannot read the image ${file} (${errno(err)})`);
  }
}

export async function uploadImage(file: string, target: StorageLocation, options: { overwrite?: boolean; abortSignal?: AbortSignal } = {}): Promise<UploadImageResult> {
  const started = Date.now();
  const { handle, size: imageBytes } = await openImage(file);
  try {
    return await uploadOpenImage(file, handle, imageBytes, target, options, started);
  } finally {
    await handle.close();
  }
}

async function uploadOpenImage(
  file: string,
  handle: fs.FileHandle,
  imageBytes: number,
  target: StorageLocation,
  options: { overwrite?: boolean; abortSignal?: AbortSignal },
  started: number,
): Promise<UploadImageResult> {
  const diskBytes = Math.ceil(imageBytes / SECTOR) * SECTOR;
  if (diskBytes === 0) throw new PagewiseError('BadInput', `the image ${file} is empty`);
  if (diskBytes > MAX_PAGE_BLOB_BYTES) throw new PagewiseError('LimitExceeded', `the image is ${imageBytes} bytes, more than a page blob may hold (8 TiB)`);

  const { client } = targetBlobClient(target, 'the page-blob URL');
  const what = `the page blob ${displayUrl(target.url)}`;
  await assertDiskWriteTarget(target, what);
  options.abortSignal?.throwIfAborted();
  try {
    await client.create(diskBytes, options.overwrite ? {} : { conditions: { ifNoneMatch: '*' } });
  } catch (err) {
    if ((err as RestError).statusCode === 409) throw new PagewiseError('TargetExists', `${what} already exists; pass --force to replace it`);
    throw translateTargetError(err, what);
  }

  const buffer = Buffer.alloc(MAX_PUT_PAGE_BYTES);
  const zeroChunk = Buffer.alloc(CHUNK_BYTES);
  let writtenBytes = 0;
  try {
    for (let offset = 0; offset < diskBytes; offset += buffer.length) {
      options.abortSignal?.throwIfAborted();
      const length = Math.min(buffer.length, diskBytes - offset);
      const wanted = Math.min(length, Math.max(0, imageBytes - offset));
      buffer.fill(0, 0, length); // the tail past the image's end is the zero padding
      const { bytesRead } = await handle.read(buffer, 0, wanted, offset);
      if (bytesRead !== wanted) throw changedWhileRead(file, imageBytes);
      // Consecutive non-zero chunks go out as one Put Page.
      let start = -1;
      const flush = async (end: number) => {
        if (start < 0) return;
        await putPages(client, offset + start, buffer.subarray(start, end), what);
        writtenBytes += end - start;
        start = -1;
      };
      for (let at = 0; at < length; at += CHUNK_BYTES) {
        const piece = buffer.subarray(at, Math.min(length, at + CHUNK_BYTES));
        const zero = piece.equals(zeroChunk.subarray(0, piece.length)); // memcmp: a 64 GiB sparse image scans in seconds
        if (!zero && start < 0) start = at;
        if (zero) await flush(at);
      }
      await flush(length);
    }
    // A file that grew (or was rewritten to another size) while it was read is not the image measured.
    if ((await handle.stat()).size !== imageBytes) throw changedWhileRead(file, imageBytes);
  } catch (err) {
    // The blob holds part of an image (or of a changing file): a disk no one should back up. Gone.
    await client.deleteIfExists().catch(() => undefined);
    throw err;
  }
  return { target: displayUrl(target.url), imageBytes, diskBytes, paddedBytes: diskBytes - imageBytes, writtenBytes, durationMs: Date.now() - started };
}

function changedWhileRead(file: string, imageBytes: number): PagewiseError {
  return new PagewiseError('SourceChanged', `the image ${file} changed size while it was read (it was ${imageBytes} bytes); the partial page blob was removed — upload it again when nothing writes it`);
}
