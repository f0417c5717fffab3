/** Retry policy of Pagewise activities: transient storage trouble is retried with exponential backoff. */
import * as df from 'durable-functions';
import type { RetrySettings } from './contracts';

export const DEFAULT_RETRY: RetrySettings = {
  firstRetryIntervalInMs: 5_000,
  maxAttempts: 5,
  backoffCoefficient: 2,
  maxRetryIntervalInMs: 60_000,
};

/** Most attempts an input may ask for: an orchestration can be started with any input (the durable webhook). */
export const MAX_RETRY_ATTEMPTS = 10;

export function retryOptions(settings: RetrySettings = DEFAULT_RETRY): df.RetryOptions {
  const whole = (v: unknown, min: number, max: number) => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
  const inRange =
    whole(settings.maxAttempts, 1, MAX_RETRY_ATTEMPTS) &&
    whole(settings.firstRetryIntervalInMs, 1, 3_600_000) &&
    (settings.maxRetryIntervalInMs === undefined || whole(settings.maxRetryIntervalInMs, 1, 3_600_000)) &&
    (settings.backoffCoefficient === undefined || (typeof settings.backoffCoefficient === 'number' && settings.backoffCoefficient >= 1 && settings.backoffCoefficient <= 10));
  if (!inRange) {
    throw new Error(`BadInput: the retry settings are out of range (maxAttempts 1 to ${MAX_RETRY_ATTEMPTS}, intervals 1 ms to 1 h, backoffCoefficient 1 to 10)`);
  }
  const options = new df.RetryOptions(settings.firstRetryIntervalInMs, settings.maxAttempts);
  options.backoffCoefficient = settings.backoffCoefficient ?? 1;
  if (settings.maxRetryIntervalInMs !== undefined) options.maxRetryIntervalInMilliseconds = settings.maxRetryIntervalInMs;
  return options;
}
