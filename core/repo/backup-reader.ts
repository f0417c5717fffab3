/**
 * Reads a complete backup back from the vault alone: the manifest (MAC checked with the user key), the
 * data key, the page table one segment at a time, and pages (block fetched, authenticated, decompressed,
 * hash-checked). Restore and verify are built on it; memory is bounded by one segment's table.
 */
import { createHash } from 'node:crypto';
import { sha256 } from '../processor/async-crypto';
import { Limiter } from '../concurrency';
import { unwrapDataKey } from './keys';
import { isPagewiseError, PagewiseError } from '../errors';
import { decodeBlock } from './block-codec';
import { StorageLocation } from '../types';
import { validateBackupId } from './backup-id';
import { ManifestBody, readManifest } from './manifest';
import { decodeChunk, PageEntry } from './page-table';
import { Vault } from './vault';
import { BlobNotFoundError, CallOptions } from './store/blob-store';
import { BackupGrid, entryBytesOf } from './page-lengths';
import type { BackupSource, OpenSourceOptions, PagePiece, PageRead, SourceChecks } from './backup-source';

/** Blocks decoded (decrypted, decompressed, hash-checked) at once per reader; the work runs off the event loop. */
export const BLOCKS_DECODED_AT_ONCE = 2;

/** A version-1 backup (docs/FORMAT.md Part I); restore and verify reach it through BackupSource. */
export class BackupReader extends BackupGrid implements BackupSource<PageEntry> {
  readonly formatVersion = 1;
  readonly checked: SourceChecks = { containers: 0, packs: 0, tables: 0, relocated: 0 };
  /** Bounds the decoding copies in flight: a run's blocks would otherwise all be decoded at once. */
  private readonly decoding = new Limiter(BLOCKS_DECODED_AT_ONCE);

  private constructor(
    readonly vault: Vault,
    readonly manifest: ManifestBody,
    private readonly dataKey: Buffer,
    /** Every vault request of this reader carries its signal: an abort cancels the request in flight. */
    private readonly call: CallOptions,
  ) {
    super();
  }

  static async open(vaultLocation: StorageLocation, backupId: string, userKey: Buffer, options: OpenSourceOptions = {}): Promise<BackupReader> {
    validateBackupId(backupId);
    const vault = Vault.open(vaultLocation, { meter: options.meter });
    const call = { abortSignal: options.abortSignal };
    const manifest = await readManifest(vault, backupId, userKey, call);
    if (manifest.references.length > 0) {
      throw new PagewiseError('Corrupt', `backup ${backupId} references other backups, which this version cannot read`);
    }
    const dataKey = unwrapDataKey(userKey, manifest.encryption.wrappedDataKey, backupId, manifest.encryption.keyId);
    return new BackupReader(vault, manifest, dataKey, call);
  }

  fork(): BackupReader {
    return new BackupReader(this.vault, this.manifest, this.dataKey, this.call);
  }

  get groupPages(): number {
    return this.manifest.pagesPerSegment;
  }

  /** Number of non-hole pages (entries) in the backup. */
  get entryCount(): number {
    return this.manifest.index.reduce((sum, c) => sum + c.entries, 0);
  }


  /** Plaintext bytes of all entries (each page's real length); a short last page needs a look at the last page table. */
  entryBytes(): Promise<number> {
    const lastChunk = this.manifest.index[this.manifest.index.length - 1];
    return entryBytesOf(this, async () => !!lastChunk && lastChunk.entries > 0 && (await this.chunkEntries(lastChunk)).some((e) => e.page === this.pageCount - 1));
  }

  /** Page-table entries of every segment, in page order, one segment's chunk in memory at a time. */
  async *segments(): AsyncGenerator<{ segment: number; entries: PageEntry[] }> {
    for (const chunk of this.manifest.index) {
      const entries = await this.chunkEntries(chunk);
      this.checked.tables++;
      yield { segment: chunk.segment, entries };
    }
  }

