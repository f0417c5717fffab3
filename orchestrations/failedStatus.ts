/**
 * A failed orchestration would keep the custom status of the phase it failed in ("copying",
 * "verifying"), which reads as still at work. Wrapped handlers mark it failed, keeping the progress.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';

export function markingFailure(handler: OrchestrationHandler): OrchestrationHandler {
  return function* (context: OrchestrationContext) {
    try {
      return yield* handler(context);
    } catch (err) {
      const last = context.df.customStatus;
      context.df.setCustomStatus({ ...(typeof last === 'object' && last !== null ? last : {}), phase: 'failed' });
      throw err;
    }
  };
}
