/** The writer's (and reader's) view of the whole vault index in bounded memory (docs/FORMAT.md §18.3; the bound: docs/SCALE.md "Content index memory"). */
import { forEachLimited } from '../../concurrency';
import { isPagewiseError, isTransient } from '../../errors';
import { MiB } from '../../limits';
import { BlobNotFoundError } from '../store/blob-store';
import type { Vault } from '../vault';
import { BloomFilter, completeGenerations, Generation, GenerationView, generationNames, lowerBound, readFilter, readNewestGeneration } from './index-generation';
import type { Keyring } from './keyring';
import { DELTA_NAME_RE } from './names';
import { FRAME_ENTRIES, FRAME_OVERHEAD, INDEX_ENTRY_BYTES, INDEX_HEADER_BYTES, indexEntryAt, readIndexDelta, writeIndexEntry } from './pack-writer';
import type { IndexEntry } from './records';

export interface ContentIndexOptions {
  /** bytes of generation frames kept decoded (LRU); default 16 MiB */
  frameCacheBytes?: number;
  /** entries of uncovered deltas held in memory (64 bytes each), the newest deltas first; default 524,288 (32 MiB) */
  deltaBudgetEntries?: number;
}

export interface ContentIndexStats {
  /** candidates() calls */
  lookups: number;
  /** lookups the generation's filter answered "no" (no frame read) */
  filterNo: number;
  /** generation frames fetched (cache misses) */
  framesRead: number;
  /** uncovered deltas read into memory, over all refreshes */
  deltasLoaded: number;
  /** uncovered deltas left out at the last refresh: beyond the budget (older than the held ones) */
  deltasSkipped: number;
  /** delta entries held now */
  entriesHeld: number;
}

export const DEFAULT_FRAME_CACHE_BYTES = 16 * MiB;
export const DEFAULT_DELTA_BUDGET_ENTRIES = 524_288;
/** What one covered delta name costs held in a Set (46 characters, string and Set overhead): an estimate memoryBytes counts. */
export const COVERED_NAME_BYTES = 128;
const READS_AT_ONCE = 8;

/** The entries a delta of `bytes` bytes holds (§18.2 sizes), or undefined for a size no delta has. */
export function deltaEntriesOf(bytes: number): number | undefined {
  if (bytes < INDEX_HEADER_BYTES) return undefined;
  const frames = Math.ceil((bytes - INDEX_HEADER_BYTES) / (FRAME_OVERHEAD + FRAME_ENTRIES * INDEX_ENTRY_BYTES));
  const n = (bytes - INDEX_HEADER_BYTES - frames * FRAME_OVERHEAD) / INDEX_ENTRY_BYTES;
  return Number.isInteger(n) && n >= 0 && Math.ceil(n / FRAME_ENTRIES) === frames ? n : undefined;
}

/**
 * The most `memoryBytes()` reaches for a generation of `entries` entries covering `coveredDeltas` deltas:
 * filter (power of two ≥ 10 bits per entry) + fences (32 bytes per 1024 entries) + frame cache + delta budget
 * (64 bytes an entry) + covered names. During a refresh that adds deltas the held entries are merged into a
 * new buffer, so for that moment the delta part is counted twice.
 */
export function contentIndexBound(entries: number, coveredDeltas: number, options: ContentIndexOptions = {}): number {
  let bits = 64;
  while (bits < entries * 10 && bits < 2 ** 31) bits *= 2;
  const fences = 32 * Math.ceil(entries / FRAME_ENTRIES) + 32 * 256; // a partial frame per shard at most
  return (entries > 0 ? bits / 8 : 0) + fences + (options.frameCacheBytes ?? DEFAULT_FRAME_CACHE_BYTES) + INDEX_ENTRY_BYTES * (options.deltaBudgetEntries ?? DEFAULT_DELTA_BUDGET_ENTRIES) + COVERED_NAME_BYTES * coveredDeltas;
}

/**
 * The index of §18.3 as one writer (or reader) sees it: the newest complete generation through its filter,
 * fences and an LRU of frames, and the newest uncovered deltas that fit `deltaBudgetEntries` held in one
 * sorted buffer (64 bytes an entry; the reserved field holds the delta's slot). Deltas beyond the budget are
 * skipped — dedupe then finds less, never something wrong — and compaction (prune, rebuild-index) keeps
 * their number small. A delta or generation frame that cannot be read or authenticated is skipped and named
 * in `unreadable` (a writer then stores its own copy).
 */
