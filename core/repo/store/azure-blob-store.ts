/**
 * The blob store over one Azure container (an SDK ContainerClient): one request per method, raw SDK
 * errors out (the mapping wrapper names them). Only this file of the repository calls the SDK.
 * Every request runs on a signal of its own (core/abort-fanout.ts): a backup, restore or verification keeps
 * dozens in flight on one operation's signal (a fan-out's windows share the runtime's), and the SDK adds a
 * listener to the signal it is given for as long as a request (and its body) lasts.
 */
import { createHash } from 'node:crypto';
import { ContainerClient } from '@azure/storage-blob';
import { withChildSignal } from '../../abort-fanout';
import { PagewiseError } from '../../errors';
import { BlobProperties, BlobStore, CallOptions, DetailedListPage, GetOptions, ListOptions, ListPage, PutOptions } from './blob-store';

/** Names per list request: the service's maximum, so a listing costs as few requests as it can. */
const LIST_PAGE_SIZE = 5000;

export class AzureBlobStore implements BlobStore {
  constructor(private readonly container: ContainerClient, readonly display: string) {}

  /**
   * Reads a blob (or a range of it) and checks that every byte arrived: a body cut short under a
   * rewritten Content-Length fails as transient (the retry wrapper reads it again), never handed on as data.
   */
  async getBytes(name: string, offset = 0, count?: number, options: GetOptions = {}): Promise<Buffer> {
    return withChildSignal(options.abortSignal, (abortSignal) => this.read(name, offset, count, { ...options, abortSignal }));
  }

  private async read(name: string, offset: number, count: number | undefined, options: GetOptions): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let received = 0;
    const response = await this.container.getBlobClient(name).download(offset, count, { maxRetryRequests: 5, abortSignal: options.abortSignal });
    const expected = count ?? response.contentLength ?? 0;
    const { maxBytes } = options;
    const tooLong = () => {
      (response.readableStreamBody as NodeJS.ReadableStream & { destroy?: () => void })?.destroy?.();
      return new PagewiseError('Corrupt', `${name} in the vault is larger than the ${maxBytes} bytes Pagewise reads of it`);
    };
    if (maxBytes !== undefined && expected > maxBytes) throw tooLong();
    // A whole-blob read carries the blob's stored MD5: it catches a body cut short under a
    // rewritten Content-Length, which a length check alone cannot.
    const md5 = offset === 0 && count === undefined ? (response.contentMD5 ?? response.blobContentMD5) : undefined;
    for await (const chunk of response.readableStreamBody as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      received += chunk.length;
      // A Content-Length rewritten smaller than the body must not unbound the read either.
      if (maxBytes !== undefined && received > maxBytes) throw tooLong();
    }
    if (received !== expected) {
      throw new PagewiseError('VaultUnreachable', `short read of ${name} in the vault: ${received} of ${expected} bytes`);
    }
    const bytes = Buffer.concat(chunks, received);
    if (md5 && !createHash('md5').update(bytes).digest().equals(Buffer.from(md5))) {
      throw new PagewiseError('VaultUnreachable', `the read of ${name} in the vault does not match its stored MD5 (damaged in transit)`);
    }
    return bytes;
  }

  async putBytes(name: string, bytes: Buffer, options: PutOptions = {}): Promise<void> {
    await withChildSignal(options.abortSignal, (abortSignal) =>
      this.container.getBlockBlobClient(name).uploadData(bytes, {
        blobHTTPHeaders: { blobContentType: options.contentType ?? 'application/octet-stream' },
        maxSingleShotSize: 256 * 1024 * 1024,
        abortSignal,
        ...(options.ifNotExists ? { conditions: { ifNoneMatch: '*' } } : {}),
      }),
    );
  }

  async properties(name: string, options: CallOptions = {}): Promise<BlobProperties> {
    const props = await withChildSignal(options.abortSignal, (abortSignal) => this.container.getBlobClient(name).getProperties({ abortSignal }));
    return { contentLength: props.contentLength ?? 0, createdOn: props.createdOn ?? props.lastModified };
  }

  async exists(name: string, options: CallOptions = {}): Promise<boolean> {
    return withChildSignal(options.abortSignal, (abortSignal) => this.container.getBlobClient(name).exists({ abortSignal }));
  }

  async stageBlock(blob: string, blockId: string, bytes: Buffer, options: CallOptions = {}): Promise<void> {
    await withChildSignal(options.abortSignal, (abortSignal) => this.container.getBlockBlobClient(blob).stageBlock(blockId, bytes, bytes.length, { abortSignal }));
  }

  async commitBlockList(blob: string, blockIds: string[], options: PutOptions = {}): Promise<void> {
    await withChildSignal(options.abortSignal, (abortSignal) =>
      this.container.getBlockBlobClient(blob).commitBlockList(blockIds, { abortSignal, ...(options.ifNotExists ? { conditions: { ifNoneMatch: '*' } } : {}) }),
    );
  }

  listPage(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    return withChildSignal(options.abortSignal, (abortSignal) => this.list(prefix, { ...options, abortSignal }));
  }

  private async list(prefix: string, options: ListOptions): Promise<ListPage> {
    const paging = { maxPageSize: LIST_PAGE_SIZE, continuationToken: options.continuationToken || undefined };
    const { abortSignal } = options;
    if (options.delimiter) {
      const { value } = await this.container.listBlobsByHierarchy(options.delimiter, { prefix, abortSignal }).byPage(paging).next();
      return {
        names: value.segment.blobItems.map((b: { name: string }) => b.name),
        prefixes: (value.segment.blobPrefixes ?? []).map((p: { name: string }) => p.name),
        continuationToken: value.continuationToken || undefined,
      };
    }
    const { value } = await this.container.listBlobsFlat({ prefix, abortSignal }).byPage(paging).next();
    return { names: value.segment.blobItems.map((b: { name: string }) => b.name), prefixes: [], continuationToken: value.continuationToken || undefined };
  }

  async listDetailedPage(prefix: string, options: ListOptions = {}): Promise<DetailedListPage> {
    const paging = { maxPageSize: LIST_PAGE_SIZE, continuationToken: options.continuationToken || undefined };
    const { value } = await withChildSignal(options.abortSignal, (abortSignal) => this.container.listBlobsFlat({ prefix, abortSignal }).byPage(paging).next());
    const blobs = value.segment.blobItems.map((b: { name: string; properties: { contentLength?: number; createdOn?: Date; lastModified: Date } }) => ({
      name: b.name,
      contentLength: b.properties.contentLength ?? 0,
      createdOn: b.properties.createdOn ?? b.properties.lastModified,
      lastModified: b.properties.lastModified,
    }));
    return { blobs, continuationToken: value.continuationToken || undefined };
  }

  async deleteBlob(name: string, options: CallOptions = {}): Promise<void> {
    await withChildSignal(options.abortSignal, (abortSignal) => this.container.getBlobClient(name).delete({ abortSignal }));
  }

  async createContainer(options: CallOptions = {}): Promise<boolean> {
    return (await withChildSignal(options.abortSignal, (abortSignal) => this.container.createIfNotExists({ abortSignal }))).succeeded;
  }
}
