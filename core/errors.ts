/** Errors Pagewise raises on purpose carry a stable `code`, so CLI, HTTP and tests can tell them apart. */
export type PagewiseErrorCode =
  | 'BadInput'
  | 'BadUrl'
  | 'BadPageSize'
  | 'BadCacheSize'
  | 'NotPageBlob'
  | 'SourceNotFound'
  | 'SourceUnreachable'
  | 'SourceChanged'
  | 'AccessDenied'
  | 'VaultUnreachable'
  | 'VaultNotFound'
  | 'BackupNotFound'
  | 'BackupIncomplete'
  | 'WrongKey'
  | 'BadKeyFile'
  | 'Corrupt'
  | 'TargetExists'
  | 'TargetNotFound'
  | 'TargetUnreachable'
  | 'LimitExceeded'
  | 'Aborted'
  /** A blob refused deletion under an immutability policy or legal hold (prune reports it and goes on). */
  | 'Locked'
  /** A backup resumed after its abandonment limit (docs/FORMAT.md §26): its staged data may be pruned; it restarts. */
  | 'BackupExpired'
  /** An incremental's base cannot be diffed against (`reason` says why); the engine falls back to a full backup. */
  | 'BaseUnusable'
  /** A path asked for inside a backed-up file system does not exist there (file-level restore). */
  | 'PathNotFound'
  /** A volume of a backed-up disk holds what Pagewise cannot open (NTFS, XFS, LVM, an encrypted volume…): the message names what was found. */
  | 'UnsupportedFileSystem'
  /** Another local runtime holds the task hub (its lease), or this one lost it (runtime/taskHubLease.ts). */
  | 'TaskHubInUse';

/** Why a base is unusable (PagewiseError.reason with code BaseUnusable): the FullReason a fallback records. */
export type BaseUnusableReason = 'base-snapshot-gone' | 'base-replaced';

export class PagewiseError extends Error {
  readonly code: PagewiseErrorCode;
  /** A machine-readable detail of the code (BaseUnusable: a BaseUnusableReason). */
  readonly reason?: string;
  constructor(code: PagewiseErrorCode, message: string, options?: { cause?: unknown; reason?: string }) {
    super(message, options && 'cause' in options ? { cause: options.cause } : undefined);
    this.name = 'PagewiseError';
    this.code = code;
    if (options?.reason !== undefined) this.reason = options.reason;
  }
}

export function isPagewiseError(err: unknown, code?: PagewiseErrorCode): err is PagewiseError {
  return err instanceof PagewiseError && (code === undefined || err.code === code);
}

/**
 * Failures a later attempt may cure, the one rule every retrier uses (core/retry.ts, the activities, the
 * Event Grid trigger): storage that could not be reached, and work that was interrupted (`Aborted`: a
 * host shutting down aborts its activities, which the orchestration re-issues when it resumes; an event
 * whose handling was cut short is delivered again). Everything else (bad input, denial, a missing
 * target, damage) fails the same way every time.
 */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set<PagewiseErrorCode>(['SourceUnreachable', 'VaultUnreachable', 'TargetUnreachable', 'Aborted']);

export function isTransient(err: unknown): boolean {
  return isPagewiseError(err) && TRANSIENT_CODES.has(err.code);
}

/**
 * What an aborted operation ends with, whatever the abort broke on its way (the SDK reports a cancelled
 * request as an AbortError, which alone would read as "could not be reached"): the signal's reason when
 * it is an Aborted error (the CLI says "interrupted"), else an Aborted error saying `what`.
 */
export function abortedError(signal: AbortSignal, what = 'the backup was cancelled'): PagewiseError {
  return isPagewiseError(signal.reason, 'Aborted') ? signal.reason : new PagewiseError('Aborted', what);
}

/** Throws the abort's Aborted error (see abortedError) once `signal` is aborted; else nothing. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortedError(signal, what);
}
