/**
 * Every Pagewise app setting, parsed and validated in one place, resolved ONCE per process: in Azure
 * from process.env when the app starts (functions/index.ts); locally the runtime hands them in — app
 * settings to resolve (`pagewise serve`, tests) or an already resolved object (the CLI's local engine).
 * Reading them has no side effect: the one place that configures core's storage endpoints and request
 * gate from them is `useAppSettings`, at start. Their names are those of functions/appSettings.ts (typed so).
 */
import {
  azureEndpoint,
  BATCHES_IN_FLIGHT,
  CLOUD_SUFFIXES,
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
  RESTORE_WINDOW_BYTES,
  chunkingFromText,
  parseBytes,
  withinBounds,
} from '../core';
import type { EngineSettings, StorageLocation } from '../core';
import type { DiskRef, EngineOverrides } from '../orchestrations/contracts';
import { isOwnGrant } from './compute';
import { openRef } from './sealedRefs';
// #18 infra: setting names typed against the one list.
import type { AppSettingName } from './appSettings';

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

/** Settings already resolved, as a local engine hands them in (no PAGEWISE_* strings in between). */
export interface ResolvedAppSettings {
  settings: PagewiseSettings;
  userKey: Buffer;
  /** The triggers' own settings (schedule, policy, watched containers, settle times); default none. */
  env?: Env;
}

type Outcome<T> = { value: T } | { error: unknown };

interface InForce {
  env: Env;
  settings: Outcome<PagewiseSettings>;
  userKey: Outcome<Buffer>;
}

let inForce: InForce | undefined;

function attempt<T>(resolve: () => T): Outcome<T> {
  try {
    return { value: resolve() };
  } catch (error) {
    return { error };
  }
}

