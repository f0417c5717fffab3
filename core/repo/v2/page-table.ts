/** Page tables `PWP2` (docs/FORMAT.md §19) and the JSON form of page records (§20.2). */
import type { Keyring } from './keyring';
import type { ChunkRef, PageRecord2, PageRecordJson } from './records';

export type { ChunkRef, PageRecord2, PageRecordJson };

export function pagesPerTableFor(pageSize: number): number {
  return Math.min(16384, Math.max(1, Math.floor((4 * 1024 * 1024 * 1024) / pageSize)));
}

export function encodeTable(keyring: Keyring, tableIndex: number, records: PageRecord2[]): { bytes: Buffer; tableId: string; sha256: string } {
  void keyring; void tableIndex; void records;
  throw new Error('not yet');
}

export function decodeTable(keyring: Keyring, tableIndex: number, stored: Buffer): PageRecord2[] {
  void keyring; void tableIndex; void stored;
  throw new Error('not yet');
}

export function recordToJson(r: PageRecord2): PageRecordJson {
  void r;
  throw new Error('not yet');
}

export function recordFromJson(j: unknown): PageRecord2 {
  void j;
  throw new Error('not yet');
}
