/** Page tables `PWP2` (docs/FORMAT.md §19) and the JSON form of page records (§20.2). */
import { createHash } from 'node:crypto';
import { PagewiseError } from '../../errors';
import { GiB, MAX_PAGE_SIZE } from '../../limits';
import { BLOCK2_OVERHEAD } from './block';
import { BlobAlreadyExistsError, CallOptions } from '../store/blob-store';
import type { Vault } from '../vault';
import type { Keyring } from './keyring';
import { seal, sealedHeader, unseal } from './sealed-object';
import { HEX32_RE, v2names } from './names';
import type { ChunkRef, PageRecord2, PageRecordJson, TableRef } from './records';

export type { ChunkRef, PageRecord2, PageRecordJson };

const MAGIC = Buffer.from('PWP2');
const PLAIN_MAGIC = Buffer.from('PWPT');
const HEADER_BYTES = 20;
const TAG_BYTES = 16;
const PLAIN_HEADER_BYTES = 16;
const RECORD_HEADER_BYTES = 16;
const CHUNK_BYTES = 64;
/** A stored block is at most its chunk plus the block overhead (§16: 36-byte header, 8 bytes inside the ciphertext, 16-byte tag). */
export const BLOCK_OVERHEAD2 = BLOCK2_OVERHEAD;
const ZERO_ID = Buffer.alloc(32);
const ZERO_PACK = '0'.repeat(32);

/** §19: min(16384, max(1, floor(4 GiB / P))). */
export function pagesPerTableFor(pageSize: number): number {
  return Math.min(16384, Math.max(1, Math.floor((4 * GiB) / pageSize)));
}

/** Whether a chunk is a zero chunk (its content ID all zero: not stored). */
export function isZeroChunk(c: ChunkRef): boolean {
  return c.contentId.equals(ZERO_ID);
}

/** A zero chunk of `length` bytes (§19: zero content ID, zero hints; not stored). */
export function zeroChunk(length: number): ChunkRef {
  return { contentId: ZERO_ID, length, storedLength: 0, pack: ZERO_PACK, offset: 0 };
}

function plaintextOf(tableIndex: number, records: PageRecord2[]): Buffer {
  let size = PLAIN_HEADER_BYTES;
  for (const r of records) size += RECORD_HEADER_BYTES + CHUNK_BYTES * r.chunks.length;
  const out = Buffer.alloc(size);
  PLAIN_MAGIC.copy(out, 0);
  out.writeUInt16LE(2, 4);
  out.writeUInt32LE(tableIndex, 8);
  out.writeUInt32LE(records.length, 12);
  let at = PLAIN_HEADER_BYTES;
  let previous = -1;
  for (const r of records) {
    checkRecord(r, 'a page record to write', (why) => new RangeError(why));
    if (r.page <= previous) throw new RangeError(`page records of a table ascend: page ${r.page} after ${previous}`);
    previous = r.page;
    out.writeBigUInt64LE(BigInt(r.page), at);
    out.writeUInt32LE(r.length, at + 8);
    out.writeUInt16LE(r.chunks.length, at + 12);
    at += RECORD_HEADER_BYTES;
    for (const c of r.chunks) {
      c.contentId.copy(out, at);
      out.writeUInt32LE(c.length, at + 32);
      out.writeUInt32LE(c.storedLength, at + 36);
      Buffer.from(c.pack, 'hex').copy(out, at + 40);
      out.writeBigUInt64LE(BigInt(c.offset), at + 56);
      at += CHUNK_BYTES;
    }
  }
  return out;
}

/** A table of `records` (ascending, non-hole pages of group `tableIndex`): its stored bytes, its name (by content) and the SHA-256 of the stored bytes. */
export function encodeTable(keyring: Keyring, tableIndex: number, records: PageRecord2[]): { bytes: Buffer; tableId: string; sha256: string; plainSha256: string } {
  const plain = plaintextOf(tableIndex, records);
  const header = sealedHeader(MAGIC, keyring.epoch);
  const bytes = seal(keyring.key('table'), header, header, plain);
  const plainSha256 = createHash('sha256').update(plain).digest('hex');
  return { bytes, tableId: keyring.tag(`table|${plainSha256}`), sha256: createHash('sha256').update(bytes).digest('hex'), plainSha256 };
}

