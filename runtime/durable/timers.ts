/** Where the durable runtime's timers (createTimer, retry intervals) wait: the wall clock, or a test's ManualTimers. */
export interface TimerService {
  now(): Date;
  /** Calls `fire` at `fireAt`; returns a function that cancels it. */
  schedule(fireAt: Date, fire: () => void): () => void;
}

/** Timers that wait in real time (setTimeout) until `clock` reaches their time. */
export function wallClockTimers(clock: () => Date = () => new Date()): TimerService {
  return {
    now: clock,
    schedule(fireAt, fire) {
      const timer = setTimeout(fire, Math.max(0, fireAt.getTime() - clock().getTime()));
      return () => clearTimeout(timer);
    },
  };
}
