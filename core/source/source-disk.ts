/**
 * The VM's virtual-disk file in the cloud account: its size and identity, its allocated page ranges
 * (paged listing, window by window, so a fragmented 8 TiB blob never needs one huge response), and
 * range downloads streamed into a writable (a scratch-cache slot). Reads are pinned to the ETag seen at
 * open, so a disk that changes under a backup fails clearly instead of yielding a torn copy.
 */
import { PageBlobClient } from '@azure/storage-blob';
import { isPagewiseError, PagewiseError } from '../errors';
import { MAX_SOURCE_DISK_BYTES } from '../limits';
import { displayUrl } from '../redact';
import { isSnapshotTime, sourceBlobClient, ParsedBlobUrl } from '../storage/clients';
import { translateStorageError } from '../storage/storage-errors';
import { accountGate } from '../storage/account-gate';
import { withChildSignal } from '../abort-fanout';
import { StorageLocation } from '../types';
import { ByteRange, normalizeRanges } from './page-grid';

export interface SourceIdentity {
  url: string;
  account: string;
  container: string;
  blob: string;
  snapshot: string;
  etag: string;
}

/** Window listed per Get Page Ranges call; keeps each response small on fragmented disks. */
export const LIST_WINDOW_BYTES = 64 * 1024 * 1024 * 1024;

/** Metadata a snapshot Pagewise took carries (Create Snapshot sets it), so it is never confused with a user's own. */
export const TAKEN_METADATA = { pagewise: 'taken' } as const;

/** Throws for a blob whose Copy Blob is still pending (see SourceDisk.assertNotCopying). */
export function assertNotCopying(url: string, copyStatus: string | undefined): void {
  if (copyStatus === 'pending') {
    throw new PagewiseError('SourceChanged', `the source disk ${displayUrl(url).split('?')[0]} is still being copied into (copy status pending); back it up once the copy has finished`);
  }
}

export class SourceDisk {
  private constructor(
    readonly client: PageBlobClient,
    readonly parsed: ParsedBlobUrl,
    readonly diskBytes: number,
    readonly identity: SourceIdentity,
    /** The blob's copy status when a Copy Blob wrote it (`pending` while its content is still arriving). */
    readonly copyStatus?: string,
    /** When the blob last changed (Last-Modified). */
    readonly lastModified?: Date,
    /** Opened through the app's own Compute grant of a managed-disk snapshot (StorageLocation.managedDiskGrant). */
    readonly managedDiskGrant = false,
  ) {}

  /**
   * Opens the source; with `snapshot`, that snapshot of it (one Pagewise took: the URL names none). With
   * `expectedBytes` (a plan's size), a size other than the plan's at the plan's ETag is refused: that size
   * was misread, and reading the disk up to it would silently back up too little.
   */
  static async open(location: StorageLocation, expectedEtag?: string, snapshot?: string, expectedBytes?: number): Promise<SourceDisk> {
    const opened = sourceBlobClient(location);
    const parsed = opened.parsed;
    const client = snapshot && !parsed.snapshot ? opened.client.withSnapshot(snapshot) : opened.client;
    let props;
    try {
      props = await client.getProperties();
    } catch (err) {
      throw translateStorageError(err, `the source disk ${displayUrl(location.url)}`, 'SourceNotFound', 'SourceUnreachable');
    }
    if (props.blobType !== 'PageBlob') {
      throw new PagewiseError('NotPageBlob', `the source ${displayUrl(location.url)} is a ${props.blobType ?? 'unknown'} blob, not a page blob (a VM disk)`);
    }
    const diskBytes = props.contentLength ?? 0;
    if (diskBytes > MAX_SOURCE_DISK_BYTES) {
      throw new PagewiseError('LimitExceeded', `the source disk is ${diskBytes} bytes, over the 32 TiB limit`);
    }
    const etag = props.etag ?? '';
    if (expectedEtag !== undefined && etag !== expectedEtag) {
      throw new PagewiseError('SourceChanged', `the source disk ${displayUrl(location.url)} changed since the backup was planned (ETag ${expectedEtag} → ${etag}); back up a snapshot`);
    }
    if (expectedBytes !== undefined && diskBytes !== expectedBytes) {
      throw new PagewiseError('SourceUnreachable', `the source disk ${displayUrl(location.url)} was read as ${diskBytes} bytes, but the backup was planned for ${expectedBytes} bytes at the same ETag: its size was misread (a damaged response); try again`);
    }
    return new SourceDisk(client, parsed, diskBytes, {
      url: displayUrl(location.url).split('?')[0],
      account: parsed.account,
      container: parsed.container,
      blob: parsed.blob!,
      snapshot: parsed.snapshot ?? snapshot ?? '',
      etag,
    }, props.copyStatus, props.lastModified, location.managedDiskGrant === true);
  }

  /**
   * Refuses a blob a Copy Blob is still writing: its content is not final, and its ETag need not
   * change while the copy fills it, so a read pinned to the ETag would not notice.
   */
  assertNotCopying(): void {
    assertNotCopying(this.identity.url, this.copyStatus);
  }

