/**
 * The demo's second disk state: writes and clears a few ranges of the page blob (a few percent of its
 * pages) and works out what an incremental backup of it must read — the allocated bytes, in the new
 * state, of every page a write or a clear touched.
 */
import type { PageBlobClient } from '@azure/storage-blob';
import { regionBytes } from '../testkit/sample-disk';

interface Range {
  offset: number;
  length: number;
}

export interface DiskChange {
  /** Pages (of the backup's page size) a write or a clear touched. */
  touchedPages: number;
  /** Bytes written with new content, and bytes cleared (deallocated). */
  bytesWritten: number;
  bytesCleared: number;
  /** Allocated bytes of the touched pages after the change: what the incremental must read. */
  expectedBytesRead: number;
}

const SECTOR = 512;
const KiB = 1024;

async function allocatedRanges(client: PageBlobClient, diskBytes: number): Promise<Range[]> {
  const ranges: Range[] = [];
  for await (const page of client.listPageRanges(0, diskBytes).byPage({ maxPageSize: 5000 })) {
    for (const r of page.pageRange ?? []) ranges.push({ offset: r.start, length: r.end + 1 - r.start });
  }
  return ranges;
}

/** Bytes of `ranges` inside [from, to). */
function overlap(ranges: Range[], from: number, to: number): number {
  let bytes = 0;
  for (const r of ranges) bytes += Math.max(0, Math.min(to, r.offset + r.length) - Math.max(from, r.offset));
  return bytes;
}

/** The allocation after writing `w` (now allocated) or clearing `c` (now a hole), as sorted disjoint ranges. */
function applyToAllocation(ranges: Range[], change: Range, allocate: boolean): Range[] {
  const end = change.offset + change.length;
  const out: Range[] = [];
  for (const r of ranges) {
    const rEnd = r.offset + r.length;
    if (rEnd <= change.offset || r.offset >= end) out.push(r);
    else {
      if (r.offset < change.offset) out.push({ offset: r.offset, length: change.offset - r.offset });
      if (rEnd > end) out.push({ offset: end, length: rEnd - end });
    }
  }
  if (allocate) out.push(change);
  return out.sort((a, b) => a.offset - b.offset);
}

/**
 * Touches about `fraction` of the disk's pages, spread evenly over the pages that hold data plus one
 * page in a hole: most get new bytes (64 KiB … 1 MiB, sector-aligned, inside the page), every third
 * loses up to 256 KiB of its data to a Clear Pages. `seed` picks the new bytes (another seed, other bytes).
 */
export async function changeDisk(client: PageBlobClient, diskBytes: number, pageSize: number, fraction: number, seed = 70_000): Promise<DiskChange> {
  let allocation = await allocatedRanges(client, diskBytes);
  const pages = Math.ceil(diskBytes / pageSize);
  const pageEnd = (p: number) => Math.min(diskBytes, (p + 1) * pageSize);
  const withData = [...Array(pages).keys()].filter((p) => overlap(allocation, p * pageSize, pageEnd(p)) > 0);
  const hole = [...Array(pages).keys()].find((p) => overlap(allocation, p * pageSize, pageEnd(p)) === 0);
  const wanted = Math.max(2, Math.round(pages * fraction));
  const step = Math.max(1, Math.floor(withData.length / wanted));
  const chosen = withData.filter((_, k) => k % step === 0).slice(0, wanted - (hole === undefined ? 0 : 1));

  const touched = new Set<number>();
  let bytesWritten = 0;
  let bytesCleared = 0;
  const write = async (page: number, k: number) => {
    const room = pageEnd(page) - page * pageSize;
    const length = Math.min(room, Math.max(SECTOR, Math.floor(((64 * KiB) << (k % 5)) / SECTOR) * SECTOR));
    const offset = page * pageSize + Math.floor(((room - length) * ((k * 37) % 100)) / 100 / SECTOR) * SECTOR;
    await client.uploadPages(regionBytes({ offset, length, kind: 'random', seed: seed + k }, 0, length), offset, length);
    allocation = applyToAllocation(allocation, { offset, length }, true);
    bytesWritten += length;
    touched.add(page);
  };
  for (const [k, page] of chosen.entries()) {
    if (k % 3 === 2) {
      // Clear the start of the page's first allocated range: the diff reports it, the page is read again.
      const first = allocation.find((r) => r.offset + r.length > page * pageSize && r.offset < pageEnd(page))!;
      const offset = Math.max(first.offset, page * pageSize);
      const length = Math.min(256 * KiB, Math.min(first.offset + first.length, pageEnd(page)) - offset);
      await client.clearPages(offset, length);
      allocation = applyToAllocation(allocation, { offset, length }, false);
      bytesCleared += length;
      touched.add(page);
    } else {
      await write(page, k);
    }
  }
  if (hole !== undefined) await write(hole, chosen.length); // new data where there was none

  let expectedBytesRead = 0;
  for (const p of touched) expectedBytesRead += overlap(allocation, p * pageSize, pageEnd(p));
  return { touchedPages: touched.size, bytesWritten, bytesCleared, expectedBytesRead };
}
