/**
 * One cancellation signal, many requests. The storage SDK adds an `abort` listener to the signal of
 * every request in flight; with one shared signal, 64 concurrent downloads meant 64 listeners on it
 * and Node's MaxListenersExceededWarning. Here each request gets a signal of its own, and the shared
 * signal gets exactly one listener, which aborts whatever requests are in flight when it fires.
 */
const inFlight = new WeakMap<AbortSignal, Set<AbortController>>();

/** Runs `work` with a signal of its own that aborts when `parent` does; no listener accumulates on `parent`. */
export async function withChildSignal<T>(parent: AbortSignal | undefined, work: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
  if (!parent || parent.aborted) return work(parent);
  let children = inFlight.get(parent);
  if (!children) {
    const set = new Set<AbortController>();
    inFlight.set(parent, set);
    parent.addEventListener('abort', () => set.forEach((child) => child.abort(parent.reason)), { once: true });
    children = set;
  }
  const child = new AbortController();
  children.add(child);
  try {
    return await work(child.signal);
  } finally {
    children.delete(child);
  }
}
