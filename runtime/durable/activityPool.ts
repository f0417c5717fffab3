/**
 * Runs activity invocations with a bound on how many run at once (the host's
 * maxConcurrentActivityFunctions); the rest wait in order.
 */
export class ActivityPool {
  private readonly queue: Array<() => Promise<void>> = [];
  private running = 0;
  private closed = false;

  constructor(private readonly limit: number) {}

  get active(): number {
    return this.running;
  }

  submit(job: () => Promise<void>): void {
    this.queue.push(job);
    this.pump();
  }

  /** Starts nothing more; queued jobs are dropped (their instances re-issue them when resumed). */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
  }

  /** Stops starting queued jobs but keeps them (used while a runtime stops gracefully). */
  pause(): void {
    this.closed = true;
  }

  private pump(): void {
    while (!this.closed && this.running < this.limit && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running += 1;
      void job().finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }
}
