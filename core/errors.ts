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
