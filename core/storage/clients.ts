/**
 * Builds Azure SDK clients for a source page blob or a vault container from a StorageLocation:
 * a SAS in the URL, else a connection string, else the location's TokenCredential, else the default
 * credential (credentials.ts). URLs are validated here so
 * every entry point (CLI, HTTP, Event Grid) gets the same specific error.
 */
import {
  BlobServiceClient,
  ContainerClient,
  PageBlobClient,
  StoragePipelineOptions,
  AnonymousCredential,
  newPipeline,
  Pipeline,
} from '@azure/storage-blob';
import { PagewiseError } from '../errors';
import { displayUrl } from '../redact';
import { StorageLocation } from '../types';
import { defaultCredential } from './credentials';
import { checkEndpoint, endpointGuard, isPathStyleHost } from './endpoints';
import { requestObserverPolicy } from './request-observer';

export const PIPELINE_OPTIONS: StoragePipelineOptions = {
  retryOptions: { maxTries: 6, retryDelayInMs: 250, maxRetryDelayInMs: 10_000, tryTimeoutInMs: 120_000 },
  keepAliveOptions: { enable: true },
};

export interface ParsedBlobUrl {
  url: URL;
  /** true for path-style endpoints (Azurite, IP hosts): /<account>/<container>/<blob> */
  pathStyle: boolean;
  account: string;
  container: string;
  blob?: string;
  snapshot?: string;
  hasSas: boolean;
}

// Storage account names are 3–24 letters and digits; managed-disk export hosts
// (md-impexp-….blob.storage.azure.net, md-….z1.blob.storage.azure.net) carry dashes.
const ACCOUNT_RE = /^[a-z0-9]{3,24}$/i;
const MANAGED_DISK_HOST_RE = /^md-[a-z0-9-]{1,60}$/i;
const CONTAINER_RE = /^(\$root|[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9])$/;

/** Refuses a SAS whose expiry (`se`) has passed, naming it, before any request is made. */
export function checkSasExpiry(parsed: ParsedBlobUrl, what: string, now = new Date()): void {
  const expiry = parsed.url.searchParams.get('se');
  if (!parsed.hasSas || !expiry) return;
  const at = new Date(expiry);
  if (!Number.isNaN(at.getTime()) && at.getTime() <= now.getTime()) {
    throw new PagewiseError('AccessDenied', `the SAS of ${what} expired at ${at.toISOString()}; issue a new one`);
  }
}

/** Parses and validates a blob or container URL; `kind` names what the user was asked for. */
export function parseStorageUrl(raw: string, kind: 'blob' | 'container', what: string): ParsedBlobUrl {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new PagewiseError('BadUrl', `${what} is not a URL: "${displayUrl(raw)}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new PagewiseError('BadUrl', `${what} must be an http(s) URL, got ${url.protocol}`);
  }
  if (url.username || url.password) throw new PagewiseError('BadUrl', `${what} must not carry user:password`);
  // Everything after a bare # is dropped on the wire: `disk#2.vhd` would name the blob `disk`.
  if (url.hash || raw.includes('#')) throw new PagewiseError('BadUrl', `${what} has a #fragment, which is never sent; write a # in a blob name as %23: ${displayUrl(raw)}`);
  const pathStyle = isPathStyleHost(url.hostname);
  const segments = pathSegments(url, what, raw);
  let account: string;
  if (pathStyle) {
    account = segments.shift() ?? '';
  } else {
    account = url.hostname.split('.')[0];
  }
  const container = segments.shift() ?? '';
  const blob = segments.length > 0 ? segments.join('/') : undefined;
  if (!ACCOUNT_RE.test(account) && !(!pathStyle && MANAGED_DISK_HOST_RE.test(account))) throw new PagewiseError('BadUrl', `${what} has no valid storage account name: ${displayUrl(raw)}`);
  if (!CONTAINER_RE.test(container)) throw new PagewiseError('BadUrl', `${what} has no valid container name: ${displayUrl(raw)}`);
  if (kind === 'blob' && !blob) throw new PagewiseError('BadUrl', `${what} must name a blob (…/<container>/<blob>): ${displayUrl(raw)}`);
  if (kind === 'container' && blob) throw new PagewiseError('BadUrl', `${what} must be a container URL, not a blob URL: ${displayUrl(raw)}`);
  return {
    url,
    pathStyle,
    account,
    container,
    blob,
    snapshot: snapshotOf(url, what),
    hasSas: url.searchParams.has('sig'),
  };
}

/**
 * The decoded path segments. A segment that decodes to `.` or `..` (`%2F..%2F` inside a blob name) is
 * refused: the name would be re-encoded with its slashes and the HTTP client would resolve the dots,
 * sending the request to another container than the one every check saw (e.g. into the vault).
 */
function pathSegments(url: URL, what: string, raw: string): string[] {
  return url.pathname
    .split('/')
    .filter((s) => s.length > 0)
    .map((segment) => {
      let decoded: string;
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        throw new PagewiseError('BadUrl', `${what} has a malformed %-escape in its path: ${displayUrl(raw)}`);
      }
      if (decoded.split(/[/\\]/).some((part) => part === '.' || part === '..')) {
        throw new PagewiseError('BadUrl', `${what} has a "." or ".." path segment in its blob name: ${displayUrl(raw)}`);
      }
      return decoded;
    });
}

