/**
 * RFC 7807 problem responses. Every error an HTTP caller sees goes through here, redacted, with a
 * status derived from the engine's error code so callers can tell bad input from a broken backend.
 */
import { HttpResponse } from '@azure/functions';
import { isPagewiseError, PagewiseErrorCode, redact } from '../core';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: string[];
  /** auth (#18): the role a 403 Forbidden needed. */
  neededRole?: string;
}

const STATUS_BY_CODE: Partial<Record<PagewiseErrorCode, number>> = {
  BadInput: 400,
  BadUrl: 400,
  BadPageSize: 400,
  BadCacheSize: 400,
  BadKeyFile: 500,
  VaultNotFound: 500, // the app's own vault: a configuration error, not the caller's
  NotPageBlob: 422,
  AccessDenied: 403,
  SourceNotFound: 404,
  BackupNotFound: 404,
  BackupIncomplete: 409,
  TargetExists: 409,
  TargetNotFound: 404,
  SourceChanged: 409,
  WrongKey: 409,
  Locked: 409,
  BackupExpired: 409,
  LimitExceeded: 422,
  PathNotFound: 404,
  UnsupportedFileSystem: 422,
  SourceUnreachable: 502,
  VaultUnreachable: 502,
  TargetUnreachable: 502,
};

export function problemBody(status: number, title: string, detail: string, extra: Partial<Problem> = {}): Problem {
  return {
    type: `https://pagewise.dev/problems/${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`,
    title,
    status,
    detail: redact(detail),
    ...extra,
  };
}

export function problem(status: number, title: string, detail: string, extra: Partial<Problem> = {}): HttpResponse {
  return new HttpResponse({ status, jsonBody: problemBody(status, title, detail, extra), headers: { 'Content-Type': 'application/problem+json' } });
}

/** A problem a handler raises directly (e.g. a body that fails its schema). */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly extra: Partial<Problem> = {},
  ) {
    super(detail);
  }
}

/** Turns any thrown error into a problem response; unexpected errors become 500 without internals. */
export function problemFromError(err: unknown): HttpResponse {
  if (err instanceof ProblemError) return problem(err.status, err.title, err.message, err.extra);
  if (isPagewiseError(err)) {
    const status = STATUS_BY_CODE[err.code] ?? 500;
    return problem(status, err.code, err.message);
  }
  return problem(500, 'InternalError', 'the request failed unexpectedly; see the function logs');
}