  /**
   * Takes a blob snapshot of this (live) disk in the state it was opened in and opens it: a snapshot
   * never changes, so a disk in use can be read page by page while it goes on being written.
   */
  async takeSnapshot(location: StorageLocation): Promise<SourceDisk> {
    let snapshot: string | undefined;
    try {
      snapshot = (await this.client.createSnapshot({ metadata: { ...TAKEN_METADATA }, conditions: { ifMatch: this.identity.etag || undefined } })).snapshot;
    } catch (err) {
      const failure = translateStorageError(err, `the source disk ${this.identity.url}`, 'SourceNotFound', 'SourceUnreachable');
      if (isPagewiseError(failure, 'AccessDenied')) {
        throw new PagewiseError('AccessDenied', `${failure.message}; taking a snapshot needs write permission on the source`, { cause: err });
      }
      if (isPagewiseError(failure, 'SourceChanged')) {
        throw new PagewiseError('SourceChanged', `the source disk ${this.identity.url} changed between opening it and taking its snapshot; start again`, { cause: err });
      }
      throw failure;
    }
    if (!snapshot) throw new PagewiseError('SourceUnreachable', `the service took a snapshot of ${this.identity.url} but did not say which`);
    return SourceDisk.open(location, this.identity.etag, snapshot, this.diskBytes);
  }

  /** Deletes this snapshot (one Pagewise took); the live blob and other snapshots are untouched. */
  async deleteSnapshot(): Promise<void> {
    if (!this.identity.snapshot) throw new PagewiseError('BadInput', `${this.identity.url} is not a snapshot`);
    try {
      await this.client.delete();
    } catch (err) {
      throw translateStorageError(err, `the snapshot ${this.identity.snapshot} of ${this.identity.url}`, 'SourceNotFound', 'SourceUnreachable');
    }
  }

  /**
   * Whether `snapshot` of this blob still exists (a HEAD; false on 404): an incremental's base must. For a
   * page blob only: a managed-disk base is a Compute snapshot resource, not a snapshot of the grant's blob.
   */
  async snapshotExists(snapshot: string): Promise<boolean> {
    // An empty or malformed value would HEAD the live blob (or be sent as is): never "exists".
    if (!isSnapshotTime(snapshot)) throw new PagewiseError('BadInput', `${JSON.stringify(String(snapshot).slice(0, 40))} is not a snapshot time`);
    try {
      await this.client.withSnapshot(snapshot).getProperties();
      return true;
    } catch (err) {
      if ((err as { statusCode?: number })?.statusCode === 404) return false;
      throw translateStorageError(err, `the snapshot ${snapshot} of ${this.identity.url}`, 'SourceNotFound', 'SourceUnreachable');
    }
  }

  /** Allocated ranges inside [offset, offset + length), ascending and disjoint, via the paged listing. */
  async *allocatedRanges(window: ByteRange = { offset: 0, length: this.diskBytes }): AsyncGenerator<ByteRange> {
    const end = Math.min(window.offset + window.length, this.diskBytes);
    for (let start = window.offset; start < end; start += LIST_WINDOW_BYTES) {
      const count = Math.min(LIST_WINDOW_BYTES, end - start);
      const found: ByteRange[] = [];
      let listedBytes: number | undefined;
      try {
        const pages = this.client
          .listPageRanges(start, count, { conditions: { ifMatch: this.identity.etag || undefined } })
          .byPage({ maxPageSize: 5000 });
        for await (const response of pages) {
          listedBytes ??= response.blobContentLength;
          for (const r of response.pageRange ?? []) found.push({ offset: r.start, length: r.end - r.start + 1 });
        }
      } catch (err) {
        throw translateStorageError(err, `the source disk ${this.identity.url}`, 'SourceNotFound', 'SourceUnreachable');
      }
      // Each listing states the blob's size (x-ms-blob-content-length): a size misread at open (a damaged
      // Content-Length) would clip the listing to part of the disk and silently back up too little.
      if (listedBytes !== undefined && listedBytes !== this.diskBytes) {
        throw new PagewiseError('SourceUnreachable', `the source disk ${this.identity.url} was opened as ${this.diskBytes} bytes, but its page-range listing says ${listedBytes} bytes at the same ETag: one of the two responses was damaged; try again`);
      }
      // The service may report ranges that start before the window; clip, sort, merge.
      for (const r of normalizeRanges(found, end)) {
        const clipped = Math.max(r.offset, start);
        const stop = Math.min(r.offset + r.length, start + count);
        if (stop > clipped) yield { offset: clipped, length: stop - clipped };
      }
    }
  }

  /**
   * Streams [offset, offset + length) chunk by chunk into `sink(chunk, positionInRange)`, awaiting each
   * write (backpressure), so a page is never buffered whole in memory. Returns bytes received.
   */
  async download(range: ByteRange, sink: (chunk: Buffer, position: number) => Promise<void>, abortSignal?: AbortSignal): Promise<number> {
    return accountGate(this.parsed.url.host, this.parsed.account).run(() => withChildSignal(abortSignal, (signal) => this.fetch(range, sink, signal)));
  }

  private async fetch(range: ByteRange, sink: (chunk: Buffer, position: number) => Promise<void>, abortSignal?: AbortSignal): Promise<number> {
    let received = 0;
    try {
      const response = await this.client.download(range.offset, range.length, {
        abortSignal,
        conditions: { ifMatch: this.identity.etag || undefined },
        maxRetryRequests: 5,
      });
      const body = response.readableStreamBody;
      if (!body) throw new PagewiseError('SourceUnreachable', 'the source returned no body');
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (received + chunk.length > range.length) break;
        await sink(chunk, received);
        received += chunk.length;
      }
    } catch (err) {
      throw translateStorageError(err, `the source disk ${this.identity.url}`, 'SourceNotFound', 'SourceUnreachable');
    }
    if (received !== range.length) {
      throw new PagewiseError('SourceUnreachable', `short read from the source at offset ${range.offset}: ${received} of ${range.length} bytes`);
    }
    return received;
  }
}
