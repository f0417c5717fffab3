/**
 * Retrying a whole operation whose result is checked by Pagewise itself (e.g. a ranged read whose body
 * came back short): the SDK retries requests and resumes broken streams, this catches what gets past it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { abortedError, isPagewiseError, isTransient } from './errors';

export interface RetryOptions {
  maxRetries?: number;
  retryDelayInMs?: number;
  maxRetryDelayInMs?: number;
  abortSignal?: AbortSignal;
}

export async function withRetry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions = {}, onRetry?: (err: unknown) => void): Promise<T> {
  const maxRetries = options.maxRetries ?? 3;
  const base = options.retryDelayInMs ?? 200;
  const cap = options.maxRetryDelayInMs ?? 5000;
  for (let attempt = 0; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (err) {
      // Only transient failures (core/errors.ts), and never an interruption: it means this process is
      // stopping, and it is the caller (an orchestration resuming, the user running it again) that redoes it.
      if (attempt >= maxRetries || !isTransient(err) || isPagewiseError(err, 'Aborted') || options.abortSignal?.aborted) throw err;
      onRetry?.(err);
      const delay = Math.min(cap, base * 2 ** attempt) * (0.5 + Math.random() / 2);
      // An abort during the wait ends it at once: the operation is not tried again.
      const signal = options.abortSignal;
      await sleep(delay, undefined, { signal }).catch(() => Promise.reject(abortedError(signal!, 'the operation was cancelled')));
    }
  }
}
