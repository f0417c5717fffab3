/**
 * The vault: a blob container on storage apart from the source, holding the secondary copy. Opens the
 * container's blob store with its wrappers (error mapping, the account's request gate, retries — once,
 * for every request) and speaks in vault terms: the marker, JSON documents, staged blocks, committed
 * segments, ranged reads, listings.
 */
import { PagewiseError, isPagewiseError } from '../errors';
import { displayUrl } from '../redact';
import { vaultContainerClient, ParsedBlobUrl } from '../storage/clients';
import { accountGate } from '../storage/account-gate';
import { StorageLocation } from '../types';
import { nestsTooDeep } from '../json-depth';
import { MAX_BLOCKS_PER_BLOB, MAX_VAULT_JSON_BYTES, MAX_VAULT_JSON_DEPTH } from '../limits';
import { protectContainer } from '../restore/target-guard';
import { VAULT_MARKER } from './layout';
import { readVaultMarkerIfAny } from './v2/marker';
import { BlobAlreadyExistsError, BlobInfo, BlobLockedError, BlobNotFoundError, BlobProperties, BlobStore, CallOptions, ContainerNotFoundError, GetOptions, listDetailed, listNames, listPrefixes } from './store/blob-store';
import { AzureBlobStore } from './store/azure-blob-store';
import { gated, mappingErrors, metered, retrying, StoreMeter } from './store/wrappers';

export class Vault {
  private constructor(readonly store: BlobStore, readonly parsed: ParsedBlobUrl) {}

  /** `meter` counts this vault's requests and bytes read, outermost: a retried request counts once (its final result). */
  static open(location: StorageLocation, options: { meter?: StoreMeter } = {}): Vault {
    const { client, parsed } = vaultContainerClient(location);
    protectContainer(parsed, 'the vault'); // no restore or upload of this process may write into it
    // The gate sits inside the retries: each try holds a place only while its request is in flight.
    const store = retrying(gated(mappingErrors(new AzureBlobStore(client, displayUrl(location.url)), 'the vault'), accountGate(parsed.url.host, parsed.account)));
    return new Vault(options.meter ? metered(store, options.meter) : store, parsed);
  }

  get display(): string {
    return this.store.display;
  }

  private missing(cause?: unknown): PagewiseError {
    return new ContainerNotFoundError(`the vault container ${this.display} does not exist; nothing was written (check the vault URL, or make the vault first)`, { cause });
  }

  /**
   * What the container is: missing, a container without the vault marker, or a Pagewise vault (of a
   * version this Pagewise reads, §12). One HEAD of the marker tells the three apart with any credential
   * that may read a blob (a container SAS cannot read container properties): a missing container
   * answers 404 ContainerNotFound.
   */
  async probe(): Promise<'missing' | 'container' | 'vault'> {
    try {
      await this.store.properties(VAULT_MARKER);
    } catch (err) {
      if (err instanceof ContainerNotFoundError) return 'missing';
      if (err instanceof BlobNotFoundError) return 'container';
      throw err;
    }
    await this.markerVersion();
    return 'vault';
  }

  /**
   * The vault's format version by the dispatch of FORMAT.md §12 (pagewise-vault-v2.json first, then
   * pagewise-vault.json), or undefined for a container without a marker; refuses an unknown format or
   * version.
   */
  async markerVersion(): Promise<1 | 2 | undefined> {
    return (await readVaultMarkerIfAny(this))?.version;
  }

  /**
   * Before a version-1 backup writes anything: the container must exist — a missing one is never created
   * here, so a mistyped vault URL fails instead of starting a new vault. An existing container without the
   * marker gets the version-1 marker; a version-2 vault is refused (a version-1 writer must not write there, §12.1).
   */
  async requireForBackup(): Promise<void> {
    const state = await this.probe();
    if (state === 'missing') throw this.missing();
    if (state === 'container') await this.writeMarker();
    const version = await this.markerVersion();
    if (version !== 1) {
      throw new PagewiseError('BadInput', `${this.display} holds a ${VAULT_MARKER} of format "pagewise-vault" version ${version}; this step writes pagewise-vault version 1`);
    }
  }

  /**
   * `pagewise init` without a key: creates the container where absent and writes no marker (the first
   * backup, or init with a key, writes one, §12); says what it did.
   */
  async init(): Promise<{ containerCreated: boolean; markerWritten: boolean }> {
    const state = await this.probe();
    let containerCreated = false;
    if (state === 'missing') {
      try {
        containerCreated = await this.store.createContainer();
      } catch (err) {
        if (isPagewiseError(err, 'AccessDenied')) {
          throw new PagewiseError('AccessDenied', `the vault container ${this.display} does not exist and these credentials may not create it (a container SAS cannot); use an account SAS, a connection string or a role that may create containers`, { cause: err });
        }
        throw err;
      }
    }
    return { containerCreated, markerWritten: false };
  }

