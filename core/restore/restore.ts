/**
 * Restore a backup to a new page blob (only non-hole pages are written, in Put Page requests of at most
 * 4 MiB) or to a local sparse file (written beside the target and renamed into place when complete).
 * An existing target is refused unless `overwrite` is set; a failed restore leaves no target behind.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PageBlobClient, RestError } from '@azure/storage-blob';
import { forEachLimited } from '../concurrency';
import { PagewiseError } from '../errors';
import { removeAtExit } from '../exit-cleanup';
import { MAX_PAGE_BLOB_BYTES, MAX_PUT_PAGE_BYTES, SECTOR } from '../limits';
import { displayUrl } from '../redact';
import { translateStorageError } from '../storage/storage-errors';
import { parseStorageUrl, targetBlobClient } from '../storage/clients';
import { accountGate } from '../storage/account-gate';
import { RestoreRequest, RestoreResult } from '../types';
import { PageEntry } from '../vault/page-table';
import { BackupReader, blockRuns } from './backup-reader';

export function isBlobTarget(target: string): boolean {
  return /^https?:\/\//i.test(target);
}

const SECTOR_ZEROS = Buffer.alloc(SECTOR);

/** The 512-byte-aligned runs of a buffer that hold a non-zero byte, coalesced. */
export function* nonZeroRuns(data: Buffer): Generator<{ start: number; end: number }> {
  let start = -1;
  for (let at = 0; at < data.length; at += SECTOR) {
    const end = Math.min(data.length, at + SECTOR);
    const zero = data.subarray(at, end).equals(SECTOR_ZEROS.subarray(0, end - at));
    if (!zero && start < 0) start = at;
    if (zero && start >= 0) {
      yield { start, end: at };
      start = -1;
    }
  }
  if (start >= 0) yield { start, end: data.length };
}

interface PageSink {
  write(offset: number, data: Buffer): Promise<void>;
  commit(): Promise<void>;
  abandon(): Promise<void>;
}

export async function restoreBackup(req: RestoreRequest): Promise<RestoreResult> {
  const started = Date.now();
  const reader = await BackupReader.open(req.vault, req.backupId, req.userKey);
  const { manifest } = reader;
  const sink = isBlobTarget(req.target.url)
    ? await openBlobSink(req, manifest.diskBytes)
    : await openFileSink(req.target.url, manifest.diskBytes, req.overwrite ?? false);
  let pagesWritten = 0;
  let bytesWritten = 0;
  const total = reader.entryCount;
  try {
    for await (const { entries } of reader.segments()) {
      await forEachLimited(blockRuns(entries), req.concurrency ?? 4, async (run: PageEntry[]) => {
        for (const { entry, plain, error } of await reader.readRun(run)) {
          if (error) throw error;
          const base = entry.page * manifest.pageSize;
          // Zero runs inside a page are left unwritten too, so the target stays as sparse as the source.
          for (const part of nonZeroRuns(plain!)) {
            await sink.write(base + part.start, plain!.subarray(part.start, part.end));
            bytesWritten += part.end - part.start;
          }
          pagesWritten++;
          req.onProgress?.(pagesWritten, total);
        }
      });
    }
    await sink.commit();
  } catch (err) {
    await sink.abandon();
    throw err;
  }
  return {
    backupId: req.backupId,
    target: isBlobTarget(req.target.url) ? displayUrl(req.target.url) : path.resolve(req.target.url),
    diskBytes: manifest.diskBytes,
    pagesWritten,
    bytesWritten,
    durationMs: Date.now() - started,
  };
}

async function openBlobSink(req: RestoreRequest, diskBytes: number): Promise<PageSink> {
  const { client } = targetBlobClient(req.target);
  const what = `the restore target ${displayUrl(req.target.url)}`;
  if (diskBytes % SECTOR !== 0) throw new PagewiseError('BadInput', `the disk size ${diskBytes} is not a multiple of 512 and cannot be a page blob`);
  if (diskBytes > MAX_PAGE_BLOB_BYTES) throw new PagewiseError('LimitExceeded', `the disk (${diskBytes} bytes) is larger than a page blob may be (8 TiB)`);
  try {
    if (await client.exists()) {
      if (!req.overwrite) throw new PagewiseError('TargetExists', `${what} already exists; pass --force to overwrite it`);
      await client.delete();
    }
    await client.create(diskBytes, { conditions: { ifNoneMatch: '*' } });
  } catch (err) {
    if (err instanceof PagewiseError) throw err;
    if ((err as RestError).statusCode === 409) throw new PagewiseError('TargetExists', `${what} already exists`);
    throw translateStorageError(err, what, 'VaultUnreachable', 'VaultUnreachable');
  }
  return {
    async write(offset, data) {
      await putPages(client, offset, data, what);
    },
    async commit() {},
    async abandon() {
      await client.deleteIfExists().catch(() => undefined);
    },
  };
}

/** Writes a page in Put Page requests of at most 4 MiB (Azure's limit; Azurite would accept more). */
export async function putPages(client: PageBlobClient, offset: number, data: Buffer, what: string): Promise<void> {
  const parsed = parseStorageUrl(client.url, 'blob', what);
  const gate = accountGate(parsed.url.host, parsed.account);
  for (let at = 0; at < data.length; at += MAX_PUT_PAGE_BYTES) {
    const chunk = data.subarray(at, Math.min(data.length, at + MAX_PUT_PAGE_BYTES));
    if (chunk.length > MAX_PUT_PAGE_BYTES || chunk.length % SECTOR !== 0) {
      throw new PagewiseError('LimitExceeded', `a Put Page of ${chunk.length} bytes is not allowed (at most 4 MiB, a multiple of 512)`);
    }
    try {
      await gate.run(() => client.uploadPages(chunk, offset + at, chunk.length));
    } catch (err) {
      throw translateStorageError(err, what, 'VaultUnreachable', 'VaultUnreachable');
    }
  }
}

async function openFileSink(file: string, diskBytes: number, overwrite: boolean): Promise<PageSink> {
  const target = path.resolve(file);
  const exists = await fs.stat(target).then(() => true, () => false);
  if (exists && !overwrite) throw new PagewiseError('TargetExists', `${target} already exists; pass --force to overwrite it`);
  const partial = `${target}.pagewise-partial`;
  let handle;
  try {
    handle = await fs.open(partial, 'w', 0o600);
    await handle.truncate(diskBytes); // sparse: holes are never written
  } catch (err) {
    await handle?.close();
    throw new PagewiseError('BadInput', `cannot create ${partial} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const h = handle;
  const forget = removeAtExit(partial); // plaintext disk data: gone even if the process exits mid-restore
  return {
    async write(offset, data) {
      let done = 0;
      while (done < data.length) done += (await h.write(data, done, data.length - done, offset + done)).bytesWritten;
    },
    async commit() {
      await h.sync();
      await h.close();
      await fs.rename(partial, target);
      forget();
    },
    async abandon() {
      await h.close().catch(() => undefined);
      await fs.rm(partial, { force: true });
      forget();
    },
  };
}