/**
 * When a writer may count a table already stored under its name as its own (FORMAT §26.8 rule (c)):
 * `mayRely(createdMs)` of that blob's Creation-Time; otherwise the table goes under the alternate name
 * `tag("table|" + SHA-256 of the plaintext + "|" + nameTag)`, which only this backup writes.
 */
export interface TableReuse {
  mayRely(createdMs: number): boolean;
  nameTag: string;
}

/**
 * The page records of a stored table, every field checked: Corrupt naming the table on any failure.
 * With `pagesPerTable`, every page must lie in group `tableIndex`.
 */
export function decodeTable(keyring: Keyring, tableIndex: number, stored: Buffer, pagesPerTable?: number): PageRecord2[] {
  const what = `page table ${tableIndex}`;
  return recordsOf(openTable(keyring, stored, what), tableIndex, pagesPerTable, what);
}

/**
 * A table known by its name alone (no manifest entry to check it against: an in-flight plan's
 * `baseTables`, read by prune): its plaintext must be the one its tableId names (§19), which also
 * gives its table index — or, for a table under the alternate name of §26.8, the one that name gives
 * with one of `nameTags` (the backups the caller knows of). Corrupt naming the table otherwise.
 */
export function decodeTableById(keyring: Keyring, tableId: string, stored: Buffer, nameTags: Iterable<string> = []): { index: number; records: PageRecord2[] } {
  const what = `page table ${v2names.table(tableId)}`;
  const plain = openTable(keyring, stored, what);
  const sha = createHash('sha256').update(plain).digest('hex');
  if (keyring.tag(`table|${sha}`) !== tableId && ![...nameTags].some((t) => keyring.tag(`table|${sha}|${t}`) === tableId)) {
    throw new PagewiseError('Corrupt', `${what} holds another table than its name says (copied from another name?)`);
  }
  const index = plain.readUInt32LE(8);
  return { index, records: recordsOf(plain, index, undefined, what) };
}

/** The plaintext of a stored table: header checked, authenticated. */
function openTable(keyring: Keyring, stored: Buffer, what: string): Buffer {
  const bad = (why: string) => new PagewiseError('Corrupt', `${what} ${why}`);
  if (stored.length < HEADER_BYTES + TAG_BYTES + PLAIN_HEADER_BYTES || !stored.subarray(0, 4).equals(MAGIC)) throw bad('is truncated or is not a Pagewise page table');
  if (stored[4] !== 2) throw bad(`has unknown version ${stored[4]}`);
  if (stored[6] !== 0 || stored[7] !== 0) throw bad('has non-zero reserved bytes');
  keyring.requireEpoch(stored[5], what);
  const header = stored.subarray(0, HEADER_BYTES);
  try {
    return unseal(keyring.key('table', stored[5]), stored, header);
  } catch {
    throw bad('fails authentication (damaged, or written under another vault key)');
  }
}

