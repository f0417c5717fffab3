/**
 * Runs a backup's batches in plan order, overlapping by one: the next starts downloading as soon as
 * the current one has downloaded its last page, while the current one drains (processes and stores the
 * pages still in the cache). The batches share the cache and the page limits, so nothing in flight
 * grows; the downloads never wait for a drain, which on a sparse disk of many small batches was a
 * pause at every batch border. Shared by the version-1 and version-2 engines.
 */
import { abortedError } from '../errors';

/** `start(position, onDownloaded, signal)` runs one batch; `signal` stops the one overlapping a failure. */
export async function runBatchesOverlapped(
  count: number,
  start: (position: number, onDownloaded: () => void, signal: AbortSignal) => Promise<void>,
  abortSignal?: AbortSignal,
): Promise<void> {
  const stop = new AbortController(); // a failed batch stops the one overlapping it
  const onAbort = () => stop.abort();
  abortSignal?.addEventListener('abort', onAbort, { once: true });
  if (abortSignal?.aborted) stop.abort();
  let draining: Promise<void> = Promise.resolve();
  let current: Promise<void> = Promise.resolve();
  try {
    for (let position = 0; position < count; position++) {
      let downloaded!: () => void;
      const downloads = new Promise<void>((resolve) => (downloaded = resolve));
      current = start(position, downloaded, stop.signal);
      current.catch(() => undefined); // observed below; a rejection must not go unhandled meanwhile
      await Promise.race([downloads, current]);
      await draining;
      draining = current;
    }
    await draining;
  } catch (err) {
    stop.abort();
    await Promise.allSettled([draining, current]); // no batch may still write into the cache when it goes
    throw abortSignal?.aborted ? abortedError(abortSignal) : err;
  } finally {
    abortSignal?.removeEventListener('abort', onAbort);
  }
}
