/** Index compaction and rebuild (docs/FORMAT.md §18.3): deltas + the newest generation, or the pack trailers alone, into generation gen+1 through a bounded external sort. */
import { forEachLimited } from '../../concurrency';
import { isPagewiseError, isTransient, PagewiseError, throwIfAborted } from '../../errors';
import { readTombstones } from '../../retention/tombstones';
import type { StorageLocation } from '../../types';
import { BlobNotFoundError } from '../store/blob-store';
import { Vault } from '../vault';
import { listGenerations, newestGeneration, readShardPlain, writeGeneration } from './index-generation';
import { Keyring, openKeyring } from './keyring';
import { readVaultMarker } from './marker';
import { readManifest2 } from './manifest';
import { deltaStampMs, DELTA_NAME_RE, MANIFEST_NAME_RE, PACK_NAME_RE } from './names';
import { indexEntryAt, readIndexDelta, readPackTrailer } from './pack-writer';
import { isZeroChunk, readTable } from './page-table';
import type { IndexEntry, TableRef } from './records';
import { ShardSpill, SpilledShard } from './shard-spill';

export interface CompactReport {
  gen: number;
  entries: number;
  shards: number;
  deltasCovered: number;
  bytesWritten: number;
  spillRecords: number;
  /** deltas that could not be read or authenticated: not covered, so they stay in the index as deltas */
  deltasUnreadable: { delta: string; why: string }[];
}

export interface RebuildReport extends CompactReport {
  packsRead: number;
  packsUnreadable: { pack: string; why: string }[];
  /** live chunks of kept manifests no pack holds (distinct content IDs) */
  chunksUnplaced: number;
  /** kept manifests whose tables were checked */
  manifestsChecked: number;
  /** manifests or tables that could not be read (their chunks are not checked) */
  problems: string[];
}

/** Blobs read at once (each one GET; the account gate bounds every request of the process anyway). */
const READS_AT_ONCE = 8;

/**
 * A spilled entry, 77 bytes, ordered so that the holder of a content ID comes first (§26.4): content ID,
 * class (0 = an uncovered delta or a pack, 1 = the older generation), then inverted (pack Creation-Time,
 * delta stamp, packId) so the greatest sorts first, then offset and stored length.
 */
const RECORD_BYTES = 32 + 1 + 8 + 8 + 16 + 8 + 4;

function record(e: IndexEntry, cls: 0 | 1, createdMs: number, stampMs: number): Buffer {
  const r = Buffer.alloc(RECORD_BYTES);
  e.contentId.copy(r, 0);
  r[32] = cls;
  r.writeBigUInt64BE(BigInt(createdMs), 33);
  r.writeBigUInt64BE(BigInt(stampMs), 41);
  Buffer.from(e.pack, 'hex').copy(r, 49);
  for (let i = 33; i < 65; i++) r[i] = ~r[i] & 0xff;
  r.writeBigUInt64BE(BigInt(e.offset), 65);
  r.writeUInt32BE(e.storedLength, 73);
  return r;
}

function entryOf(records: Buffer, at: number): IndexEntry {
  const packBytes = Buffer.from(records.subarray(at + 49, at + 65));
  for (let i = 0; i < 16; i++) packBytes[i] = ~packBytes[i] & 0xff;
  return { contentId: Buffer.from(records.subarray(at, at + 32)), pack: packBytes.toString('hex'), offset: Number(records.readBigUInt64BE(at + 65)), storedLength: records.readUInt32BE(at + 73) };
}

/** The first record (the holder) of each content ID of a sorted spilled shard. */
function* holdersIn(s: SpilledShard): Generator<IndexEntry> {
  for (let k = 0; k < s.count; k++) {
    const at = k * RECORD_BYTES;
    if (k > 0 && s.records.compare(s.records, at - RECORD_BYTES, at - RECORD_BYTES + 32, at, at + 32) === 0) continue;
    yield entryOf(s.records, at);
  }
}

/** What a failed read says for the report; anything but a finding about the vault (transient, cancelled, a bug) is rethrown. */
function problemOf(err: unknown): string {
  if (isTransient(err) || !isPagewiseError(err) || err.code === 'Aborted') throw err;
  return err.message;
}

