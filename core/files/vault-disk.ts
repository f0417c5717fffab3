/**
 * A backup read as a disk straight from the vault: a read fetches only the blocks (version 2: chunks) under
 * it, holes and zero chunks cost no request, and fetched pieces stay in an LRU bounded in bytes.
 */
import { forEachLimited } from '../concurrency';
import { isPagewiseError, PagewiseError, PagewiseErrorCode, throwIfAborted } from '../errors';
import { MiB } from '../limits';
import type { BackupSource, PagePiece, PageRef } from '../repo/backup-source';
import { openBackupSource } from '../repo/backup-source';
import type { StoreMeter } from '../repo/store/wrappers';
import { StorageLocation } from '../types';
import { BoundedLru } from './bounded-lru';
import { checkRead, DiskReader } from './disk-reader';

/** Default bound of the fetched-pieces cache. */
export const DEFAULT_FILE_CACHE_BYTES = 64 * MiB;
/** Page tables kept at once (a version-2 table of 1,024 pages of many chunks is megabytes). */
export const TABLES_KEPT = 4;
/** Pages of one read fetched at once (a file system reads a block at a time; a big read is rare). */
const PAGES_AT_ONCE = 4;
/** The longest single read: a caller reads a large file in steps. */
export const MAX_DISK_READ_BYTES = 64 * MiB;

export interface VaultDiskStats {
  /** Bytes and requests of the vault through this disk's meter (opening the backup included). */
  bytesFetched: number;
  requests: number;
  /** Pieces (v1 pages, v2 chunks) fetched and decoded. */
  piecesFetched: number;
  /** Pieces a read found in the cache, or joined while another read fetched them. */
  cacheHits: number;
  /** Hole pages and zero chunks a read met: zeros, no request. */
  holeReads: number;
  cacheBytes: number;
  cacheHighWaterBytes: number;
  /** Page tables read from the vault. */
  tablesRead: number;
}

export interface OpenVaultDiskRequest {
  vault: StorageLocation;
  backupId: string;
  userKey: Buffer;
  /** Bound of the fetched-pieces cache; at least the backup's page size. */
  cacheBytes?: number;
  abortSignal?: AbortSignal;
}

interface Located {
  page: number;
  entry?: PageRef;
  /** The piece holding the position (a hole page is one piece); its [start, stop) on the disk. */
  index: number;
  start: number;
  stop: number;
}

export class VaultDisk implements DiskReader {
  readonly size: number;
  readonly pageSize: number;
  readonly backupId: string;
  readonly formatVersion: 1 | 2;
  private readonly pieces: BoundedLru<string, Buffer>;
  private readonly fetching = new Map<string, Promise<Buffer>>();
  private readonly tables = new BoundedLru<number, Promise<PageRef[]>>(TABLES_KEPT, () => 1);
  private readonly tablesBefore: number;
  private counts = { piecesFetched: 0, cacheHits: 0, holeReads: 0 };
  /** Where the previous read ended: a read starting there is sequential. */
  private lastEnd?: number;
  private prefetching?: Promise<void>;

  private constructor(
    private readonly source: BackupSource,
    private readonly meter: StoreMeter,
    cacheBytes: number,
    private readonly abortSignal?: AbortSignal,
  ) {
    this.size = source.diskBytes;
    this.pageSize = source.pageSize;
    this.backupId = source.backupId;
    this.formatVersion = source.formatVersion;
    this.tablesBefore = source.checked.tables;
    checkCacheBytes(cacheBytes, source.pageSize);
    this.pieces = new BoundedLru(cacheBytes, (b) => b.length);
  }

  /** Opens backup `backupId` of the vault with the user key as a disk; its requests are counted in stats(). */
  static async open(req: OpenVaultDiskRequest): Promise<VaultDisk> {
    const cacheBytes = req.cacheBytes ?? DEFAULT_FILE_CACHE_BYTES;
    checkCacheBytes(cacheBytes, 0);
    const meter: StoreMeter = { requests: 0, bytesRead: 0 };
    const source = await openBackupSource(req.vault, req.backupId, req.userKey, { abortSignal: req.abortSignal, meter });
    return new VaultDisk(source, meter, cacheBytes, req.abortSignal);
  }

  /** A disk over a source already open; `meter` is the one its vault counts into. */
  static over(source: BackupSource, meter: StoreMeter, options: { cacheBytes?: number; abortSignal?: AbortSignal } = {}): VaultDisk {
    return new VaultDisk(source, meter, options.cacheBytes ?? DEFAULT_FILE_CACHE_BYTES, options.abortSignal);
  }

