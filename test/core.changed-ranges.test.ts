/** The source diff (core/source/changed-ranges.ts) against a real Azurite: ranges, windows, paging, unusable bases. */
import { PageBlobClient } from '@azure/storage-blob';
import { isPagewiseError, PagewiseError, SourceDisk } from '../core';
import { ChangedRange, changedPages, changedRanges } from '../core/source/changed-ranges';
import { PageGrid } from '../core/source/page-grid';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.stop();
});

async function write(client: PageBlobClient, offset: number, length: number, fill = 0xab): Promise<void> {
  await client.uploadPages(Buffer.alloc(length, fill), offset, length);
}

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function failure(promise: Promise<unknown>): Promise<PagewiseError> {
  try {
    await promise;
  } catch (err) {
    if (isPagewiseError(err)) return err;
    throw err;
  }
  throw new Error('expected a PagewiseError');
}

/** A disk with two written regions, its snapshot (the base), then writes, an overwrite and a clear. */
async function diskWithChanges(name: string): Promise<{ client: PageBlobClient; base: string }> {
  const client = env.sourceClient(name);
  await client.create(8 * MiB);
  await write(client, 0, 64 * KiB);
  await write(client, 1 * MiB, 128 * KiB);
  const base = (await client.createSnapshot()).snapshot!;
  await write(client, 512 * KiB, 4 * KiB, 0x01); // new
  await write(client, 1 * MiB + 64 * KiB, 4 * KiB, 0x02); // overwrites part of an old range
  await client.clearPages(0, 32 * KiB); // clears part of an old range
  await write(client, 8 * MiB - 512, 512, 0x03); // the last sector
  return { client, base };
}

const EXPECTED: ChangedRange[] = [
  { offset: 0, length: 32 * KiB, cleared: true },
  { offset: 512 * KiB, length: 4 * KiB, cleared: false },
  { offset: 1 * MiB + 64 * KiB, length: 4 * KiB, cleared: false },
  { offset: 8 * MiB - 512, length: 512, cleared: false },
];

test('writes and clears between two snapshots come back as exact changed and cleared ranges, and as the pages they touch', async () => {
  const { client, base } = await diskWithChanges('diff-basic.vhd');
  const current = (await client.createSnapshot()).snapshot!;
  const disk = await SourceDisk.open({ url: env.sourceUrl('diff-basic.vhd') }, undefined, current);
  expect(await all(changedRanges(disk, { snapshot: base }))).toEqual(EXPECTED);
  // 64 KiB pages: 0 (cleared), 8, 17 and the last (127).
  expect(await all(changedPages(changedRanges(disk, { snapshot: base }), new PageGrid(disk.diskBytes, 64 * KiB)))).toEqual([[0, 1], [8, 1], [17, 1], [127, 1]]);
  // 1 MiB pages: the first two runs meet (pages 0 and 1 are consecutive).
  expect(await all(changedPages(changedRanges(disk, { snapshot: base }), new PageGrid(disk.diskBytes, 1 * MiB)))).toEqual([[0, 2], [7, 1]]);
  // The live blob against the same base: the same ranges (nothing written since the second snapshot).
  const live = await SourceDisk.open({ url: env.sourceUrl('diff-basic.vhd') });
  expect(await all(changedRanges(live, { snapshot: base }))).toEqual(EXPECTED);
  // Against itself: nothing changed.
  expect(await all(changedRanges(disk, { snapshot: current }))).toEqual([]);
});

test('a window clips the ranges it cuts, and listing windows that cut a range join it again', async () => {
  const client = env.sourceClient('diff-window.vhd');
  await client.create(8 * MiB);
  await write(client, 0, 512);
  const base = (await client.createSnapshot()).snapshot!;
  await write(client, 1 * MiB, 2 * MiB);
  await client.clearPages(0, 512);
  const disk = await SourceDisk.open({ url: env.sourceUrl('diff-window.vhd') });
  expect(await all(changedRanges(disk, { snapshot: base }, { offset: 2 * MiB, length: 4 * MiB }))).toEqual([{ offset: 2 * MiB, length: 1 * MiB, cleared: false }]);
  expect(await all(changedRanges(disk, { snapshot: base }, { offset: 1536 * KiB, length: 512 * KiB }))).toEqual([{ offset: 1536 * KiB, length: 512 * KiB, cleared: false }]);
  // 384 KiB listing windows cut [1 MiB, 3 MiB) five times: still one range, and the clear before it.
  const whole = [
    { offset: 0, length: 512, cleared: true },
    { offset: 1 * MiB, length: 2 * MiB, cleared: false },
  ];
  expect(await all(changedRanges(disk, { snapshot: base }, undefined, { listWindowBytes: 384 * KiB }))).toEqual(whole);
  expect(await all(changedRanges(disk, { snapshot: base }, undefined, { listWindowBytes: 384 * KiB, maxPageSize: 1 }))).toEqual(whole);
  // A window past the disk's end lists nothing; one running past it stops at the end.
  expect(await all(changedRanges(disk, { snapshot: base }, { offset: 8 * MiB, length: MiB }))).toEqual([]);
  expect(await all(changedRanges(disk, { snapshot: base }, { offset: 2 * MiB, length: 64 * MiB }))).toEqual([{ offset: 2 * MiB, length: 1 * MiB, cleared: false }]);
});