function valueOf<T>(outcome: Outcome<T>): T {
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

/**
 * Sets this process's settings (replacing any before) and, for app settings, configures core from
 * them: the explicitly allowed storage endpoints (the URLs of PAGEWISE_ALLOWED_ACCOUNTS, in the cloud
 * of PAGEWISE_STORAGE_SUFFIX) and the per-account request gate (PAGEWISE_REQUESTS_PER_ACCOUNT). A
 * setting that does not resolve is kept as its error: every function that reads the settings reports
 * it, naming the setting. `undefined` forgets them (the next read resolves process.env).
 */
export function useAppSettings(given: Env | ResolvedAppSettings | undefined): void {
  if (given === undefined) {
    inForce = undefined;
    return;
  }
  if (isResolved(given)) {
    inForce = { env: given.env ?? {}, settings: { value: given.settings }, userKey: { value: given.userKey } };
    return;
  }
  const env = given;
  let settings = attempt(() => readSettings(env));
  if ('value' in settings) {
    const configured = attempt(() => {
      configureStorageEndpoints(endpointUrls(env), 'PAGEWISE_ALLOWED_ACCOUNTS', storageSuffix(env));
      configureRequestsPerAccount(env);
    });
    if ('error' in configured) settings = configured;
  }
  inForce = { env, settings, userKey: attempt(() => readUserKey(env)) };
}

function isResolved(given: Env | ResolvedAppSettings): given is ResolvedAppSettings {
  return Buffer.isBuffer((given as Partial<ResolvedAppSettings>).userKey) && typeof (given as Partial<ResolvedAppSettings>).settings === 'object';
}

/** True when settings are in force (handed in, or resolved at start). */
export function hasAppSettings(): boolean {
  return inForce !== undefined;
}

function current(): InForce {
  // Not started through useAppSettings (a function called on its own): process.env, parsed, nothing configured.
  inForce ??= { env: process.env, settings: attempt(() => readSettings(process.env)), userKey: attempt(() => readUserKey(process.env)) };
  return inForce;
}

/** The app settings the triggers read as text (schedule, policy, watched containers, settle times). */
export function appSettings(): Env {
  return current().env;
}

/** With `env`: those app settings parsed (pure). Without: this process's settings, resolved once. */
export function readSettings(env?: Env): PagewiseSettings {
  if (env === undefined) return valueOf(current().settings);
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
 * setting is a Key Vault reference, so the key never sits in plain app configuration. Without `env`:
 * this process's user key, resolved once.
 */
export function readUserKey(env?: Env): Buffer {
  if (env === undefined) return valueOf(current().userKey);
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
  const { chunking, ...rest } = overrides;
  return { ...settings.engine, ...rest, ...(chunking != null ? { chunking: chunkingFromText(chunking, 'chunking') } : {}) };
}

/**
 * PAGEWISE_ALLOWED_ACCOUNTS: account names and endpoint URLs. The URLs are also this process's
 * explicitly configured endpoints in core (set at start by useAppSettings), so the allow list and
 * the client-side check agree; PAGEWISE_STORAGE_SUFFIX picks the cloud for names (default public).
 */
function readAllowedEndpoints(env: Env): Set<string> {
  const setting = 'PAGEWISE_ALLOWED_ACCOUNTS';
  const entries = allowedEntries(env);
  if (entries.length === 0) throw settingError(`${setting} lists no storage account`);
  const urls = endpointUrls(env);
  const suffix = storageSuffix(env);
  const names = entries.filter((e) => !e.includes('://'));
  for (const name of names) {
    if (!/^[a-z0-9]{3,24}$/i.test(name)) throw settingError(`${setting}: "${name.slice(0, 40)}" is neither a storage account name nor an endpoint URL`);
  }
  return new Set([...urls, ...names.map((n) => azureEndpoint(n, suffix))]);
}

function allowedEntries(env: Env): string[] {
  return required(env, 'PAGEWISE_ALLOWED_ACCOUNTS')
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
}

/** The endpoint URLs of PAGEWISE_ALLOWED_ACCOUNTS, normalised. */
function endpointUrls(env: Env): string[] {
  return allowedEntries(env)
    .filter((e) => e.includes('://'))
    .map((e) => parseEndpoint(e, 'PAGEWISE_ALLOWED_ACCOUNTS'));
}

/** PAGEWISE_STORAGE_SUFFIX: one of Azure's clouds (a token for one cloud must not go to another). */
function storageSuffix(env: Env): string {
  const suffix = env.PAGEWISE_STORAGE_SUFFIX?.trim().toLowerCase() || CLOUD_SUFFIXES[0];
  if (!(CLOUD_SUFFIXES as readonly string[]).includes(suffix)) throw new PagewiseError('BadInput', `PAGEWISE_STORAGE_SUFFIX must be one of ${CLOUD_SUFFIXES.join(', ')}`);
  return suffix;
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
    // The seal covers the snapshot's disk identity too: no input names another disk as this one.
    return { url: openRef(source, userKey, what), managedDiskGrant: true, ...(source.managedDisk ? { managedDisk: source.managedDisk } : {}) };
  }
  return allowedBlob(settings, source, userKey, what);
}

/** A restore target or compared source of an activity's input, opened and allow-list checked. */
export function allowedBlob(settings: PagewiseSettings, ref: DiskRef, userKey: Buffer, what: string): StorageLocation {
  const url = openRef(ref, userKey, what);
  assertAllowedAccount(settings, url, 'blob', what);
  return { url };
}

/**
 * PAGEWISE_APP_ROLE (issue #13): `all` (default; one app does everything, as locally), `backup` (backs up,
 * restores, forgets — tombstones only — and never deletes: its identity has no delete right), `prune`
 * (forget, undelete, prune and the prune schedule; the only identity with the delete right).
 */
export const APP_ROLES = ['all', 'backup', 'prune'] as const;
export type AppRole = (typeof APP_ROLES)[number];

export function appRole(env: Env = appSettings()): AppRole {
  const raw = env.PAGEWISE_APP_ROLE?.trim().toLowerCase() || 'all';
  if (!(APP_ROLES as readonly string[]).includes(raw)) {
    throw settingError(`app setting PAGEWISE_APP_ROLE must be one of ${APP_ROLES.join(', ')}, got "${raw.slice(0, 32)}"`);
  }
  return raw as AppRole;
}

/** Whether this app may delete from the vault (prune, undelete). */
export const mayDelete = (role: AppRole): boolean => role !== 'backup';

/** Default of PAGEWISE_PRUNE_MIN_GRACE_DAYS: a forget (any grace, any stated time) waits at least this long. */
export const DEFAULT_PRUNE_MIN_GRACE_DAYS = 7;

/**
 * PAGEWISE_PRUNE_MIN_GRACE_DAYS (0 … 3650, default 7): the least soft-delete grace the app's prunes grant,
 * counted from each tombstone's Creation-Time (docs/FORMAT.md §26.2). The backup identity holds the key
 * and may forget: without this floor it could forget every backup with no grace and the next prune would
 * delete them.
 */
export function pruneMinGraceDays(env: Env = appSettings()): number {
  const raw = env.PAGEWISE_PRUNE_MIN_GRACE_DAYS?.trim();
  if (raw === undefined || raw === '') return DEFAULT_PRUNE_MIN_GRACE_DAYS;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) > 3650) throw settingError(`app setting PAGEWISE_PRUNE_MIN_GRACE_DAYS must be a whole number of days from 0 to 3650, got "${raw.slice(0, 16)}"`);
  return Number(raw);
}

