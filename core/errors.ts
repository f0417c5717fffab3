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
  | 'LimitExceeded'
  | 'Aborted';

export class PagewiseError extends Error {
  readonly code: PagewiseErrorCode;
  constructor(code: PagewiseErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PagewiseError';
    this.code = code;
  }
}

export function isPagewiseError(err: unknown, code?: PagewiseErrorCode): err is PagewiseError {
  return err instanceof PagewiseError && (code === undefined || err.code === code);
}

/**
 * What an aborted operation ends with, whatever the abort broke on its way (the SDK reports a cancelled
 * request as an AbortError, which alone would read as "could not be reached"): the signal's reason when
 * it is an Aborted error (the CLI says "interrupted"), else an Aborted error saying `what`.
 */
export function abortedError(signal: AbortSignal, what = 'the backup was cancelled'): PagewiseError {
  return isPagewiseError(signal.reason, 'Aborted') ? signal.reason : new PagewiseError('Aborted', what);
}
