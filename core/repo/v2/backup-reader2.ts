/**
 * Reads a complete version-2 backup (docs/FORMAT.md §19, §20.3): its manifest alone names every page table,
 * each table is checked against the manifest (size, SHA-256) and authenticated, and each page is its
 * chunks in order — blocks fetched from the hinted pack, decoded, content ID checked; zero chunks are
 * zeros. A hinted pack that is gone (repacked, then pruned) is looked up in the vault index (§19 hints,
 * §18.3). No other backup is read, whatever the generation. Memory: one table and one run of blocks.
 */
import { forEachLimited, Limiter } from '../../concurrency';
import { isPagewiseError, PagewiseError } from '../../errors';
import { chunkPoolFor } from '../../processor/chunk-pool';
import { BackupGrid, entryBytesOf } from '../page-lengths';
import type { BackupSource, PagePiece, PageRead, RunMemory, SourceChecks } from '../backup-source';
import { BLOCKS_DECODED_AT_ONCE } from '../backup-reader';
import { BlobNotFoundError, CallOptions } from '../store/blob-store';
import type { Vault } from '../vault';
import type { Keyring } from './keyring';
import { findManifest2, readManifest2 } from './manifest';
import { v2names } from './names';
import { isZeroChunk, readTable } from './page-table';
import type { ChunkRef, ManifestV2, PageRecord2, TableRef } from './records';
import { getIfAny } from './staging';
import { VaultIndex } from './vault-index';

/** Stored and plaintext bytes of blocks per decoding task (one block alone when it is larger). */
const DECODE_TASK_BYTES = 4 * 1024 * 1024;

/** `blocks` cut in order into groups of at most DECODE_TASK_BYTES stored and plaintext bytes (a larger block alone). */
function tasksOf<T extends { block: Buffer; part: Part }>(blocks: T[]): T[][] {
  const out: T[][] = [];
  let stored = 0;
  let plain = 0;
  for (const b of blocks) {
    if (out.length === 0 || stored + b.block.length > DECODE_TASK_BYTES || plain + b.part.ref.length > DECODE_TASK_BYTES) {
      out.push([]);
      stored = 0;
      plain = 0;
    }
    out[out.length - 1].push(b);
    stored += b.block.length;
    plain += b.part.ref.length;
  }
  return out;
}

/** A run's stored and plaintext bytes, as version 1's blockRuns. */
export const RUN_MAX_BYTES = 16 * 1024 * 1024;
/** Pack HEADs in flight while a table's packs are checked. */
const PACK_HEADS_AT_ONCE = 8;
/** Ranged GETs in flight for one run. */
const STRETCHES_AT_ONCE = 2;

export class BackupReader2 extends BackupGrid implements BackupSource<PageRecord2> {
  readonly formatVersion = 2;
  readonly checked: SourceChecks = { containers: 0, packs: 0, tables: 0, relocated: 0 };
  private readonly decoding = new Limiter(BLOCKS_DECODED_AT_ONCE);
  /** Each pack HEAD-checked once: its size, or why it is unusable (missing, unreadable). */
  private readonly packs = new Map<string, number | string>();
  /** Packs found gone (404): their blocks are looked up in the vault index. */
  private readonly gone = new Set<string>();
  /** The vault index, opened (one listing of its deltas) the first time a hinted pack is gone. */
  /** Shared with this reader's forks (one listing for a whole verification in one process). */
  private shared: { index?: Promise<VaultIndex> } = {};

  private constructor(
    readonly vault: Vault,
    private readonly keyring: Keyring,
    /** The manifest's blob name (manifests/<diskTag>/<inv>-<nameTag>.pwm). */
    readonly manifestName: string,
    readonly manifest: ManifestV2,
    private readonly call: CallOptions,
  ) {
    super();
  }

  /**
   * Opens backup `backupId` of a version-2 vault whose keyring `keyring` is: undefined when the vault has
   * neither its manifest nor its plan; BackupIncomplete when only the plan is there.
   */
  static async open(vault: Vault, keyring: Keyring, backupId: string, call: CallOptions = {}): Promise<BackupReader2 | undefined> {
    const found = await findManifest2(vault, keyring, backupId);
    if (!found) {
      if (await getIfAny(vault, v2names.plan(keyring.nameTag(backupId)))) {
        throw new PagewiseError('BackupIncomplete', `backup ${backupId} is incomplete (it has no manifest) and cannot be restored; run the backup again to resume it`);
      }
      return undefined;
    }
    checkTableSizes(found.manifest, found.name);
    return new BackupReader2(vault, keyring, found.name, found.manifest, call);
  }