  /** Writes the version-1 marker unless one exists (never over another's); true when this call wrote it. */
  private async writeMarker(): Promise<boolean> {
    const marker = JSON.stringify({ format: 'pagewise-vault', version: 1, createdAt: new Date().toISOString() });
    try {
      await this.store.putBytes(VAULT_MARKER, Buffer.from(marker), { contentType: 'application/json', ifNotExists: true });
      return true;
    } catch (err) {
      if (err instanceof BlobAlreadyExistsError) return false; // written meanwhile by another start
      throw err;
    }
  }

  exists(name: string, options?: CallOptions): Promise<boolean> {
    return this.store.exists(name, options);
  }

  properties(name: string, options?: CallOptions): Promise<BlobProperties> {
    return this.store.properties(name, options);
  }

  async putJson(name: string, value: unknown): Promise<void> {
    await this.putBytes(name, Buffer.from(JSON.stringify(value)), 'application/json');
  }

  putBytes(name: string, bytes: Buffer, contentType = 'application/octet-stream'): Promise<void> {
    return this.store.putBytes(name, bytes, { contentType });
  }

  /** Put Blob with If-None-Match: * (format 2 writes every name once); BlobAlreadyExistsError when the name exists. */
  putNew(name: string, bytes: Buffer, contentType = 'application/octet-stream'): Promise<void> {
    return this.store.putBytes(name, bytes, { contentType, ifNotExists: true });
  }

  /** A blob or a range of it, every byte checked to have arrived. */
  getBytes(name: string, offset = 0, count?: number, options?: GetOptions): Promise<Buffer> {
    return this.store.getBytes(name, offset, count, options);
  }

  /** A JSON document of the vault, bounded in size and nesting (core/limits.ts): a hostile one is Corrupt. */
  async getJson<T>(name: string, options?: GetOptions): Promise<T> {
    const maxBytes = Math.min(options?.maxBytes ?? MAX_VAULT_JSON_BYTES, MAX_VAULT_JSON_BYTES);
    const text = (await this.store.getBytes(name, 0, undefined, { ...options, maxBytes })).toString('utf8');
    if (nestsTooDeep(text, MAX_VAULT_JSON_DEPTH)) {
      throw new PagewiseError('Corrupt', `${name} in the vault is nested deeper than the ${MAX_VAULT_JSON_DEPTH} levels a Pagewise document has`);
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new PagewiseError('Corrupt', `${name} in the vault is not valid JSON`);
    }
  }

  stageBlock(blob: string, blockId: string, bytes: Buffer): Promise<void> {
    return this.store.stageBlock(blob, blockId, bytes);
  }

  /** Commits a segment; refuses more blocks than Azure allows in one blob (Azurite would accept them). */
  async commitBlocks(blob: string, blockIds: string[], options?: { ifNotExists?: boolean }): Promise<void> {
    if (blockIds.length > MAX_BLOCKS_PER_BLOB) {
      throw new PagewiseError('LimitExceeded', `${blob} would have ${blockIds.length} blocks, over Azure's limit of ${MAX_BLOCKS_PER_BLOB}`);
    }
    await this.store.commitBlockList(blob, blockIds, options?.ifNotExists ? { ifNotExists: true } : undefined);
  }

  /** Names under a prefix (flat listing, one request per page). */
  list(prefix: string): AsyncGenerator<string> {
    return listNames(this.store, prefix);
  }

  /** Blobs under a prefix with size and times (flat listing, one request per page). */
  listDetailed(prefix: string, options?: CallOptions): AsyncGenerator<BlobInfo> {
    return listDetailed(this.store, prefix, options);
  }

  /**
   * Deletes a blob: 'deleted', 'missing' (already gone: a rerun of an interrupted prune finds its own
   * work done) or 'locked' (immutability policy or legal hold; the caller reports it and goes on).
   * Only prune deletes, under an identity of its own (docs/FORMAT.md §26).
   */
  async delete(name: string, options?: CallOptions): Promise<'deleted' | 'missing' | 'locked'> {
    return (await this.deleteTelling(name, options)).outcome;
  }

  /** delete, also saying which lock refused it (prune's report names it). */
  async deleteTelling(name: string, options?: CallOptions): Promise<{ outcome: 'deleted' | 'missing' | 'locked'; lock?: 'policy' | 'legal-hold' }> {
    try {
      await this.store.deleteBlob(name, options);
      return { outcome: 'deleted' };
    } catch (err) {
      if (err instanceof BlobNotFoundError) return { outcome: 'missing' };
      if (err instanceof BlobLockedError) return { outcome: 'locked', lock: err.lock };
      throw err;
    }
  }

  /** Immediate children "directories" under a prefix. */
  listPrefixes(prefix: string): AsyncGenerator<string> {
    return listPrefixes(this.store, prefix);
  }
}