test('many ranges come back whole through the paged listing (several response pages per window)', async () => {
  const client = env.sourceClient('diff-paged.vhd');
  await client.create(4 * MiB);
  const base = (await client.createSnapshot()).snapshot!;
  const expected: ChangedRange[] = [];
  for (let k = 0; k < 40; k++) {
    // A sector written after the base, every 64 KiB: 40 separate ranges.
    await write(client, k * 64 * KiB, 512, k + 1);
    expected.push({ offset: k * 64 * KiB, length: 512, cleared: false });
  }
  const disk = await SourceDisk.open({ url: env.sourceUrl('diff-paged.vhd') });
  const segments = jest.spyOn(PageBlobClient.prototype as unknown as { listPageRangesDiffSegment: () => unknown }, 'listPageRangesDiffSegment');
  try {
    expect(await all(changedRanges(disk, { snapshot: base }, undefined, { maxPageSize: 7 }))).toEqual(expected);
    // 40 ranges at 7 a page: 6 requests (the last page has 5 and no marker).
    expect(segments).toHaveBeenCalledTimes(6);
    segments.mockClear();
    // Two listing windows of 2 MiB: 32 ranges (5 pages) and 8 (2 pages).
    expect(await all(changedRanges(disk, { snapshot: base }, undefined, { maxPageSize: 7, listWindowBytes: 2 * MiB }))).toEqual(expected);
    expect(segments).toHaveBeenCalledTimes(7);
  } finally {
    segments.mockRestore();
  }
  expect(await all(changedPages(changedRanges(disk, { snapshot: base }), new PageGrid(disk.diskBytes, 64 * KiB)))).toEqual([[0, 40]]);
});

test('a base snapshot that is gone is BaseUnusable (base-snapshot-gone); snapshotExists says so', async () => {
  const { client, base } = await diskWithChanges('diff-gone.vhd');
  const disk = await SourceDisk.open({ url: env.sourceUrl('diff-gone.vhd') });
  expect(await disk.snapshotExists(base)).toBe(true);
  await client.withSnapshot(base).delete();
  expect(await disk.snapshotExists(base)).toBe(false);
  const err = await failure(all(changedRanges(disk, { snapshot: base })));
  expect(err.code).toBe('BaseUnusable');
  expect(err.reason).toBe('base-snapshot-gone');
  expect(err.message).toContain(`the base snapshot ${base}`);
  expect(err.message).not.toMatch(/sig=/);
  await expect(disk.snapshotExists('')).rejects.toThrow(/is not a snapshot time/);
});

test('a blob replaced by Put Blob since its base is BaseUnusable (base-replaced)', async () => {
  const client = env.sourceClient('diff-replaced.vhd');
  await client.create(4 * MiB);
  await write(client, 0, 64 * KiB);
  const base = (await client.createSnapshot()).snapshot!;
  await client.create(4 * MiB); // Put Blob: a new blob under the same name
  await write(client, 0, 64 * KiB);
  const disk = await SourceDisk.open({ url: env.sourceUrl('diff-replaced.vhd') });
  expect(await disk.snapshotExists(base)).toBe(true);
  const err = await failure(all(changedRanges(disk, { snapshot: base })));
  expect(err.code).toBe('BaseUnusable');
  expect(err.reason).toBe('base-replaced');
});

test('the diff is pinned to the ETag the disk was opened with', async () => {
  const client = env.sourceClient('diff-pinned.vhd');
  await client.create(4 * MiB);
  const base = (await client.createSnapshot()).snapshot!;
  const disk = await SourceDisk.open({ url: env.sourceUrl('diff-pinned.vhd') });
  await write(client, 0, 512);
  const err = await failure(all(changedRanges(disk, { snapshot: base })));
  expect(err.code).toBe('SourceChanged');
});

test('a managed-disk grant diffs through the base snapshot URL (unpaged, window by window)', async () => {
  const { client, base } = await diskWithChanges('diff-managed.vhd');
  const grant = { url: env.sourceUrl('diff-managed.vhd'), managedDiskGrant: true };
  const disk = await SourceDisk.open(grant);
  expect(disk.managedDiskGrant).toBe(true);
  const baseUrl = `${env.sourceUrl('diff-managed.vhd')}&snapshot=${encodeURIComponent(base)}`;
  const unpaged = jest.spyOn(PageBlobClient.prototype, 'getPageRangesDiffForManagedDisks');
  try {
    expect(await all(changedRanges(disk, { snapshot: base, url: baseUrl }))).toEqual(EXPECTED);
    expect(unpaged).toHaveBeenCalledTimes(1); // 8 MiB: one 1 GiB window
    unpaged.mockClear();
    expect(await all(changedRanges(disk, { snapshot: base, url: baseUrl }, undefined, { listWindowBytes: 1 * MiB }))).toEqual(EXPECTED);
    expect(unpaged).toHaveBeenCalledTimes(8);
  } finally {
    unpaged.mockRestore();
  }
  await expect(all(changedRanges(disk, { snapshot: base }))).rejects.toThrow(/needs the read URL of its base snapshot/);
  await client.withSnapshot(base).delete();
  const err = await failure(all(changedRanges(disk, { snapshot: base, url: baseUrl })));
  expect(err.code).toBe('BaseUnusable');
  expect(err.reason).toBe('base-snapshot-gone');
  expect(err.message).not.toMatch(/sig=/);
});

test('changedPages coalesces touching and overlapping runs and ignores what lies past the disk', async () => {
  async function* of(...ranges: Array<[number, number]>): AsyncGenerator<ChangedRange> {
    for (const [offset, length] of ranges) yield { offset, length, cleared: false };
  }
  const grid = new PageGrid(10 * 1000 + 24, 1024); // 10 pages, the last one short
  expect(await all(changedPages(of([0, 1], [1023, 2], [3000, 1], [4096, 1024], [5120, 1], [9999, 100]), grid))).toEqual([[0, 3], [4, 2], [9, 1]]);
  expect(await all(changedPages(of([20000, 512]), grid))).toEqual([]);
  await expect(all(changedPages(of([5000, 1], [0, 1]), grid))).rejects.toThrow(/out of order/);
});
