/**
 * The vault usage `GET /api/backups` answers with (#15): reading every page table is its cost, so a
 * process computes it at most once per USAGE_TTL_MS for the same set of manifests (backup, format,
 * forgotten or not); a new backup, a forget or a prune changes the set and the next request recounts.
 */
import { createHash } from 'node:crypto';
import { BackupListing, displayUrl, StorageLocation, VaultUsage, vaultUsageAt } from '../../core';

export const USAGE_TTL_MS = 60_000;

interface Entry {
  key: string;
  atMs: number;
  usage: Promise<VaultUsage>;
}

let entry: Entry | undefined;

/** The vault's usage: the cached one when its manifest set is the catalog's and it is younger than USAGE_TTL_MS; requests at once share one count. */
export function cachedVaultUsage(vault: StorageLocation, userKey: Buffer, catalog: BackupListing[], options: { scratchDir?: string } = {}): Promise<VaultUsage> {
  const now = Date.now();
  const key = manifestSetKey(vault, catalog);
  if (entry && entry.key === key && now - entry.atMs < USAGE_TTL_MS) return entry.usage;
  const mine: Entry = { key, atMs: now, usage: vaultUsageAt(vault, userKey, options) };
  entry = mine;
  mine.usage.catch(() => {
    if (entry === mine) entry = undefined; // a failed count is not kept
  });
  return mine.usage;
}

/** A digest of the vault and its complete backups (ID, format, forgotten): what the usage depends on besides the packs. */
function manifestSetKey(vault: StorageLocation, catalog: BackupListing[]): string {
  const manifests = catalog.flatMap((b) => (b.status === 'complete' ? [`${b.formatVersion}:${b.backupId}:${b.deleted ? 'forgotten' : ''}`] : [])).sort();
  return createHash('sha256').update(JSON.stringify([displayUrl(vault.url), manifests])).digest('hex');
}
