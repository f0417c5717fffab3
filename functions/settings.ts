/**
 * Every Pagewise app setting, parsed and validated in one place. Read per invocation (not cached) so
 * a changed setting or Key Vault reference takes effect without redeploying, and tests can set env.
 */
import {
  azureEndpoint,
  configureRequestsPerAccount,
  configureStorageEndpoints,
  decodeUserKey,
  isPagewiseError,
  endpointOf,
  endpointRefused,
  parseEndpoint,
  parseStorageUrl,
  PagewiseError,
  resolveSettings,
} from '../core';
import type { EngineSettings, StorageLocation } from '../core/types';
import type { DiskRef, EngineOverrides } from '../orchestrations/contracts';
import { MAX_BATCHES_IN_FLIGHT } from '../orchestrations/plan';
import { isOwnGrant } from './compute';
import { openRef } from './sealedRefs';

export interface PagewiseSettings {
  vault: StorageLocation;
  /**
   * The storage endpoints allowed as sources, targets, vaults and policy blobs (SSRF guard), normalised
   * as core `endpointOf` gives them: an account name in PAGEWISE_ALLOWED_ACCOUNTS stands for that
   * account's Azure endpoint only; an entry that is a URL is that endpoint (e.g. the local emulator's).
   */
  allowedEndpoints: Set<string>;
  engine: EngineSettings;
  /** Batch activities of one disk in flight at once (PAGEWISE_BATCHES_IN_FLIGHT); the orchestration's default when absent. */
  batchesInFlight?: number;
}

export type Env = Record<string, string | undefined>;

let overrideSettings: Env | undefined;

/**
 * The app settings in force: process.env, as in Azure, unless a local host supplied its own (the
 * local runtime runs the same functions against settings it was given, without touching process.env).
 */
export function appSettings(): Env {
  return overrideSettings ?? process.env;
}

export function useAppSettings(env: Env | undefined): void {
  overrideSettings = env;
}

export function readSettings(env: Env = appSettings()): PagewiseSettings {
  configureRequestsPerAccount(env);
  const vaultUrl = required(env, 'PAGEWISE_VAULT_URL');
  const allowedEndpoints = readAllowedEndpoints(env);
  const vault: StorageLocation = {
    url: vaultUrl,
    ...(env.PAGEWISE_VAULT_CONNECTION_STRING ? { connectionString: env.PAGEWISE_VAULT_CONNECTION_STRING } : {}),
  };
  const settings: PagewiseSettings = {
    vault,
    allowedEndpoints,
    engine: {
      ...optionalInt(env, 'PAGEWISE_PAGE_SIZE', 'pageSize'),
      ...optionalInt(env, 'PAGEWISE_CACHE_BYTES', 'cacheBytes'),
      ...optionalInt(env, 'PAGEWISE_CONCURRENCY', 'concurrency'),
      ...(env.PAGEWISE_SCRATCH_DIR?.trim() ? { scratchDir: env.PAGEWISE_SCRATCH_DIR.trim() } : {}),
    },
    ...batchesInFlight(env),
  };
  checkAppEngineSettings(settings.engine);
  assertAllowedAccount(settings, vaultUrl, 'container', 'PAGEWISE_VAULT_URL');
  return settings;
}

/**
 * The 32-byte user key: base64 of the raw key, or the JSON of a Pagewise key file. In Azure the
 * setting is a Key Vault reference, so the key never sits in plain app configuration.
 */
export function readUserKey(env: Env = appSettings()): Buffer {
  const text = required(env, 'PAGEWISE_USER_KEY').trim();
  if (text.startsWith('{')) return decodeUserKey(text, 'PAGEWISE_USER_KEY');
  const key = Buffer.from(text, 'base64');
  if (key.length !== 32 || key.toString('base64') !== text.replace(/\s/g, '')) {
    throw settingError('PAGEWISE_USER_KEY must be the base64 of 32 bytes (or a Pagewise key file)');
  }
  return key;
}

/** Engine settings for one run: app settings, then the caller's overrides. */
export function engineSettings(settings: PagewiseSettings, overrides: EngineOverrides = {}): EngineSettings {
  return { ...settings.engine, ...overrides };
}

/**
 * PAGEWISE_ALLOWED_ACCOUNTS: account names and endpoint URLs. The URLs are also this process's
 * explicitly configured endpoints in core (the only ones besides Azure's own), so the allow list and
 * the client-side check agree; PAGEWISE_STORAGE_SUFFIX picks the cloud for names (default public).
 */
