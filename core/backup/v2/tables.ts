/** Reading and writing the page tables of a version-2 backup (docs/FORMAT.md §19) for the engine. */
import { createHash } from 'node:crypto';
import { PagewiseError } from '../../errors';
import { MiB } from '../../limits';
import { BlobAlreadyExistsError } from '../../repo/store/blob-store';
import { Keyring } from '../../repo/v2/keyring';
import { v2names } from '../../repo/v2/names';
import { decodeTable, encodeTable } from '../../repo/v2/page-table';
import { ManifestV2, PageRecord2, TableRef } from '../../repo/v2/records';
import { Vault } from '../../repo/vault';

/**
 * Largest table read: a few MiB for every scheme #12 and #15 write (16,384 pages; a 4 MiB page cut at a
 * 64 KiB minimum has ≤ 64 chunks: 16 + 64·64 bytes a record); the bound keeps a hostile size in check.
 */
export const MAX_TABLE_BYTES = 128 * MiB;

/** The records of the table `ref` names, its size and SHA-256 checked against the manifest's entry. */
export async function readTable(vault: Vault, keyring: Keyring, ref: TableRef, pagesPerTable: number): Promise<PageRecord2[]> {
  const name = v2names.table(ref.tableId);
  if (!Number.isSafeInteger(ref.bytes) || ref.bytes <= 0 || ref.bytes > MAX_TABLE_BYTES) {
    throw new PagewiseError('Corrupt', `the manifest gives ${name} a size of ${ref.bytes} bytes, outside 1 … ${MAX_TABLE_BYTES}`);
  }
  const stored = await vault.getBytes(name, 0, undefined, { maxBytes: ref.bytes });
  if (stored.length !== ref.bytes || createHash('sha256').update(stored).digest('hex') !== ref.sha256) {
    throw new PagewiseError('Corrupt', `${name} is not the table the manifest names (size or SHA-256 differ)`);
  }
  return decodeTable(keyring, ref.index, stored, pagesPerTable);
}

/** Stores the table of group `index` (written once, by content: an existing one is the same table). */
export async function writeTable(vault: Vault, keyring: Keyring, index: number, records: PageRecord2[]): Promise<TableRef> {
  const { bytes, tableId, sha256 } = encodeTable(keyring, index, records);
  try {
    await vault.putNew(v2names.table(tableId), bytes);
  } catch (err) {
    if (!(err instanceof BlobAlreadyExistsError)) throw err;
    // Same name = same plaintext (§19). Its stored bytes differ (another nonce): name those.
    const there = await vault.getBytes(v2names.table(tableId), 0, undefined, { maxBytes: MAX_TABLE_BYTES });
    return { index, tableId, pages: records.length, bytes: there.length, sha256: createHash('sha256').update(there).digest('hex') };
  }
  return { index, tableId, pages: records.length, bytes: bytes.length, sha256 };
}

/** The base's records of the pages in [first, first + count), by page (the batch compares against them). */
export async function baseRecordsOf(vault: Vault, keyring: Keyring, base: ManifestV2, first: number, count: number): Promise<Map<number, PageRecord2>> {
  const out = new Map<number, PageRecord2>();
  const lastGroup = Math.floor((first + count - 1) / base.pagesPerTable);
  for (const ref of base.tables) {
    if (ref.index < Math.floor(first / base.pagesPerTable) || ref.index > lastGroup) continue;
    for (const r of await readTable(vault, keyring, ref, base.pagesPerTable)) {
      if (r.page >= first && r.page < first + count) out.set(r.page, r);
    }
  }
  return out;
}
