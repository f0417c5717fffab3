/**
 * The queue trigger settings of host.json `extensions.queues` — the one source for the Functions host
 * in Azure and the local queue host — parsed and checked, with the host's defaults where one is absent.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

export type QueueMessageEncoding = 'base64' | 'none';

export interface QueueHostSettings {
  /** A message that failed this many times moves to `<queue>-poison`. */
  maxDequeueCount: number;
  /** How long a failed message stays invisible before it is retried. */
  visibilityTimeoutInMs: number;
  /** Messages received at once per queue. */
  batchSize: number;
  /** A new batch is fetched when no more than this many messages of the queue are being processed. */
  newBatchThreshold: number;
  /** Longest wait between polls of an empty queue (the wait doubles from 100 ms up to it). */
  maxPollingIntervalInMs: number;
  /** base64: message text is the base64 of the body (the host's default); none: the text is the body. */
  messageEncoding: QueueMessageEncoding;
}

/** The Functions host's own defaults (used for what host.json leaves out). */
export const HOST_QUEUE_DEFAULTS: QueueHostSettings = {
  maxDequeueCount: 5,
  visibilityTimeoutInMs: 0,
  batchSize: 16,
  newBatchThreshold: 8,
  maxPollingIntervalInMs: 60_000,
  messageEncoding: 'base64',
};

/** Shortest wait between polls of an empty queue (the host's minimum). */
export const MIN_POLLING_INTERVAL_MS = 100;

/** Parses a .NET TimeSpan as host.json writes it ("00:00:30", "1.02:03:04.5"); milliseconds. */
export function parseTimeSpan(text: string, what: string): number {
  const m = /^(?:(\d{1,5})\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$/.exec(text.trim());
  if (!m || Number(m[2]) > 23 || Number(m[3]) > 59 || Number(m[4]) > 59) {
    throw new Error(`${what} must be a time span like "00:00:30" (hh:mm:ss), got "${text.slice(0, 32)}"`);
  }
  const [, days, hours, minutes, seconds, fraction] = m;
  const ms = fraction ? Math.round(Number(`0.${fraction}`) * 1000) : 0;
  return (((Number(days ?? 0) * 24 + Number(hours)) * 60 + Number(minutes)) * 60 + Number(seconds)) * 1000 + ms;
}

function wholeNumber(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${what} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)?.slice(0, 32)}`);
  }
  return value;
}

function timeSpan(value: unknown, what: string, maxInMs: number): number {
  if (typeof value !== 'string') throw new Error(`${what} must be a time span string like "00:00:30"`);
  const ms = parseTimeSpan(value, what);
  if (ms > maxInMs) throw new Error(`${what} must be at most ${maxInMs / 1000} s, got "${value}"`);
  return ms;
}

/**
 * The settings from host.json's `extensions.queues` object, checked with the host's bounds (batchSize
 * at most 32, the service's limit for one receive; a visibility of at most 7 days).
 */
export function readQueueSettings(queues: unknown): QueueHostSettings {
  if (queues === undefined) return { ...HOST_QUEUE_DEFAULTS };
  if (typeof queues !== 'object' || queues === null || Array.isArray(queues)) throw new Error('host.json extensions.queues must be an object');
  const q = queues as Record<string, unknown>;
  const at = (key: string) => `host.json extensions.queues.${key}`;
  const batchSize = q.batchSize === undefined ? HOST_QUEUE_DEFAULTS.batchSize : wholeNumber(q.batchSize, at('batchSize'), 1, 32);
  const encoding = q.messageEncoding ?? HOST_QUEUE_DEFAULTS.messageEncoding;
  if (encoding !== 'base64' && encoding !== 'none') throw new Error(`${at('messageEncoding')} must be "base64" or "none"`);
  return {
    maxDequeueCount: q.maxDequeueCount === undefined ? HOST_QUEUE_DEFAULTS.maxDequeueCount : wholeNumber(q.maxDequeueCount, at('maxDequeueCount'), 1, 1000),
    visibilityTimeoutInMs: q.visibilityTimeout === undefined ? HOST_QUEUE_DEFAULTS.visibilityTimeoutInMs : timeSpan(q.visibilityTimeout, at('visibilityTimeout'), 7 * 24 * 3600 * 1000),
    batchSize,
    newBatchThreshold: q.newBatchThreshold === undefined ? Math.floor(batchSize / 2) : wholeNumber(q.newBatchThreshold, at('newBatchThreshold'), 0, 1000),
    maxPollingIntervalInMs: q.maxPollingInterval === undefined
      ? HOST_QUEUE_DEFAULTS.maxPollingIntervalInMs
      : Math.max(MIN_POLLING_INTERVAL_MS, timeSpan(q.maxPollingInterval, at('maxPollingInterval'), 24 * 3600 * 1000)),
    messageEncoding: encoding,
  };
}

/** host.json of the app: beside runtime/ (ts-node) or one level up (the compiled dist/runtime). */
function hostJsonPath(): string {
  const candidates = [path.resolve(__dirname, '..', 'host.json'), path.resolve(__dirname, '..', '..', 'host.json')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`host.json not found (looked at ${candidates.join(', ')})`);
  return found;
}

/** The app's queue settings, read from its host.json. */
export function appQueueSettings(file = hostJsonPath()): QueueHostSettings {
  const json = JSON.parse(readFileSync(file, 'utf8')) as { extensions?: { queues?: unknown } };
  return readQueueSettings(json.extensions?.queues);
}
