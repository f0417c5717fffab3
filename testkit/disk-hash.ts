/**
 * SHA-256 of a disk's logical content, for checking restores byte for byte without materializing
 * holes: zeros are hashed from one reusable buffer, data as it comes.
 */
import { createHash, Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { PageBlobClient } from '@azure/storage-blob';

const CHUNK = 4 * 1024 * 1024;
const ZEROS = Buffer.alloc(CHUNK);

export class DiskHash {
  private readonly hash: Hash = createHash('sha256');
  private at = 0;

  /** Hashes zeros up to `end` (the hole before the next data). */
  zeroTo(end: number): void {
    while (this.at < end) {
      const n = Math.min(CHUNK, end - this.at);
      this.hash.update(ZEROS.subarray(0, n));
      this.at += n;
    }
  }

  update(data: Buffer): void {
    this.hash.update(data);
    this.at += data.length;
  }

  /** Hashes zeros to the end of the disk and returns the hex digest. */
  digest(diskBytes: number): string {
    this.zeroTo(diskBytes);
    return this.hash.digest('hex');
  }
}

export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** SHA-256 of a page blob's logical content: allocated ranges downloaded, zeros for the holes. */
export async function pageBlobSha256(client: PageBlobClient, diskBytes: number): Promise<string> {
  const disk = new DiskHash();
  for await (const page of client.listPageRanges(0, diskBytes).byPage({ maxPageSize: 5000 })) {
    for (const r of page.pageRange ?? []) {
      disk.zeroTo(r.start);
      for (let off = r.start; off <= r.end; off += CHUNK) {
        disk.update(await client.downloadToBuffer(off, Math.min(CHUNK, r.end + 1 - off)));
      }
    }
  }
  return disk.digest(diskBytes);
}
