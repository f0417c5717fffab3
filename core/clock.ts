// The clock GC decisions read (ms since the epoch): injected by tests, the system clock otherwise.

/** Milliseconds since the epoch, as Date.now(). Prune, forget, batch and finalize take one so tests can move time. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();
