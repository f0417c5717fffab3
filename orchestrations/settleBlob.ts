/**
 * Waiting for an event's page blob to stop changing before it is backed up. `BlobCreated` fires when
 * Put Blob creates a page blob — empty, only its size set — and the pages written after it raise no
 * event; a Copy Blob may still be filling it. So the blob is looked at (activity `probeBlob`) until its
 * ETag has stayed the same for a quiet period (durable timers), within a maximum wait; then the backup
 * of that settled state starts, pinned to its ETag. Deterministic: time is `currentUtcDateTime`, every
 * look is an activity.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { Activities, BlobProbe, SettleOrchestrationInput, SettleSettings, SettleOrchestrationOutput } from './contracts';
import { isPermanentFailure, outcome } from './activityOutcome';
import { retryOptions } from './retry';
import { displayUrl } from '../core';

/** Settle rounds one event may cause: a backup that meets a change starts the next, up to this many. */
export const MAX_SETTLE_ATTEMPTS = 3;
/**
 * Most looks one settle run takes (maximum wait / quiet period): each look adds 8 history events, so
 * this keeps a run's history under HISTORY_EVENT_BOUND (orchestrations/backupTree.ts).
 */
export const MAX_SETTLE_LOOKS = 480;

/** Longest quiet period and wait (functions/events/settleSettings.ts reads them from app settings in these bounds). */
export const MAX_QUIET_MS = 6 * 24 * 3600_000;
export const MAX_WAIT_MS = 30 * 24 * 3600_000;

/**
 * The settle settings in the bounds the app settings allow: an input can come from anywhere (the durable
 * webhook), and a 0 ms quiet period skips the wait, a 1 ms one with a long wait loops without bound.
 */
export function assertSettleBounds(settle: SettleSettings | undefined): void {
  const whole = (v: unknown, min: number, max: number) => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
  const ok =
    settle !== undefined &&
    whole(settle.quietPeriodMs, 1000, MAX_QUIET_MS) &&
    whole(settle.maxWaitMs, settle.quietPeriodMs, MAX_WAIT_MS) &&
    settle.maxWaitMs / settle.quietPeriodMs <= MAX_SETTLE_LOOKS &&
    whole(settle.attempt, 1, MAX_SETTLE_ATTEMPTS);
  if (!ok) {
    throw new Error(`BadInput: the settle settings are out of range (quietPeriodMs 1000 to ${MAX_QUIET_MS}, maxWaitMs from it to ${MAX_WAIT_MS} and at most ${MAX_SETTLE_LOOKS} quiet periods, attempt 1 to ${MAX_SETTLE_ATTEMPTS})`);
  }
}

export const settleBlobOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput() as SettleOrchestrationInput;
  assertSettleBounds(input.settle);
  const { quietPeriodMs, maxWaitMs } = input.settle;
  const retry = retryOptions();
  const deadline = context.df.currentUtcDateTime.getTime() + maxWaitMs;
  let previous: BlobProbe | undefined;
  let supersededEtag: string | undefined;
  for (let probes = 1; ; probes++) {
    const looked: unknown = yield context.df.callActivityWithRetry(Activities.probeBlob, retry, { source: input.source });
    if (isPermanentFailure(looked) && looked.permanentFailure.code === 'SourceNotFound') {
      return dropped(context, 'the blob was deleted before it settled', probes);
    }
    const now = outcome<BlobProbe>(looked);
    if (probes === 1 && input.eventEtag && now.etag !== input.eventEtag) {
      // Written since the event: that state is gone; follow the blob to the state it settles in.
      supersededEtag = input.eventEtag;
      log(context, `event ETag ${input.eventEtag} is stale (the blob is at ${now.etag}): following the blob until it settles`);
    }
    const settled = previous !== undefined && previous.etag === now.etag && previous.diskBytes === now.diskBytes && now.copyStatus !== 'pending';
    if (settled) {
      const started: unknown = yield context.df.callActivityWithRetry(Activities.startSettledBackup, retry, {
        source: input.source,
        backupId: now.backupId,
        expectedEtag: now.etag,
        settle: input.settle,
      });
      const backup = outcome<{ started: boolean; runtimeStatus?: string }>(started);
      log(context, `settled at ETag ${now.etag} after ${probes} looks: backup ${now.backupId} ${backup.started ? 'started' : `already ${backup.runtimeStatus}`}`);
      return {
        outcome: 'started',
        etag: now.etag,
        backupId: now.backupId,
        ...(backup.started ? {} : { joined: backup.runtimeStatus ?? 'unknown' }),
        ...(supersededEtag ? { supersededEtag } : {}),
        probes,
      } satisfies SettleOrchestrationOutput;
    }
    const nextLook = context.df.currentUtcDateTime.getTime() + quietPeriodMs;
    if (nextLook > deadline) {
      throw new Error(
        `SourceChanged: the blob ${displayUrl(input.source.url)} ${now.copyStatus === 'pending' ? 'was still being copied into' : 'kept changing'} (ETag ${now.etag} at the last of ${probes} looks) ` +
          `and did not stay unchanged for ${quietPeriodMs / 1000} s within ${maxWaitMs / 1000} s; no backup was made`,
      );
    }
    context.df.setCustomStatus({ phase: 'settling', etag: now.etag, probes });
    previous = now;
    yield context.df.createTimer(new Date(nextLook));
  }
};

function dropped(context: OrchestrationContext, reason: string, probes: number): SettleOrchestrationOutput {
  log(context, `no backup: ${reason}`);
  return { outcome: 'dropped', reason, probes };
}

function log(context: OrchestrationContext, message: string): void {
  if (!context.df.isReplaying) context.log(`${context.df.instanceId}: ${message}`);
}
