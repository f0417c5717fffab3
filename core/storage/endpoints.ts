/**
 * "An account is an endpoint": the only places Pagewise sends a storage request. A URL's scheme, host
 * and port (and, for a path-style host such as the emulator's, its account) must be one of
 *  - Azure's own blob endpoint of the account, `https://<account>.blob.<cloud suffix>` (default port);
 *  - an endpoint configured explicitly (the CLI's PAGEWISE_STORAGE_ENDPOINTS, the app's
 *    PAGEWISE_ALLOWED_ACCOUNTS), e.g. `http://127.0.0.1:10000/devstoreaccount1`;
 *  - the blob endpoint of the connection string used as the credential (and then only that one);
 *  - a managed-disk export host (`md-….blob.storage.azure.net`) for a URL the app's own Compute grant
 *    returned (the caller says so with `managedDiskGrant`, which no user input sets).
 * Everything else is refused before any request (no DNS lookup, no connection) with one message,
 * whatever lies behind it, so the refusal cannot be used to scan ports or hosts.
 */
import { PagewiseError } from '../errors';
import type { ParsedBlobUrl } from './clients';

/** Blob endpoint suffixes of the Azure clouds (public, China, US Government). */
export const CLOUD_SUFFIXES = ['core.windows.net', 'core.chinacloudapi.cn', 'core.usgovcloudapi.net'] as const;
const DEFAULT_SUFFIX = 'core.windows.net';

// The hosts Compute hands out for a snapshot or disk export: md-<id>.z<N>.blob.storage.azure.net, md-impexp-<id>.blob.storage.azure.net.
const MANAGED_DISK_HOST_RE = /^md-[a-z0-9-]{1,60}(\.z\d{1,3})?\.blob\.storage\.azure\.net$/;

interface EndpointConfig {
  endpoints: Set<string>;
  /** The setting the configured endpoints come from, named in the refusal. */
  setting: string;
  suffix: string;
}

let config: EndpointConfig = { endpoints: new Set(), setting: 'PAGEWISE_STORAGE_ENDPOINTS', suffix: DEFAULT_SUFFIX };

/** What a client may be built for, besides the URL itself. */
export interface EndpointCredential {
  /** The blob endpoint of the connection string used as the credential (a URL, query ignored). */
  connectionEndpoint?: string;
  /** The URL is a read SAS the app's own Compute grant returned (never set from user input). */
  managedDiskGrant?: boolean;
}

/** The endpoint of a parsed URL, normalised: `scheme://host[:port]`, plus `/<account>` on a path-style host. */
export function endpointOf(parsed: ParsedBlobUrl): string {
  const origin = `${parsed.url.protocol}//${parsed.url.host}`.toLowerCase();
  return parsed.pathStyle ? `${origin}/${parsed.account.toLowerCase()}` : origin;
}

/** Azure's own blob endpoint of an account in the configured cloud (or the cloud of `suffix`). */
export function azureEndpoint(account: string, suffix: string = config.suffix): string {
  return `https://${account.toLowerCase()}.blob.${suffix}`;
}

/** The one refusal, whatever lies behind the URL (an open port, a closed one, a foreign host). */
export function endpointRefused(what: string, setting = config.setting): PagewiseError {
  return new PagewiseError(
    'AccessDenied',
    `${what} is not on an allowed storage endpoint: Pagewise sends requests only to an account's own blob endpoint (https://<account>.blob.${config.suffix}) or to one listed in ${setting}`,
  );
}

/**
 * Parses a list of endpoint URLs (comma-separated): each an http(s) origin, with the account as its
 * only path segment on a path-style host (`http://127.0.0.1:10000/devstoreaccount1`). Nothing else is
 * accepted: no credentials, query or deeper path (an endpoint is not a container).
 */
export function parseEndpointList(raw: string, setting: string): string[] {
  return raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0)
    .map((entry) => parseEndpoint(entry, setting));
}

