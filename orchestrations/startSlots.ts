/**
 * A backup started from the queue holds start slots (#17, docs/DURABLE.md "Start budget"): wrapped
 * handlers give them back when the backup ends, completed or failed, through an activity. A release
 * that still fails after its retries is left to the slots' reclaim (the holder is then terminal).
 */
import type { OrchestrationContext, OrchestrationHandler, Task } from 'durable-functions';
import type { HeldSlot } from '../core';
import { Activities } from './contracts';
import { retryOptions } from './retry';

export interface ReleaseStartSlotsInput {
  holder: string;
  slots: HeldSlot[];
}

function* release(context: OrchestrationContext, slots: HeldSlot[]): Generator<Task, void, unknown> {
  try {
    yield context.df.callActivityWithRetry(Activities.releaseStartSlots, retryOptions(), { holder: context.df.instanceId, slots } satisfies ReleaseStartSlotsInput);
  } catch {
    // reclaimed later: a terminal holder's slot is taken over by the next start that needs it
  }
}

export function releasingStartSlots(handler: OrchestrationHandler): OrchestrationHandler {
  return function* (context: OrchestrationContext) {
    const slots = (context.df.getInput() as { startSlots?: unknown } | undefined)?.startSlots;
    if (!Array.isArray(slots) || slots.length === 0) return yield* handler(context);
    let output: unknown;
    try {
      output = yield* handler(context);
    } catch (err) {
      yield* release(context, slots as HeldSlot[]);
      throw err;
    }
    yield* release(context, slots as HeldSlot[]);
    return output;
  };
}
