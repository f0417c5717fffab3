/**
 * What changed on a source disk since its base snapshot: the service's page-range diff (Get Page Ranges
 * with prevsnapshot) listed window by window, and the pages those ranges touch (FORMAT.md §21.2).
 */
import { PagewiseError } from '../errors';
import { accountGate } from '../storage/account-gate';
import { isSnapshotTime } from '../storage/clients';
import { translateStorageError } from '../storage/storage-errors';
import { ByteRange, PageGrid } from './page-grid';
import { LIST_WINDOW_BYTES, SourceDisk } from './source-disk';

/** A byte range written (`cleared: false`) or cleared (`cleared: true`) since the base. */
export interface ChangedRange {
  offset: number;
  length: number;
  cleared: boolean;
}

/** The base a diff is taken against: a snapshot of the same blob, or (managed disks) its grant's URL. */
export interface DiffBase {
  snapshot: string;
  /** A managed-disk base: the read SAS URL of its snapshot (a secret: never in a message). */
  url?: string;
}

/** Listing sizes; the defaults suit the service, tests make them small to cross window and page borders. */
export interface DiffListingOptions {
  /** Bytes of disk per listing request (series). Default LIST_WINDOW_BYTES, or MANAGED_WINDOW_BYTES for a grant. */
  listWindowBytes?: number;
  /** Ranges per response page of the paged listing. Default 5000. */
  maxPageSize?: number;
}

/**
 * Window of the managed-disk diff (Get Page Ranges with prevsnapshoturl), which the SDK offers unpaged:
 * the whole window comes back in one response. The service warns that an unpaged listing of a
 * fragmented blob can time out; 1 GiB keeps a response to ~16 K ranges for writes of 64 KiB, some
 * hundreds for a typical day of a VM, at one request per GiB of disk (1 024 for 1 TiB: seconds).
 */
export const MANAGED_WINDOW_BYTES = 1024 * 1024 * 1024;

const PAGE_SIZE = 5000;

/**
 * The ranges changed in `current` since `base` inside `window` (default the whole disk), ascending,
 * disjoint, clipped to the window, adjacent ranges of one kind joined (so the listing's windows do not
 * show). Reads are pinned to `current`'s ETag. A base that is gone throws BaseUnusable with reason
 * `base-snapshot-gone`; a blob replaced since the base (Put Blob, Copy Blob) BaseUnusable `base-replaced`.
 */
export async function* changedRanges(current: SourceDisk, base: DiffBase, window?: ByteRange, options: DiffListingOptions = {}): AsyncGenerator<ChangedRange> {
  const managed = current.managedDiskGrant;
  if (managed && !base.url) throw new PagewiseError('BadInput', 'a managed-disk diff needs the read URL of its base snapshot');
  if (!managed && !isSnapshotTime(base.snapshot)) throw new PagewiseError('BadInput', 'the base of a diff must be a snapshot of the same blob (a snapshot time)');
  const step = options.listWindowBytes ?? (managed ? MANAGED_WINDOW_BYTES : LIST_WINDOW_BYTES);
  if (!Number.isSafeInteger(step) || step < 512 || step % 512 !== 0) throw new RangeError(`listing window ${step} is not a positive multiple of 512`);
  const from = window?.offset ?? 0;
  const end = Math.min(from + (window?.length ?? current.diskBytes), current.diskBytes);
  let held: ChangedRange | undefined;
  let reached = from;
  for (let start = from; start < end; start += step) {
    const stop = Math.min(start + step, end);
    const listing = managed ? managedWindow(current, base, start, stop) : pagedWindow(current, base.snapshot, start, stop, options.maxPageSize ?? PAGE_SIZE);
    for await (const found of listing) {
      // Clip to the window and to what was yielded already (ascending, disjoint whatever the service says).
      const offset = Math.max(found.offset, start, reached);
      const rangeEnd = Math.min(found.offset + found.length, stop);
      if (rangeEnd <= offset) continue;
      reached = rangeEnd;
      if (held && held.cleared === found.cleared && held.offset + held.length === offset) {
        held.length += rangeEnd - offset;
        continue;
      }
      if (held) yield held;
      held = { offset, length: rangeEnd - offset, cleared: found.cleared };
    }
  }
  if (held) yield held;
}

/** One window through the paged listing (listPageRangesDiff), each page's changed and cleared ranges merged ascending. */
async function* pagedWindow(current: SourceDisk, prevSnapshot: string, start: number, stop: number, maxPageSize: number): AsyncGenerator<ChangedRange> {
  const gate = accountGate(current.parsed.url.host, current.parsed.account);
  const pages = current.client
    .listPageRangesDiff(start, stop - start, prevSnapshot, { conditions: { ifMatch: current.identity.etag || undefined } })
    .byPage({ maxPageSize });
  for (;;) {
    let next;
    try {
      next = await gate.run(() => pages.next());
    } catch (err) {
      throw await diffFailure(err, current, { snapshot: prevSnapshot });
    }
    if (next.done) return;
    const page = next.value;
    // The service's pageRange and clearRange are inclusive [start, end].
    yield* ascending([
      ...(page.pageRange ?? []).map((r) => ({ offset: r.start, length: r.end - r.start + 1, cleared: false })),
      ...(page.clearRange ?? []).map((r) => ({ offset: r.start, length: r.end - r.start + 1, cleared: true })),
    ]);
  }
}

