/**
 * Restore a backup to a new page blob (only non-hole pages are written, in Put Page requests of at most
 * 4 MiB), to a local sparse file (see file-target.ts), or in place to a block device (every byte of the
 * disk written, holes as zeros). The target is checked before anything is read from the vault; an
 * existing page blob or file is refused unless `overwrite` is set; a failed restore leaves no file or
 * page blob behind.
 */
import { PageBlobClient, RestError } from '@azure/storage-blob';
import { withChildSignal } from '../abort-fanout';
import { PagewiseError, throwIfAborted } from '../errors';
import { MAX_PAGE_BLOB_BYTES, MAX_PUT_PAGE_BYTES, SECTOR } from '../limits';
import { displayUrl } from '../redact';
import { translateTargetError } from '../storage/storage-errors';
import { parseStorageUrl, targetBlobClient } from '../storage/clients';
import { accountGate } from '../storage/account-gate';
import { OperationProgress, RestoreRequest, RestoreResult } from '../types';
import { openBackupSource } from '../repo/backup-source';
import { PageSink, prepareDeviceTarget, prepareFileTarget, PreparedTarget } from './file-target';
import { assertDiskWriteTarget, targetExists } from './target-guard';
import { writePages } from './write-pages';

export function isBlobTarget(target: string): boolean {
  return /^https?:\/\//i.test(target);
}

export { nonZeroRuns } from './write-pages';

export async function restoreBackup(req: RestoreRequest): Promise<RestoreResult> {
  throwIfAborted(req.abortSignal, 'the restore was interrupted');
  // Every check of the target comes before the first read from the vault.
  return restoreToTarget(req, await prepareTarget(req));
}

/** What restoring into a target made elsewhere (e.g. a managed disk's upload blob, core/vm/restore-vm.ts) needs of a RestoreRequest. */
export type TargetRestoreRequest = Pick<RestoreRequest, 'backupId' | 'vault' | 'userKey' | 'concurrency' | 'abortSignal' | 'onProgress'>;

/** Restores a backup into a prepared target: its sink is opened once the disk's size is read; abandoned on failure. */
export async function restoreToTarget(req: TargetRestoreRequest, target: PreparedTarget): Promise<RestoreResult> {
  const started = Date.now();
  // Interrupted (Ctrl-C, a host stopping): checked first and before each read and write; the catch
  // below removes the partial file or page blob.
  const signal = req.abortSignal;
  const stopIfAborted = () => throwIfAborted(signal, 'the restore was interrupted');
  stopIfAborted();
  // A vault request the abort cancelled fails with the store's Aborted error: the restore says it was interrupted.
  const orAborted = (err: unknown): never => {
    stopIfAborted();
    throw err;
  };
  const reader = await openBackupSource(req.vault, req.backupId, req.userKey, { abortSignal: signal }).catch(orAborted);
  const progress: OperationProgress = { phase: 'restoring', pagesDone: 0, pagesTotal: reader.entryCount, bytesDone: 0, bytesTotal: await reader.entryBytes().catch(orAborted) };
  const sink = await target.open(reader.diskBytes);
  let pagesWritten = 0;
  let bytesWritten = 0;
  const write = async (offset: number, data: Buffer) => {
    stopIfAborted();
    await sink.write(offset, data, signal);
    bytesWritten += data.length;
  };
  let nextPage = 0; // a dense sink gets zeros for the pages the backup holds none of (holes)
  // The groups' entries as one stream, so the page writer's reads run ahead across group boundaries;
  // a dense sink's holes are written as the groups are read.
  async function* entries() {
    for await (const group of reader.groups()) {
      if (sink.dense) {
        for (const e of group.entries) {
          await writeZeros(write, nextPage * reader.pageSize, (e.page - nextPage) * reader.pageSize);
          nextPage = Math.max(nextPage, e.page + 1);
        }
      }
      yield group.entries;
    }
  }
  try {
    await writePages(reader, entries(), sink, {
      concurrency: req.concurrency,
      abortSignal: signal,
      onWrite: (bytes) => (bytesWritten += bytes),
      onPage: (plainLength) => {
        pagesWritten++;
        progress.pagesDone++;
        progress.bytesDone += plainLength;
        req.onProgress?.({ ...progress });
      },
    });
    if (sink.dense) await writeZeros(write, nextPage * reader.pageSize, reader.diskBytes - nextPage * reader.pageSize);
    await sink.commit();
  } catch (err) {
    await sink.abandon();
    // A request the abort cancelled fails as unreachable storage; the abort is what happened.
    stopIfAborted();
    throw err;
  }
  return {
    backupId: req.backupId,
    target: target.display,
    diskBytes: reader.diskBytes,
    pagesWritten,
    bytesWritten,
    durationMs: Date.now() - started,
  };
}