function readAllowedEndpoints(env: Env): Set<string> {
  const setting = 'PAGEWISE_ALLOWED_ACCOUNTS';
  const entries = required(env, setting)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
  if (entries.length === 0) throw settingError(`${setting} lists no storage account`);
  const urls = entries.filter((e) => e.includes('://')).map((e) => parseEndpoint(e, setting));
  configureStorageEndpoints(urls, setting, env.PAGEWISE_STORAGE_SUFFIX?.trim() || undefined);
  const names = entries.filter((e) => !e.includes('://'));
  for (const name of names) {
    if (!/^[a-z0-9]{3,24}$/i.test(name)) throw settingError(`${setting}: "${name.slice(0, 40)}" is neither a storage account name nor an endpoint URL`);
  }
  return new Set([...urls, ...names.map((n) => azureEndpoint(n))]);
}

/**
 * Throws unless the URL is on an endpoint of the allow list (scheme, host, port, and the account of a
 * path-style host), with one message whatever lies behind the URL: a caller must not make the app
 * send requests (with its managed identity) to arbitrary hosts, nor learn which ports answer.
 */
export function assertAllowedAccount(settings: PagewiseSettings, url: string, kind: 'blob' | 'container', what: string): void {
  const parsed = parseStorageUrl(url, kind, what);
  if (!settings.allowedEndpoints.has(endpointOf(parsed))) throw endpointRefused(what, 'PAGEWISE_ALLOWED_ACCOUNTS');
}

/**
 * The location of a backup source, allow-list checked. A read SAS the Compute API issued for a
 * snapshot is on a managed-disk export host, not one of our accounts: it is accepted only with the
 * seal the app's own grant put on it (functions/compute.ts), never because a caller typed such a host.
 */
export function allowedSource(settings: PagewiseSettings, source: DiskRef, userKey: Buffer, what: string): StorageLocation {
  if (source.grantedBy === 'compute') {
    if (!isOwnGrant(source, userKey)) throw endpointRefused(what, 'PAGEWISE_ALLOWED_ACCOUNTS');
    return { url: openRef(source, userKey, what), managedDiskGrant: true };
  }
  return allowedBlob(settings, source, userKey, what);
}

/** A restore target or compared source of an activity's input, opened and allow-list checked. */
export function allowedBlob(settings: PagewiseSettings, ref: DiskRef, userKey: Buffer, what: string): StorageLocation {
  const url = openRef(ref, userKey, what);
  assertAllowedAccount(settings, url, 'blob', what);
  return { url };
}

/** The backup schedule setting's name, used as `%PAGEWISE_BACKUP_SCHEDULE%` in the timer binding. */
export const BACKUP_SCHEDULE_SETTING = 'PAGEWISE_BACKUP_SCHEDULE';

/** Containers whose new page blobs are backed up (`account/container` or `container`), lower-cased. */
export function watchedContainers(env: Env = appSettings()): string[] {
  return (env.PAGEWISE_WATCHED_CONTAINERS ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c.length > 0);
}

export interface PolicySource {
  inline?: string;
  url?: string;
}

export function policySource(env: Env = appSettings()): PolicySource {
  return {
    ...(env.PAGEWISE_BACKUP_POLICY ? { inline: env.PAGEWISE_BACKUP_POLICY } : {}),
    ...(env.PAGEWISE_POLICY_URL ? { url: env.PAGEWISE_POLICY_URL } : {}),
  };
}

function required(env: Env, name: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === '') throw settingError(`app setting ${name} is not set`);
  return value.trim();
}

/**
 * The engine settings as the activities will resolve them, checked when the settings are read: a page
 * size, cache or concurrency the engine would refuse is a configuration error naming its setting, not
 * a failure of the first backup that uses it.
 */
function checkAppEngineSettings(engine: EngineSettings): void {
  try {
    resolveSettings(engine);
  } catch (err) {
    if (!isPagewiseError(err)) throw err;
    const name = err.code === 'BadPageSize' ? 'PAGEWISE_PAGE_SIZE' : err.code === 'BadCacheSize' ? 'PAGEWISE_CACHE_BYTES (with PAGEWISE_PAGE_SIZE)' : 'PAGEWISE_CONCURRENCY';
    throw settingError(`app setting ${name}: ${err.message}`);
  }
}

function optionalInt<K extends keyof EngineSettings>(env: Env, name: string, key: K): Partial<EngineSettings> {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return {};
  const value = Number(raw);
  // Digits only: Number() would also take "0x10", "1e3" or "4.0" without a word.
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(value) || value <= 0) throw settingError(`app setting ${name} must be a positive whole number, got "${raw}"`);
  return { [key]: value };
}

function batchesInFlight(env: Env): { batchesInFlight?: number } {
  const raw = env.PAGEWISE_BATCHES_IN_FLIGHT;
  if (raw === undefined || raw.trim() === '') return {};
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_BATCHES_IN_FLIGHT) {
    throw settingError(`app setting PAGEWISE_BATCHES_IN_FLIGHT must be a whole number from 1 to ${MAX_BATCHES_IN_FLIGHT}, got "${raw}"`);
  }
  return { batchesInFlight: value };
}

function settingError(message: string): PagewiseError {
  return new PagewiseError('BadInput', message);
}