  async *groups(): AsyncGenerator<{ group: number; entries: PageEntry[] }> {
    for await (const { segment, entries } of this.segments()) yield { group: segment, entries };
  }

  containers(): Array<{ name: string; problem(): Promise<string | undefined> }> {
    return this.manifest.segments.map((segment) => ({
      name: `segment ${segment.index}: ${segment.blob}`,
      problem: () => {
        this.checked.containers++;
        return this.segmentProblem(segment);
      },
    }));
  }

  async entryProblems(entries: PageEntry[]): Promise<Array<string | undefined>> {
    return entries.map((e) => this.checkEntry(e));
  }

  runs(entries: PageEntry[]): PageEntry[][] {
    return blockRuns(entries);
  }

  blocksOf(): number {
    return 1;
  }

  async matches(entry: PageEntry, plain: Buffer): Promise<boolean> {
    return (await sha256(plain)).compare(entry.sha256) === 0;
  }

  async groupEntries(group: number): Promise<PageEntry[]> {
    const chunk = this.manifest.index.find((c) => c.segment === group);
    if (!chunk || chunk.entries === 0) return [];
    const entries = await this.chunkEntries(chunk);
    this.checked.tables++;
    return entries;
  }

  /** A version-1 page is one block: one piece. */
  pieces(entry: PageEntry): PagePiece[] {
    return [{ at: 0, length: entry.plainLength, zero: false }];
  }

  async readPieces(entry: PageEntry, which: number[]): Promise<Buffer[]> {
    if (which.length === 0) return [];
    if (which.length !== 1 || which[0] !== 0) throw new PagewiseError('BadInput', `page ${entry.page} has one piece (0); pieces ${which.join(',')} were asked for`);
    return [await this.readPage(entry)];
  }

  /** One page-table chunk, read and checked against the manifest. */
  private async chunkEntries(chunk: ManifestBody['index'][number]): Promise<PageEntry[]> {
    const stored = await this.vault.getBytes(chunk.blob, 0, undefined, this.call);
    if (stored.length !== chunk.bytes || createHash('sha256').update(stored).digest('hex') !== chunk.sha256) {
      throw new PagewiseError('Corrupt', `the page table of segment ${chunk.segment} (${chunk.blob}) does not match the manifest`);
    }
    const entries = decodeChunk(stored, chunk.segment, this.dataKey, this.backupId);
    if (entries.length !== chunk.entries) throw new PagewiseError('Corrupt', `the page table of segment ${chunk.segment} has ${entries.length} entries, the manifest says ${chunk.entries}`);
    return entries;
  }

  /**
   * What is wrong with a segment blob as stored — missing, or not the size the manifest says
   * (truncated or replaced) — or undefined when it is whole.
   */
  async segmentProblem(segment: ManifestBody['segments'][number]): Promise<string | undefined> {
    let bytes: number;
    try {
      bytes = (await this.vault.properties(segment.blob, this.call)).contentLength;
    } catch (err) {
      if (err instanceof BlobNotFoundError) return `segment ${segment.index}: ${segment.blob} is missing`;
      throw err;
    }
    return bytes === segment.bytes ? undefined : `segment ${segment.index}: ${bytes} bytes, the manifest says ${segment.bytes} (truncated or replaced)`;
  }

  /** Structural check of one entry: its block lies inside its segment as the manifest describes it. */
  checkEntry(entry: PageEntry): string | undefined {
    const segment = this.manifest.segments.find((s) => s.index === entry.segment);
    if (!segment) return `page ${entry.page}: its block's segment ${entry.segment} is not in the manifest`;
    if (entry.offset + entry.storedLength > segment.bytes) return `page ${entry.page}: its block lies outside segment ${entry.segment}`;
    if (entry.page >= this.manifest.pageCount) return `page ${entry.page}: beyond the end of the disk`;
    const expected = this.pageLength(entry.page);
    if (entry.plainLength !== expected) return `page ${entry.page}: plaintext length ${entry.plainLength}, expected ${expected}`;
    return undefined;
  }

