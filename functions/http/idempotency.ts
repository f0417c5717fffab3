/**
 * Restores and verifications: every request is a new operation (a fresh instance ID), so a second
 * verification after the vault was damaged, or a second restore after the target was deleted, really
 * runs. A caller that retries a request (a lost response) sends the same `Idempotency-Key` header and
 * gets the same operation back; the same key with a different request is refused (422).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { HttpRequest } from '@azure/functions';
import { ProblemError } from '../problems';
import { SCHEDULED_VERIFY_RE } from '../../orchestrations/instanceIds';

export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
const KEY_PATTERN = /^[A-Za-z0-9._:-]{8,128}$/;

/** The validated Idempotency-Key of a request, or undefined when it has none. */
export function idempotencyKeyOf(request: HttpRequest): string | undefined {
  const key = request.headers.get(IDEMPOTENCY_HEADER);
  if (key === null) return undefined;
  // The key is not echoed: it is the caller's, and may be anything they typed.
  if (!KEY_PATTERN.test(key)) {
    throw new ProblemError(400, 'BadIdempotencyKey', `the ${IDEMPOTENCY_HEADER} header must be 8 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-' (a UUID fits)`);
  }
  return key;
}

type OperationKind = 'restore' | 'verify';

/**
 * The instance ID of a new operation: from the key (the same key names the same instance) or random.
 * Generated in the HTTP trigger, never in an orchestrator, so replays stay deterministic.
 */
export function operationInstanceId(kind: OperationKind, key: string | undefined): string {
  if (key === undefined) return `${kind}-${randomUUID().replace(/-/g, '')}`;
  return `${kind}-k${createHash('sha256').update(`${kind}\n${key}`).digest('hex').slice(0, 32)}`;
}

/** Whether `id` is an instance ID operationInstanceId makes for `kind` (random or keyed), or (#18) a nightly verification's. */
export function isOperationId(kind: OperationKind, id: string): boolean {
  return new RegExp(`^${kind}-k?[0-9a-f]{32}$`).test(id) || (kind === 'verify' && SCHEDULED_VERIFY_RE.test(id));
}

/** A digest of the request body, kept in the operation's input to recognize the same request. */
export function requestFingerprint(body: object): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/** JSON with object keys sorted, so field order does not make two requests differ. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** 422 unless the operation found under a key was started by the same request. */
export function assertSameRequest(kind: OperationKind, existingInput: unknown, fingerprint: string): void {
  const stored = (existingInput as { requestFingerprint?: unknown } | null)?.requestFingerprint;
  if (stored !== fingerprint) {
    throw new ProblemError(
      422,
      'IdempotencyKeyReused',
      `this ${IDEMPOTENCY_HEADER} was already used for a different ${kind === 'restore' ? 'restore' : 'verification'} request; send a new key for a new request`,
    );
  }
}
