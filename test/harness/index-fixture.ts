/**
 * Packs and their index deltas for index tests, written as a writer leaves them (docs/FORMAT.md §17, §18.2)
 * but each pack in one Put: blocks of random bytes, then the real trailer; then the real delta. Thousands
 * of entries cost a few requests instead of one staged block each.
 */
import { randomBytes } from 'node:crypto';
import { BLOCK2_OVERHEAD } from '../../core/repo/v2/block';
import type { Keyring } from '../../core/repo/v2/keyring';
import { stampOf, v2names } from '../../core/repo/v2/names';
import { encodeIndexBlob, encodePackTrailer, IndexEntry } from '../../core/repo/v2/pack-writer';
import type { Vault } from '../../core/repo/vault';

let lastStampMs = 0;
/** Delta stamps strictly increase within the test process, as one writer's do. */
function nextStamp(): string {
  lastStampMs = Math.max(Date.now(), lastStampMs + 1);
  return stampOf(new Date(lastStampMs));
}

export interface StoredPacks {
  packs: string[];
  deltas: string[];
  /** where each content ID (hex) was stored */
  at: Map<string, { pack: string; offset: number }>;
  entries: IndexEntry[];
}

/** `n` random content IDs whose first byte is `first` (one shard). */
export function idsIn(first: number, n: number): Buffer[] {
  return Array.from({ length: n }, () => {
    const id = randomBytes(32);
    id[0] = first;
    return id;
  });
}

/** Stores `ids` in packs of at most `perPack` blocks (each pack committed, then its delta). */
export async function storePacks(vault: Vault, keyring: Keyring, ids: Buffer[], perPack = 4096): Promise<StoredPacks> {
  const out: StoredPacks = { packs: [], deltas: [], at: new Map(), entries: [] };
  const writerId = randomBytes(8).toString('hex');
  for (let i = 0; i < ids.length; i += perPack) {
    const packId = randomBytes(16).toString('hex');
    const blocks: Buffer[] = [];
    const entries: IndexEntry[] = [];
    let offset = 0;
    for (const id of ids.slice(i, i + perPack)) {
      const block = randomBytes(BLOCK2_OVERHEAD + 8 + (blocks.length % 5));
      entries.push({ contentId: Buffer.from(id), pack: packId, offset, storedLength: block.length });
      blocks.push(block);
      offset += block.length;
    }
    await vault.putNew(v2names.pack(packId), Buffer.concat([...blocks, encodePackTrailer(keyring, packId, entries)]));
    const delta = v2names.delta(nextStamp(), writerId);
    await vault.putNew(delta, encodeIndexBlob(keyring, delta, 0, entries));
    out.packs.push(packId);
    out.deltas.push(delta);
    for (const e of entries) out.at.set(e.contentId.toString('hex'), { pack: e.pack, offset: e.offset });
    out.entries.push(...entries);
  }
  return out;
}