// The form Azure gives a snapshot's time (`2024-05-02T01:00:00.1234567Z`).
const SNAPSHOT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$/;

/** Whether `value` has the form of a blob snapshot's time (what a snapshot parameter may hold). */
export function isSnapshotTime(value: unknown): value is string {
  return typeof value === 'string' && SNAPSHOT_RE.test(value);
}

// The fields of a service, account or user-delegation SAS (as @azure/storage-blob writes them), and `snapshot`.
const SAS_FIELDS = new Set(['sv', 'ss', 'srt', 'spr', 'st', 'se', 'sip', 'si', 'ses', 'skoid', 'sktid', 'skt', 'ske', 'sks', 'skv', 'sr', 'sp', 'sdd',
  'rscc', 'rscd', 'rsce', 'rscl', 'rsct', 'saoid', 'suoid', 'scid', 'sduoid', 'skdutid', 'srh', 'srq', 'sig']);

/**
 * The snapshot the URL names. The query may hold only a SAS and `snapshot`, each once: a SAS URL's
 * query rides along on every request, so `comp=`, `restype=` or `timeout=` there would change what each
 * operation does; and a parameter given twice or in another case lets Pagewise read one value while the
 * service uses the other (`?snapshot=a&snapshot=b`, `SNAPSHOT=`, `sig` twice).
 */
function snapshotOf(url: URL, what: string): string | undefined {
  const seen = new Set<string>();
  for (const name of url.searchParams.keys()) {
    const key = name.toLowerCase();
    const shown = key.replace(/[^a-z0-9_-]/g, '?').slice(0, 40);
    if (seen.has(key)) throw new PagewiseError('BadUrl', `${what} gives the query parameter "${shown}" more than once`);
    seen.add(key);
    if (key === 'snapshot' && name !== 'snapshot') throw new PagewiseError('BadUrl', `${what} spells the snapshot parameter "${name}"; write it as snapshot=`);
    if (key !== 'snapshot' && !SAS_FIELDS.has(name)) {
      throw new PagewiseError('BadUrl', `${what} has the query parameter "${shown}": a storage URL's query may hold only a SAS and snapshot=`);
    }
  }
  const snapshot = url.searchParams.get('snapshot');
  if (snapshot === null) return undefined;
  if (!SNAPSHOT_RE.test(snapshot)) throw new PagewiseError('BadUrl', `${what} has a snapshot parameter that is not a snapshot time (e.g. 2024-05-02T01:00:00.0000000Z)`);
  return snapshot;
}

function serviceUrl(parsed: ParsedBlobUrl): string {
  const base = `${parsed.url.protocol}//${parsed.url.host}`;
  return parsed.pathStyle ? `${base}/${parsed.account}` : base;
}

type Credential = BlobServiceClient['credential'];

/**
 * A pipeline for clients of one checked endpoint, with the endpoint guard last (after signing, so it
 * sees every retry and every redirect the SDK follows). Clients derived from the first one
 * (getContainerClient, withSnapshot, …) share the pipeline and so the guard.
 */
function guarded<T>(credential: Credential, endpoint: string, what: string, build: (pipeline: Pipeline) => T): T {
  const pipeline = newPipeline(credential, PIPELINE_OPTIONS);
  const client = build(pipeline);
  // The SDK builds its core pipeline in the client's constructor and keeps it on the Pipeline object;
  // without it there is no place for the guard, and no client is better than an unguarded one.
  const core = (pipeline as unknown as { _corePipeline?: { addPolicy(policy: unknown, options: { afterPhase: 'Sign' }): void } })._corePipeline;
  if (!core) throw new Error('@azure/storage-blob built no core pipeline: the endpoint guard cannot be installed');
  core.addPolicy(endpointGuard(endpoint, what), { afterPhase: 'Sign' });
  // #18: after the guard, so only requests that leave are observed (telemetry counts and samples them).
  core.addPolicy(requestObserverPolicy(), { afterPhase: 'Sign' });
  return client;
}

