/**
 * Cross-cutting behaviour of a blob store as thin wrappers (as kopia's `retrying`/`logging` storage
 * wrappers): error mapping, the account's request gate and retries, each written once and applied to
 * every method — so no vault request (commitBlockList included) can go around them.
 */
import { RestError } from '@azure/storage-blob';
import { Limiter } from '../../concurrency';
import { abortedError, PagewiseError, throwIfAborted } from '../../errors';
import { RetryOptions, withRetry } from '../../retry';
import { translateStorageError } from '../../storage/storage-errors';
import { BlobAlreadyExistsError, BlobLockedError, BlobNotFoundError, BlobStore, CallOptions, ContainerNotFoundError, ListPage, PutOptions } from './blob-store';

/** What a wrapper sees of one call: the method, the blob (or prefix) it names, the call itself and its options. */
export type Around = <T>(op: keyof BlobStore, name: string, work: () => Promise<T>, options?: PutOptions) => Promise<T>;

/** A store whose every method runs through `around`. */
export function wrapStore(inner: BlobStore, around: Around): BlobStore {
  return {
    display: inner.display,
    getBytes: (name, offset, count, options) => around('getBytes', name, () => inner.getBytes(name, offset, count, options), options),
    putBytes: (name, bytes, options) => around('putBytes', name, () => inner.putBytes(name, bytes, options), options),
    properties: (name, options) => around('properties', name, () => inner.properties(name, options), options),
    exists: (name, options) => around('exists', name, () => inner.exists(name, options), options),
    stageBlock: (blob, blockId, bytes, options) => around('stageBlock', blob, () => inner.stageBlock(blob, blockId, bytes, options), options),
    commitBlockList: (blob, blockIds, options) => around('commitBlockList', blob, () => inner.commitBlockList(blob, blockIds, options), options),
    listPage: (prefix, options): Promise<ListPage> => around('listPage', prefix, () => inner.listPage(prefix, options), options),
    listDetailedPage: (prefix, options) => around('listDetailedPage', prefix, () => inner.listDetailedPage(prefix, options), options),
    deleteBlob: (name, options) => around('deleteBlob', name, () => inner.deleteBlob(name, options), options),
    createContainer: (options) => around('createContainer', 'the container', () => inner.createContainer(options), options),
  };
}

/** Storage errors in named, Pagewise terms; `where` names the store in messages (e.g. "the vault"). */
export function mappingErrors(inner: BlobStore, where: string): BlobStore {
  return wrapStore(inner, async (op, name, work, options) => {
    try {
      return await work();
    } catch (err) {
      throw mapError(err, `${name} in ${where} ${inner.display}`, options, inner.display);
    }
  });
}

function mapError(err: unknown, what: string, options: PutOptions | undefined, display: string): Error {
  // A request the caller cancelled fails as the SDK's AbortError, which reads as "unreachable" (and
  // would be retried): the abort is what happened.
  if (options?.abortSignal?.aborted) return abortedError(options.abortSignal, `the request for ${what} was cancelled`);
  if (err instanceof PagewiseError) return err;
  const rest = err as RestError & { details?: { errorCode?: string } };
  // A HEAD has no body: its error code comes in the x-ms-error-code header (details.errorCode).
  const code = rest?.code ?? rest?.details?.errorCode;
  if (code === 'ContainerNotFound') {
    return new ContainerNotFoundError(`the vault container ${display} does not exist; nothing was written (check the vault URL, or make the vault first)`, { cause: err });
  }
  if (code === 'BlobImmutableDueToPolicy' || code === 'BlobImmutableDueToLegalHold') {
    const lock = code === 'BlobImmutableDueToPolicy' ? 'policy' : 'legal-hold';
    return new BlobLockedError(`${what} is immutable (${code}): the service refuses to delete or change it`, lock, { cause: err });
  }
  if (options?.ifNotExists && (rest?.statusCode === 409 || rest?.statusCode === 412)) {
    return new BlobAlreadyExistsError(`${what} exists already`, { cause: err });
  }
  const mapped = translateStorageError(err, what, 'BackupNotFound', 'VaultUnreachable');
  return mapped instanceof PagewiseError && mapped.code === 'BackupNotFound' ? new BlobNotFoundError(mapped.message, { cause: err }) : mapped;
}

/** Every request holds a place in the account's gate until its body is fully read or written. */
export function gated(inner: BlobStore, gate: Limiter): BlobStore {
  // A call cancelled while it waited for its place sends no request.
  return wrapStore(inner, (_op, name, work, options) =>
    gate.run(() => {
      throwIfAborted(options?.abortSignal, `the request for ${name} was cancelled`);
      return work();
    }),
  );
}

/**
 * Transient failures (storage unreachable, a body cut short) are tried again; each try passes the gate
 * anew. A refused connection is not: the SDK has already spent its own tries on it, and nothing listens
 * there — a dead endpoint fails in seconds, not minutes.
 */
export function retrying(inner: BlobStore, options: RetryOptions = {}): BlobStore {
  // A call's abortSignal ends its retries: an abort is never tried again in-process (core/retry.ts).
  return wrapStore(inner, async (_op, _name, work, call?: CallOptions) => {
    try {
      return await withRetry(() => work().catch((err: unknown) => Promise.reject(refused(err) ? new Final(err) : err)), { ...options, abortSignal: call?.abortSignal ?? options.abortSignal });
    } catch (err) {
      throw err instanceof Final ? err.error : err;
    }
  });
}

/** Carries an error past the retry loop untouched (it is not transient to withRetry). */
class Final {
  constructor(readonly error: unknown) {}
}

function refused(err: unknown): boolean {
  return (err as { cause?: { code?: string } })?.cause?.code === 'ECONNREFUSED';
}

/** What a metered store counted: requests made and the bytes of every getBytes result. */
export interface StoreMeter {
  requests: number;
  bytesRead: number;
}

/**
 * Counts every call and the length of every getBytes result into `meter` (file restore's "bytes fetched").
 * Outside the retries (Vault.open puts it outermost), a retried call counts once, with its final result.
 */
export function metered(inner: BlobStore, meter: StoreMeter): BlobStore {
  return wrapStore(inner, async (op, _name, work) => {
    meter.requests++;
    const result = await work();
    if (op === 'getBytes') meter.bytesRead += (result as Buffer).length;
    return result;
  });
}
