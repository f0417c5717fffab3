/**
 * Uploads a local disk image into a page blob the way a VM disk lands in a cloud account: only chunks
 * holding non-zero bytes are written (Put Page, ≤ 4 MiB each), so zero regions stay unallocated.
 * Used by tests and the demo to bring real file-system images into Azurite.
 */
import { promises as fs } from 'node:fs';
import { PageBlobClient } from '@azure/storage-blob';
import { MAX_PUT_PAGE_BYTES, SECTOR } from '../core/limits';

export async function uploadImage(file: string, client: PageBlobClient, chunkBytes = 64 * 1024): Promise<{ diskBytes: number; writtenBytes: number }> {
  const { size } = await fs.stat(file);
  if (size % SECTOR !== 0) throw new Error(`${file} is ${size} bytes, not a multiple of 512: a page blob cannot hold it`);
  await client.create(size);
  const handle = await fs.open(file, 'r');
  const buffer = Buffer.alloc(MAX_PUT_PAGE_BYTES);
  let writtenBytes = 0;
  try {
    for (let offset = 0; offset < size; offset += buffer.length) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - offset), offset);
      // Coalesce consecutive non-zero chunks into one Put Page.
      let start = -1;
      const flush = async (end: number) => {
        if (start < 0) return;
        await client.uploadPages(buffer.subarray(start, end), offset + start, end - start);
        writtenBytes += end - start;
        start = -1;
      };
      for (let at = 0; at < bytesRead; at += chunkBytes) {
        const end = Math.min(bytesRead, at + chunkBytes);
        const zero = buffer.subarray(at, end).every((b) => b === 0);
        if (!zero && start < 0) start = at;
        if (zero) await flush(at);
      }
      await flush(bytesRead);
    }
  } finally {
    await handle.close();
  }
  return { diskBytes: size, writtenBytes };
}
