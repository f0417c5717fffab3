/**
 * Start records (#17, docs/DURABLE.md "Start budget"): one small JSON blob per queued start
 * (`v1/records/<startId>.json` in the starts container) saying what became of it — the backup instance it
 * started, or why it failed and whether the queue gave it up (poison). The catalog of failed starts and
 * the retention run's wait read them; the timer run deletes those older than PAGEWISE_START_RECORD_DAYS. No SAS: the target is shown as displayUrl gives it; reasons redacted.
 */
import type { ContainerClient } from '@azure/storage-blob';
import { redact } from '../core';

export const START_RECORD_VERSION = 1;
const RECORDS_PREFIX = 'v1/records/';
/** The most records one read returns (in start-ID order: oldest firing first). */
export const MAX_LISTED_RECORDS = 500;

export type StartState = 'started' | 'failing' | 'poisoned';

export interface StartRecord {
  v: 1;
  startId: string;
  kind: 'disk' | 'vm' | 'unknown';
  /** The disk (URL without SAS) or VM ID. */
  target: string;
  state: StartState;
  /** The backup orchestration it started or joined (state started). */
  instanceId?: string;
  /** Why the last attempt failed (states failing, poisoned). */
  reason?: string;
  /** The queue's dequeue count at the last attempt. */
  attempts: number;
  at: string;
}

const recordName = (startId: string) => `${RECORDS_PREFIX}${startId}.json`;
const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number })?.statusCode;

export async function writeStartRecord(container: ContainerClient, record: Omit<StartRecord, 'v' | 'at'>, now = new Date()): Promise<void> {
  const full: StartRecord = { v: START_RECORD_VERSION, ...record, ...(record.reason ? { reason: redact(record.reason).slice(0, 2000) } : {}), at: now.toISOString() };
  const body = JSON.stringify(full);
  const write = () => container.getBlockBlobClient(recordName(record.startId)).upload(body, Buffer.byteLength(body), { blobHTTPHeaders: { blobContentType: 'application/json' }, metadata: { state: full.state } });
  try {
    await write();
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
    await container.createIfNotExists();
    await write();
  }
}

function parseRecord(text: string): StartRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<StartRecord>;
    if (r.v !== START_RECORD_VERSION || typeof r.startId !== 'string' || typeof r.state !== 'string') return undefined;
    return r as StartRecord;
  } catch {
    return undefined;
  }
}

/** Records are a few hundred bytes; a larger blob there is not one of ours. */
const MAX_RECORD_BYTES = 64 * 1024;

async function readRecord(container: ContainerClient, name: string, size: number): Promise<StartRecord | undefined> {
  if (size > MAX_RECORD_BYTES) return undefined;
  try {
    const buf = await container.getBlobClient(name).downloadToBuffer();
    return parseRecord(buf.toString());
  } catch (err) {
    if (statusOf(err) === 404 || statusOf(err) === 416) return undefined;
    throw err;
  }
}

/**
 * Records whose start ID begins with `prefix` (e.g. one firing's `start-<yyyymmddhhmm>-`), at most `limit`;
 * with `states`, only those (chosen from the listing's metadata: the others are not read).
 */
export async function listStartRecords(container: ContainerClient, options: { prefix?: string; states?: StartState[]; limit?: number } = {}): Promise<StartRecord[]> {
  const out: StartRecord[] = [];
  const limit = options.limit ?? MAX_LISTED_RECORDS;
  try {
    for await (const item of container.listBlobsFlat({ prefix: `${RECORDS_PREFIX}${options.prefix ?? ''}`, includeMetadata: true })) {
      if (out.length >= limit) break;
      if (options.states && !options.states.includes(item.metadata?.state as StartState)) continue;
      const record = await readRecord(container, item.name, item.properties.contentLength ?? 0);
      if (record) out.push(record);
    }
  } catch (err) {
    if (statusOf(err) === 404) return out; // no start was ever queued
    throw err;
  }
  return out;
}

/** The most records one pruning deletes (a firing's share; the next firing deletes the rest). */
export const MAX_PRUNED_RECORDS = 10_000;

/**
 * Deletes the records last written before `before` (the blob's Last-Modified: each attempt rewrites its
 * record, so a start still failing stays), at most `limit`; a record rewritten meanwhile (ETag changed) is
 * kept. Returns how many were deleted.
 */
export async function pruneStartRecords(container: ContainerClient, before: Date, limit = MAX_PRUNED_RECORDS): Promise<number> {
  let deleted = 0;
  try {
    for await (const item of container.listBlobsFlat({ prefix: RECORDS_PREFIX })) {
      if (deleted >= limit) break;
      const modified = item.properties.lastModified;
      if (!modified || modified.getTime() >= before.getTime()) continue;
      try {
        await container.getBlobClient(item.name).delete({ conditions: { ifMatch: item.properties.etag } });
        deleted++;
      } catch (err) {
        if (statusOf(err) !== 404 && statusOf(err) !== 412) throw err;
      }
    }
  } catch (err) {
    if (statusOf(err) !== 404) throw err; // no start was ever queued
  }
  return deleted;
}