export function parseEndpoint(entry: string, setting: string): string {
  const bad = (why: string) => new PagewiseError('BadInput', `${setting}: "${entry.split('?')[0].slice(0, 200)}" ${why}`);
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    throw bad('is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw bad('must be an http(s) URL');
  if (url.username || url.password || url.search || url.hash) throw bad('must be a bare endpoint URL (no credentials, query or fragment)');
  if (MANAGED_DISK_HOST_RE.test(url.hostname.toLowerCase())) throw bad('is a managed-disk export host: those are reached only through the app\'s own Compute grant');
  // `*` and other non-name characters survive URL parsing but match no real host: a wildcard that silently allows nothing.
  if (!/^([a-z0-9-]+\.)*[a-z0-9-]+\.?$|^\[[0-9a-f:.]+\]$/i.test(url.hostname)) throw bad('must name one host (no wildcards)');
  // Azure's own endpoints answer https on the default port; an http entry would send a SAS in the clear.
  if (isAzureHost(url.hostname) && (url.protocol !== 'https:' || url.port !== '')) throw bad("is an Azure storage host: it must be https on the default port");
  const segments = url.pathname.split('/').filter((s) => s.length > 0);
  if (isPathStyleHost(url.hostname)) {
    if (segments.length !== 1 || !/^[a-z0-9]{3,24}$/i.test(segments[0])) throw bad('must name the account as its only path segment (http://host:port/<account>)');
    return `${url.protocol}//${url.host}/${segments[0]}`.toLowerCase();
  }
  if (segments.length > 0) throw bad('must have no path (an endpoint, not a container)');
  return `${url.protocol}//${url.host}`.toLowerCase();
}

function isAzureHost(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return [...CLOUD_SUFFIXES, 'storage.azure.net'].some((suffix) => name === suffix || name.endsWith(`.${suffix}`));
}

/** Hosts whose first path segment is the account (the emulator, IP addresses), not the first label. */
export function isPathStyleHost(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host === 'localhost' || host.startsWith('[') || host.startsWith('host.docker');
}

/**
 * Sets the explicitly allowed endpoints of this process (replacing any before), the setting they came
 * from (named in refusals), and the cloud's blob suffix (`PAGEWISE_STORAGE_SUFFIX`, default
 * core.windows.net; only Azure's own suffixes: a token for one cloud must not go to another).
 */
export function configureStorageEndpoints(endpoints: readonly string[], setting: string, suffix = DEFAULT_SUFFIX): void {
  const cloud = suffix.trim().toLowerCase();
  if (!(CLOUD_SUFFIXES as readonly string[]).includes(cloud)) {
    throw new PagewiseError('BadInput', `PAGEWISE_STORAGE_SUFFIX must be one of ${CLOUD_SUFFIXES.join(', ')}`);
  }
  config = { endpoints: new Set(endpoints.map((e) => parseEndpoint(e, setting))), setting, suffix: cloud };
}

/** Configures the process from PAGEWISE_STORAGE_ENDPOINTS and PAGEWISE_STORAGE_SUFFIX (the CLI, local tools). */
export function configureStorageEndpointsFromEnv(env: Record<string, string | undefined>): void {
  configureStorageEndpoints(
    parseEndpointList(env.PAGEWISE_STORAGE_ENDPOINTS ?? '', 'PAGEWISE_STORAGE_ENDPOINTS'),
    'PAGEWISE_STORAGE_ENDPOINTS',
    env.PAGEWISE_STORAGE_SUFFIX?.trim() || DEFAULT_SUFFIX,
  );
}

/** True when `endpoint` (normalised) is an explicitly configured one or Azure's own for its account. */
export function isAllowedEndpoint(parsed: ParsedBlobUrl): boolean {
  const endpoint = endpointOf(parsed);
  return config.endpoints.has(endpoint) || (!parsed.pathStyle && endpoint === azureEndpoint(parsed.account));
}

export function isManagedDiskEndpoint(parsed: ParsedBlobUrl): boolean {
  return parsed.url.protocol === 'https:' && parsed.url.port === '' && MANAGED_DISK_HOST_RE.test(parsed.url.hostname.toLowerCase());
}

/**
 * The endpoint a client for this URL may talk to, or the refusal. With a connection string the URL
 * must be on the string's own endpoint: the client would otherwise send the request there, not to the
 * URL the user gave (a silent redirect), so a mismatch is refused rather than followed.
 */
export function checkEndpoint(parsed: ParsedBlobUrl, credential: EndpointCredential, what: string): string {
  const endpoint = endpointOf(parsed);
  if (credential.connectionEndpoint !== undefined) {
    const own = connectionStringEndpoint(credential.connectionEndpoint, parsed.pathStyle);
    if (own !== endpoint) {
      throw new PagewiseError('AccessDenied', `${what} is not on the blob endpoint of its connection string; Pagewise sends a request only to the URL's own endpoint, never to another`);
    }
    // A shared key's signed requests (replayable) and the disk's data go over plain http only to an
    // endpoint configured for it, e.g. the local emulator: never because a string says http.
    if (parsed.url.protocol === 'http:' && !config.endpoints.has(endpoint)) {
      throw new PagewiseError('AccessDenied', `${what} is on a plain http endpoint (its connection string's); Pagewise sends a key's requests over http only to an endpoint listed in ${config.setting}, use https`);
    }
    return endpoint;
  }
  // A grant adds the managed-disk export hosts to the allowed endpoints; it takes none away.
  if (credential.managedDiskGrant && isManagedDiskEndpoint(parsed)) return endpoint;
  if (!isAllowedEndpoint(parsed)) throw endpointRefused(what);
  return endpoint;
}

function connectionStringEndpoint(serviceUrl: string, pathStyle: boolean): string {
  const url = new URL(serviceUrl);
  const origin = `${url.protocol}//${url.host}`.toLowerCase();
  const segments = url.pathname.split('/').filter((s) => s.length > 0);
  // The client puts the URL's container and blob under the string's endpoint: a BlobEndpoint with a
  // container in its path would send every request into that container (e.g. the vault), not the URL's.
  if (segments.length > (isPathStyleHost(url.hostname) ? 1 : 0)) {
    throw new PagewiseError('BadInput', "the connection string's BlobEndpoint has a path beyond the account: it must be the account's endpoint, not a container");
  }
  return pathStyle && segments[0] ? `${origin}/${segments[0].toLowerCase()}` : origin;
}

/** A request as the pipeline sees it (the shape of @azure/core-rest-pipeline's PipelineRequest we use). */
interface OutgoingRequest {
  url: string;
}

/** The shape of a @azure/core-rest-pipeline PipelinePolicy. */
export interface EndpointGuardPolicy {
  name: string;
  sendRequest<R>(request: OutgoingRequest, next: (request: OutgoingRequest) => Promise<R>): Promise<R>;
}

/**
 * Defence in depth: a pipeline policy (placed after signing, so it sees every retry and every
 * redirect the SDK follows) that refuses any request leaving for another endpoint than the checked one.
 */
export function endpointGuard(endpoint: string, what: string): EndpointGuardPolicy {
  const base = endpoint.toLowerCase();
  const pathStyle = new URL(base).pathname.length > 1; // the checked endpoint names its account (endpointOf)
  return {
    name: 'pagewiseEndpointGuard',
    async sendRequest(request, next) {
      const url = new URL(request.url);
      const origin = `${url.protocol}//${url.host}`.toLowerCase();
      const account = url.pathname.split('/')[1]?.toLowerCase() ?? '';
      const target = pathStyle ? `${origin}/${account}` : origin;
      if (target !== base) throw endpointRefused(what);
      return next(request);
    },
  };
}
