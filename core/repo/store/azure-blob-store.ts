/**
 * The blob store over one Azure container (an SDK ContainerClient): one request per method, raw SDK
 * errors out (the mapping wrapper names them). Only this file of the repository calls the SDK.
 */
import { createHash } from 'node:crypto';
import { ContainerClient } from '@azure/storage-blob';
import { PagewiseError } from '../../errors';
import { BlobProperties, BlobStore, ListPage, PutOptions } from './blob-store';

/** Names per list request: the service's maximum, so a listing costs as few requests as it can. */
const LIST_PAGE_SIZE = 5000;

export class AzureBlobStore implements BlobStore {
  constructor(private readonly container: ContainerClient, readonly display: string) {}

  /**
   * Reads a blob (or a range of it) and checks that every byte arrived: a body cut short under a
   * rewritten Content-Length fails as transient (the retry wrapper reads it again), never handed on as data.
   */
  async getBytes(name: string, offset = 0, count?: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let received = 0;
    const response = await this.container.getBlobClient(name).download(offset, count, { maxRetryRequests: 5 });
    const expected = count ?? response.contentLength ?? 0;
    // A whole-blob read carries the blob's stored MD5: it catches a body cut short under a
    // rewritten Content-Length, which a length check alone cannot.
    const md5 = offset === 0 && count === undefined ? (response.contentMD5 ?? response.blobContentMD5) : undefined;
    for await (const chunk of response.readableStreamBody as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      received += chunk.length;
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
    await this.container.getBlockBlobClient(name).uploadData(bytes, {
      blobHTTPHeaders: { blobContentType: options.contentType ?? 'application/octet-stream' },
      maxSingleShotSize: 256 * 1024 * 1024,
      ...(options.ifNotExists ? { conditions: { ifNoneMatch: '*' } } : {}),
    });
  }

  async properties(name: string): Promise<BlobProperties> {
    const props = await this.container.getBlobClient(name).getProperties();
    return { contentLength: props.contentLength ?? 0 };
  }

  async exists(name: string): Promise<boolean> {
    return this.container.getBlobClient(name).exists();
  }

  async stageBlock(blob: string, blockId: string, bytes: Buffer): Promise<void> {
    await this.container.getBlockBlobClient(blob).stageBlock(blockId, bytes, bytes.length);
  }

  async commitBlockList(blob: string, blockIds: string[]): Promise<void> {
    await this.container.getBlockBlobClient(blob).commitBlockList(blockIds);
  }

  async listPage(prefix: string, options: { delimiter?: string; continuationToken?: string } = {}): Promise<ListPage> {
    const paging = { maxPageSize: LIST_PAGE_SIZE, continuationToken: options.continuationToken || undefined };
    if (options.delimiter) {
      const { value } = await this.container.listBlobsByHierarchy(options.delimiter, { prefix }).byPage(paging).next();
      return {
        names: value.segment.blobItems.map((b: { name: string }) => b.name),
        prefixes: (value.segment.blobPrefixes ?? []).map((p: { name: string }) => p.name),
        continuationToken: value.continuationToken || undefined,
      };
    }
    const { value } = await this.container.listBlobsFlat({ prefix }).byPage(paging).next();
    return { names: value.segment.blobItems.map((b: { name: string }) => b.name), prefixes: [], continuationToken: value.continuationToken || undefined };
  }

  async createContainer(): Promise<boolean> {
    return (await this.container.createIfNotExists()).succeeded;
  }
}