  async read(position: number, length: number): Promise<Buffer> {
    checkRead(this, position, length, this.what);
    if (length > MAX_DISK_READ_BYTES) throw new PagewiseError('BadInput', `a read of ${length} bytes from ${this.what} is over the ${MAX_DISK_READ_BYTES} bytes one read may be`);
    throwIfAborted(this.abortSignal, `the read from ${this.what} was cancelled`);
    const out = Buffer.alloc(length);
    const end = position + length;
    const sequential = position === this.lastEnd;
    this.lastEnd = end;
    if (length === 0) return out;
    const first = Math.floor(position / this.pageSize);
    const last = Math.floor((end - 1) / this.pageSize);
    // A file system reads a block at a time: one page, the common case, without the fan-out.
    if (first === last) await this.readPageInto(first, position, end, out);
    else await forEachLimited(pagesFrom(first, last), PAGES_AT_ONCE, (page) => this.readPageInto(page, position, end, out));
    if (sequential) this.prefetchAfter(end);
    return out;
  }

  stats(): VaultDiskStats {
    return {
      bytesFetched: this.meter.bytesRead,
      requests: this.meter.requests,
      ...this.counts,
      cacheBytes: this.pieces.weight,
      cacheHighWaterBytes: this.pieces.highWater,
      tablesRead: this.source.checked.tables - this.tablesBefore,
    };
  }

  /** Settles when no prefetch is in flight (tests; a caller closing the disk). */
  async idle(): Promise<void> {
    await this.prefetching;
  }

  private get what(): string {
    return `the disk of backup ${this.backupId}`;
  }

  /** The part [start, end) of a read that lies in `page`, copied into `out` (which begins at `position` = start of the read). */
  private async readPageInto(page: number, start: number, end: number, out: Buffer): Promise<void> {
    const pageStart = page * this.pageSize;
    const from = Math.max(start, pageStart);
    const to = Math.min(end, pageStart + this.source.pageLength(page));
    try {
      const entry = await this.entryOf(page);
      if (!entry) {
        this.counts.holeReads++;
        return; // a hole: out is zeros already
      }
      const pieces = this.source.pieces(entry);
      const touched: number[] = [];
      pieces.forEach((p, k) => {
        if (pageStart + p.at < to && pageStart + p.at + p.length > from) touched.push(k);
      });
      const bufs = await this.piecesOf(entry, pieces, touched);
      touched.forEach((k, j) => {
        const buf = bufs[j];
        if (!buf) return; // a zero piece
        const pieceStart = pageStart + pieces[k].at;
        const a = Math.max(from, pieceStart);
        const b = Math.min(to, pieceStart + pieces[k].length);
        buf.copy(out, a - start, a - pieceStart, b - pieceStart);
      });
    } catch (err) {
      throw this.failure(from, to, page, err);
    }
  }

  /** The pieces `touched` of a page: zero pieces undefined, cached ones at once, the rest fetched (one readPieces for those not in flight). */
  private async piecesOf(entry: PageRef, pieces: PagePiece[], touched: number[]): Promise<Array<Buffer | undefined>> {
    const got: Array<Buffer | Promise<Buffer> | undefined> = [];
    const missing: number[] = [];
    for (const k of touched) {
      if (pieces[k].zero) {
        this.counts.holeReads++;
        got.push(undefined);
        continue;
      }
      const key = pieceKey(entry.page, k);
      const held = this.pieces.get(key) ?? this.fetching.get(key);
      if (held) this.counts.cacheHits++;
      else missing.push(k);
      got.push(held);
    }
    if (missing.length > 0) {
      const fetched = this.fetch(entry, pieces, missing);
      touched.forEach((k, j) => {
        const m = missing.indexOf(k);
        if (m >= 0) got[j] = fetched.then((bufs) => bufs[m]);
      });
    }
    return Promise.all(got);
  }

  /**
   * Fetches pieces `which` of a page with one readPieces (adjacent blocks in one GET), checks their
   * lengths and keeps them in the cache. Each piece is in `fetching` meanwhile, so a concurrent read joins.
   */
  private fetch(entry: PageRef, pieces: PagePiece[], which: number[]): Promise<Buffer[]> {
    const all = this.source.readPieces(entry, which).then((bufs) => {
      if (bufs.length !== which.length) throw new PagewiseError('Corrupt', `${bufs.length} pieces came back for ${which.length} asked`);
      bufs.forEach((b, j) => {
        const expected = pieces[which[j]].length;
        if (b.length !== expected) throw new PagewiseError('Corrupt', `piece ${which[j]} is ${b.length} bytes, its table says ${expected}`);
      });
      this.counts.piecesFetched += which.length;
      bufs.forEach((b, j) => this.pieces.set(pieceKey(entry.page, which[j]), b));
      return bufs;
    });
    const settled = all.finally(() => which.forEach((k) => this.fetching.delete(pieceKey(entry.page, k))));
    settled.catch(() => undefined); // the readers awaiting `all` see the failure
    which.forEach((k, j) => {
      const one = all.then((bufs) => bufs[j]);
      one.catch(() => undefined); // handled by whoever joins it
      this.fetching.set(pieceKey(entry.page, k), one);
    });
    return all;
  }