export class ContentIndex {
  /** Index blobs skipped because they could not be read or authenticated: name → why. */
  readonly unreadable = new Map<string, string>();
  private readonly counts = { lookups: 0, deltasLoaded: 0, deltasSkipped: 0, filterNo: 0, framesRead: 0 };
  private view?: GenerationView;
  private covered = new Set<string>();
  /** held delta entries, ascending by content ID; bytes 60…63 = the delta's slot */
  private held: Buffer = Buffer.alloc(0);
  /** slot → delta name, and the held deltas by name → slot */
  private readonly slotName = new Map<number, string>();
  private readonly heldSlot = new Map<string, number>();
  private nextSlot = 0;
  private refreshing: Promise<void> = Promise.resolve();
  private readonly frameCacheBytes: number;
  private readonly budget: number;

  private constructor(
    private readonly vault: Vault,
    private readonly keyring: Keyring,
    options: ContentIndexOptions,
  ) {
    this.frameCacheBytes = Math.max(0, options.frameCacheBytes ?? DEFAULT_FRAME_CACHE_BYTES);
    this.budget = Math.max(0, options.deltaBudgetEntries ?? DEFAULT_DELTA_BUDGET_ENTRIES);
  }

  static async open(vault: Vault, keyring: Keyring, options: ContentIndexOptions = {}): Promise<ContentIndex> {
    const index = new ContentIndex(vault, keyring, options);
    await index.refresh();
    return index;
  }

  get stats(): ContentIndexStats {
    const v = this.view?.stats;
    return { ...this.counts, filterNo: this.counts.filterNo + (v?.filterNo ?? 0), framesRead: this.counts.framesRead + (v?.framesRead ?? 0), entriesHeld: this.held.length / INDEX_ENTRY_BYTES };
  }

  /** The generation in use, if any (slim: its fences are held as bytes and its delta names as `coveredDeltas`). */
  get generation(): Generation | undefined {
    return this.view?.generation;
  }

  /** How many deltas the generation in use covers (their names are held to tell uncovered deltas apart). */
  get coveredDeltas(): number {
    return this.covered.size;
  }

  /** Re-lists index/d/ (and a newer complete generation) and loads what is new; cheap when nothing is. */
  refresh(): Promise<void> {
    const next = this.refreshing.then(() => this.doRefresh());
    this.refreshing = next.catch(() => undefined);
    return next;
  }

