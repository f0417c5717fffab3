/**
 * The vault: a blob container on storage apart from the source, holding the secondary copy. A thin
 * layer over the container client that speaks in vault terms (JSON documents, staged blocks, committed
 * segments, ranged reads) and maps storage errors to specific Pagewise errors.
 */
import { createHash } from 'node:crypto';
import { ContainerClient, RestError } from '@azure/storage-blob';
import { PagewiseError } from '../errors';
import { displayUrl } from '../redact';
import { translateStorageError } from '../storage/storage-errors';
import { vaultContainerClient, ParsedBlobUrl } from '../storage/clients';
import { StorageLocation } from '../types';
import { VAULT_MARKER } from './layout';
import { MAX_BLOCKS_PER_BLOB } from '../limits';
import { withRetry } from '../retry';
import { accountGate } from '../storage/account-gate';
import { protectContainer } from '../restore/target-guard';

export class VaultStore {
  private constructor(readonly container: ContainerClient, readonly parsed: ParsedBlobUrl, readonly display: string) {}

  static open(location: StorageLocation): VaultStore {
    const { client, parsed } = vaultContainerClient(location);
    protectContainer(parsed, 'the vault'); // no restore or upload of this process may write into it
    return new VaultStore(client, parsed, displayUrl(location.url));
  }

  /** Data requests to the vault's account share that account's gate with every other job here. */
  private gated<T>(work: () => Promise<T>): Promise<T> {
    return accountGate(this.parsed.url.host, this.parsed.account).run(work);
  }

  private fail(err: unknown, what: string): Error {
    if ((err as { code?: string })?.code === 'ContainerNotFound') return this.missing(err);
    return translateStorageError(err, `${what} in the vault ${this.display}`, 'BackupNotFound', 'VaultUnreachable');
  }

  private missing(cause?: unknown): PagewiseError {
    return new PagewiseError('VaultNotFound', `the vault container ${this.display} does not exist; nothing was written (check the vault URL, or make the vault first)`, { cause });
  }

  /**
   * What the container is: missing, a container without the vault marker, or a Pagewise vault. One HEAD
   * of the marker tells the three apart with any credential that may read a blob (a container SAS
   * cannot read container properties): a missing container answers 404 ContainerNotFound.
   */
  async probe(): Promise<'missing' | 'container' | 'vault'> {
    try {
      await this.container.getBlobClient(VAULT_MARKER).getProperties();
    } catch (err) {
      const rest = err as RestError & { details?: { errorCode?: string } };
      // A HEAD has no body: the error code comes in the x-ms-error-code header (details.errorCode).
      if (rest.statusCode === 404) return (rest.code ?? rest.details?.errorCode) === 'ContainerNotFound' ? 'missing' : 'container';
      throw this.fail(err, VAULT_MARKER);
    }
    await this.checkMarker();
    return 'vault';
  }

  /**
   * Before a backup writes anything: the container must exist — a missing one is never created here,
   * so a mistyped vault URL fails instead of starting a new vault. An existing container without the
   * marker (e.g. made by the deployment) gets it.
   */
  async requireForBackup(): Promise<void> {
    const state = await this.probe();
    if (state === 'missing') throw this.missing();
    if (state === 'container') await this.writeMarker();
  }

  /** `pagewise init`: creates the container and the marker where absent; says what it did. */
  async init(): Promise<{ containerCreated: boolean; markerWritten: boolean }> {
    const state = await this.probe();
    let containerCreated = false;
    if (state === 'missing') {
      try {
        containerCreated = (await this.container.createIfNotExists()).succeeded;
      } catch (err) {
        if ((err as RestError).statusCode === 403) {
          throw new PagewiseError('AccessDenied', `the vault container ${this.display} does not exist and these credentials may not create it (a container SAS cannot); use an account SAS, a connection string or a role that may create containers`, { cause: err });
        }
        throw this.fail(err, 'the container');
      }
    }
    const markerWritten = state !== 'vault' && (await this.writeMarker());
    return { containerCreated, markerWritten };
  }

  /** Writes the marker unless one exists (never over another's); true when this call wrote it. */
  private async writeMarker(): Promise<boolean> {
    const marker = JSON.stringify({ format: 'pagewise-vault', version: 1, createdAt: new Date().toISOString() });
    try {
      await this.gated(() => this.container.getBlockBlobClient(VAULT_MARKER).upload(marker, Buffer.byteLength(marker), {
        blobHTTPHeaders: { blobContentType: 'application/json' },
        conditions: { ifNoneMatch: '*' },
      }));
      return true;
    } catch (err) {
      const status = (err as RestError).statusCode;
      if (status === 409 || status === 412) return false; // written meanwhile by another start
      throw this.fail(err, VAULT_MARKER);
    }
  }

