/**
 * The plain blob store of one container that the vault repository is built on (as kopia's
 * `blob.Storage`, restic's `backend.Backend`): every method is one storage request, knows nothing of
 * the vault format, and fails with the named errors below. Cross-cutting behaviour (error mapping,
 * the account's request gate, retries) comes as wrappers (`wrappers.ts`), added once for every call.
 */
import { PagewiseError } from '../../errors';

/** What every store call may carry (the Azure SDK's options bag): a signal that cancels its request. */
export interface CallOptions {
  /** Cancels the request in flight (and any retry of it): the call fails with Aborted. */
  abortSignal?: AbortSignal;
}

export interface GetOptions extends CallOptions {
  /** A blob longer than this is refused (Corrupt) before or while its body is read: the read is bounded. */
  maxBytes?: number;
}

export interface PutOptions extends CallOptions {
  contentType?: string;
  /** Write only when no blob of that name exists (fails with BlobAlreadyExistsError otherwise). */
  ifNotExists?: boolean;
}

export interface ListPage {
  /** Blob names (flat) or, with a delimiter, the blob names at this level. */
  names: string[];
  /** With a delimiter: the "directories" (names up to and including the delimiter). */
  prefixes: string[];
  /** Absent on the last page. */
  continuationToken?: string;
}

export interface ListOptions extends CallOptions {
  delimiter?: string;
  continuationToken?: string;
}

export interface BlobProperties {
  contentLength: number;
  /** The service's Creation-Time (a writer judges whether it may rely on a blob it did not write, FORMAT §26.8). */
  createdOn?: Date;
}

/** One blob of a detailed listing: what prune needs to judge it without reading it. */
export interface BlobInfo {
  name: string;
  contentLength: number;
  /** When the blob was created (the service's clock); never changes for a blob written once. */
  createdOn: Date;
  lastModified: Date;
}

/** A page of a detailed (flat) listing. */
export interface DetailedListPage {
  blobs: BlobInfo[];
  continuationToken?: string;
}

/** One container's blobs. Names are relative to the container. */
export interface BlobStore {
  /** Human-readable name of the container for messages (never a secret). */
  readonly display: string;
  /** The bytes of a blob or of a range of it; a body cut short fails (transient), never returns less. */
  getBytes(name: string, offset?: number, count?: number, options?: GetOptions): Promise<Buffer>;
  putBytes(name: string, bytes: Buffer, options?: PutOptions): Promise<void>;
  properties(name: string, options?: CallOptions): Promise<BlobProperties>;
  exists(name: string, options?: CallOptions): Promise<boolean>;
  stageBlock(blob: string, blockId: string, bytes: Buffer, options?: CallOptions): Promise<void>;
  /** Put Block List; with `ifNotExists`, only when no blob of that name exists (BlobAlreadyExistsError otherwise). */
  commitBlockList(blob: string, blockIds: string[], options?: PutOptions): Promise<void>;
  listPage(prefix: string, options?: ListOptions): Promise<ListPage>;
  /** A flat listing with each blob's size and times (one request per page). */
  listDetailedPage(prefix: string, options?: ListOptions): Promise<DetailedListPage>;
  /**
   * Deletes one blob (no snapshots exist in a vault). Fails BlobNotFoundError when it is not there and
   * BlobLockedError when the service refuses under an immutability policy or legal hold.
   */
  deleteBlob(name: string, options?: CallOptions): Promise<void>;
  /** Creates the container; false when it existed. */
  createContainer(options?: CallOptions): Promise<boolean>;
}

/** The blob does not exist (kopia's ErrBlobNotFound). Not transient. */
export class BlobNotFoundError extends PagewiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BackupNotFound', message, options);
  }
}

/** The container itself does not exist. Not transient. */
export class ContainerNotFoundError extends PagewiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VaultNotFound', message, options);
  }
}

/** A conditional put found the blob already there (another writer was first). Not transient. */
export class BlobAlreadyExistsError extends PagewiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TargetExists', message, options);
  }
}

/**
 * The service refused a delete because the blob is immutable (a time-based retention policy or a legal
 * hold: Azure's 409 BlobImmutableDueToPolicy / BlobImmutableDueToLegalHold). Not transient; prune reports
 * the blob as locked and goes on.
 */
export class BlobLockedError extends PagewiseError {
  constructor(message: string, readonly lock: 'policy' | 'legal-hold', options?: { cause?: unknown }) {
    super('Locked', message, options);
  }
}

/** All names under a prefix (flat), page by page: each page is one request through the store's wrappers. */
export async function* listNames(store: BlobStore, prefix: string): AsyncGenerator<string> {
  let continuationToken: string | undefined;
  do {
    const page = await store.listPage(prefix, { continuationToken });
    yield* page.names;
    continuationToken = page.continuationToken;
  } while (continuationToken);
}

/** The immediate "directories" under a prefix, page by page. */
export async function* listPrefixes(store: BlobStore, prefix: string): AsyncGenerator<string> {
  let continuationToken: string | undefined;
  do {
    const page = await store.listPage(prefix, { delimiter: '/', continuationToken });
    yield* page.prefixes;
    continuationToken = page.continuationToken;
  } while (continuationToken);
}

/** Every blob under a prefix with its size and times, page by page. */
export async function* listDetailed(store: BlobStore, prefix: string, options: CallOptions = {}): AsyncGenerator<BlobInfo> {
  let continuationToken: string | undefined;
  do {
    const page = await store.listDetailedPage(prefix, { ...options, continuationToken });
    yield* page.blobs;
    continuationToken = page.continuationToken;
  } while (continuationToken);
}