  /** Backup `backupId` by its manifest's blob name (what `manifestName` gave): the manifest read and checked as `open` reads it, and refused unless it is that backup's. */
  static async openNamed(vault: Vault, keyring: Keyring, backupId: string, manifestName: string, call: CallOptions = {}): Promise<BackupReader2> {
    const manifest = await readManifest2(vault, keyring, manifestName);
    if (manifest.backupId !== backupId) throw new PagewiseError('BadInput', `the manifest ${manifestName} is backup ${manifest.backupId}'s, not ${backupId}'s`);
    checkTableSizes(manifest, manifestName);
    return new BackupReader2(vault, keyring, manifestName, manifest, call);
  }

  /** Its own pack checks and counts; the vault index (read-only) is shared. */
  fork(): BackupReader2 {
    const fork = new BackupReader2(this.vault, this.keyring, this.manifestName, this.manifest, this.call);
    fork.shared = this.shared;
    return fork;
  }

  get groupPages(): number {
    return this.manifest.pagesPerTable;
  }

  get entryCount(): number {
    return this.manifest.tables.reduce((sum, t) => sum + t.pages, 0);
  }


  /** As version 1: only a short last page needs a look at the last table (is it a record or a hole?). */
  entryBytes(): Promise<number> {
    const last = this.manifest.tables[this.manifest.tables.length - 1];
    return entryBytesOf(this, async () => !!last && last.index === Math.floor((this.pageCount - 1) / this.groupPages) && (await this.tableRecords(last)).some((r) => r.page === this.pageCount - 1));
  }

  async *groups(): AsyncGenerator<{ group: number; entries: PageRecord2[] }> {
    for (const ref of this.manifest.tables) {
      const entries = await this.tableRecords(ref);
      this.checked.tables++;
      yield { group: ref.index, entries };
    }
  }

  async groupEntries(group: number): Promise<PageRecord2[]> {
    const ref = this.manifest.tables.find((t) => t.index === group);
    if (!ref || ref.pages === 0) return [];
    const entries = await this.tableRecords(ref);
    this.checked.tables++;
    return entries;
  }

  /** One piece per chunk, in order: a chunk is the unit a block is fetched and checked in. */
  pieces(entry: PageRecord2): PagePiece[] {
    let at = 0;
    return entry.chunks.map((c) => {
      const piece = { at, length: c.length, zero: isZeroChunk(c) };
      at += c.length;
      return piece;
    });
  }

  async readPieces(entry: PageRecord2, which: number[]): Promise<Buffer[]> {
    if (which.some((c, k) => !Number.isInteger(c) || c < 0 || c >= entry.chunks.length || (k > 0 && c <= which[k - 1]))) {
      throw new PagewiseError('BadInput', `pieces ${which.join(',')} of ${this.where(entry)} are not ascending indexes below ${entry.chunks.length}`);
    }
    const problem = this.recordProblem(entry);
    if (problem) throw new PagewiseError('Corrupt', problem);
    const wanted = new Set(which);
    const plains = new Map<number, Buffer>();
    const [error] = await this.readBlocks([entry], (_record, chunk) => wanted.has(chunk), (part, plain) => plains.set(part.chunk, plain));
    if (error) throw error;
    return which.map((c) => plains.get(c) ?? Buffer.alloc(entry.chunks[c].length)); // a zero chunk is zeros
  }

  /** One page table, read bounded by the manifest's size for it, checked against the manifest, authenticated. */
  private async tableRecords(ref: TableRef): Promise<PageRecord2[]> {
    try {
      return await readTable(this.vault, this.keyring, ref, this.groupPages, this.call);
    } catch (err) {
      if (err instanceof BlobNotFoundError) throw new PagewiseError('Corrupt', `page table ${ref.index} (${v2names.table(ref.tableId)}) is missing`, { cause: err });
      throw err;
    }
  }

