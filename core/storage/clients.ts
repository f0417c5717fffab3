/**
 * Builds Azure SDK clients for a source page blob or a vault container from a StorageLocation:
 * a SAS in the URL, else a connection string, else DefaultAzureCredential. URLs are validated here so
 * every entry point (CLI, HTTP, Event Grid) gets the same specific error.
 */
import {
  BlobServiceClient,
  ContainerClient,
  PageBlobClient,
  StoragePipelineOptions,
  AnonymousCredential,
} from '@azure/storage-blob';
import { DefaultAzureCredential } from '@azure/identity';
import { PagewiseError } from '../errors';
import { displayUrl } from '../redact';
import { StorageLocation } from '../types';

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

function isPathStyleHost(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host === 'localhost' || host.startsWith('[') || host.startsWith('host.docker');
}

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
  const pathStyle = isPathStyleHost(url.hostname);
  const segments = url.pathname.split('/').filter((s) => s.length > 0).map(decodeURIComponent);
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
    snapshot: url.searchParams.get('snapshot') ?? undefined,
    hasSas: url.searchParams.has('sig'),
  };
}


function serviceUrl(parsed: ParsedBlobUrl): string {
  const base = `${parsed.url.protocol}//${parsed.url.host}`;
  return parsed.pathStyle ? `${base}/${parsed.account}` : base;
}

let defaultCredential: DefaultAzureCredential | undefined;

function serviceClient(location: StorageLocation, parsed: ParsedBlobUrl): BlobServiceClient {
  if (parsed.hasSas) {
    return new BlobServiceClient(`${serviceUrl(parsed)}?${parsed.url.searchParams.toString()}`, new AnonymousCredential(), PIPELINE_OPTIONS);
  }
  if (location.connectionString) {
    let client: BlobServiceClient;
    try {
      client = BlobServiceClient.fromConnectionString(location.connectionString, PIPELINE_OPTIONS);
    } catch {
      throw new PagewiseError('BadInput', 'the connection string is malformed');
    }
    // The client follows the connection string, not the URL: a string for another account would
    // silently read or write there, so the two must name the same account.
    if (client.accountName && client.accountName.toLowerCase() !== parsed.account.toLowerCase()) {
      throw new PagewiseError('BadInput', `the connection string is for storage account "${client.accountName}" but the URL names account "${parsed.account}"`);
    }
    return client;
  }
  defaultCredential ??= new DefaultAzureCredential();
  return new BlobServiceClient(serviceUrl(parsed), defaultCredential, PIPELINE_OPTIONS);
}

/** A page-blob client for the source disk (snapshot kept when the URL names one). */
export function sourceBlobClient(location: StorageLocation): { client: PageBlobClient; parsed: ParsedBlobUrl } {
  const parsed = parseStorageUrl(location.url, 'blob', 'the source disk URL');
  checkSasExpiry(parsed, displayUrl(location.url));
  const sas = sasOnly(parsed);
  if (parsed.hasSas) {
    return { client: new PageBlobClient(stripToBlob(parsed, sas), new AnonymousCredential(), PIPELINE_OPTIONS), parsed };
  }
  let client = serviceClient(location, parsed).getContainerClient(parsed.container).getPageBlobClient(parsed.blob!);
  if (parsed.snapshot) client = client.withSnapshot(parsed.snapshot);
  return { client, parsed };
}

/** A page-blob client for a restore target (no snapshot allowed). */
export function targetBlobClient(location: StorageLocation): { client: PageBlobClient; parsed: ParsedBlobUrl } {
  const result = sourceBlobClient(location);
  if (result.parsed.snapshot) throw new PagewiseError('BadUrl', 'a restore target cannot be a snapshot URL');
  return result;
}

export function vaultContainerClient(location: StorageLocation): { client: ContainerClient; parsed: ParsedBlobUrl } {
  const parsed = parseStorageUrl(location.url, 'container', 'the vault URL');
  checkSasExpiry(parsed, displayUrl(location.url));
  if (parsed.hasSas) {
    return { client: new ContainerClient(stripToBlob(parsed, sasOnly(parsed)), new AnonymousCredential(), PIPELINE_OPTIONS), parsed };
  }
  return { client: serviceClient(location, parsed).getContainerClient(parsed.container), parsed };
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

/** Two locations are the same account when host and (path-style) account name match. */
export function sameAccount(a: ParsedBlobUrl, b: ParsedBlobUrl): boolean {
  return a.url.host.toLowerCase() === b.url.host.toLowerCase() && a.account.toLowerCase() === b.account.toLowerCase();
}
