/**
 * An account of a version-2 vault's bytes made without the prune's code, to check and measure it: bytes
 * by kind of object, the stored bytes of the blocks a set of backups references (each content ID once),
 * and which packs hold that data — the holder of a content ID being the newest pack (by creation time,
 * then packId) whose trailer lists it, as docs/FORMAT.md §26 defines it.
 */
import { Keyring } from '../core/repo/v2/keyring';
import { allManifestNames, readManifest2 } from '../core/repo/v2/manifest';
import { readPackTrailer } from '../core/repo/v2/pack-writer';
import { isZeroChunk, readTable } from '../core/repo/v2/page-table';
import { ManifestV2 } from '../core/repo/v2/records';
import { Vault } from '../core/repo/vault';

export const VAULT_PREFIXES = ['packs/', 'index/', 'tables/', 'manifests/', 'staging/', 'forgotten/', 'gc/'] as const;

export interface VaultBytes {
  /** bytes and blob count under each prefix */
  byPrefix: Record<string, { bytes: number; blobs: number }>;
  total: number;
}

export async function vaultBytes(vault: Vault): Promise<VaultBytes> {
  const byPrefix: VaultBytes['byPrefix'] = {};
  let total = 0;
  for (const prefix of VAULT_PREFIXES) {
    const entry = { bytes: 0, blobs: 0 };
    for await (const b of vault.listDetailed(prefix)) {
      entry.bytes += b.contentLength;
      entry.blobs++;
    }
    byPrefix[prefix] = entry;
    total += entry.bytes;
  }
  return { byPrefix, total };
}

export interface KeptData {
  manifests: { name: string; manifest: ManifestV2 }[];
  /** content ID (hex) → stored length of its block, over every non-zero chunk of the backups' tables */
  contentIds: Map<string, number>;
  /** the stored block bytes of those content IDs, each once: the floor of what the packs must hold */
  uniqueStoredBytes: number;
  tableIds: Set<string>;
}

/** The data of the manifests `keep` accepts (every manifest of the vault is read and authenticated). */
export async function keptData(vault: Vault, keyring: Keyring, keep: (m: ManifestV2, name: string) => boolean): Promise<KeptData> {
  const out: KeptData = { manifests: [], contentIds: new Map(), uniqueStoredBytes: 0, tableIds: new Set() };
  for await (const name of allManifestNames(vault)) {
    const manifest = await readManifest2(vault, keyring, name);
    if (!keep(manifest, name)) continue;
    out.manifests.push({ name, manifest });
    for (const ref of manifest.tables) {
      if (out.tableIds.has(ref.tableId)) continue; // tables are named by content: one read is enough
      out.tableIds.add(ref.tableId);
      for (const record of await readTable(vault, keyring, ref, manifest.pagesPerTable)) {
        for (const chunk of record.chunks) {
          if (isZeroChunk(chunk)) continue;
          const id = chunk.contentId.toString('hex');
          if (!out.contentIds.has(id)) {
            out.contentIds.set(id, chunk.storedLength);
            out.uniqueStoredBytes += chunk.storedLength;
          }
        }
      }
    }
  }
  return out;
}

export interface PackAccount {
  packs: number;
  packBytes: number;
  /** packs that are the holder of at least one of the content IDs */
  referenced: Set<string>;
  referencedBytes: number;
  /** every other pack, with its size */
  unreferenced: Map<string, number>;
  unreferencedBytes: number;
  /** content IDs no existing pack holds (must be none) */
  missing: string[];
}

/** Which packs hold `contentIds` (read from every pack's trailer), by the holder rule. */
export async function packAccount(vault: Vault, keyring: Keyring, contentIds: Iterable<string>): Promise<PackAccount> {
  const packs: { packId: string; bytes: number; createdMs: number }[] = [];
  for await (const b of vault.listDetailed('packs/')) {
    packs.push({ packId: b.name.slice(b.name.lastIndexOf('/') + 1, -'.pwp'.length), bytes: b.contentLength, createdMs: b.createdOn.getTime() });
  }
  // newest first, so the first pack found holding an ID is its holder
  packs.sort((a, b) => b.createdMs - a.createdMs || (a.packId < b.packId ? 1 : a.packId > b.packId ? -1 : 0));
  const holder = new Map<string, string>();
  for (const p of packs) {
    for (const e of await readPackTrailer(vault, keyring, p.packId)) {
      const id = e.contentId.toString('hex');
      if (!holder.has(id)) holder.set(id, p.packId);
    }
  }
  const referenced = new Set<string>();
  const missing: string[] = [];
  for (const id of contentIds) {
    const h = holder.get(id);
    if (h) referenced.add(h);
    else missing.push(id);
  }
  const account: PackAccount = { packs: packs.length, packBytes: 0, referenced, referencedBytes: 0, unreferenced: new Map(), unreferencedBytes: 0, missing };
  for (const p of packs) {
    account.packBytes += p.bytes;
    if (referenced.has(p.packId)) account.referencedBytes += p.bytes;
    else {
      account.unreferenced.set(p.packId, p.bytes);
      account.unreferencedBytes += p.bytes;
    }
  }
  return account;
}
