/**
 * How Pagewise reaches Azure Resource Manager: one endpoint (https only; Azure's public cloud by
 * default, PAGEWISE_ARM_ENDPOINT for a sovereign cloud or the test stand-in) and one credential (the
 * app's identity; a pre-acquired bearer token in PAGEWISE_ARM_TOKEN for automation and tests). SDK
 * clients are made lazily — the Compute SDK is large and only VM work needs it — and one per subscription.
 */
import type { TokenCredential, AccessToken } from '@azure/identity';
import type { ComputeManagementClient } from '@azure/arm-compute';
import { PagewiseError } from '../errors';
import { defaultCredential } from '../storage/credentials';

export const PUBLIC_ARM_ENDPOINT = 'https://management.azure.com';

export interface ArmContext {
  /** The ARM endpoint, normalised (scheme + host + port, no path). */
  readonly endpoint: string;
  readonly credential: TokenCredential;
  /** The long-running operations' poll interval when Compute gives no Retry-After (PAGEWISE_ARM_POLL_MS); undefined: the SDK's (2 s). */
  readonly pollIntervalMs?: number;
  /** The Compute client of a subscription (made once). */
  compute(subscriptionId: string): Promise<ComputeManagementClient>;
}

/** An ARM endpoint from a setting: an https URL with no credentials, path, query or fragment. */
export function parseArmEndpoint(value: string, setting = 'PAGEWISE_ARM_ENDPOINT'): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new PagewiseError('BadInput', `${setting} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new PagewiseError('BadInput', `${setting} must be an https URL (ARM requests carry a bearer token)`);
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw new PagewiseError('BadInput', `${setting} must be only scheme, host and port (e.g. https://management.azure.com)`);
  }
  return url.origin;
}

/** A fixed bearer token (PAGEWISE_ARM_TOKEN, e.g. from `az account get-access-token`): the SDK asks, it answers. */
export class StaticTokenCredential implements TokenCredential {
  constructor(private readonly token: string, private readonly expiresOnTimestamp = Date.now() + 3600_000) {}
  async getToken(): Promise<AccessToken> {
    return { token: this.token, expiresOnTimestamp: this.expiresOnTimestamp };
  }
}

export interface ArmContextOptions {
  endpoint?: string;
  credential?: TokenCredential;
  pollIntervalMs?: number;
}

/** PAGEWISE_ARM_POLL_MS bounds: below 10 ms a poll loop is a busy loop; above a minute an operation waits for nothing. */
export const MIN_ARM_POLL_MS = 10;
export const MAX_ARM_POLL_MS = 60_000;

/** A poll interval from a setting: whole milliseconds within the bounds; unset or empty: undefined (the SDK's). */
export function parseArmPollMs(value: string | number | undefined, setting = 'PAGEWISE_ARM_POLL_MS'): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : /^\s*\d{1,6}\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < MIN_ARM_POLL_MS || n > MAX_ARM_POLL_MS) {
    throw new PagewiseError('BadInput', `${setting} ${JSON.stringify(String(value).slice(0, 20))} must be a whole number of milliseconds from ${MIN_ARM_POLL_MS} to ${MAX_ARM_POLL_MS}`);
  }
  return n;
}

/** The ARM context from explicit options, else the environment (PAGEWISE_ARM_ENDPOINT, PAGEWISE_ARM_TOKEN, PAGEWISE_ARM_POLL_MS), else Azure's defaults. */
export function armContext(options: ArmContextOptions = {}, env: NodeJS.ProcessEnv = process.env): ArmContext {
  const endpoint = parseArmEndpoint(options.endpoint ?? env.PAGEWISE_ARM_ENDPOINT ?? PUBLIC_ARM_ENDPOINT);
  const token = env.PAGEWISE_ARM_TOKEN;
  const credential = options.credential ?? (token ? new StaticTokenCredential(token) : defaultCredential());
  const pollIntervalMs = parseArmPollMs(options.pollIntervalMs ?? env.PAGEWISE_ARM_POLL_MS);
  const clients = new Map<string, Promise<ComputeManagementClient>>();
  return {
    endpoint,
    credential,
    ...(pollIntervalMs !== undefined ? { pollIntervalMs } : {}),
    compute(subscriptionId) {
      let client = clients.get(subscriptionId);
      if (!client) {
        client = import('@azure/arm-compute').then(
          ({ ComputeManagementClient }) =>
            new ComputeManagementClient(credential, subscriptionId, { endpoint, credentials: { scopes: [`${endpoint}/.default`] } }),
        );
        clients.set(subscriptionId, client);
      }
      return client;
    },
  };
}
