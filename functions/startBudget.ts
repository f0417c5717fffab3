/**
 * The start budget's settings and its storage (#17): how many backups run at once in the task hub and per
 * source storage account, how long a start without a free slot waits, and the host storage account
 * (AzureWebJobsStorage: the task hub's) that holds the slots, the start records and the start queue.
 */
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { CLOUD_SUFFIXES, CountBounds, defaultCredential, PagewiseError, parseStorageUrl, protectContainer, withinBounds } from '../core';
import { appSettings, Env } from './settings';

export const MAX_RUNNING_BACKUPS: CountBounds = { min: 1, max: 1000, default: 8 };
export const MAX_RUNNING_PER_ACCOUNT: CountBounds = { min: 1, max: 1000, default: 4 };
/** Seconds a start that found no free slot waits before it tries again (the message's visibility timeout). */
export const START_DEFER_SECONDS: CountBounds = { min: 1, max: 3600, default: 60 };
/** A start still without a slot this long after its firing gives up (its reason recorded; the queue poisons it). */
export const START_MAX_WAIT_MS = 24 * 3600_000;

/** Days a start record is kept (PAGEWISE_START_RECORD_DAYS): the timer run deletes older ones, failed and poisoned alike. */
export const START_RECORD_DAYS: CountBounds = { min: 1, max: 3650, default: 30 };

/** The queue the timer fills, one message per due disk and VM; the Functions host moves failures to `<queue>-poison`. */
export const BACKUP_STARTS_QUEUE = 'pagewise-backup-starts';
export const BACKUP_STARTS_POISON_QUEUE = `${BACKUP_STARTS_QUEUE}-poison`;
/** The slots (`v1/hub/…`, `v1/account/…`) and start records (`v1/records/…`), in the host storage account. */
export const STARTS_CONTAINER = 'pagewise-starts';
/** The queue trigger's connection: the host storage's app setting (prefix). */
export const HOST_STORAGE_CONNECTION = 'AzureWebJobsStorage';

export interface StartBudget {
  hub: number;
  perAccount: number;
  deferSeconds: number;
}

function count(env: Env, name: string, bounds: CountBounds): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return bounds.default;
  const n = Number(raw);
  if (!/^\d{1,7}$/.test(raw) || !withinBounds(n, bounds)) {
    throw new PagewiseError('BadInput', `app setting ${name} must be a whole number from ${bounds.min} to ${bounds.max}, got "${raw.slice(0, 16)}"`);
  }
  return n;
}

/** PAGEWISE_MAX_RUNNING_BACKUPS, PAGEWISE_MAX_RUNNING_PER_ACCOUNT, PAGEWISE_START_DEFER_SECONDS. */
export function startBudget(env: Env = appSettings()): StartBudget {
  return {
    hub: count(env, 'PAGEWISE_MAX_RUNNING_BACKUPS', MAX_RUNNING_BACKUPS),
    perAccount: count(env, 'PAGEWISE_MAX_RUNNING_PER_ACCOUNT', MAX_RUNNING_PER_ACCOUNT),
    deferSeconds: count(env, 'PAGEWISE_START_DEFER_SECONDS', START_DEFER_SECONDS),
  };
}

/**
 * Service clients of the host storage, one per connection: every start and slot release used to build its
 * own (a pipeline, a parsed connection string, a credential), a measurable share of a fleet's CPU.
 */
const serviceClients = new Map<string, unknown>();
const MAX_SERVICE_CLIENTS = 16;

function reused<T>(key: string, make: () => T): T {
  if (!serviceClients.has(key)) {
    if (serviceClients.size >= MAX_SERVICE_CLIENTS) serviceClients.clear(); // settings that change often (tests): no growth
    serviceClients.set(key, make());
  }
  return serviceClients.get(key) as T;
}

