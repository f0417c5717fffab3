/**
 * Storage locations from the command line. Credentials never come from arguments (a command line is
 * visible to every user through ps): a SAS in the URL, else a connection string from the environment,
 * else DefaultAzureCredential (chosen by core when neither is present).
 */
import { isBlobTarget, parseStorageUrl, PagewiseError, StorageLocation } from '../core';

export const ENV = {
  source: 'PAGEWISE_SOURCE_CONNECTION_STRING',
  vault: 'PAGEWISE_VAULT_CONNECTION_STRING',
  target: 'PAGEWISE_TARGET_CONNECTION_STRING',
} as const;

type Role = keyof typeof ENV;

const WHAT: Record<Role, string> = {
  source: 'the source disk URL',
  vault: 'the vault URL',
  target: 'the restore target URL',
};

/** Validates the URL (no network) and attaches the role's connection string when the URL has no SAS. */
export function storageLocation(url: string, role: Role, env: Record<string, string | undefined>): StorageLocation {
  const parsed = parseStorageUrl(url, role === 'vault' ? 'container' : 'blob', WHAT[role]);
  if (parsed.hasSas) return { url };
  const connectionString = env[ENV[role]]?.trim();
  if (!connectionString) return { url };
  // core refuses a URL that is not on the connection string's own endpoint (never redirects it)
  return { url, connectionString };
}

/** A restore target: a page-blob URL (http/https) or a local file path. */
export function restoreTarget(to: string, env: Record<string, string | undefined>): StorageLocation {
  if (isBlobTarget(to)) return storageLocation(to, 'target', env);
  if (to.trim() === '') throw new PagewiseError('BadInput', '--to is empty; give a page-blob URL or a file path');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(to)) throw new PagewiseError('BadUrl', `--to must be an http(s) page-blob URL or a file path, got ${to.split(':')[0]}://…`);
  return { url: to };
}