const ZEROS = Buffer.alloc(1024 * 1024);

async function writeZeros(write: (offset: number, data: Buffer) => Promise<void>, offset: number, length: number): Promise<void> {
  for (let at = 0; at < length; at += ZEROS.length) await write(offset + at, ZEROS.subarray(0, Math.min(ZEROS.length, length - at)));
}

function prepareTarget(req: RestoreRequest): Promise<PreparedTarget> {
  if (req.device) return prepareDeviceTarget(req.target.url);
  if (isBlobTarget(req.target.url)) return prepareBlobTarget(req);
  return prepareFileTarget(req.target.url, req.overwrite ?? false, req.keepFiles);
}

async function prepareBlobTarget(req: RestoreRequest): Promise<PreparedTarget> {
  const { client } = targetBlobClient(req.target);
  const what = `the restore target ${displayUrl(req.target.url)}`;
  await assertDiskWriteTarget(req.target, what, [req.vault]);
  if (!req.overwrite && (await targetExists(req.target, what))) throw new PagewiseError('TargetExists', `${what} already exists; pass --force to overwrite it`);
  return { display: displayUrl(req.target.url), open: (diskBytes) => openBlobSink(client, what, diskBytes, req.overwrite ?? false) };
}

/** A disk of this size can be a page blob (a whole number of sectors, at most 8 TiB). */
export function assertPageBlobSize(diskBytes: number): void {
  if (diskBytes % SECTOR !== 0) throw new PagewiseError('BadInput', `the disk size ${diskBytes} is not a multiple of 512 and cannot be a page blob`);
  if (diskBytes > MAX_PAGE_BLOB_BYTES) throw new PagewiseError('LimitExceeded', `the disk (${diskBytes} bytes) is larger than a page blob may be (8 TiB)`);
}

async function openBlobSink(client: PageBlobClient, what: string, diskBytes: number, overwrite: boolean): Promise<PageSink> {
  assertPageBlobSize(diskBytes);
  try {
    if (await client.exists()) {
      if (!overwrite) throw new PagewiseError('TargetExists', `${what} already exists; pass --force to overwrite it`);
      await client.delete();
    }
    await client.create(diskBytes, { conditions: { ifNoneMatch: '*' } });
  } catch (err) {
    if (err instanceof PagewiseError) throw err;
    if ((err as RestError).statusCode === 409) throw new PagewiseError('TargetExists', `${what} already exists`);
    throw translateTargetError(err, what);
  }
  return {
    dense: false,
    async write(offset, data, abortSignal) {
      await putPages(client, offset, data, what, abortSignal);
    },
    async commit() {},
    async abandon() {
      await client.deleteIfExists().catch(() => undefined);
    },
  };
}

/** Writes a page in Put Page requests of at most 4 MiB (Azure's limit; Azurite would accept more). */
export async function putPages(client: PageBlobClient, offset: number, data: Buffer, what: string, abortSignal?: AbortSignal): Promise<void> {
  const parsed = parseStorageUrl(client.url, 'blob', what);
  const gate = accountGate(parsed.url.host, parsed.account);
  for (let at = 0; at < data.length; at += MAX_PUT_PAGE_BYTES) {
    const chunk = data.subarray(at, Math.min(data.length, at + MAX_PUT_PAGE_BYTES));
    if (chunk.length > MAX_PUT_PAGE_BYTES || chunk.length % SECTOR !== 0) {
      throw new PagewiseError('LimitExceeded', `a Put Page of ${chunk.length} bytes is not allowed (at most 4 MiB, a multiple of 512)`);
    }
    try {
      // A signal per request: a restore keeps many Put Pages in flight on one operation's signal (core/abort-fanout.ts).
      await gate.run(() => withChildSignal(abortSignal, (signal) => client.uploadPages(chunk, offset + at, chunk.length, { abortSignal: signal })));
    } catch (err) {
      throw translateTargetError(err, what);
    }
  }
}
