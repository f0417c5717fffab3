/**
 * RFC 7807 problem responses. Every error an HTTP caller sees goes through here, redacted, with a
 * status derived from the engine's error code so callers can tell bad input from a broken backend.
 */
import { HttpResponse, InvocationContext } from '@azure/functions';
import { isPagewiseError, PagewiseErrorCode, redact } from '../core';
import { reportDenial } from './auth/denials';

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

/** Where a failed request ran: its invocation (the Functions log's ID) and, when known, the operation it was about. */
export interface FailureContext {
  context: InvocationContext;
  /** The orchestration instance the request started or read, when known (see withInstanceId). */
  instanceId?: string;
}

const INSTANCE_ID = Symbol('pagewise.instanceId');

/** Tags an error with the orchestration instance its request was about, for the 500 log line. */
export function withInstanceId<E>(err: E, instanceId: string): E {
  if (typeof err === 'object' && err !== null && !(INSTANCE_ID in err)) (err as Record<symbol, unknown>)[INSTANCE_ID] = instanceId;
  return err;
}

function instanceIdOf(err: unknown): string | undefined {
  const tagged = typeof err === 'object' && err !== null ? (err as Record<symbol, unknown>)[INSTANCE_ID] : undefined;
  return typeof tagged === 'string' ? tagged : undefined;
}

/**
 * Turns any thrown error into a problem response; unexpected errors become 500 without internals. #18:
 * with `where`, every 500 is logged (context.error: the function, invocation ID, instance ID when known,
 * the redacted cause) and its body names the invocation ID, so a caller's report finds the log line;
 * every access denial (functions/auth/denials.ts) is logged as a warning and sent as PagewiseAccessDenied.
 */
export function problemFromError(err: unknown, where?: FailureContext): HttpResponse {
  if (err instanceof ProblemError) {
    // #18 follow-up: a refused access (requireRole's 401/403) is logged once, here, with its invocation.
    if (where) reportDenial(err, where.context);
    return problem(err.status, err.title, err.message, err.extra);
  }
  if (isPagewiseError(err)) {
    const status = STATUS_BY_CODE[err.code] ?? 500;
    if (status === 500) logFailure(err, where);
    return problem(status, err.code, status === 500 ? withInvocation(err.message, where) : err.message);
  }
  logFailure(err, where);
  return problem(500, 'InternalError', withInvocation('the request failed unexpectedly; see the function logs', where));
}

function withInvocation(detail: string, where: FailureContext | undefined): string {
  return where ? `${detail} (invocation ${where.context.invocationId})` : detail;
}

function logFailure(err: unknown, where: FailureContext | undefined): void {
  if (!where) return;
  const { context } = where;
  const instanceId = where.instanceId ?? instanceIdOf(err);
  const cause = err instanceof Error ? (err.stack ?? err.message) : String(err);
  context.error(redact(`${context.functionName} failed (invocation ${context.invocationId}${instanceId ? `, instance ${instanceId}` : ''}): ${cause}`));
}
