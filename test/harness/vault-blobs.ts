/**
 * Format-neutral views of a vault's blobs for tests whose subject is not the format: manifests, batch
 * records and data blobs by name in either layout (version 1: docs/FORMAT.md §2; version 2: §13).
 * A version-2 name tells its backup only through a keyed tag: `nameTag` (from the keyring) narrows
 * those to one backup; without it every version-2 name of the kind counts.
 */
import { ContainerClient } from '@azure/storage-blob';
import type { StorageLocation } from '../../core';
import { openVaultKeyring, readVaultMarker } from '../../core/repo/v2/marker';
import { Vault } from '../../core/repo/vault';

const V1_MANIFEST = /^backups\/([^/]+)\/manifest\.json$/;
const V2_MANIFEST = /^manifests\/[0-9a-f]{32}\/\d{13}-([0-9a-f]{32})\.pwm$/;
const V1_BATCH = /^backups\/([^/]+)\/batches\/\d{8}\.json$/;
const V2_BATCH = /^staging\/([0-9a-f]{32})\/batches\/\d{8}\.pwe$/;
const V1_SEGMENT = /^backups\/([^/]+)\/segments\/\d{8}\.seg$/;
const V2_PACK = /^packs\/[0-9a-f]{2}\/[0-9a-f]{32}\.pwp$/;

/** Which backup a name belongs to: its version-1 backup ID, or its version-2 nameTag when one is given. */
export interface BackupOf {
  backupId?: string;
  nameTag?: string;
}

/** The names a backup's blobs carry in the vault's format: its ID, and in a version-2 vault its nameTag (the key opens it). */
export async function backupOf(location: StorageLocation, userKey: Buffer, backupId: string): Promise<BackupOf> {
  const vault = Vault.open(location);
  if ((await readVaultMarker(vault)).version === 1) return { backupId };
  return { backupId, nameTag: (await openVaultKeyring(vault, userKey)).nameTag(backupId) };
}

async function names(container: ContainerClient, prefixes: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const prefix of prefixes) for await (const b of container.listBlobsFlat({ prefix })) out.push(b.name);
  return out.sort();
}

function matching(all: string[], v1: RegExp, v2: RegExp, of: BackupOf): string[] {
  return all.filter((n) => {
    const one = v1.exec(n);
    if (one) return of.backupId === undefined || one[1] === of.backupId;
    const two = v2.exec(n);
    if (two) return of.nameTag === undefined || two[1] === undefined || two[1] === of.nameTag; // packs name no backup
    return false;
  });
}

/** Manifest blobs (the mark of a complete backup) in either layout. */
export async function manifestBlobs(container: ContainerClient, of: BackupOf = {}): Promise<string[]> {
  return matching(await names(container, ['backups/', 'manifests/']), V1_MANIFEST, V2_MANIFEST, of);
}

/** Batch records (one per finished batch) in either layout. */
export async function batchRecordBlobs(container: ContainerClient, of: BackupOf = {}): Promise<string[]> {
  return matching(await names(container, ['backups/', 'staging/']), V1_BATCH, V2_BATCH, of);
}

/** Blobs holding stored blocks: a version-1 backup's segments, or every version-2 pack (packs are shared). */
export async function dataBlobs(container: ContainerClient, of: BackupOf = {}): Promise<string[]> {
  return matching(await names(container, ['backups/', 'packs/']), V1_SEGMENT, V2_PACK, { backupId: of.backupId });
}

/**
 * Flips one byte every `stride` bytes (from `from`) of every data blob of the backup, keeping their lengths,
 * so only reading the data shows it; returns what puts the bytes back. Packs are shared in version 2: the
 * damage reaches every backup of the vault until undone.
 */
export async function damageData(container: ContainerClient, of: BackupOf, from = 100, stride = 4096): Promise<{ blobs: string[]; undo: () => Promise<void> }> {
  const blobs = await dataBlobs(container, of);
  if (blobs.length === 0) throw new Error(`damageData: no data blob of backup ${of.backupId ?? of.nameTag ?? '(any)'}`);
  const originals = new Map<string, Buffer>();
  for (const name of blobs) {
    const blob = container.getBlockBlobClient(name);
    const bytes = await blob.downloadToBuffer();
    originals.set(name, Buffer.from(bytes));
    for (let i = from; i < bytes.length; i += stride) bytes[i] ^= 0xff;
    await blob.uploadData(bytes);
  }
  return {
    blobs,
    undo: async () => {
      for (const [name, bytes] of originals) await container.getBlockBlobClient(name).uploadData(bytes);
    },
  };
}