/** The page records of a table's plaintext, every field checked. */
function recordsOf(plain: Buffer, tableIndex: number, pagesPerTable: number | undefined, what: string): PageRecord2[] {
  const bad = (why: string) => new PagewiseError('Corrupt', `${what} ${why}`);
  if (plain.length < PLAIN_HEADER_BYTES || !plain.subarray(0, 4).equals(PLAIN_MAGIC) || plain.readUInt16LE(4) !== 2 || plain.readUInt16LE(6) !== 0) throw bad('holds no version-2 page records');
  if (plain.readUInt32LE(8) !== tableIndex) throw bad(`says it is table ${plain.readUInt32LE(8)}`);
  const count = plain.readUInt32LE(12);
  if (count > (plain.length - PLAIN_HEADER_BYTES) / (RECORD_HEADER_BYTES + CHUNK_BYTES)) throw bad(`claims ${count} page records, more than its ${plain.length} bytes hold`);
  const records: PageRecord2[] = [];
  let at = PLAIN_HEADER_BYTES;
  let previous = -1;
  for (let k = 0; k < count; k++) {
    if (at + RECORD_HEADER_BYTES > plain.length) throw bad(`ends inside page record ${k}`);
    const page = readU64(plain, at);
    const length = plain.readUInt32LE(at + 8);
    const c = plain.readUInt16LE(at + 12);
    if (plain.readUInt16LE(at + 14) !== 0) throw bad(`has a non-zero reserved field in page record ${k}`);
    at += RECORD_HEADER_BYTES;
    if (page === undefined || page <= previous) throw bad(`has page records out of order (record ${k})`);
    if (pagesPerTable !== undefined && (page < tableIndex * pagesPerTable || page >= (tableIndex + 1) * pagesPerTable)) throw bad(`holds page ${page}, outside its group`);
    if (at + c * CHUNK_BYTES > plain.length) throw bad(`ends inside the chunks of page ${page}`);
    const chunks: ChunkRef[] = [];
    for (let j = 0; j < c; j++, at += CHUNK_BYTES) {
      const offset = readU64(plain, at + 56);
      if (offset === undefined) throw bad(`has an offset past 2^53 in page ${page}`);
      chunks.push({
        contentId: Buffer.from(plain.subarray(at, at + 32)),
        length: plain.readUInt32LE(at + 32),
        storedLength: plain.readUInt32LE(at + 36),
        pack: plain.subarray(at + 40, at + 56).toString('hex'),
        offset,
      });
    }
    const record = { page, length, chunks };
    checkRecord(record, `page ${page} of ${what}`, bad);
    records.push(record);
    previous = page;
  }
  if (at !== plain.length) throw bad(`has ${plain.length - at} bytes after its last page record`);
  return records;
}

function readU64(buf: Buffer, at: number): number | undefined {
  const v = buf.readBigUInt64LE(at);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}

/** A page record's invariants (§19): 1 to 65535 chunks of at least one byte adding up to the page length; zero chunks have zero hints. */
function checkRecord(r: PageRecord2, what: string, bad: (why: string) => Error): void {
  if (!Number.isSafeInteger(r.page) || r.page < 0) throw bad(`${what}: the page index ${r.page} is not a whole number`);
  if (!Number.isInteger(r.length) || r.length < 1 || r.length > MAX_PAGE_SIZE) throw bad(`${what}: the page length ${r.length} is out of range`);
  if (!Array.isArray(r.chunks) || r.chunks.length < 1 || r.chunks.length > 0xffff) throw bad(`${what}: has ${r.chunks?.length} chunks`);
  let sum = 0;
  for (const c of r.chunks) {
    if (!Buffer.isBuffer(c.contentId) || c.contentId.length !== 32) throw bad(`${what}: a content ID is not 32 bytes`);
    if (!Number.isInteger(c.length) || c.length < 1 || c.length > r.length) throw bad(`${what}: a chunk length ${c.length} is out of range`);
    if (!Number.isInteger(c.storedLength) || c.storedLength < 0 || c.storedLength > c.length + BLOCK_OVERHEAD2) throw bad(`${what}: a stored length ${c.storedLength} is out of range`);
    if (typeof c.pack !== 'string' || !HEX32_RE.test(c.pack)) throw bad(`${what}: a pack ID is not 32 hex digits`);
    if (!Number.isSafeInteger(c.offset) || c.offset < 0) throw bad(`${what}: a block offset is out of range`);
    if (isZeroChunk(c) && (c.storedLength !== 0 || c.pack !== ZERO_PACK || c.offset !== 0)) throw bad(`${what}: a zero chunk has hints`);
    sum += c.length;
  }
  if (sum !== r.length) throw bad(`${what}: its chunks add up to ${sum} bytes, not the page length ${r.length}`);
}

/** §20.2's JSON form: `{ i, n, c: [[contentIdHex, length, storedLength, packIdHex, offset], …] }`. */
export function recordToJson(r: PageRecord2): PageRecordJson {
  return { i: r.page, n: r.length, c: r.chunks.map((c) => [c.contentId.toString('hex'), c.length, c.storedLength, c.pack, c.offset]) };
}

