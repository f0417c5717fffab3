/**
 * Page arithmetic over a disk: the disk is cut into pages of the account's page size; a page's data is
 * the allocated sub-ranges that fall inside it (everything else in the page reads as zeros).
 */
import { PagewiseError } from '../errors';
import { MAX_PAGE_SIZE, SECTOR } from '../limits';

/** A byte range [offset, offset + length). */
export interface ByteRange {
  offset: number;
  length: number;
}

export function validatePageSize(pageSize: number): number {
  if (!Number.isSafeInteger(pageSize) || pageSize < SECTOR || pageSize % SECTOR !== 0) {
    throw new PagewiseError('BadPageSize', `page size ${pageSize} is not a positive multiple of 512 bytes`);
  }
  if (pageSize > MAX_PAGE_SIZE) {
    throw new PagewiseError('BadPageSize', `page size ${pageSize} exceeds the limit of ${MAX_PAGE_SIZE} bytes (100 MiB)`);
  }
  return pageSize;
}

export class PageGrid {
  readonly pageCount: number;
  constructor(readonly diskBytes: number, readonly pageSize: number) {
    this.pageCount = Math.ceil(diskBytes / pageSize);
  }

  pageStart(page: number): number {
    return page * this.pageSize;
  }

  pageLength(page: number): number {
    return Math.min(this.pageSize, this.diskBytes - page * this.pageSize);
  }

  pageOf(offset: number): number {
    return Math.floor(offset / this.pageSize);
  }
}

/**
 * Groups ascending, non-overlapping allocated ranges by page: yields each page that holds allocated bytes
 * together with its sub-ranges, relative to the disk. Ranges spanning pages are split at page borders.
 */
export function* pagesOfRanges(grid: PageGrid, ranges: Iterable<ByteRange>): Generator<PageRanges> {
  const assembler = new PageAssembler(grid);
  for (const range of ranges) yield* assembler.push(range);
  yield* assembler.flush();
}

/** The same over a lazy listing, so a window's ranges are never all held in memory. */
export async function* pagesOfRangesAsync(grid: PageGrid, ranges: AsyncIterable<ByteRange>): AsyncGenerator<PageRanges> {
  const assembler = new PageAssembler(grid);
  for await (const range of ranges) yield* assembler.push(range);
  yield* assembler.flush();
}

export interface PageRanges {
  page: number;
  ranges: ByteRange[];
}

/** Cuts a stream of ranges into pages; a page is complete once a range starts past it. */
class PageAssembler {
  private current: PageRanges | undefined;
  constructor(private readonly grid: PageGrid) {}

  *push(range: ByteRange): Generator<PageRanges> {
    let offset = range.offset;
    const end = Math.min(range.offset + range.length, this.grid.diskBytes);
    while (offset < end) {
      const page = this.grid.pageOf(offset);
      const pageEnd = Math.min(this.grid.pageStart(page) + this.grid.pageSize, end);
      if (this.current && this.current.page !== page) {
        yield this.current;
        this.current = undefined;
      }
      this.current ??= { page, ranges: [] };
      const last = this.current.ranges[this.current.ranges.length - 1];
      if (last && last.offset + last.length === offset) last.length += pageEnd - offset;
      else this.current.ranges.push({ offset, length: pageEnd - offset });
      offset = pageEnd;
    }
  }

  *flush(): Generator<PageRanges> {
    if (this.current) yield this.current;
    this.current = undefined;
  }
}

/** Sorts, clips and merges ranges so that later steps may rely on ascending, disjoint input. */
export function normalizeRanges(ranges: ByteRange[], limit: number): ByteRange[] {
  const sorted = ranges
    .map((r) => ({ offset: Math.max(0, r.offset), length: Math.min(r.offset + r.length, limit) - Math.max(0, r.offset) }))
    .filter((r) => r.length > 0)
    .sort((a, b) => a.offset - b.offset);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, r.offset + r.length - last.offset);
    } else out.push({ ...r });
  }
  return out;
}

/** Groups pages into runs of consecutive page indexes, at most `maxPages` long (fetched together). */
export async function* runsOf<T extends { page: number }>(pages: AsyncIterable<T> | Iterable<T>, maxPages: number): AsyncGenerator<T[]> {
  let run: T[] = [];
  for await (const p of pages) {
    if (run.length > 0 && (run.length >= maxPages || p.page !== run[run.length - 1].page + 1)) {
      yield run;
      run = [];
    }
    run.push(p);
  }
  if (run.length > 0) yield run;
}