  /** None up front: a version-2 backup's packs are known only from its tables, and are checked as entryProblems meets them. */
  containers(): Array<{ name: string; problem(): Promise<string | undefined> }> {
    return [];
  }

  /**
   * Each record's structural problem: its place on the disk and its length, and every block inside a pack
   * that exists (each pack HEAD-checked once per reader).
   */
  async entryProblems(entries: PageRecord2[]): Promise<Array<string | undefined>> {
    const unseen = new Set<string>();
    for (const r of entries) for (const c of r.chunks) if (!isZeroChunk(c) && !this.packs.has(c.pack)) unseen.add(c.pack);
    await forEachLimited(unseen, PACK_HEADS_AT_ONCE, async (pack) => void (await this.packSizeOnce(pack)));
    await this.relocate(entries);
    return entries.map((r) => {
      const placed = this.recordProblem(r);
      if (placed) return placed;
      for (const c of r.chunks) {
        if (isZeroChunk(c)) continue;
        const size = this.packs.get(c.pack)!;
        if (typeof size === 'string') return `${this.where(r)}: ${size}`;
        if (c.offset + c.storedLength > size) return `${this.where(r)}: its block lies outside pack ${c.pack} (${size} bytes; truncated or replaced)`;
      }
      return undefined;
    });
  }

  /** A pack's size, or why it cannot be used: HEAD-checked once per reader. */
  private async packSizeOnce(pack: string): Promise<number | string> {
    const known = this.packs.get(pack);
    if (known !== undefined) return known;
    const size = await this.packSize(pack);
    if (!this.packs.has(pack)) {
      this.packs.set(pack, size);
      this.checked.packs++;
      this.checked.containers++;
    }
    return this.packs.get(pack)!;
  }

  private async packSize(pack: string): Promise<number | string> {
    try {
      return (await this.vault.properties(v2names.pack(pack), this.call)).contentLength;
    } catch (err) {
      if (err instanceof BlobNotFoundError) {
        this.gone.add(pack);
        return missingPack(pack);
      }
      if (isPagewiseError(err, 'Aborted')) throw err;
      return `pack ${pack} could not be checked (${(err as Error).message})`;
    }
  }

  /** Whether a pack exists (for the index: only a pack found there, HEAD-checked, holds a block). */
  private packPresent = async (pack: string): Promise<boolean> => typeof (await this.packSizeOnce(pack)) === 'number';

  private vaultIndex(): Promise<VaultIndex> {
    const shared = this.shared;
    if (!shared.index) {
      shared.index = VaultIndex.open(this.vault, this.keyring);
      shared.index.catch(() => (shared.index = undefined)); // a failed listing is tried again by the next caller
    }
    return shared.index;
  }

  /** The newest index entry of `ref`'s content ID in an existing pack, or undefined (none, or its pack is gone too). */
  private async locate(ref: ChunkRef): Promise<{ pack: string; offset: number; storedLength: number } | undefined> {
    return (await this.vaultIndex()).locate(ref.contentId.toString('hex'), this.packPresent);
  }

  /**
   * Verify's structural pass: each chunk whose hinted pack is gone gets the location the vault index
   * gives (its ChunkRef is updated in place, so the runs read it there); one the index does not place
   * keeps its hint and is reported missing.
   */
  private async relocate(entries: PageRecord2[]): Promise<void> {
    if (this.gone.size === 0) return;
    const moving = entries.flatMap((r) => r.chunks.filter((c) => !isZeroChunk(c) && this.gone.has(c.pack)));
    await forEachLimited(moving, PACK_HEADS_AT_ONCE, async (c) => {
      const at = await this.locate(c);
      if (!at) return;
      Object.assign(c, { pack: at.pack, offset: at.offset, storedLength: at.storedLength });
      this.checked.relocated++;
    });
  }

  /** What the manifest alone says is wrong with a record: a page beyond the disk, a wrong length. */
  private recordProblem(r: PageRecord2): string | undefined {
    if (r.page >= this.pageCount) return `page ${r.page}: beyond the end of the disk`;
    const expected = this.pageLength(r.page);
    if (r.length !== expected) return `${this.where(r)}: length ${r.length}, expected ${expected}`;
    // As every table read checks (§19); a run's memory is not zeroed, so every byte of a page must be a chunk's.
    if (r.chunks.reduce((sum, c) => sum + c.length, 0) !== r.length) return `${this.where(r)}: its chunks do not add up to its length ${r.length}`;
    return undefined;
  }

