/**
 * Storage locations from the command line. Credentials never come from arguments (a command line is
 * visible to every user through ps): a SAS in the URL, else a connection string from the environment,
 * else DefaultAzureCredential (chosen by core when neither is present).
 */
import { BlobServiceClient } from '@azure/storage-blob';
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
  let accountName: string | undefined;
  try {
    accountName = BlobServiceClient.fromConnectionString(connectionString).accountName;
  } catch {
    throw new PagewiseError('BadInput', `${ENV[role]} is not a valid storage connection string`);
  }
  // Core builds the client from the connection string alone, so a string for another account would
  // silently read or write there: refuse the mismatch instead.
  if (accountName && accountName.toLowerCase() !== parsed.account.toLowerCase()) {
    throw new PagewiseError('BadInput', `${ENV[role]} is for storage account "${accountName}" but ${WHAT[role]} names account "${parsed.account}"`);
  }
  return { url, connectionString };
}

/** A restore target: a page-blob URL (http/https) or a local file path. */
export function restoreTarget(to: string, env: Record<string, string | undefined>): StorageLocation {
  if (isBlobTarget(to)) return storageLocation(to, 'target', env);
  if (to.trim() === '') throw new PagewiseError('BadInput', '--to is empty; give a page-blob URL or a file path');
  return { url: to };
}
