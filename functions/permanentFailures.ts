/** How an activity reports failure: permanent Pagewise failures as a value, everything else thrown (and retried). */
import { isPagewiseError, isTransient, redact } from '../core';
import type { PermanentFailure } from '../orchestrations/activityOutcome';

/**
 * Hands permanent Pagewise failures back as a value (the orchestrator fails at once, see
 * orchestrations/activityOutcome.ts); transient and unexpected errors are thrown and retried.
 */
export function reportingPermanentFailures<A extends unknown[], R>(handler: (...args: A) => Promise<R>): (...args: A) => Promise<R | PermanentFailure> {
  return async (...args) => {
    try {
      return await handler(...args);
    } catch (err) {
      if (isPagewiseError(err) && !isTransient(err)) return { permanentFailure: { code: err.code, message: redact(err.message) } };
      throw err;
    }
  };
}