/**
 * #17 R — PAGEWISE_RESTORE_WINDOW_BYTES: disk bytes one restore window activity writes and one verify window activity checks (rounded down to
 * whole pages, at least one page), core RESTORE_WINDOW_BYTES: 512 B to 16 GiB, default 1 GiB.
 */
export function restoreWindowBytes(env: Env = appSettings()): number {
  const raw = env.PAGEWISE_RESTORE_WINDOW_BYTES?.trim();
  if (raw === undefined || raw === '') return RESTORE_WINDOW_BYTES.default;
  const value = Number(raw);
  if (!/^\d{1,12}$/.test(raw) || !withinBounds(value, RESTORE_WINDOW_BYTES)) {
    throw settingError(`app setting PAGEWISE_RESTORE_WINDOW_BYTES must be a whole number of bytes from ${RESTORE_WINDOW_BYTES.min} to ${RESTORE_WINDOW_BYTES.max}, got "${raw.slice(0, 24)}"`);
  }
  return value;
}

/** The prune app's schedule setting (NCRONTAB), used as `%PAGEWISE_PRUNE_SCHEDULE%` in its timer binding. */
export const PRUNE_SCHEDULE_SETTING = 'PAGEWISE_PRUNE_SCHEDULE';

/** The backup schedule setting's name, used as `%PAGEWISE_BACKUP_SCHEDULE%` in the timer binding. */
export const BACKUP_SCHEDULE_SETTING = 'PAGEWISE_BACKUP_SCHEDULE';

// #18 verifysched: the nightly verification sample (functions/scheduledVerifications.ts).
/** NCRONTAB of the nightly verifications; unset (the default) = no scheduled verification, the timer is not registered. */
export const VERIFY_SCHEDULE_SETTING = 'PAGEWISE_VERIFY_SCHEDULE';
export const VERIFY_BYTES_SETTING = 'PAGEWISE_VERIFY_BYTES_PER_NIGHT';
export const DEFAULT_VERIFY_BYTES_PER_NIGHT = 64 * 1024 ** 3;

/** Whether the nightly verifications are on (PAGEWISE_VERIFY_SCHEDULE set). */
export const verifyScheduled = (env: Env = appSettings()): boolean => (env[VERIFY_SCHEDULE_SETTING]?.trim() ?? '') !== '';

/** PAGEWISE_VERIFY_BYTES_PER_NIGHT: the bytes one night's verifications may read (a size: 512GiB, 1TiB…); default 64 GiB. */
export function verifyBytesPerNight(env: Env = appSettings()): number {
  const raw = env[VERIFY_BYTES_SETTING]?.trim();
  if (raw === undefined || raw === '') return DEFAULT_VERIFY_BYTES_PER_NIGHT;
  try {
    return parseBytes(raw, `app setting ${VERIFY_BYTES_SETTING}`);
  } catch (err) {
    throw settingError((err as Error).message);
  }
}

// #18 follow-up (followb): the nightly sample's start budget.
export const VERIFY_MAX_STARTS_SETTING = 'PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT';
export const DEFAULT_VERIFY_MAX_STARTS_PER_NIGHT = 32;
export const MAX_VERIFY_STARTS_PER_NIGHT = 1000;

/** PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT: verifications one firing starts at most (many small backups fit the byte budget); 1–1000, default 32. */
export function verifyMaxStartsPerNight(env: Env = appSettings()): number {
  const raw = env[VERIFY_MAX_STARTS_SETTING]?.trim();
  if (raw === undefined || raw === '') return DEFAULT_VERIFY_MAX_STARTS_PER_NIGHT;
  const value = Number(raw);
  if (!/^\d{1,4}$/.test(raw) || value < 1 || value > MAX_VERIFY_STARTS_PER_NIGHT) {
    throw settingError(`app setting ${VERIFY_MAX_STARTS_SETTING} must be a whole number from 1 to ${MAX_VERIFY_STARTS_PER_NIGHT}, got "${raw.slice(0, 16)}"`);
  }
  return value;
}

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

function required(env: Env, name: AppSettingName): string {
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

function optionalInt<K extends keyof EngineSettings>(env: Env, name: AppSettingName, key: K): Partial<EngineSettings> {
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
  if (!withinBounds(value, BATCHES_IN_FLIGHT)) {
    throw settingError(`app setting PAGEWISE_BATCHES_IN_FLIGHT must be a whole number from ${BATCHES_IN_FLIGHT.min} to ${BATCHES_IN_FLIGHT.max}, got "${raw}"`);
  }
  return { batchesInFlight: value };
}

function settingError(message: string): PagewiseError {
  return new PagewiseError('BadInput', message);
}
