/**
 * Permanent failures (bad input, wrong key, damage, a target that exists…) are not worth retrying: an
 * activity hands them back as a value, and the orchestrator fails at once with that message. Only
 * transient trouble (unreachable storage, unexpected errors) is thrown and retried with backoff.
 */
export interface PermanentFailure {
  permanentFailure: { code: string; message: string };
}

export function isPermanentFailure(value: unknown): value is PermanentFailure {
  return typeof value === 'object' && value !== null && 'permanentFailure' in value;
}

/** The activity's result, or the orchestration fails with the permanent failure it reported. */
export function outcome<T>(value: unknown): T {
  if (isPermanentFailure(value)) throw new Error(`${value.permanentFailure.code}: ${value.permanentFailure.message}`);
  return value as T;
}
