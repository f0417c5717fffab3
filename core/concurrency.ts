/**
 * Bounded concurrency. `forEachLimited` fans out over a (possibly lazy) iterable, pulling an item only
 * when a place is free, so a generator of pages is never materialized; the first failure stops new
 * work and is rethrown (p-limit queues every item up front, which is what this avoids). `Limiter`
 * bounds tasks that come from many places (a storage account's requests, CPU-heavy page processing).
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

/** At most `limit` tasks run at once; the rest wait in order. Records the most that ever ran at once. */
export class Limiter {
  inFlight = 0;
  highWater = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(public limit: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    // A finishing task hands its place straight to the next waiter, so no newcomer can slip in between.
    if (this.inFlight >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.inFlight++;
    this.highWater = Math.max(this.highWater, this.inFlight);
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }
}