  /** The entry of a page, or undefined for a hole: its group's table (kept in the small LRU), binary-searched. */
  private async entryOf(page: number): Promise<PageRef | undefined> {
    const entries = await this.table(Math.floor(page / this.source.groupPages));
    let lo = 0;
    let hi = entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const p = entries[mid].page;
      if (p === page) return entries[mid];
      if (p < page) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** A group's entries, read once while kept (concurrent reads share the read), checked to be a sound index. */
  private table(group: number): Promise<PageRef[]> {
    const kept = this.tables.get(group);
    if (kept) return kept;
    const reading = this.source.groupEntries(group).then((entries) => {
      this.checkTable(group, entries);
      return entries;
    });
    reading.catch(() => {
      if (this.tables.peek(group) === reading) this.tables.delete(group); // the next read tries again
    });
    this.tables.set(group, reading);
    return reading;
  }

  /** What the binary search and the piece arithmetic rely on: pages ascending inside the group, pieces tiling each page. */
  private checkTable(group: number, entries: PageRef[]): void {
    const first = group * this.source.groupPages;
    const limit = Math.min(first + this.source.groupPages, this.source.pageCount);
    let previous = first - 1;
    for (const e of entries) {
      if (!Number.isSafeInteger(e.page) || e.page <= previous || e.page >= limit) {
        throw new PagewiseError('Corrupt', `the page table of group ${group} lists page ${e.page} out of order or outside pages ${first}–${limit - 1}`);
      }
      previous = e.page;
      let at = 0;
      for (const p of this.source.pieces(e)) {
        if (p.at !== at || !(p.length > 0)) throw new PagewiseError('Corrupt', `the page table of group ${group}: page ${e.page}'s pieces do not tile the page (a piece at ${p.at}, ${at} expected)`);
        at += p.length;
      }
      if (at !== this.source.pageLength(e.page)) throw new PagewiseError('Corrupt', `the page table of group ${group}: page ${e.page}'s pieces hold ${at} bytes, the page ${this.source.pageLength(e.page)}`);
    }
  }

  /** A read that just ended at `end` in sequence: the next piece after it fetched ahead (one prefetch at a time; a failure is left to the read that needs it). */
  private prefetchAfter(end: number): void {
    if (this.prefetching || end >= this.size) return;
    this.prefetching = (async () => {
      let next = await this.locate(end);
      if (next.start < end) {
        if (next.stop >= this.size) return;
        next = await this.locate(next.stop); // the read ended inside a piece it fetched: the one after it
      }
      if (!next.entry) return;
      const pieces = this.source.pieces(next.entry);
      const key = pieceKey(next.page, next.index);
      if (pieces[next.index].zero || this.pieces.has(key) || this.fetching.has(key)) return;
      await this.fetch(next.entry, pieces, [next.index]);
    })()
      .catch(() => undefined)
      .finally(() => (this.prefetching = undefined));
  }

  /** The piece holding disk position `at` (a hole page counts as one piece). */
  private async locate(at: number): Promise<Located> {
    const page = Math.floor(at / this.pageSize);
    const pageStart = page * this.pageSize;
    const entry = await this.entryOf(page);
    if (!entry) return { page, index: 0, start: pageStart, stop: pageStart + this.source.pageLength(page) };
    const pieces = this.source.pieces(entry);
    const index = pieces.findIndex((p) => pageStart + p.at + p.length > at);
    return { page, entry, index, start: pageStart + pieces[index].at, stop: pageStart + pieces[index].at + pieces[index].length };
  }

  /** A failed read as Corrupt naming the disk bytes and page; an unreachable vault or an abort keeps its code. */
  private failure(from: number, to: number, page: number, err: unknown): PagewiseError {
    const message = err instanceof Error ? err.message : String(err);
    return new PagewiseError(keptCode(err) ?? 'Corrupt', `disk bytes ${from}–${to - 1} (page ${page}): ${message}`, { cause: err });
  }
}

function* pagesFrom(first: number, last: number): Generator<number> {
  for (let page = first; page <= last; page++) yield page;
}

function pieceKey(page: number, piece: number): string {
  return `${page}:${piece}`;
}

/** VaultUnreachable or Aborted anywhere in the cause chain: not damage, and a caller treats it so. */
function keptCode(err: unknown): PagewiseErrorCode | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (isPagewiseError(e, 'VaultUnreachable') || isPagewiseError(e, 'Aborted')) return e.code;
  }
  return undefined;
}

function checkCacheBytes(cacheBytes: number, pageSize: number): void {
  if (!Number.isSafeInteger(cacheBytes) || cacheBytes <= 0) throw new PagewiseError('BadCacheSize', `the file cache must be a positive whole number of bytes, not ${cacheBytes}`);
  if (cacheBytes < pageSize) {
    throw new PagewiseError('BadCacheSize', `a file cache of ${cacheBytes} bytes cannot hold one page of this backup (${pageSize} bytes): give at least the page size`);
  }
}