/**
 * The host storage as the Functions host resolves a connection: the connection string in
 * `AzureWebJobsStorage`, or an identity-based connection — `AzureWebJobsStorage__blobServiceUri` /
 * `__queueServiceUri`, or `AzureWebJobsStorage__accountName` (infra/ sets this one) on the cloud of
 * PAGEWISE_STORAGE_SUFFIX — with the app's identity (DefaultAzureCredential; AZURE_CLIENT_ID for a
 * user-assigned one).
 */
function hostService<T>(env: Env, service: 'blob' | 'queue', fromString: (cs: string) => T, fromUri: (uri: string) => T): T {
  const cs = env[HOST_STORAGE_CONNECTION]?.trim();
  if (cs) return reused(`${service}\n${cs}`, () => fromString(cs));
  const uri = env[`${HOST_STORAGE_CONNECTION}__${service}ServiceUri`]?.trim();
  if (uri) return reused(`${service}\n${uri}`, () => fromUri(uri));
  const account = env[`${HOST_STORAGE_CONNECTION}__accountName`]?.trim().toLowerCase();
  if (account) {
    if (!/^[a-z0-9]{3,24}$/.test(account)) throw new PagewiseError('BadInput', `app setting ${HOST_STORAGE_CONNECTION}__accountName is not a storage account name`);
    const suffix = env.PAGEWISE_STORAGE_SUFFIX?.trim().toLowerCase() || CLOUD_SUFFIXES[0];
    if (!(CLOUD_SUFFIXES as readonly string[]).includes(suffix)) throw new PagewiseError('BadInput', `PAGEWISE_STORAGE_SUFFIX must be one of ${CLOUD_SUFFIXES.join(', ')}`);
    return reused(`${service}\n${account}.${suffix}`, () => fromUri(`https://${account}.${service}.${suffix}`));
  }
  throw new PagewiseError('BadInput', `app setting ${HOST_STORAGE_CONNECTION} (or ${HOST_STORAGE_CONNECTION}__accountName, or __${service}ServiceUri) is required for queue-fed backup starts`);
}

/** The container of the start slots and records; protected as the task hub's is (no restore may write into it). */
export function startsContainer(env: Env = appSettings()): ContainerClient {
  const container = hostService(env, 'blob', (cs) => BlobServiceClient.fromConnectionString(cs), (uri) => new BlobServiceClient(uri, defaultCredential())).getContainerClient(STARTS_CONTAINER);
  try {
    protectContainer(parseStorageUrl(container.url, 'container', 'the start slots container'), 'the durable task hub');
  } catch {
    // an endpoint parseStorageUrl does not know: no blob URL Pagewise accepts can name it either
  }
  return container;
}

export function startsQueue(env: Env = appSettings(), name = BACKUP_STARTS_QUEUE): QueueClient {
  return hostService(env, 'queue', (cs) => QueueServiceClient.fromConnectionString(cs), (uri) => new QueueServiceClient(uri, defaultCredential())).getQueueClient(name);
}

/** The queue's maxDequeueCount (host.json extensions.queues): the attempt at which a failing start is poisoned. */
export const MAX_DEQUEUE_COUNT = 5;

export const START_MODES = ['queue', 'direct'] as const;
export type StartMode = (typeof START_MODES)[number];

/**
 * PAGEWISE_START_MODE: `queue` (default) — the timer enqueues one start per due disk and VM, started within
 * the budget; `direct` — the timer starts every due backup at once, as before #17 (no budget: a small
 * policy, or a host without a queue service).
 */
export function startMode(env: Env = appSettings()): StartMode {
  const raw = env.PAGEWISE_START_MODE?.trim().toLowerCase() || 'queue';
  if (!(START_MODES as readonly string[]).includes(raw)) throw new PagewiseError('BadInput', `app setting PAGEWISE_START_MODE must be one of ${START_MODES.join(', ')}, got "${raw.slice(0, 16)}"`);
  return raw as StartMode;
}

/** PAGEWISE_START_RECORD_DAYS (1–3650, default 30): how long start records stay listed before the timer run deletes them. */
export function startRecordDays(env: Env = appSettings()): number {
  return count(env, 'PAGEWISE_START_RECORD_DAYS', START_RECORD_DAYS);
}
