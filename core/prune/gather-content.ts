/** Prune's reads of what names content: the live page tables and the index deltas, decoded into content IDs (hex, interned). */
import { forEachLimited } from '../concurrency';
import { isPagewiseError, isTransient, PagewiseError, throwIfAborted } from '../errors';
import type { BlobInfo, CallOptions } from '../repo/store/blob-store';
import type { Vault } from '../repo/vault';
import type { Keyring } from '../repo/v2/keyring';
import { v2names } from '../repo/v2/names';
import { Generation, readShard } from '../repo/v2/index-generation';
import { MAX_DELTA_BYTES, readIndexDelta } from '../repo/v2/pack-writer';
import { decodeTableById, isZeroChunk, readTable } from '../repo/v2/page-table';
import type { PageRecord2, TableRef } from '../repo/v2/records';
import type { GcSnapshot } from './decide';

/** Tables and deltas read at once (each one GET; the account gate bounds every request of the process anyway). */
export const GATHER_READS_AT_ONCE = 8;

/**
 * One string per distinct content ID: N tables and deltas naming a chunk hold N references to one
 * string, so prune's memory grows with the distinct IDs, not with how often they are named.
 */
export class ContentIds {
  private readonly ids = new Map<string, string>();
  of(id: Buffer): string {
    const hex = id.toString('hex');
    const known = this.ids.get(hex);
    if (known !== undefined) return known;
    this.ids.set(hex, hex);
    return hex;
  }
  /** The string of an ID already named by what was read, or undefined. */
  known(id: Buffer): string | undefined {
    return this.ids.get(id.toString('hex'));
  }
  get size(): number {
    return this.ids.size;
  }
}

/** What a failed read says for the report; anything but a finding about the vault (transient, cancelled, a bug) is rethrown. */
export function problemOf(err: unknown): string {
  if (isTransient(err) || !isPagewiseError(err) || err.code === 'Aborted') throw err;
  return err.message;
}

/** The non-zero content IDs of page records. */
export function contentIdsOf(records: PageRecord2[], ids: ContentIds): string[] {
  const out: string[] = [];
  for (const r of records) for (const c of r.chunks) if (!isZeroChunk(c)) out.push(ids.of(c.contentId));
  return out;
}

/** A table to read: by a manifest's entry (checked against its size and SHA-256), or by its name alone (an in-flight plan's baseTables). */
export type WantedTable = { ref: TableRef; pagesPerTable: number } | { ref?: undefined };

/**
 * Reads the wanted tables (each once, GATHER_READS_AT_ONCE at a time) into GcSnapshot.tables: a table
 * that is missing or fails its checks gets `contentIds: undefined` (decide then blocks) and a problem.
 * `nameTags`: every backup the vault shows (manifests, tombstones, staging), whose alternate table
 * names (§26.8) a table read by name alone may carry.
 */
export async function readLiveTables(vault: Vault, keyring: Keyring, wanted: Map<string, WantedTable>, listed: Map<string, { createdMs: number }>, ids: ContentIds, onProblem: (why: string) => void, nameTags: Set<string>, options: CallOptions = {}): Promise<GcSnapshot['tables']> {
  const out: GcSnapshot['tables'] = new Map();
  await forEachLimited(wanted.entries(), GATHER_READS_AT_ONCE, async ([tableId, w]) => {
    const createdMs = listed.get(tableId)?.createdMs ?? 0;
    if (!listed.has(tableId)) {
      onProblem(`the page table ${v2names.table(tableId)} is named by a kept backup but is not in the vault`);
      out.set(tableId, { createdMs, contentIds: undefined });
      return;
    }
    try {
      const records = w.ref
        ? await readTable(vault, keyring, w.ref, w.pagesPerTable, options)
        : decodeTableById(keyring, tableId, await vault.getBytes(v2names.table(tableId), 0, undefined, { ...options, maxBytes: MAX_TABLE_BYTES }), nameTags).records;
      out.set(tableId, { createdMs, contentIds: contentIdsOf(records, ids) });
    } catch (err) {
      onProblem(problemOf(err));
      out.set(tableId, { createdMs, contentIds: undefined });
    }
  });
  return out;
}

/** A table read by name alone is bounded by what a table of 16384 pages of 65535 chunks could never exceed in practice: 256 MiB. */
const MAX_TABLE_BYTES = 256 * 1024 * 1024;

/**
 * Reads and decodes every index delta listed (GATHER_READS_AT_ONCE at a time): the pack it indexes
 * and its entries. One that cannot be read or holds entries of more than one pack gets
 * `entries: undefined` and a problem (decide then blocks). Read last, after every live table and
 * in-flight batch record: an entry whose content ID none of those named cannot be live, so only the
 * others are kept — prune's memory follows the live content, not the whole index.
 */
export async function readDeltas(vault: Vault, keyring: Keyring, listed: BlobInfo[], ids: ContentIds, onProblem: (why: string) => void, options: CallOptions = {}): Promise<GcSnapshot['deltas']> {
  const out: GcSnapshot['deltas'] = [];
  await forEachLimited(listed, GATHER_READS_AT_ONCE, async (blob) => {
    const delta = { name: blob.name, packId: '', createdMs: blob.createdOn.getTime(), bytes: blob.contentLength };
    try {
      if (blob.contentLength > MAX_DELTA_BYTES) throw new PagewiseError('Corrupt', `the index delta ${blob.name} is ${blob.contentLength} bytes, more than one pack's entries take`);
      const entries = await readIndexDelta(vault, keyring, blob.name, options);
      const packId = entries[0]?.pack ?? '';
      if (entries.some((e) => e.pack !== packId)) throw new PagewiseError('Corrupt', `the index delta ${blob.name} holds entries of more than one pack`);
      const kept: NonNullable<GcSnapshot['deltas'][number]['entries']> = [];
      for (const e of entries) {
        const contentId = ids.known(e.contentId);
        if (contentId !== undefined) kept.push({ contentId, offset: e.offset, storedLength: e.storedLength });
      }
      out.push({ ...delta, packId, entries: kept });
    } catch (err) {
      onProblem(problemOf(err));
      out.push({ ...delta, entries: undefined });
    }
  });
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * The entries of the newest complete generation (§18.4) whose content ID the live tables or in-flight batch records
 * name, shard by shard (GATHER_READS_AT_ONCE at a time; a whole shard is ~1/256 of the generation): read, like the
 * deltas, after everything live is known, so memory follows the live content. A shard that cannot be read gives
 * `entries: undefined` (decide then blocks) and a problem.
 */
export async function readGenerationEntries(vault: Vault, keyring: Keyring, g: Generation, ids: ContentIds, onProblem: (why: string) => void, options: CallOptions = {}): Promise<NonNullable<GcSnapshot['generation']>> {
  const entries: NonNullable<NonNullable<GcSnapshot['generation']>['entries']> = [];
  let readable = true;
  await forEachLimited(g.covers.shards, GATHER_READS_AT_ONCE, async (info) => {
    throwIfAborted(options.abortSignal, 'the prune was cancelled');
    try {
      for (const e of await readShard(vault, keyring, info)) {
        const contentId = ids.known(e.contentId);
        if (contentId !== undefined) entries.push({ contentId, packId: e.pack, offset: e.offset, storedLength: e.storedLength });
      }
    } catch (err) {
      onProblem(problemOf(err));
      readable = false;
    }
  });
  return { gen: g.gen, entries: readable ? entries : undefined };
}
