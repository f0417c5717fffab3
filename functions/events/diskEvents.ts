/**
 * Pure reading of the Event Grid events Pagewise reacts to, in either delivery schema (Event Grid
 * schema or CloudEvents 1.0): a managed-disk snapshot written (ARM ResourceWriteSuccess) or a page
 * blob created in a watched container (Storage BlobCreated). Anything else is "ignored" with a reason.
 */
import { isPathStyleHost, printable } from '../../core';

export const SNAPSHOT_WRITTEN = 'Microsoft.Resources.ResourceWriteSuccess';
export const BLOB_CREATED = 'Microsoft.Storage.BlobCreated';

/** The fields both schemas share, under Event Grid names. */
export interface NormalizedEvent {
  id: string;
  type: string;
  subject: string;
  source: string;
  time?: string;
  data: Record<string, unknown>;
  schema: 'EventGrid' | 'CloudEvents';
}

export type DiskEvent =
  | { kind: 'snapshot'; eventId: string; resourceId: string; subscriptionId: string; resourceGroup: string; snapshotName: string }
  | { kind: 'pageBlob'; eventId: string; url: string; account: string; container: string; blob: string; etag?: string; api?: string }
  | { kind: 'ignored'; eventId: string; reason: string };

export function normalizeEvent(raw: unknown): NormalizedEvent {
  const e = (raw ?? {}) as Record<string, unknown>;
  const data = (typeof e.data === 'object' && e.data !== null ? e.data : {}) as Record<string, unknown>;
  if (e.specversion !== undefined) {
    return {
      id: String(e.id ?? ''),
      type: String(e.type ?? ''),
      subject: String(e.subject ?? ''),
      source: String(e.source ?? ''),
      ...(e.time ? { time: String(e.time) } : {}),
      data,
      schema: 'CloudEvents',
    };
  }
  return {
    id: String(e.id ?? ''),
    type: String(e.eventType ?? ''),
    subject: String(e.subject ?? ''),
    source: String(e.topic ?? ''),
    ...(e.eventTime ? { time: String(e.eventTime) } : {}),
    data,
    schema: 'EventGrid',
  };
}

// The parts become the path of a Compute request made with the app's identity: ARM's own name rules
// only (a GUID, a resource-group name not ending in '.', a snapshot name), so no '..' or encoded path.
const SNAPSHOT_ID_RE =
  /^\/subscriptions\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/resourceGroups\/([-\p{L}\p{N}_.()]{0,89}[-\p{L}\p{N}_()])\/providers\/Microsoft\.Compute\/snapshots\/([\p{L}\p{N}_](?:[-\p{L}\p{N}_.]{0,78}[\p{L}\p{N}_])?)$/iu;

/** The parts of a snapshot's ARM ID (as an event or a manifest names it), or undefined when it is not one. */
export function snapshotRefOf(resourceId: string): { subscriptionId: string; resourceGroup: string; snapshotName: string } | undefined {
  const match = SNAPSHOT_ID_RE.exec(resourceId);
  return match ? { subscriptionId: match[1], resourceGroup: match[2], snapshotName: match[3] } : undefined;
}

/** Decides what an event asks of Pagewise; `watched` lists `container` or `account/container` entries. */
export function classifyEvent(raw: unknown, watched: string[]): DiskEvent {
  const event = normalizeEvent(raw);
  const eventId = event.id;
  if (event.type === SNAPSHOT_WRITTEN) {
    const resourceId = String(event.data.resourceUri ?? event.subject);
    const match = SNAPSHOT_ID_RE.exec(resourceId);
    if (!match) return { kind: 'ignored', eventId, reason: `resource write of ${shown(resourceId)} is not a Microsoft.Compute/snapshots resource` };
    const operation = String(event.data.operationName ?? '');
    if (operation && !/^Microsoft\.Compute\/snapshots\/write$/i.test(operation)) {
      return { kind: 'ignored', eventId, reason: `operation ${shown(operation)} is not a snapshot write` };
    }
    // An ARM event's topic is its subscription: a snapshot of another subscription is not this event's to grant.
    const topicSubscription = /^\/subscriptions\/([^/]+)/i.exec(event.source)?.[1]?.toLowerCase();
    if (topicSubscription !== undefined && topicSubscription !== match[1].toLowerCase()) {
      return { kind: 'ignored', eventId, reason: `snapshot ${match[3]} is in subscription ${match[1]}, not in subscription ${shown(topicSubscription)} that raised the event` };
    }
    return { kind: 'snapshot', eventId, resourceId, subscriptionId: match[1], resourceGroup: match[2], snapshotName: match[3] };
  }
  if (event.type === BLOB_CREATED) {
    if (event.data.blobType !== 'PageBlob') return { kind: 'ignored', eventId, reason: `blob type ${shown(String(event.data.blobType))} is not PageBlob` };
    const url = String(event.data.url ?? '');
    const where = locate(url);
    if (!where) return { kind: 'ignored', eventId, reason: 'the event carries no blob URL' };
    // The topic names the account that raised the event: a URL on another account is not that account's blob.
    const topicAccount = /\/storageAccounts\/([^/]+)/i.exec(event.source)?.[1]?.toLowerCase();
    if (topicAccount !== undefined && topicAccount !== where.account) {
      return { kind: 'ignored', eventId, reason: `the blob URL is on account ${where.account}, not on account ${shown(topicAccount)} that raised the event` };
    }
    const isWatched = watched.some((w) => w === where.container || w === `${where.account}/${where.container}`);
    if (!isWatched) return { kind: 'ignored', eventId, reason: `container ${where.account}/${where.container} is not watched` };
    const etag = typeof event.data.eTag === 'string' && event.data.eTag ? quoted(event.data.eTag) : undefined;
    const api = typeof event.data.api === 'string' && event.data.api ? event.data.api : undefined;
    return { kind: 'pageBlob', eventId, url, ...where, ...(etag ? { etag } : {}), ...(api ? { api } : {}) };
  }
  return { kind: 'ignored', eventId, reason: `event type ${shown(event.type) || '(none)'} is not handled` };
}

/** Account (the URL host's first label, or a path-style host's first segment), container and blob of a blob URL. */
function locate(url: string): { account: string; container: string; blob: string } | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const segments = parsed.pathname.split('/').filter(Boolean);
  const pathStyle = isPathStyleHost(parsed.hostname);
  const account = ((pathStyle ? segments[0] : parsed.hostname.split('.')[0]) ?? '').toLowerCase();
  const rest = pathStyle ? segments.slice(1) : segments;
  const container = rest[0]?.toLowerCase();
  let blob: string;
  try {
    blob = rest.slice(1).map(decodeURIComponent).join('/');
  } catch {
    return undefined; // malformed percent-encoding names no blob
  }
  return account && container && blob ? { account, container, blob } : undefined;
}

/** A caller's text fit for a log line: control characters escaped (no forged lines), at most `max` characters. */
export function shown(text: string, max = 200): string {
  const clipped = text.length > max ? `${text.slice(0, max)}…` : text;
  return printable(clipped);
}

/** Storage reports ETags quoted in blob properties but bare in events; the backup ID uses the quoted form. */
function quoted(etag: string): string {
  return etag.startsWith('"') ? etag : `"${etag}"`;
}