  /**
   * Entries for the content ID, newest first: uncovered deltas held in memory (newest stamp first), then the
   * generation (filter "no" → none; else one frame via fences, through an LRU of frames).
   */
  async candidates(contentId: Buffer): Promise<IndexEntry[]> {
    if (contentId.length !== 32) throw new RangeError('a content ID is 32 bytes');
    this.counts.lookups++;
    const found: { e: IndexEntry; name: string }[] = [];
    const held = this.held;
    for (let k = lowerBound(held, contentId); k < held.length / INDEX_ENTRY_BYTES && held.compare(contentId, 0, 32, k * INDEX_ENTRY_BYTES, k * INDEX_ENTRY_BYTES + 32) === 0; k++) {
      found.push({ e: indexEntryAt(held, k), name: this.slotName.get(held.readUInt32LE(k * INDEX_ENTRY_BYTES + 60)) ?? '' });
    }
    found.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0)); // newest stamp first
    const out = found.map((f) => f.e);
    const view = this.view;
    if (view) {
      try {
        const e = await view.entryOf(contentId);
        if (e) out.push(e);
      } catch (err) {
        this.unreadable.set(`${generationNames.dir(view.generation.gen)}`, problemOf(err));
      }
    }
    return out;
  }

  /** Bytes held now: filter + fences + cached frames + delta entries + covered delta names (the stated bound is the max of this). */
  memoryBytes(): number {
    return (this.view?.memoryBytes() ?? 0) + this.held.length + COVERED_NAME_BYTES * this.covered.size;
  }

  private async doRefresh(): Promise<void> {
    // 1. A newer complete generation replaces the view (its covers read only when the number changed).
    const complete = await completeGenerations(this.vault);
    const newest = Math.max(0, ...complete.keys());
    if (newest > (this.view?.generation.gen ?? 0)) {
      // A damaged newest generation is named and not used: the deltas it covers stay uncovered here
      // (a writer finds less, never something wrong); rebuild-index writes a sound one above it.
      let g: Generation | undefined;
      let filter: BloomFilter | null = null;
      try {
        g = await readNewestGeneration(this.vault, this.keyring, complete);
        if (g && g.gen !== this.view?.generation.gen) filter = await readFilter(this.vault, this.keyring, g);
      } catch (err) {
        this.unreadable.set(generationNames.dir(newest), problemOf(err));
        g = undefined;
      }
      if (g && g.gen !== this.view?.generation.gen) {
        if (this.view) {
          this.counts.filterNo += this.view.stats.filterNo;
          this.counts.framesRead += this.view.stats.framesRead;
        }
        this.covered = new Set(g.covers.deltas);
        this.view = new GenerationView(this.vault, this.keyring, g, filter, this.frameCacheBytes);
      }
    }
    // 2. The uncovered deltas, newest first, held while they fit the budget.
    const uncovered: { name: string; entries: number }[] = [];
    for await (const b of this.vault.listDetailed('index/d/')) {
      if (!DELTA_NAME_RE.test(b.name) || this.covered.has(b.name) || this.unreadable.has(b.name)) continue;
      uncovered.push({ name: b.name, entries: deltaEntriesOf(b.contentLength) ?? 0 });
    }
    uncovered.sort((a, b) => (a.name < b.name ? 1 : -1));
    const wanted = new Set<string>();
    let sum = 0;
    for (const d of uncovered) {
      if (sum + d.entries > this.budget) break;
      sum += d.entries;
      wanted.add(d.name);
    }
    this.counts.deltasSkipped = uncovered.length - wanted.size;
    // 3. Drop held deltas no longer wanted (covered now, or pushed out by newer ones), read the new ones.
    const dropped = new Set<number>();
    for (const [name, slot] of this.heldSlot) {
      if (wanted.has(name)) continue;
      dropped.add(slot);
      this.heldSlot.delete(name);
      this.slotName.delete(slot);
    }
    const held = dropped.size > 0 ? withoutSlots(this.held, dropped) : this.held;
    const added: Buffer[] = [];
    await forEachLimited([...wanted].filter((n) => !this.heldSlot.has(n)), READS_AT_ONCE, async (name) => {
      let entries: IndexEntry[];
      try {
        entries = await readIndexDelta(this.vault, this.keyring, name);
      } catch (err) {
        if (err instanceof BlobNotFoundError) return; // pruned since the listing: nothing to find there
        this.unreadable.set(name, problemOf(err));
        return;
      }
      this.counts.deltasLoaded++;
      const slot = this.nextSlot++;
      this.heldSlot.set(name, slot);
      this.slotName.set(slot, name);
      const records = Buffer.alloc(entries.length * INDEX_ENTRY_BYTES);
      entries.forEach((e, k) => {
        writeIndexEntry(records, k * INDEX_ENTRY_BYTES, e);
        records.writeUInt32LE(slot, k * INDEX_ENTRY_BYTES + 60);
      });
      added.push(records); // each ascending (decodeIndexBlob checked it)
    });
    this.held = mergeAll([held, ...added]);
  }
}

/** What a failed read says; anything but a finding about the vault (transient, cancelled, a bug) is rethrown. */
function problemOf(err: unknown): string {
  if (isTransient(err) || !isPagewiseError(err) || err.code === 'Aborted') throw err;
  return err.message;
}

/** The 64-byte records of `held` whose slot is not in `slots`. */
function withoutSlots(held: Buffer, slots: Set<number>): Buffer {
  const out = Buffer.alloc(held.length);
  let n = 0;
  for (let at = 0; at < held.length; at += INDEX_ENTRY_BYTES) {
    if (slots.has(held.readUInt32LE(at + 60))) continue;
    held.copy(out, n, at, at + INDEX_ENTRY_BYTES);
    n += INDEX_ENTRY_BYTES;
  }
  return out.subarray(0, n);
}

/** Sorted runs merged pairwise, round by round: each byte is copied log2(runs) times, not once per run. */
function mergeAll(runs: Buffer[]): Buffer {
  let level = runs.filter((r) => r.length > 0);
  if (level.length === 0) return Buffer.alloc(0);
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? mergeSorted(level[i], level[i + 1]) : level[i]);
    level = next;
  }
  return level[0];
}

/** Two buffers of 64-byte records, each ascending by content ID, merged into one. */
function mergeSorted(a: Buffer, b: Buffer): Buffer {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out = Buffer.alloc(a.length + b.length);
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < a.length || j < b.length) {
    const takeA = j >= b.length || (i < a.length && a.compare(b, j, j + 32, i, i + 32) <= 0);
    if (takeA) {
      a.copy(out, n, i, i + INDEX_ENTRY_BYTES);
      i += INDEX_ENTRY_BYTES;
    } else {
      b.copy(out, n, j, j + INDEX_ENTRY_BYTES);
      j += INDEX_ENTRY_BYTES;
    }
    n += INDEX_ENTRY_BYTES;
  }
  return out;
}
