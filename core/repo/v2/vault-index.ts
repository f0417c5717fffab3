/** The vault index as a reader sees it (docs/FORMAT.md §18.3): every index delta, newest first, each read only when a lookup reaches it. */
import { PagewiseError } from '../../errors';
import { BlobNotFoundError } from '../store/blob-store';
import type { Vault } from '../vault';
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
}

/**
 * One listing of `index/d/` (taken at open) read newest first. Compacted generations (`index/c/`, §18.3)
 * are not read: no writer makes them yet (#15), so every entry is in a delta; a vault compacted later
 * needs this class to read the newest complete generation before the deltas it does not cover.
 * A delta gone since the listing (pruned) is skipped; one that cannot be read or authenticated is
 * skipped too and named in `unreadable`, so one damaged delta does not hide every other.
 */
export class VaultIndex {
  readonly stats: VaultIndexStats = { lookups: 0, deltasRead: 0 };
  /** Deltas skipped because they could not be read or authenticated: name → why. */
  readonly unreadable = new Map<string, string>();
  /** Decoded deltas: the first read (newest) that fit in cacheEntries. */
  private readonly cache = new Map<string, IndexEntry[]>();
  private readonly loading = new Map<string, Promise<IndexEntry[]>>();
  private cachedEntries = 0;

  private constructor(
    private readonly vault: Vault,
    private readonly keyring: Keyring,
    /** Delta names, newest stamp first. */
    readonly deltas: readonly string[],
    private readonly cacheEntries: number,
  ) {}

  /** Lists `index/d/` once; names that are not delta names (§13) are not index blobs and are ignored. */
  static async open(vault: Vault, keyring: Keyring, options: { cacheEntries?: number } = {}): Promise<VaultIndex> {
    const names: string[] = [];
    for await (const name of vault.list(v2names.deltaPrefix())) if (DELTA_NAME_RE.test(name)) names.push(name);
    names.sort().reverse(); // <stamp> sorts by time; the newest first
    return new VaultIndex(vault, keyring, names, Math.max(1, options.cacheEntries ?? INDEX_CACHE_ENTRIES));
  }

  /** Every entry for the content ID, newest delta first (all deltas read, through the cache). */
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
