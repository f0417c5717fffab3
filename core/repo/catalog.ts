/** The vault's catalog: complete backups are those with a manifest; incomplete ones are never listed. */
import { StorageLocation, BackupListing } from '../types';
import { readManifestUnverified } from './manifest';
import { Vault } from './vault';

export async function listBackups(location: StorageLocation): Promise<BackupListing[]> {
  const vault = Vault.open(location);
  const out: BackupListing[] = [];
  for await (const prefix of vault.listPrefixes('backups/')) {
    const backupId = prefix.slice('backups/'.length).replace(/\/$/, '');
    let envelope;
    try {
      envelope = await readManifestUnverified(vault, backupId);
    } catch {
      continue; // no manifest (incomplete) or unreadable: not restorable, not listed
    }
    const b = envelope.body;
    out.push({
      backupId,
      createdAt: b.createdAt,
      completedAt: b.completedAt,
      source: `${b.source.url}${b.source.snapshot ? `?snapshot=${b.source.snapshot}` : ''}`,
      diskBytes: b.diskBytes,
      pageSize: b.pageSize,
      bytesStored: b.stats.bytesStored,
    });
  }
  return out.sort((a, b) => a.completedAt.localeCompare(b.completedAt));
}
