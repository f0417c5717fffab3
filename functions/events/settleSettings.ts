/**
 * How long an event-started backup waits for its page blob to settle (app settings, seconds):
 * PAGEWISE_EVENT_QUIET_SECONDS — the ETag must stay the same this long (default 300);
 * PAGEWISE_EVENT_MAX_WAIT_SECONDS — give up, with no backup, if it has not settled by then (default 86400).
 */
import { PagewiseError } from '../../core';
import type { SettleSettings } from '../../orchestrations/contracts';
import { MAX_QUIET_MS, MAX_SETTLE_LOOKS, MAX_WAIT_MS } from '../../orchestrations/settleBlob';
import { appSettings, Env } from '../settings';

export const DEFAULT_QUIET_SECONDS = 300;
export const DEFAULT_MAX_WAIT_SECONDS = 24 * 3600;
/** A durable timer in Azure Storage task hubs may not exceed 6 days; one quiet period is one timer. */
const MAX_QUIET_SECONDS = MAX_QUIET_MS / 1000;
const MAX_WAIT_SECONDS = MAX_WAIT_MS / 1000;

export function settleSettings(env: Env = appSettings()): SettleSettings {
  const quiet = seconds(env, 'PAGEWISE_EVENT_QUIET_SECONDS', DEFAULT_QUIET_SECONDS, MAX_QUIET_SECONDS);
  const maxWait = seconds(env, 'PAGEWISE_EVENT_MAX_WAIT_SECONDS', DEFAULT_MAX_WAIT_SECONDS, MAX_WAIT_SECONDS);
  if (maxWait < quiet) {
    throw new PagewiseError('BadInput', `app setting PAGEWISE_EVENT_MAX_WAIT_SECONDS (${maxWait}) must be at least PAGEWISE_EVENT_QUIET_SECONDS (${quiet})`);
  }
  if (maxWait / quiet > MAX_SETTLE_LOOKS) {
    throw new PagewiseError('BadInput', `app settings PAGEWISE_EVENT_MAX_WAIT_SECONDS / PAGEWISE_EVENT_QUIET_SECONDS allow ${Math.ceil(maxWait / quiet)} looks at a blob; at most ${MAX_SETTLE_LOOKS} (each adds to the orchestration's history)`);
  }
  return { quietPeriodMs: quiet * 1000, maxWaitMs: maxWait * 1000, attempt: 1 };
}

function seconds(env: Env, name: string, fallback: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new PagewiseError('BadInput', `app setting ${name} must be a whole number of seconds from 1 to ${max}, got "${raw}"`);
  }
  return value;
}