  private where(r: PageRecord2): string {
    return `page ${r.page} (offset ${r.page * this.pageSize})`;
  }

  /**
   * Records (in page order) in runs: a run's blocks lie back to back in one pack (read with one ranged
   * GET), bounded in stored and plaintext bytes. A record whose own blocks are scattered (chunks stored by
   * several backups) is a run alone and gets a GET per stretch; a record of zero chunks only joins any run.
   */
  runs(entries: PageRecord2[]): PageRecord2[][] {
    const runs: PageRecord2[][] = [];
    let run: PageRecord2[] = [];
    let end: { pack: string; offset: number } | undefined; // where the run's last block ends
    let start = 0;
    let plain = 0;
    const close = () => {
      if (run.length > 0) runs.push(run);
      run = [];
      end = undefined;
      plain = 0;
    };
    for (const r of entries) {
      const blocks = r.chunks.filter((c) => !isZeroChunk(c));
      const contiguous = blocks.every((c, k) => k === 0 || (c.pack === blocks[0].pack && c.offset === blocks[k - 1].offset + blocks[k - 1].storedLength));
      if (!contiguous) {
        close();
        runs.push([r]);
        continue;
      }
      if (blocks.length > 0) {
        const first = blocks[0];
        const last = blocks[blocks.length - 1];
        const follows = end === undefined || (end.pack === first.pack && end.offset === first.offset);
        if (run.length > 0 && (!follows || (end !== undefined && last.offset + last.storedLength - start > RUN_MAX_BYTES) || plain + r.length > RUN_MAX_BYTES)) close();
        if (end === undefined) start = first.offset;
        end = { pack: last.pack, offset: last.offset + last.storedLength };
      } else if (run.length > 0 && plain + r.length > RUN_MAX_BYTES) close();
      run.push(r);
      plain += r.length;
    }
    close();
    return runs;
  }

  /**
   * The plaintext of each record of a run: back-to-back blocks of one pack read with one ranged GET
   * (bounded), each block decoded and its content ID checked, zero chunks as zeros. A pack that is gone
   * is named; a stretch whose read fails otherwise is read again block by block. An abort throws.
   */
  async readRun(run: PageRecord2[], memory?: RunMemory): Promise<Array<PageRead<PageRecord2>>> {
    const problems = run.map((r) => this.recordProblem(r));
    if (problems.some((p) => p !== undefined)) {
      if (run.length === 1) return [{ entry: run[0], error: new PagewiseError('Corrupt', problems[0]!) }];
      return (await Promise.all(run.map((r) => this.readRun([r])))).flat();
    }
    // Each page in memory the caller gives (reused), else all in one allocation. Not zeroed: each chunk
    // is written, a zero chunk with zeros; a page with a chunk not written is an error, never returned.
    const whole = memory ? undefined : Buffer.allocUnsafe(run.reduce((sum, r) => sum + r.length, 0));
    let at = 0;
    const pages = run.map((r) => {
      const page = memory ? memory.take(r.length) : whole!.subarray(at, at + r.length);
      at += r.length;
      let from = 0;
      for (const c of r.chunks) {
        if (isZeroChunk(c)) page.fill(0, from, from + c.length);
        from += c.length;
      }
      return page;
    });
    const errors = await this.readBlocks(run, () => true, (part, plain) => plain.copy(pages[part.record], part.at));
    return run.map((entry, k) => (errors[k] ? { entry, error: errors[k] } : { entry, plain: pages[k] }));
  }

