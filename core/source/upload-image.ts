/**
 * Brings a local disk image into a cloud account as a page blob, the way a VM disk lands there: only
 * chunks that hold a non-zero byte are written (Put Page, ≤ 4 MiB each), so zero regions stay
 * unallocated. An image whose size is not a multiple of 512 is padded with zeros to the next one
 * (a page blob cannot be otherwise); the padding is reported. Used to try Pagewise on one's own images.
 */
import { promises as fs } from 'node:fs';
import { RestError } from '@azure/storage-blob';
import { PagewiseError } from '../errors';
import { MAX_PAGE_BLOB_BYTES, MAX_PUT_PAGE_BYTES, SECTOR } from '../limits';
import { displayUrl } from '../redact';
import { putPages } from '../restore/restore';
import { assertDiskWriteTarget } from '../restore/target-guard';
import { targetBlobClient } from '../storage/clients';
import { StorageLocation } from '../types';
import { translateStorageError } from '../storage/storage-errors';

export interface UploadImageResult {
  target: string;
  imageBytes: number;
  diskBytes: number;
  paddedBytes: number;
  writtenBytes: number;
  durationMs: number;
}

const CHUNK_BYTES = 64 * 1024;

export async function uploadImage(file: string, target: StorageLocation, options: { overwrite?: boolean } = {}): Promise<UploadImageResult> {
  const started = Date.now();
  let imageBytes: number;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new PagewiseError('BadInput', `${file} is not a file`);
    imageBytes = stat.size;
  } catch (err) {
    if (err instanceof PagewiseError) throw err;
    throw new PagewiseError('BadInput', `cannot read the image ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const diskBytes = Math.ceil(imageBytes / SECTOR) * SECTOR;
  if (diskBytes === 0) throw new PagewiseError('BadInput', `the image ${file} is empty`);
  if (diskBytes > MAX_PAGE_BLOB_BYTES) throw new PagewiseError('LimitExceeded', `the image is ${imageBytes} bytes, more than a page blob may hold (8 TiB)`);

  const { client } = targetBlobClient(target, 'the page-blob URL');
  const what = `the page blob ${displayUrl(target.url)}`;
  await assertDiskWriteTarget(target, what);
  try {
    await client.create(diskBytes, options.overwrite ? {} : { conditions: { ifNoneMatch: '*' } });
  } catch (err) {
    if ((err as RestError).statusCode === 409) throw new PagewiseError('TargetExists', `${what} already exists; pass --force to replace it`);
    throw translateStorageError(err, what, 'VaultUnreachable', 'VaultUnreachable');
  }

  const handle = await fs.open(file, 'r');
  const buffer = Buffer.alloc(MAX_PUT_PAGE_BYTES);
  let writtenBytes = 0;
  try {
    for (let offset = 0; offset < diskBytes; offset += buffer.length) {
      const length = Math.min(buffer.length, diskBytes - offset);
      buffer.fill(0, 0, length); // the tail past the image's end is the zero padding
      await handle.read(buffer, 0, Math.min(length, Math.max(0, imageBytes - offset)), offset);
      // Consecutive non-zero chunks go out as one Put Page.
      let start = -1;
      const flush = async (end: number) => {
        if (start < 0) return;
        await putPages(client, offset + start, buffer.subarray(start, end), what);
        writtenBytes += end - start;
        start = -1;
      };
      for (let at = 0; at < length; at += CHUNK_BYTES) {
        const zero = buffer.subarray(at, Math.min(length, at + CHUNK_BYTES)).every((b) => b === 0);
        if (!zero && start < 0) start = at;
        if (zero) await flush(at);
      }
      await flush(length);
    }
  } finally {
    await handle.close();
  }
  return { target: displayUrl(target.url), imageBytes, diskBytes, paddedBytes: diskBytes - imageBytes, writtenBytes, durationMs: Date.now() - started };
}