/**
 * One window through the unpaged managed-disk diff. Should the service still cut the answer short (a
 * continuation token), the rest of the window is asked for from the end of what came back.
 */
async function* managedWindow(current: SourceDisk, base: DiffBase, start: number, stop: number): AsyncGenerator<ChangedRange> {
  const gate = accountGate(current.parsed.url.host, current.parsed.account);
  let from = start;
  while (from < stop) {
    let response;
    try {
      response = await gate.run(() =>
        current.client.getPageRangesDiffForManagedDisks(from, stop - from, base.url!, { conditions: { ifMatch: current.identity.etag || undefined } }),
      );
    } catch (err) {
      throw await diffFailure(err, current, base);
    }
    // This SDK call converts the inclusive [start, end] to { offset, count: end − start }: one byte short.
    const inclusive = (r: { offset: number; count?: number }, cleared: boolean): ChangedRange => {
      if (r.count === undefined) throw new PagewiseError('SourceUnreachable', `the page-range diff of ${current.identity.url} returned a range without an end`);
      return { offset: r.offset, length: r.count + 1, cleared };
    };
    const found = ascending([...(response.pageRange ?? []).map((r) => inclusive(r, false)), ...(response.clearRange ?? []).map((r) => inclusive(r, true))]);
    yield* found;
    if (!(response as { continuationToken?: string }).continuationToken) return;
    const last = found.reduce((max, r) => Math.max(max, r.offset + r.length), from);
    if (last <= from) throw new PagewiseError('SourceUnreachable', `the service cut the page-range diff of ${current.identity.url} short without returning a range`);
    from = last;
  }
}

function ascending(ranges: ChangedRange[]): ChangedRange[] {
  return ranges.sort((a, b) => a.offset - b.offset);
}

/**
 * A failed diff in Pagewise's terms. 404 and 409 can mean the base is gone, the blob was replaced since
 * the base, or the disk itself is gone; the base snapshot's HEAD tells which (a managed-disk base has no
 * snapshot of this blob to HEAD: 404 is its base gone).
 */
async function diffFailure(err: unknown, current: SourceDisk, base: DiffBase): Promise<Error> {
  const rest = err as { statusCode?: number; code?: string; details?: { errorCode?: string } } | undefined;
  const status = rest?.statusCode;
  const code = rest?.details?.errorCode ?? rest?.code;
  const what = `the source disk ${current.identity.url}`;
  if (status === 404 || status === 409 || code === 'PreviousSnapshotNotFound') {
    let baseGone: boolean;
    if (base.url !== undefined) {
      baseGone = status === 404 || code === 'PreviousSnapshotNotFound';
    } else {
      try {
        baseGone = !(await current.snapshotExists(base.snapshot));
      } catch (headFailure) {
        return headFailure as Error;
      }
    }
    if (baseGone) {
      return new PagewiseError('BaseUnusable', `the base snapshot ${base.url === undefined ? base.snapshot : '(managed disk)'} of ${what} no longer exists`, { cause: err, reason: 'base-snapshot-gone' });
    }
    if (status === 409) {
      return new PagewiseError('BaseUnusable', `${what} was replaced since its base snapshot${base.url === undefined ? ` ${base.snapshot}` : ''} (${code ?? 'HTTP 409'}): its pages cannot be diffed against it`, { cause: err, reason: 'base-replaced' });
    }
  }
  if (status === 400) {
    // A refused diff (e.g. a base newer than the disk) fails the same way every time: not "unreachable".
    return new PagewiseError('BadInput', `the service refused the page-range diff of ${what} (${code ?? 'HTTP 400'})`, { cause: err });
  }
  return translateStorageError(err, what, 'SourceNotFound', 'SourceUnreachable');
}

/**
 * The pages touched by any changed or cleared range, as coalesced runs `[firstPage, pageCount]`,
 * ascending. `ranges` must be ascending (changedRanges yields them so); past the disk's end is ignored.
 */
export async function* changedPages(ranges: AsyncIterable<ChangedRange>, grid: PageGrid): AsyncGenerator<[number, number]> {
  let run: [number, number] | undefined;
  for await (const r of ranges) {
    const end = Math.min(r.offset + r.length, grid.diskBytes);
    if (r.length <= 0 || end <= r.offset) continue;
    const first = grid.pageOf(r.offset);
    const last = grid.pageOf(end - 1);
    if (run && first < run[0]) throw new Error(`changedPages: ranges out of order (page ${first} after page ${run[0]})`);
    if (run && first <= run[0] + run[1]) {
      run[1] = Math.max(run[1], last - run[0] + 1);
      continue;
    }
    if (run) yield run;
    run = [first, last - first + 1];
  }
  if (run) yield run;
}
