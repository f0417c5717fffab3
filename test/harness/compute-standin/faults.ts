/** Faults a test arms per operation name: throttling (429 + Retry-After) and failures with an ARM error code. */
import { ArmError } from './arm-http';

interface Armed {
  times: number;
  error: () => ArmError;
}

export class Faults {
  private readonly armed = new Map<string, Armed[]>();

  /** The next `times` requests of `op` answer 429 TooManyRequests with `Retry-After: <seconds>`. */
  throttle(op: string, times: number, retryAfterSeconds = 1): void {
    this.arm(op, times, () => new ArmError(429, 'TooManyRequests', `The request is being throttled (stand-in fault on ${op}).`, { 'retry-after': String(retryAfterSeconds) }));
  }

  /**
   * The next `times` requests of `op` fail with `status` (default 409) and ARM error `code`. A 408, 5xx
   * (but 501/505) or 429 is retried by the SDK's pipeline (3 retries), so arm more than 3 to see it fail.
   */
  fail(op: string, times: number, status = 409, code = 'OperationNotAllowed'): void {
    this.arm(op, times, () => new ArmError(status, code, `Stand-in fault on ${op}.`));
  }

  /** The armed error for this request of `op`, if any (consumes one). */
  take(op: string): ArmError | undefined {
    const list = this.armed.get(op);
    const next = list?.[0];
    if (!next) return undefined;
    if (--next.times <= 0) list!.shift();
    return next.error();
  }

  private arm(op: string, times: number, error: () => ArmError): void {
    if (!Number.isInteger(times) || times < 1) throw new Error(`fault times must be a positive integer, not ${times}`);
    const list = this.armed.get(op) ?? [];
    list.push({ times, error });
    this.armed.set(op, list);
  }
}