/** A page record from its JSON form, every field checked (Corrupt naming `where`). */
export function recordFromJson(j: unknown, where = 'a batch record'): PageRecord2 {
  const bad = (why: string) => new PagewiseError('Corrupt', `${where}: ${why}`);
  const o = (typeof j === 'object' && j !== null ? j : {}) as Partial<PageRecordJson>;
  if (!Array.isArray(o.c) || o.c.length > 0xffff) throw bad('a page record lacks its chunk list');
  const chunks: ChunkRef[] = o.c.map((c: unknown) => {
    if (!Array.isArray(c) || c.length !== 5 || typeof c[0] !== 'string' || !/^[0-9a-f]{64}$/.test(c[0])) throw bad(`a chunk of page ${String(o.i).slice(0, 20)} is malformed`);
    return { contentId: Buffer.from(c[0], 'hex'), length: c[1] as number, storedLength: c[2] as number, pack: c[3] as string, offset: c[4] as number };
  });
  const record = { page: o.i as number, length: o.n as number, chunks };
  checkRecord(record, `page ${String(o.i).slice(0, 20)}`, bad);
  return record;
}

/**
 * Stores the table of group `tableIndex` at tables/<tableId>.pwt (If-None-Match) and returns the
 * manifest's entry for it. A 409 counts as written (§19: the same name is the same plaintext) — with
 * `reuse`, only when the table there is young enough to rely on, else it is stored under the backup's
 * alternate name (§26.8). An unchanged group of an incremental reuses its base's entry instead and writes nothing.
 */
export async function writeTable(vault: Vault, keyring: Keyring, tableIndex: number, records: PageRecord2[], reuse?: TableReuse): Promise<TableRef> {
  const { bytes, tableId, sha256, plainSha256 } = encodeTable(keyring, tableIndex, records);
  const put = async (id: string): Promise<TableRef | 'exists'> => {
    try {
      await vault.putNew(v2names.table(id), bytes);
      return { index: tableIndex, tableId: id, pages: records.length, bytes: bytes.length, sha256 };
    } catch (err) {
      if (err instanceof BlobAlreadyExistsError) return 'exists';
      throw err;
    }
  };
  // Another writer's copy of the same plaintext (or this backup's own earlier try): its bytes (nonce) differ, so the entry names them.
  const there = async (id: string): Promise<TableRef> => {
    const stored = await vault.getBytes(v2names.table(id), 0, undefined, { maxBytes: bytes.length });
    return { index: tableIndex, tableId: id, pages: records.length, bytes: stored.length, sha256: createHash('sha256').update(stored).digest('hex') };
  };
  const first = await put(tableId);
  if (first !== 'exists') return first;
  if (reuse) {
    const created = (await vault.properties(v2names.table(tableId))).createdOn?.getTime();
    if (created === undefined || !reuse.mayRely(created)) {
      const alternate = keyring.tag(`table|${plainSha256}|${reuse.nameTag}`);
      const own = await put(alternate);
      return own === 'exists' ? there(alternate) : own;
    }
  }
  return there(tableId);
}

/** The page records of a manifest's table entry: read bounded by its `bytes`, checked against its `sha256` and page count, decoded. */
export async function readTable(vault: Vault, keyring: Keyring, ref: TableRef, pagesPerTable: number, options: CallOptions = {}): Promise<PageRecord2[]> {
  const name = v2names.table(ref.tableId);
  const stored = await vault.getBytes(name, 0, undefined, { ...options, maxBytes: ref.bytes });
  if (stored.length !== ref.bytes || createHash('sha256').update(stored).digest('hex') !== ref.sha256) {
    throw new PagewiseError('Corrupt', `page table ${ref.index} (${name}) does not match the manifest's entry (size or SHA-256)`);
  }
  const records = decodeTable(keyring, ref.index, stored, pagesPerTable);
  if (records.length !== ref.pages) throw new PagewiseError('Corrupt', `page table ${ref.index} (${name}) holds ${records.length} pages, its manifest entry says ${ref.pages}`);
  return records;
}
