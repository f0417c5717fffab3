/**
 * Durable timers that fire only when told to: the clock stands still until `fireNext()` moves it to
 * the earliest pending timer and fires it. Tests drive quiet periods and deadlines of hours in order,
 * without waiting and without depending on how fast the machine is.
 */
import type { TimerService } from './timers';

interface Pending {
  fireAt: Date;
  fire: () => void;
}

export class ManualTimers implements TimerService {
  private current: Date;
  private readonly pending = new Set<Pending>();

  constructor(start = new Date('2026-01-01T00:00:00Z')) {
    this.current = start;
  }

  now(): Date {
    return new Date(this.current);
  }

  schedule(fireAt: Date, fire: () => void): () => void {
    const entry: Pending = { fireAt, fire };
    this.pending.add(entry);
    return () => this.pending.delete(entry);
  }

  /** Timers waiting to fire. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Moves the clock to the earliest pending timer and fires it; the time it fired at, or undefined. */
  fireNext(): Date | undefined {
    const next = [...this.pending].sort((a, b) => a.fireAt.getTime() - b.fireAt.getTime())[0];
    if (!next) return undefined;
    this.pending.delete(next);
    if (next.fireAt > this.current) this.current = new Date(next.fireAt);
    next.fire();
    return this.now();
  }

  /** Resolves once at least one timer is pending (an orchestration has reached its wait). */
  async untilWaiting(timeoutInMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutInMs;
    while (this.pending.size === 0) {
      if (Date.now() > deadline) throw new Error(`no durable timer was created within ${timeoutInMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}