async function nextGeneration(vault: Vault): Promise<number> {
  return Math.max(0, ...(await listGenerations(vault)).map((g) => g.gen)) + 1;
}

async function listDeltas(vault: Vault, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  for await (const b of vault.listDetailed('index/d/', { abortSignal: signal })) if (DELTA_NAME_RE.test(b.name)) out.push(b.name);
  return out;
}

/** Every pack of one listing by packId: its Creation-Time (and its size, when `sizes` is given). */
async function listPacks(vault: Vault, signal?: AbortSignal, sizes?: Map<string, number>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const b of vault.listDetailed('packs/', { abortSignal: signal })) {
    const m = PACK_NAME_RE.exec(b.name);
    if (!m || !m[2].startsWith(m[1])) continue;
    out.set(m[2], b.createdOn.getTime());
    sizes?.set(m[2], b.contentLength);
  }
  return out;
}

/**
 * Merges the newest complete generation and every listed delta into generation gen+1 (holder per content ID,
 * §26.4 order); `keepPack(p)` false drops entries of packs being deleted; ShardSpill keeps memory bounded.
 * Lists the generation, then `index/d/`, then `packs/` (§18.3): an entry whose pack is not in that listing
 * (deleted) is dropped too, and `keepPack` is asked only about listed packs — so it must answer false only
 * for packs being deleted, never for packs it has not seen (a pack written after the caller's listing).
 */
export async function compactIndex(vault: Vault, keyring: Keyring, options: { keepPack?: (packId: string) => boolean; scratchDir?: string; abortSignal?: AbortSignal }): Promise<CompactReport> {
  const signal = options.abortSignal;
  const step = () => throwIfAborted(signal, 'the index compaction was cancelled');
  const old = await newestGeneration(vault, keyring);
  const gen = await nextGeneration(vault);
  const oldCovered = new Set(old?.covers.deltas ?? []);
  const deltas = await listDeltas(vault, signal);
  const packs = await listPacks(vault, signal);
  step();
  const keep = (p: string) => packs.has(p) && (options.keepPack?.(p) ?? true);
  const spill = await ShardSpill.create(RECORD_BYTES, options.scratchDir);
  try {
    if (old) {
      for (const info of old.covers.shards) {
        const plain = await readShardPlain(vault, keyring, info); // one shard's entries at a time, 64 bytes each
        for (let k = 0; k < info.entries; k++) {
          const e = indexEntryAt(plain, k);
          if (keep(e.pack)) await spill.add(record(e, 1, 0, 0));
        }
        step();
      }
    }
    const covered: string[] = [];
    const deltasUnreadable: CompactReport['deltasUnreadable'] = [];
    await forEachLimited(deltas, READS_AT_ONCE, async (name) => {
      if (oldCovered.has(name)) {
        covered.push(name); // its entries are in the old generation
        return;
      }
      let entries: IndexEntry[];
      try {
        entries = await readIndexDelta(vault, keyring, name, { abortSignal: signal });
      } catch (err) {
        if (err instanceof BlobNotFoundError) return; // deleted since the listing, with its pack (§26.7)
        deltasUnreadable.push({ delta: name, why: problemOf(err) });
        return;
      }
      const stampMs = deltaStampMs(name) ?? 0; // a name that does not parse sorts oldest (§26.4)
      for (const e of entries) if (keep(e.pack)) await spill.add(record(e, 0, packs.get(e.pack)!, stampMs));
      covered.push(name);
    });
    step();
    const spillRecords = spill.count;
    const g = await writeGeneration(vault, keyring, gen, holders(spill, signal), covered, { expectedEntries: spillRecords, abortSignal: signal });
    return { gen, entries: g.covers.entries, shards: g.covers.shards.length, deltasCovered: covered.length, bytesWritten: g.bytesWritten ?? 0, spillRecords, deltasUnreadable: deltasUnreadable.sort((a, b) => (a.delta < b.delta ? -1 : 1)) };
  } finally {
    await spill.dispose();
  }
}

async function* holders(spill: ShardSpill, signal?: AbortSignal): AsyncGenerator<IndexEntry> {
  for await (const s of spill.shards()) {
    throwIfAborted(signal, 'the index compaction was cancelled');
    yield* holdersIn(s);
  }
}

