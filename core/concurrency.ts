/**
 * Bounded fan-out over a (possibly lazy) iterable: items are pulled only when a place is free, so a
 * generator of pages is never materialized; the first failure stops new work and is rethrown.
 * (p-limit queues every item up front, which is what this avoids.)
 */
export async function forEachLimited<T>(items: Iterable<T> | AsyncIterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  for await (const item of items) {
    if (failure) break;
    const task: Promise<void> = work(item).catch((err) => {
      failure ??= err;
    });
    inFlight.add(task);
    void task.finally(() => inFlight.delete(task));
    if (inFlight.size >= limit) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
}