  /** The plaintext of a page, fully checked; errors name the page. */
  async readPage(entry: PageEntry): Promise<Buffer> {
    const [read] = await this.readRun([entry]);
    if (read.error) throw read.error;
    return read.plain!;
  }

  /**
   * Reads the pages of a run of back-to-back blocks (see `blockRuns`) with one ranged read, then
   * authenticates, decodes and hash-checks each. Every page gets its own result, so a verify can name
   * each damaged page; when the run's read itself fails, its pages are read one by one. An aborted read
   * (the reader's abortSignal) throws Aborted instead.
   */
  async readRun(entries: PageEntry[]): Promise<Array<PageRead<PageEntry>>> {
    const whereOf = (e: PageEntry) => `page ${e.page} (offset ${e.page * this.manifest.pageSize})`;
    const problems = entries.map((e) => this.checkEntry(e));
    if (problems.some((p) => p !== undefined)) {
      if (entries.length === 1) return [{ entry: entries[0], error: new PagewiseError('Corrupt', problems[0]!) }];
      return (await Promise.all(entries.map((e) => this.readRun([e])))).flat();
    }
    const first = entries[0];
    const last = entries[entries.length - 1];
    const segmentBlob = this.manifest.segments.find((s) => s.index === first.segment)!.blob;
    let bytes: Buffer;
    try {
      bytes = await this.vault.getBytes(segmentBlob, first.offset, last.offset + last.storedLength - first.offset, this.call);
    } catch (err) {
      // An abort is not a damaged block, and its pages are not read again one by one.
      if (isPagewiseError(err, 'Aborted')) throw err;
      if (entries.length > 1) return (await Promise.all(entries.map((e) => this.readRun([e])))).flat();
      const error = new PagewiseError('Corrupt', `${whereOf(first)}: its block cannot be read from ${segmentBlob} (${(err as Error).message})`, { cause: err });
      return [{ entry: first, error }];
    }
    return Promise.all(
      entries.map(async (entry): Promise<PageRead<PageEntry>> => {
        const where = whereOf(entry);
        try {
          const block = bytes.subarray(entry.offset - first.offset, entry.offset - first.offset + entry.storedLength);
          const plain = await this.decoding.run(async () => {
            const decoded = await decodeBlock(block, this.dataKey, this.backupId, where);
            if ((await sha256(decoded)).compare(entry.sha256) !== 0) {
              throw new PagewiseError('Corrupt', `${where}: its content does not match its hash (damaged or swapped block)`);
            }
            return decoded;
          });
          return { entry, plain };
        } catch (err) {
          return { entry, error: err instanceof PagewiseError ? err : new PagewiseError('Corrupt', `${where}: ${(err as Error).message}`) };
        }
      }),
    );
  }
}

export type { PageRead } from './backup-source';

/**
 * Groups entries (in page order) whose blocks lie back to back in one segment into runs, each read
 * with one request (per-request cost dominates small reads). A run stays within `maxBytes` both of
 * stored bytes and of plaintext: well-compressed pages would otherwise decode to many times the read.
 */
export function blockRuns(entries: PageEntry[], maxBytes = 16 * 1024 * 1024): PageEntry[][] {
  const runs: PageEntry[][] = [];
  let run: PageEntry[] = [];
  let start = 0;
  let plain = 0;
  for (const e of entries) {
    const last = run[run.length - 1];
    const contiguous = last && last.segment === e.segment && last.offset + last.storedLength === e.offset;
    if (run.length > 0 && (!contiguous || e.offset + e.storedLength - start > maxBytes || plain + e.plainLength > maxBytes)) {
      runs.push(run);
      run = [];
    }
    if (run.length === 0) {
      start = e.offset;
      plain = 0;
    }
    run.push(e);
    plain += e.plainLength;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