  /**
   * The picked blocks of a run's records, read in stretches (readStretch: gone packs through the vault
   * index), each decoded and its content ID checked, then handed to `put`; the first error of each record
   * (Corrupt naming the page) or undefined. Zero chunks are never picked. An abort throws.
   */
  private async readBlocks(run: PageRecord2[], pick: (record: number, chunk: number) => boolean, put: (part: Part, plain: Buffer) => void): Promise<Array<PagewiseError | undefined>> {
    const errors: Array<PagewiseError | undefined> = run.map(() => undefined);
    // A record whose chunks are scattered may need many GETs: a few at a time (each ≤ RUN_MAX_BYTES in memory).
    await forEachLimited(this.stretches(run, pick), STRETCHES_AT_ONCE, async (s) => {
      const got = await this.readStretch(s);
      const toDecode: Array<{ part: Part; where: string; block: Buffer }> = [];
      s.parts.forEach((part, k) => {
        const r = run[part.record];
        const bytes = got[k];
        if (bytes instanceof PagewiseError) errors[part.record] ??= new PagewiseError('Corrupt', `${this.where(r)}: ${bytes.message}`, { cause: bytes });
        else toDecode.push({ part, where: `${this.where(r)}, chunk ${part.chunk} (pack ${part.ref.pack})`, block: bytes });
      });
      // Decoded in worker tasks of ≤ DECODE_TASK_BYTES (decrypt, decompress, content ID: off the main thread),
      // BLOCKS_DECODED_AT_ONCE tasks at once: each holds a copy of its blocks and their plaintext.
      const pool = chunkPoolFor(this.keyring);
      await Promise.all(
        tasksOf(toDecode).map((task) =>
          this.decoding.run(async () => {
            const plains = await pool.decodeBlocks(task.map((d) => ({ block: d.block, contentId: d.part.ref.contentId, where: d.where })), this.pageSize);
            task.forEach(({ part, where }, k) => {
              const plain = plains[k];
              if (plain instanceof PagewiseError) errors[part.record] ??= plain;
              else if (plain.length !== part.ref.length) errors[part.record] ??= new PagewiseError('Corrupt', `${where}: decoded ${plain.length} bytes, the page table says ${part.ref.length}`);
              else put(part, plain);
            });
          }),
        ),
      );
    });
    return errors;
  }

  /** The run's blocks in order, merged into stretches of one pack read with one GET each (≤ RUN_MAX_BYTES). */
  private stretches(run: PageRecord2[], pick: (record: number, chunk: number) => boolean): Stretch[] {
    const out: Stretch[] = [];
    let current: Stretch | undefined;
    run.forEach((r, record) => {
      let at = 0;
      r.chunks.forEach((ref, chunk) => {
        const part = { record, chunk, ref, at };
        at += ref.length;
        if (isZeroChunk(ref) || !pick(record, chunk)) return;
        const follows = current && current.pack === ref.pack && current.end === ref.offset && ref.offset + ref.storedLength - current.start <= RUN_MAX_BYTES;
        if (!follows) {
          current = { pack: ref.pack, start: ref.offset, end: ref.offset, parts: [] };
          out.push(current);
        }
        current!.parts.push(part);
        current!.end = ref.offset + ref.storedLength;
      });
    });
    return out;
  }

  /** Each part's stored block, or the error that kept it from being read. */
  private async readStretch(s: Stretch): Promise<Array<Buffer | PagewiseError>> {
    const name = v2names.pack(s.pack);
    if (this.gone.has(s.pack)) return this.readMoved(s.parts);
    try {
      const bytes = await this.vault.getBytes(name, s.start, s.end - s.start, this.call);
      return s.parts.map((p) => bytes.subarray(p.ref.offset - s.start, p.ref.offset - s.start + p.ref.storedLength));
    } catch (err) {
      if (isPagewiseError(err, 'Aborted')) throw err;
      if (err instanceof BlobNotFoundError) {
        // Gone since it was written (repacked, then pruned): the index says where its blocks are now.
        this.gone.add(s.pack);
        this.packs.set(s.pack, missingPack(s.pack));
        return this.readMoved(s.parts);
      }
      if (s.parts.length > 1) {
        // Block by block, one at a time: a stretch may hold thousands of small blocks.
        const each: Array<Buffer | PagewiseError> = [];
        for (const p of s.parts) each.push(...(await this.readStretch({ pack: s.pack, start: p.ref.offset, end: p.ref.offset + p.ref.storedLength, parts: [p] })));
        return each;
      }
      return [new PagewiseError('Corrupt', `its block cannot be read from ${name} (${(err as Error).message})`, { cause: err })];
    }
  }