/** The credential and service URL a location authenticates with, its endpoint checked first. */
function credentialFor(location: StorageLocation, parsed: ParsedBlobUrl, what: string): { credential: Credential; endpoint: string; serviceUrl: string } {
  if (parsed.hasSas) {
    const endpoint = checkEndpoint(parsed, { managedDiskGrant: location.managedDiskGrant === true }, what);
    return { credential: new AnonymousCredential(), endpoint, serviceUrl: serviceUrl(parsed) };
  }
  if (location.connectionString) {
    let fromString: BlobServiceClient;
    try {
      // Parses only: no request is made.
      fromString = BlobServiceClient.fromConnectionString(location.connectionString, PIPELINE_OPTIONS);
    } catch {
      throw new PagewiseError('BadInput', 'the connection string is malformed');
    }
    // The SDK's client goes to the string's endpoint whatever the URL says, so the URL must be on it.
    const endpoint = checkEndpoint(parsed, { connectionEndpoint: fromString.url }, what);
    return { credential: fromString.credential, endpoint, serviceUrl: fromString.url };
  }
  const endpoint = checkEndpoint(parsed, {}, what);
  return { credential: location.credential ?? defaultCredential(), endpoint, serviceUrl: serviceUrl(parsed) };
}

/** The endpoint a location may be sent requests on, checked as a client for it would be (no request). */
export function allowedEndpointOf(location: StorageLocation, kind: 'blob' | 'container', what: string): string {
  return credentialFor(location, parseStorageUrl(location.url, kind, what), what).endpoint;
}

/** A client of the URL's blob (kept at the snapshot the URL names), through a checked, guarded pipeline. */
function blobClient(location: StorageLocation, parsed: ParsedBlobUrl, what: string): PageBlobClient {
  const { credential, endpoint, serviceUrl: service } = credentialFor(location, parsed, what);
  return guarded(credential, endpoint, what, (pipeline) => {
    if (parsed.hasSas) return new PageBlobClient(stripToBlob(parsed, sasOnly(parsed)), pipeline);
    let client = new BlobServiceClient(service, pipeline).getContainerClient(parsed.container).getPageBlobClient(parsed.blob!);
    if (parsed.snapshot) client = client.withSnapshot(parsed.snapshot);
    return client;
  });
}

/** A page-blob client for the source disk (snapshot kept when the URL names one). */
export function sourceBlobClient(location: StorageLocation, what = 'the source disk URL'): { client: PageBlobClient; parsed: ParsedBlobUrl } {
  const parsed = parseStorageUrl(location.url, 'blob', what);
  checkSasExpiry(parsed, displayUrl(location.url));
  return { client: blobClient(location, parsed, what), parsed };
}

/** A page-blob client for a restore target (no snapshot allowed). */
export function targetBlobClient(location: StorageLocation, what = 'the restore target URL'): { client: PageBlobClient; parsed: ParsedBlobUrl } {
  const parsed = parseStorageUrl(location.url, 'blob', what);
  if (parsed.snapshot) throw new PagewiseError('BadUrl', 'a restore target cannot be a snapshot URL');
  checkSasExpiry(parsed, displayUrl(location.url));
  return { client: blobClient(location, parsed, what), parsed };
}

export function vaultContainerClient(location: StorageLocation): { client: ContainerClient; parsed: ParsedBlobUrl } {
  const what = 'the vault URL';
  const parsed = parseStorageUrl(location.url, 'container', what);
  checkSasExpiry(parsed, displayUrl(location.url));
  const { credential, endpoint, serviceUrl: service } = credentialFor(location, parsed, what);
  const client = guarded(credential, endpoint, what, (pipeline) =>
    parsed.hasSas
      ? new ContainerClient(stripToBlob(parsed, sasOnly(parsed)), pipeline)
      : new BlobServiceClient(service, pipeline).getContainerClient(parsed.container),
  );
  return { client, parsed };
}

function sasOnly(parsed: ParsedBlobUrl): string {
  const params = new URLSearchParams(parsed.url.searchParams);
  return params.toString();
}

function stripToBlob(parsed: ParsedBlobUrl, query: string): string {
  const path = [parsed.container, ...(parsed.blob ? [parsed.blob] : [])]
    .map((p) => p.split('/').map(encodeURIComponent).join('/'))
    .join('/');
  return `${serviceUrl(parsed)}/${path}${query ? `?${query}` : ''}`;
}
