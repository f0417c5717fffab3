/**
 * The host's shutdown signal for running activities. The local runtime aborts it when a signal stops
 * `pagewise serve` or `backup --engine local`, so a batch stops at once and removes its scratch; the
 * runtime drops the aborted activities' outcomes and re-issues them on resume. Azure's host gives none.
 */
let current: AbortSignal | undefined;

export function useShutdownSignal(signal: AbortSignal | undefined): void {
  current = signal;
}

export function shutdownSignal(): AbortSignal | undefined {
  return current;
}
