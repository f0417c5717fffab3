/**
 * Timing spans for the profile of a backup, added from outside the engine (core/ is not changed): the
 * worker wraps methods of the engine's classes and modules before running, and each span records how
 * many calls, their summed duration (concurrent calls add up) and the wall time during which at least
 * one call was running (busy).
 */
export interface SpanStats {
  calls: number;
  /** summed duration of all calls, ms (4 concurrent 1 s calls = 4000) */
  totalMs: number;
  /** wall time with at least one call in progress, ms */
  busyMs: number;
  maxMs: number;
  /** most calls in progress at once */
  maxActive: number;
}

export class Spans {
  private readonly stats = new Map<string, SpanStats & { active: number; since: number }>();

  private entry(name: string) {
    let s = this.stats.get(name);
    if (!s) this.stats.set(name, (s = { calls: 0, totalMs: 0, busyMs: 0, maxMs: 0, maxActive: 0, active: 0, since: 0 }));
    return s;
  }

  enter(name: string): () => void {
    const s = this.entry(name);
    const started = performance.now();
    if (s.active++ === 0) s.since = started;
    s.maxActive = Math.max(s.maxActive, s.active);
    s.calls++;
    return () => {
      const now = performance.now();
      const took = now - started;
      s.totalMs += took;
      s.maxMs = Math.max(s.maxMs, took);
      if (--s.active === 0) s.busyMs += now - s.since;
    };
  }

  /** Replaces `target[method]` (a function returning a promise or a value) with a timed one. */
  wrap(target: object, method: string, name: string): void {
    const holder = target as Record<string, unknown>;
    const original = holder[method];
    if (typeof original !== 'function') throw new Error(`cannot wrap ${name}: ${method} is not a function`);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const spans = this;
    holder[method] = function (this: unknown, ...args: unknown[]) {
      const exit = spans.enter(name);
      let result: unknown;
      try {
        result = (original as (...a: unknown[]) => unknown).apply(this, args);
      } catch (err) {
        exit();
        throw err;
      }
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        return (result as Promise<unknown>).then(
          (v) => {
            exit();
            return v;
          },
          (e) => {
            exit();
            throw e;
          },
        );
      }
      exit();
      return result;
    };
  }

  snapshot(): Record<string, SpanStats> {
    const out: Record<string, SpanStats> = {};
    for (const [name, s] of this.stats) {
      out[name] = { calls: s.calls, totalMs: round(s.totalMs), busyMs: round(s.busyMs), maxMs: round(s.maxMs), maxActive: s.maxActive };
    }
    return out;
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