/**
 * `pagewise rebuild-index`: from pack trailers (§17.2) alone — the deltas may be lost — into generation gen+1
 * covering every listed delta; holder = newest pack by Creation-Time, then packId. Then checks every chunk of
 * every kept manifest's tables is placed (reports how many are not). `dryRun` writes nothing.
 * Lists manifests (and tombstones) first, then deltas, then packs (§18.3), so every pack a listed manifest
 * or delta needs is in the pack listing unless it was deleted. A delta whose pack's trailer cannot be read
 * is not covered (it still names what it names).
 */
export async function rebuildIndex(vault: Vault, keyring: Keyring, options: { dryRun?: boolean; scratchDir?: string; abortSignal?: AbortSignal }): Promise<RebuildReport> {
  const signal = options.abortSignal;
  const step = () => throwIfAborted(signal, 'the index rebuild was cancelled');
  const gen = await nextGeneration(vault);
  const nowMs = Date.now();
  const tombstones = await readTombstones(vault, keyring);
  const manifests: string[] = [];
  for await (const b of vault.listDetailed('manifests/', { abortSignal: signal })) if (MANIFEST_NAME_RE.test(b.name)) manifests.push(b.name);
  const deltas = await listDeltas(vault, signal);
  const sizes = new Map<string, number>();
  const packs = await listPacks(vault, signal, sizes);
  step();

  const entries = await ShardSpill.create(RECORD_BYTES, options.scratchDir);
  const live = await ShardSpill.create(32, options.scratchDir);
  try {
    // Live content IDs of kept manifests (each table read once).
    const problems: string[] = [];
    const tables = new Map<string, { ref: TableRef; pagesPerTable: number }>();
    let manifestsChecked = 0;
    await forEachLimited(manifests, READS_AT_ONCE, async (name) => {
      const t = tombstones.get(MANIFEST_NAME_RE.exec(name)![3])?.tombstone;
      if (t && t.formatVersion === 2 && Date.parse(t.graceEndsAt) <= nowMs) return; // grace ended: not kept
      try {
        const m = await readManifest2(vault, keyring, name);
        for (const ref of m.tables) if (!tables.has(ref.tableId)) tables.set(ref.tableId, { ref, pagesPerTable: m.pagesPerTable });
        manifestsChecked++;
      } catch (err) {
        if (isPagewiseError(err, 'BackupNotFound')) return; // deleted since the listing
        problems.push(problemOf(err));
      }
    });
    step();
    await forEachLimited(tables.values(), READS_AT_ONCE, async ({ ref, pagesPerTable }) => {
      try {
        for (const r of await readTable(vault, keyring, ref, pagesPerTable, { abortSignal: signal })) for (const c of r.chunks) if (!isZeroChunk(c)) await live.add(c.contentId);
      } catch (err) {
        problems.push(problemOf(err));
      }
    });
    step();

    // Every pack's trailer.
    const packsUnreadable: RebuildReport['packsUnreadable'] = [];
    let packsRead = 0;
    await forEachLimited(packs.entries(), READS_AT_ONCE, async ([packId, createdMs]) => {
      let found: IndexEntry[];
      try {
        found = await readPackTrailer(vault, keyring, packId, sizes.get(packId));
      } catch (err) {
        if (err instanceof BlobNotFoundError) return; // deleted since the listing
        packsUnreadable.push({ pack: packId, why: problemOf(err) });
        return;
      }
      packsRead++;
      for (const e of found) await entries.add(record(e, 0, createdMs, 0));
    });
    step();

    // Deltas covered: all of them, but those of a pack whose trailer could not be read (or that cannot be read themselves).
    const covered: string[] = [];
    const deltasUnreadable: CompactReport['deltasUnreadable'] = [];
    if (packsUnreadable.length === 0) covered.push(...deltas);
    else {
      const bad = new Set(packsUnreadable.map((p) => p.pack));
      await forEachLimited(deltas, READS_AT_ONCE, async (name) => {
        try {
          const es = await readIndexDelta(vault, keyring, name, { abortSignal: signal });
          if (!es.some((e) => bad.has(e.pack))) covered.push(name);
        } catch (err) {
          if (!(err instanceof BlobNotFoundError)) deltasUnreadable.push({ delta: name, why: problemOf(err) });
        }
      });
    }

    const spillRecords = entries.count;
    const placed = { unplaced: 0, entries: 0, shards: 0 };
    const merged = placing(entries, live, placed, signal);
    let bytesWritten = 0;
    if (options.dryRun) {
      for await (const e of merged) void e;
    } else {
      const g = await writeGeneration(vault, keyring, gen, merged, covered, { expectedEntries: spillRecords, abortSignal: signal });
      bytesWritten = g.bytesWritten ?? 0;
    }
    const byPack = (a: { pack: string }, b: { pack: string }) => (a.pack < b.pack ? -1 : 1);
    return {
      gen,
      entries: placed.entries,
      shards: placed.shards,
      deltasCovered: covered.length,
      bytesWritten,
      spillRecords,
      deltasUnreadable: deltasUnreadable.sort((a, b) => (a.delta < b.delta ? -1 : 1)),
      packsRead,
      packsUnreadable: packsUnreadable.sort(byPack),
      chunksUnplaced: placed.unplaced,
      manifestsChecked,
      problems: problems.sort(),
    };
  } finally {
    await entries.dispose();
    await live.dispose();
  }
}