  /**
   * The blocks of `parts`, whose hinted pack is gone, read where the vault index places them now: each
   * located (newest entry in an existing pack), then read in stretches again (a repack copies blocks in
   * order, so neighbours stay neighbours). Each block still authenticates as its content ID when decoded.
   * A pack gone meanwhile is marked missing, so the next try takes the next entry: this ends.
   */
  private async readMoved(parts: Stretch['parts']): Promise<Array<Buffer | PagewiseError>> {
    const out: Array<Buffer | PagewiseError> = new Array(parts.length);
    const moved: Array<{ k: number; part: Stretch['parts'][number] }> = [];
    await forEachLimited(parts.map((part, k) => ({ part, k })), PACK_HEADS_AT_ONCE, async ({ part, k }) => {
      const at = await this.locate(part.ref);
      if (!at) {
        const unreadable = (await this.vaultIndex()).unreadable;
        const why = unreadable.size > 0 ? `; ${unreadable.size} index blob(s) could not be read, e.g. ${unreadable.values().next().value}` : '';
        out[k] = new PagewiseError('Corrupt', `${missingPack(part.ref.pack)}${why}`);
        return;
      }
      this.checked.relocated++;
      moved.push({ k, part: { ...part, ref: { ...part.ref, pack: at.pack, offset: at.offset, storedLength: at.storedLength } } });
    });
    moved.sort((a, b) => a.k - b.k);
    const again: Array<{ s: Stretch; ks: number[] }> = [];
    for (const { k, part } of moved) {
      const last = again[again.length - 1];
      const ref = part.ref;
      if (last && last.s.pack === ref.pack && last.s.end === ref.offset && ref.offset + ref.storedLength - last.s.start <= RUN_MAX_BYTES) {
        last.s.parts.push(part);
        last.s.end = ref.offset + ref.storedLength;
        last.ks.push(k);
      } else again.push({ s: { pack: ref.pack, start: ref.offset, end: ref.offset + ref.storedLength, parts: [part] }, ks: [k] });
    }
    for (const { s, ks } of again) (await this.readStretch(s)).forEach((got, j) => (out[ks[j]] = got));
    return out;
  }

  blocksOf(entry: PageRecord2): number {
    return entry.chunks.filter((c) => !isZeroChunk(c)).length;
  }

  /** Whether a page read elsewhere (the source disk) is this record: the same length and, chunk by chunk, the same content IDs (zero chunks all zero). */
  async matches(entry: PageRecord2, plain: Buffer): Promise<boolean> {
    if (plain.length !== entry.length) return false;
    let at = 0;
    for (const c of entry.chunks) {
      const part = plain.subarray(at, at + c.length);
      at += c.length;
      // Content IDs of whole pages are HMACs of megabytes: computed off the event loop.
      if (isZeroChunk(c) ? part.some((b) => b !== 0) : !(await this.keyring.contentIdAsync(part)).equals(c.contentId)) return false;
    }
    return true;
  }
}

/** One block of a run: chunk `chunk` of record `record`, at `at` in its page. */
interface Part {
  record: number;
  chunk: number;
  ref: ChunkRef;
  at: number;
}

interface Stretch {
  pack: string;
  start: number;
  end: number;
  parts: Part[];
}

function missingPack(pack: string): string {
  return `its block's pack ${pack} (${v2names.pack(pack)}) is missing, and the vault index names no existing pack holding its chunk`;
}

/**
 * What readManifest2 leaves to a reader: each table's stated size bounded by what its page records can
 * fill (a table is read whole into memory, so a hostile size must not make the read unbounded).
 */
function checkTableSizes(m: ManifestV2, name: string): void {
  // A page record is 16 bytes and at most min(65535, pageSize) chunk entries of 64; the table adds 52.
  const maxChunks = Math.min(0xffff, m.pageSize);
  for (const t of m.tables) {
    if (t.bytes < 1 || t.bytes > 52 + t.pages * (16 + 64 * maxChunks)) {
      throw new PagewiseError('Corrupt', `the manifest ${name} says page table ${t.index} is ${t.bytes} bytes, more than ${t.pages} page records can be`);
    }
  }
}