  /** A reader refuses a vault format it does not know (docs/FORMAT.md §3). */
  private async checkMarker(): Promise<void> {
    const marker = await this.getJson<{ format?: unknown; version?: unknown }>(VAULT_MARKER);
    if (marker?.format !== 'pagewise-vault' || marker.version !== 1) {
      throw new PagewiseError('BadInput', `${this.display} holds a ${VAULT_MARKER} of format ${JSON.stringify(marker?.format)} version ${JSON.stringify(marker?.version)}; this Pagewise uses pagewise-vault version 1`);
    }
  }

  async exists(name: string): Promise<boolean> {
    try {
      return await this.container.getBlobClient(name).exists();
    } catch (err) {
      throw this.fail(err, name);
    }
  }

  async putJson(name: string, value: unknown): Promise<void> {
    await this.putBytes(name, Buffer.from(JSON.stringify(value)), 'application/json');
  }

  async putBytes(name: string, bytes: Buffer, contentType = 'application/octet-stream'): Promise<void> {
    try {
      await this.gated(() => this.container.getBlockBlobClient(name).uploadData(bytes, {
        blobHTTPHeaders: { blobContentType: contentType },
        maxSingleShotSize: 256 * 1024 * 1024,
      }));
    } catch (err) {
      throw this.fail(err, name);
    }
  }

  /**
   * Reads a blob (or a range of it) and checks that every byte arrived: a body cut short under a
   * rewritten Content-Length is caught here and read again, never handed on as data.
   */
  async getBytes(name: string, offset = 0, count?: number): Promise<Buffer> {
    return withRetry(() => this.gated(async () => {
      const chunks: Buffer[] = [];
      let received = 0;
      let expected: number;
      let md5: Uint8Array | undefined;
      try {
        const response = await this.container.getBlobClient(name).download(offset, count, { maxRetryRequests: 5 });
        expected = count ?? response.contentLength ?? 0;
        // A whole-blob read carries the blob's stored MD5: it catches a body cut short under a
        // rewritten Content-Length, which a length check alone cannot.
        if (offset === 0 && count === undefined) md5 = response.contentMD5 ?? response.blobContentMD5;
        for await (const chunk of response.readableStreamBody as AsyncIterable<Buffer>) {
          chunks.push(chunk);
          received += chunk.length;
        }
      } catch (err) {
        throw this.fail(err, name);
      }
      if (received !== expected) {
        throw new PagewiseError('VaultUnreachable', `short read of ${name} in the vault: ${received} of ${expected} bytes`);
      }
      const bytes = Buffer.concat(chunks, received);
      if (md5 && !createHash('md5').update(bytes).digest().equals(Buffer.from(md5))) {
        throw new PagewiseError('VaultUnreachable', `the read of ${name} in the vault does not match its stored MD5 (damaged in transit)`);
      }
      return bytes;
    }));
  }

  async getJson<T>(name: string): Promise<T> {
    const bytes = await this.getBytes(name);
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch {
      throw new PagewiseError('Corrupt', `${name} in the vault is not valid JSON`);
    }
  }

  async stageBlock(blob: string, blockId: string, bytes: Buffer): Promise<void> {
    try {
      await this.gated(() => this.container.getBlockBlobClient(blob).stageBlock(blockId, bytes, bytes.length));
    } catch (err) {
      throw this.fail(err, blob);
    }
  }

  /** Commits a segment; refuses more blocks than Azure allows in one blob (Azurite would accept them). */
  async commitBlocks(blob: string, blockIds: string[]): Promise<void> {
    if (blockIds.length > MAX_BLOCKS_PER_BLOB) {
      throw new PagewiseError('LimitExceeded', `${blob} would have ${blockIds.length} blocks, over Azure's limit of ${MAX_BLOCKS_PER_BLOB}`);
    }
    try {
      await this.container.getBlockBlobClient(blob).commitBlockList(blockIds);
    } catch (err) {
      throw this.fail(err, blob);
    }
  }

  /** Names under a prefix (flat listing; paged by the SDK). */
  async *list(prefix: string): AsyncGenerator<string> {
    try {
      for await (const item of this.container.listBlobsFlat({ prefix })) yield item.name;
    } catch (err) {
      throw this.fail(err, prefix);
    }
  }

  /** Immediate children "directories" under a prefix. */
  async *listPrefixes(prefix: string): AsyncGenerator<string> {
    try {
      for await (const item of this.container.listBlobsByHierarchy('/', { prefix })) {
        if (item.kind === 'prefix') yield item.name;
      }
    } catch (err) {
      throw this.fail(err, prefix);
    }
  }
}
