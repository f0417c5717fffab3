/**
 * Where a batch's chunk comes from (FORMAT.md §17.1, §26.8): its base's chunk of the same content, a block
 * the batch stored, a block the vault's content index places in a pack young enough to rely on — or none
 * (the batch stores its own block).
 */
import { mayRelyOnExisting } from '../../prune/protocol';
import { BLOCK2_OVERHEAD, MAX_BLOCK2_BYTES } from '../../repo/v2/block';
import { isZeroChunk } from '../../repo/v2/page-table';
import { ChunkRef, IndexEntry, PageRecord2 } from '../../repo/v2/records';

/** The content index as the writer asks it (ContentIndex, core/repo/v2/content-index.ts). */
export interface IndexCandidates {
  /** Entries for the content ID, newest first. */
  candidates(contentId: Buffer): Promise<IndexEntry[]>;
}

/** A pack's Creation-Time in ms, or undefined when the pack is not there (404). */
export type PackCreated = (packId: string) => Promise<number | undefined>;

export interface ChunkReuseOptions {
  /** The base's records of the batch's window (§26.8 (a): live through the plan's baseTables). */
  baseRecords?: Iterable<PageRecord2>;
  /** The content index; null: no vault-wide dedupe (`vaultDedupe` false, or no index to ask). */
  index: IndexCandidates | null;
  /** HEAD of a pack (existence and Creation-Time). */
  packCreated: PackCreated;
  /** The plan's createdAt (ms) and the writers' abandonment limit L: §26.8 (c). */
  planCreatedMs: number;
  abandonAfterMs: number;
}

/** Where a chunk came from; `store`: nowhere, the batch stores it. */
export type ReuseFrom = 'base' | 'batch' | 'vault';

export interface ReuseStats {
  /** Index lookups made, and those that found a usable entry. */
  indexLookups: number;
  indexHits: number;
  /** Distinct packs HEADed (each once per batch). */
  packsProbed: number;
  /** Candidates passed over: their pack is gone, or older than plan − L. */
  candidatesGone: number;
  candidatesTooOld: number;
  /** Distinct content IDs reused from the vault through the index, and their plaintext bytes. */
  chunksReusedFromVault: number;
  bytesReusedFromVault: number;
}

/**
 * The reuse decision of one batch. Memory: the base's chunks of the window (bounded by the batch's pages),
 * the batch's own chunks, one cached HEAD per distinct pack probed — all dropped with the batch.
 */
export class ChunkReuse {
  readonly stats: ReuseStats = { indexLookups: 0, indexHits: 0, packsProbed: 0, candidatesGone: 0, candidatesTooOld: 0, chunksReusedFromVault: 0, bytesReusedFromVault: 0 };
  /** Content ID (hex) → the base's chunk. */
  private readonly base = new Map<string, ChunkRef>();
  /** Content ID (hex) → the chunk this batch stored, or found through the index (a repeat asks nothing again). */
  private readonly batch = new Map<string, Promise<ChunkRef>>();
  /** Content ID (hex) → an index lookup in flight (two pages asking at once share it). */
  private readonly asking = new Map<string, Promise<ChunkRef | undefined>>();
  /** packId → its Creation-Time (undefined: gone), one HEAD per distinct pack per batch. */
  private readonly packs = new Map<string, Promise<number | undefined>>();

  constructor(private readonly o: ChunkReuseOptions) {
    for (const r of o.baseRecords ?? []) {
      for (const c of r.chunks) if (!isZeroChunk(c)) this.base.set(c.contentId.toString('hex'), c);
    }
  }

  /** The base's chunk or one this batch holds already (no I/O), else undefined. */
  known(contentId: Buffer, length: number): { from: 'base' | 'batch'; chunk: ChunkRef | Promise<ChunkRef> } | undefined {
    const id = contentId.toString('hex');
    const prior = this.base.get(id);
    if (prior && prior.length === length) return { from: 'base', chunk: prior };
    const own = this.batch.get(id);
    return own ? { from: 'batch', chunk: own } : undefined;
  }

  /**
   * known(), else the content index's first entry whose pack exists and passes §26.8 (c); undefined when
   * the batch must store the chunk. An entry found is remembered for the rest of the batch.
   */
  async find(contentId: Buffer, length: number): Promise<{ from: ReuseFrom; chunk: ChunkRef | Promise<ChunkRef> } | undefined> {
    const known = this.known(contentId, length);
    if (known || !this.o.index) return known;
    const id = contentId.toString('hex');
    let asked = this.asking.get(id);
    if (!asked) {
      asked = this.ask(contentId, length);
      this.asking.set(id, asked);
      void asked.then(
        () => this.asking.delete(id),
        () => this.asking.delete(id),
      );
    }
    const found = await asked;
    if (found) return { from: 'vault', chunk: found };
    return this.known(contentId, length); // stored by another page of the batch meanwhile
  }

  /**
   * The chunk this batch stores for the content ID: `add` runs once per content ID, a later caller gets the
   * first one's chunk (a page processed while its twin was being encoded). `fresh`: this call stored it.
   */
  storeOnce(contentId: Buffer, add: () => Promise<ChunkRef>): { chunk: Promise<ChunkRef>; fresh: boolean } {
    const id = contentId.toString('hex');
    const there = this.batch.get(id);
    if (there) return { chunk: there, fresh: false };
    const chunk = add();
    chunk.catch(() => this.batch.get(id) === chunk && this.batch.delete(id));
    this.batch.set(id, chunk);
    return { chunk, fresh: true };
  }

  private async ask(contentId: Buffer, length: number): Promise<ChunkRef | undefined> {
    this.stats.indexLookups++;
    for (const e of await this.o.index!.candidates(contentId)) {
      if (!e.contentId.equals(contentId) || !plausibleBlock(e.storedLength, length)) continue; // not this chunk's block
      const created = await this.packCreated(e.pack);
      if (created === undefined) {
        this.stats.candidatesGone++;
        continue;
      }
      if (!mayRelyOnExisting(created, this.o.planCreatedMs, { abandonAfterMs: this.o.abandonAfterMs })) {
        this.stats.candidatesTooOld++;
        continue;
      }
      const chunk: ChunkRef = { contentId: Buffer.from(contentId), length, storedLength: e.storedLength, pack: e.pack, offset: e.offset };
      const id = contentId.toString('hex');
      if (!this.batch.has(id)) {
        this.batch.set(id, Promise.resolve(chunk));
        this.stats.indexHits++;
        this.stats.chunksReusedFromVault++;
        this.stats.bytesReusedFromVault += length;
      }
      return chunk;
    }
    return undefined;
  }

  private packCreated(pack: string): Promise<number | undefined> {
    let known = this.packs.get(pack);
    if (!known) {
      this.stats.packsProbed++;
      known = this.o.packCreated(pack);
      known.catch(() => this.packs.get(pack) === known && this.packs.delete(pack)); // a failed HEAD is asked again
      this.packs.set(pack, known);
    }
    return known;
  }
}

/** Whether a block of `storedLength` bytes can hold a chunk of `length` bytes (§16: at most the chunk plus 60). */
function plausibleBlock(storedLength: number, length: number): boolean {
  return Number.isSafeInteger(storedLength) && storedLength >= BLOCK2_OVERHEAD && storedLength <= Math.min(length + BLOCK2_OVERHEAD, MAX_BLOCK2_BYTES);
}