/**
 * The holders of the entry spill, shard by shard; alongside, the live content IDs of the same shard
 * (sorted) are walked and each distinct one with no entry counted as unplaced.
 */
async function* placing(entries: ShardSpill, live: ShardSpill, out: { unplaced: number; entries: number; shards: number }, signal?: AbortSignal): AsyncGenerator<IndexEntry> {
  const liveShards = live.shards();
  let ids = await liveShards.next();
  // Both shards are sorted: one walk over the live IDs, the entry records followed along (no copy held).
  const unplacedIn = (s: SpilledShard, held: SpilledShard | undefined) => {
    let j = 0;
    const n = held?.count ?? 0;
    for (let k = 0; k < s.count; k++) {
      const at = k * 32;
      if (k > 0 && s.records.compare(s.records, at - 32, at, at, at + 32) === 0) continue; // the same ID again
      while (j < n && s.records.compare(held!.records, j * RECORD_BYTES, j * RECORD_BYTES + 32, at, at + 32) > 0) j++;
      if (j >= n || s.records.compare(held!.records, j * RECORD_BYTES, j * RECORD_BYTES + 32, at, at + 32) !== 0) out.unplaced++;
    }
  };
  for await (const s of entries.shards()) {
    throwIfAborted(signal, 'the index rebuild was cancelled');
    while (!ids.done && ids.value.shard < s.shard) {
      unplacedIn(ids.value, undefined);
      ids = await liveShards.next();
    }
    for (const e of holdersIn(s)) {
      out.entries++;
      yield e;
    }
    out.shards++;
    if (!ids.done && ids.value.shard === s.shard) {
      unplacedIn(ids.value, s);
      ids = await liveShards.next();
    }
  }
  while (!ids.done) {
    unplacedIn(ids.value, undefined);
    ids = await liveShards.next();
  }
}

export interface RebuildVaultIndexOptions {
  vault: StorageLocation;
  userKey: Buffer;
  dryRun?: boolean;
  /** where the external sort spills (default: the OS temp dir) */
  scratchDir?: string;
  abortSignal?: AbortSignal;
}

/** `pagewise rebuild-index` as the CLI calls it: opens the version-2 vault with the user key, then rebuildIndex. */
export async function rebuildVaultIndex(o: RebuildVaultIndexOptions): Promise<RebuildReport & { dryRun: boolean }> {
  const vault = Vault.open(o.vault);
  const marker = await readVaultMarker(vault);
  if (marker.version !== 2) throw new PagewiseError('BadInput', `${vault.display} is a version-1 vault: it has no vault index; rebuild-index works on a version-2 vault (pagewise upgrade makes one)`);
  const keyring = await openKeyring(vault, marker, o.userKey);
  const report = await rebuildIndex(vault, keyring, { dryRun: o.dryRun, scratchDir: o.scratchDir, abortSignal: o.abortSignal });
  return { ...report, dryRun: o.dryRun ?? false };
}
