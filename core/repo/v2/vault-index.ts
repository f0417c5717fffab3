/** The vault index as a reader sees it (docs/FORMAT.md §18.3): the deltas the newest generation does not cover, newest first, each read only when a lookup reaches it, then the generation (one frame). */
import { PagewiseError } from '../../errors';
import { BlobNotFoundError } from '../store/blob-store';
import type { Vault } from '../vault';
import { GenerationView, generationNames, newestGeneration } from './index-generation';
import type { Keyring } from './keyring';
import { DELTA_NAME_RE, v2names } from './names';
import { readIndexDelta } from './pack-writer';
import type { IndexEntry } from './records';

export type { IndexEntry };

/**
 * Entries kept decoded at once (~150 bytes each in memory: about 20 MiB). A delta holds one pack's entries
 * (at most 4,097 by §17.1). Every lookup scans newest first, so the cache keeps the newest deltas that fit
 * (where a repack's entries are) and never evicts them: an LRU would be emptied by each scan in turn.
 */
export const INDEX_CACHE_ENTRIES = 131_072;

/** A delta holds one pack's entries: a pack has fewer blocks than Azure's block limit (§17.1), 64 bytes each, 28 per frame of 1024. */

const CONTENT_ID_RE = /^[0-9a-f]{64}$/;

export interface VaultIndexStats {
  /** lookup/locate calls */
  lookups: number;
  /** delta blobs fetched and decoded (a cache miss each) */
  deltasRead: number;
  /** generation frames fetched (a cache miss each) */
  framesRead: number;
}

/** Bytes of generation frames a reader keeps (64 KiB each): a restore asks the index only for stale hints. */
export const READER_FRAME_CACHE_BYTES = 4 * 1024 * 1024;

/**
 * One listing of the index (§18.3), taken at open: the newest complete generation, then `index/d/`.
 * Lookups read the deltas the generation does not cover newest first, then the generation's one frame
 * for the ID (through its fences; no filter: a reader asks rarely, a frame costs less than the filter).
 * A delta gone since the listing (pruned) is skipped; one that cannot be read or authenticated is
 * skipped too and named in `unreadable`, so one damaged delta does not hide every other — and so is a
 * damaged generation (its covers at open, a frame at lookup): the deltas are still asked.
 */
export class VaultIndex {
  readonly stats: VaultIndexStats = { lookups: 0, deltasRead: 0, framesRead: 0 };
  /** Index blobs skipped because they could not be read or authenticated: name → why. */
  readonly unreadable = new Map<string, string>();
  /** Decoded deltas: the first read (newest) that fit in cacheEntries. */
  private readonly cache = new Map<string, IndexEntry[]>();
  private readonly loading = new Map<string, Promise<IndexEntry[]>>();
  private cachedEntries = 0;

  private constructor(
    private readonly vault: Vault,
    private readonly keyring: Keyring,
    /** Names of the deltas the generation does not cover, newest stamp first. */
    readonly deltas: readonly string[],
    private readonly cacheEntries: number,
    private readonly generation: GenerationView | undefined,
  ) {}

  /** Lists the newest complete generation and `index/d/` once; names that are not delta names (§13) are not index blobs and are ignored. */
  static async open(vault: Vault, keyring: Keyring, options: { cacheEntries?: number } = {}): Promise<VaultIndex> {
    const unreadable = new Map<string, string>();
    let view: GenerationView | undefined;
    let covered = new Set<string>();
    try {
      const g = await newestGeneration(vault, keyring);
      if (g) {
        covered = new Set(g.covers.deltas);
        view = new GenerationView(vault, keyring, g, null, READER_FRAME_CACHE_BYTES);
      }
    } catch (err) {
      if (!(err instanceof PagewiseError && (err.code === 'Corrupt' || err.code === 'WrongKey'))) throw err;
      unreadable.set(generationNames.prefix, err.message);
    }
    const names: string[] = [];
    for await (const name of vault.list(v2names.deltaPrefix())) if (DELTA_NAME_RE.test(name) && !covered.has(name)) names.push(name);
    names.sort().reverse(); // <stamp> sorts by time; the newest first
    const index = new VaultIndex(vault, keyring, names, Math.max(1, options.cacheEntries ?? INDEX_CACHE_ENTRIES), view);
    for (const [k, v] of unreadable) index.unreadable.set(k, v);
    return index;
  }

  /** Every entry for the content ID, newest first: the uncovered deltas (all read, through the cache), then the generation's. */
  async lookup(contentIdHex: string): Promise<IndexEntry[]> {
    this.stats.lookups++;
    const found: IndexEntry[] = [];
    for await (const e of this.entriesOf(contentIdHex)) found.push(e);
    return found;
  }

  /** The newest entry for the content ID whose pack exists (`packExists` asked newest first; the deltas after a hit are not read). */
  async locate(contentIdHex: string, packExists: (packId: string) => Promise<boolean>): Promise<IndexEntry | undefined> {
    this.stats.lookups++;
    for await (const e of this.entriesOf(contentIdHex)) if (await packExists(e.pack)) return e;
    return undefined;
  }

  private async *entriesOf(contentIdHex: string): AsyncGenerator<IndexEntry> {
    if (!CONTENT_ID_RE.test(contentIdHex)) throw new RangeError('a content ID is 64 hex digits');
    const id = Buffer.from(contentIdHex, 'hex');
    for (const name of this.deltas) {
      const entries = await this.entriesIn(name);
      // Entries ascend by content ID (decodeIndexBlob checked it): binary search, then every equal one.
      let lo = 0;
      let hi = entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (Buffer.compare(entries[mid].contentId, id) < 0) lo = mid + 1;
        else hi = mid;
      }
      for (let k = lo; k < entries.length && entries[k].contentId.equals(id); k++) yield entries[k];
    }
    const view = this.generation;
    if (!view) return;
    const dir = generationNames.dir(view.generation.gen);
    if (this.unreadable.has(dir)) return;
    let e: IndexEntry | undefined;
    try {
      e = await view.entryOf(id);
    } catch (err) {
      if (!(err instanceof PagewiseError && (err.code === 'Corrupt' || err.code === 'WrongKey'))) throw err;
      this.unreadable.set(dir, err.message);
      return;
    } finally {
      this.stats.framesRead = view.stats.framesRead;
    }
    if (e) yield e;
  }

  /** A delta's entries, from the cache or read and authenticated (concurrent lookups share one read). */
  private entriesIn(name: string): Promise<IndexEntry[]> {
    const cached = this.cache.get(name);
    if (cached) return Promise.resolve(cached);
    let pending = this.loading.get(name);
    if (!pending) {
      pending = this.read(name).finally(() => this.loading.delete(name));
      this.loading.set(name, pending);
    }
    return pending;
  }

  private async read(name: string): Promise<IndexEntry[]> {
    if (this.unreadable.has(name)) return [];
    let entries: IndexEntry[];
    try {
      entries = await readIndexDelta(this.vault, this.keyring, name);
      this.stats.deltasRead++;
    } catch (err) {
      if (err instanceof BlobNotFoundError) entries = []; // pruned since the listing: nothing to find there
      else if (err instanceof PagewiseError && (err.code === 'Corrupt' || err.code === 'WrongKey')) {
        this.unreadable.set(name, err.message);
        return [];
      } else throw err;
    }
    this.remember(name, entries);
    return entries;
  }

  private remember(name: string, entries: IndexEntry[]): void {
    if (this.cachedEntries + entries.length > this.cacheEntries) return; // read again when asked (bounded memory)
    this.cache.set(name, entries);
    this.cachedEntries += entries.length;
  }
}
