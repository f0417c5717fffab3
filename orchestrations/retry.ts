/** Retry policy of Pagewise activities: transient storage trouble is retried with exponential backoff. */
import * as df from 'durable-functions';
import type { RetrySettings } from './contracts';

export const DEFAULT_RETRY: RetrySettings = {
  firstRetryIntervalInMs: 5_000,
  maxAttempts: 5,
  backoffCoefficient: 2,
  maxRetryIntervalInMs: 60_000,
};

export function retryOptions(settings: RetrySettings = DEFAULT_RETRY): df.RetryOptions {
  const options = new df.RetryOptions(settings.firstRetryIntervalInMs, settings.maxAttempts);
  options.backoffCoefficient = settings.backoffCoefficient ?? 1;
  if (settings.maxRetryIntervalInMs !== undefined) options.maxRetryIntervalInMilliseconds = settings.maxRetryIntervalInMs;
  return options;
}
