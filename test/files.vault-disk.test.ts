/**
 * The vault pseudo-disk against a real Azurite: random reads equal the image (v2 full and incremental, a
 * version-1 vault), holes cost no request, the bytes and requests fetched are exactly those of the pieces
 * touched, one fetch per piece however many reads want it, a sequential read prefetches the next piece, the
 * cache bound holds, a damaged pack byte is Corrupt naming the disk range, a cache below a page is refused.
 */
import { randomBytes } from 'node:crypto';
import { backupDisk, BackupRequest, BackupSource, isPagewiseError, openBackupSource, StorageLocation, StoreMeter, VaultDisk, VaultDiskStats } from '../core';
import { repackPacks } from '../core/prune/repack';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { Vault } from '../core/repo/vault';
import type { PageRecord2 } from '../core/repo/v2/records';
import type { PageEntry } from '../core/repo/page-table';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

const PAGE = 64 * KiB;
/** 8 MiB and a short last page of 20 KiB. */
const DISK_BYTES = 8 * MiB + 20 * KiB;

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

/** xorshift32: deterministic read positions. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

/** Compressible bytes (a block's stored size then differs from its plaintext size). */
function text(length: number): Buffer {
  const words = 'inode block journal superblock extent bitmap'.split(' ');
  const out = Buffer.alloc(length);
  let at = 0;
  for (let k = 0; at < length; k++) at += out.write(words[(k * 7) % words.length] + ' ', at, 'ascii');
  return out;
}

/** A source disk written from `image` (only the given ranges: the rest stays unallocated, holes). */
async function makeSource(name: string, image: Buffer, ranges: Array<[number, number]>): Promise<StorageLocation> {
  const blob = env.sourceClient(name);
  await blob.create(image.length);
  for (const [start, end] of ranges) for (let at = start; at < end; at += 4 * MiB) await blob.uploadPages(image.subarray(at, Math.min(end, at + 4 * MiB)), at, Math.min(end, at + 4 * MiB) - at);
  // Full permissions: an incremental's snapshot is taken and released through this URL.
  return { url: env.az.sasUrl('src', 'disks', name) };
}

/** The test image: random and text regions, allocated zeros (holes in the backup), a small write inside a page, a short last page. */
function makeImage(): { image: Buffer; ranges: Array<[number, number]> } {
  const image = Buffer.alloc(DISK_BYTES);
  const ranges: Array<[number, number]> = [
    [0, 1 * MiB],
    [1.5 * MiB, 2 * MiB + 128 * KiB],
    [3 * MiB, 3 * MiB + 128 * KiB], // written with zeros
    [5 * MiB + 4 * KiB, 5 * MiB + 12 * KiB],
    [8 * MiB - PAGE, DISK_BYTES],
  ];
  randomBytes(1 * MiB).copy(image, 0);
  text(640 * KiB).copy(image, 1.5 * MiB);
  randomBytes(8 * KiB).copy(image, 5 * MiB + 4 * KiB);
  randomBytes(PAGE + 20 * KiB).copy(image, 8 * MiB - PAGE);
  return { image, ranges };
}

function request(source: StorageLocation, vault: StorageLocation): BackupRequest {
  return { source, vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true };
}

async function expectReads(disk: VaultDisk, image: Buffer, seed: number, count: number): Promise<void> {
  const next = rng(seed);
  let lastEnd = -1;
  for (let k = 0; k < count; k++) {
    const length = 1 + next(k % 5 === 0 ? 3 * PAGE : 8 * KiB);
    let position = next(image.length - length + 1);
    if (position === lastEnd) position = Math.max(0, position - 1);
    lastEnd = position + length;
    const got = await disk.read(position, length);
    expect(got.equals(image.subarray(position, position + length))).toBe(true);
  }
}

function delta(after: VaultDiskStats, before: VaultDiskStats): { bytes: number; requests: number } {
  return { bytes: after.bytesFetched - before.bytesFetched, requests: after.requests - before.requests };
}

/** A disk over a source opened with its own meter, and another source of the backup to work out expectations with (its reads are not metered). */
async function meteredDisk(vault: StorageLocation, backupId: string, cacheBytes?: number): Promise<{ disk: VaultDisk; source: BackupSource }> {
  const meter: StoreMeter = { requests: 0, bytesRead: 0 };
  const metered = await openBackupSource(vault, backupId, env.userKey, { meter });
  return { disk: VaultDisk.over(metered, meter, { cacheBytes }), source: await openBackupSource(vault, backupId, env.userKey) };
}

/** Stored bytes of piece k of an entry (v1: its block; v2: its chunk's block) and where its block lies. */
function blockOf(entry: PageEntry | PageRecord2, k: number): { pack: string; offset: number; storedLength: number } {
  if ('chunks' in entry) return entry.chunks[k];
  return { pack: `segment ${entry.segment}`, offset: entry.offset, storedLength: entry.storedLength };
}

/**
 * What a read should fetch, worked out from the backup's own tables: the non-zero pieces it touches that
 * were not fetched before (`fetched`, updated), their stored bytes, and one request per stretch of
 * back-to-back blocks of one page.
 */
async function expectedFetch(source: BackupSource, fetched: Set<string>, position: number, length: number): Promise<{ bytes: number; requests: number }> {
  let bytes = 0;
  let requests = 0;
  for (let page = Math.floor(position / PAGE); page * PAGE < position + length; page++) {
    const entry = (await source.groupEntries(Math.floor(page / source.groupPages))).find((e) => e.page === page) as PageEntry | PageRecord2 | undefined;
    if (!entry) continue;
    let previous: { pack: string; end: number } | undefined;
    source.pieces(entry).forEach((p, k) => {
      const key = `${page}:${k}`;
      const touched = page * PAGE + p.at < position + length && page * PAGE + p.at + p.length > position;
      if (!touched || p.zero || fetched.has(key)) {
        previous = undefined;
        return;
      }
      fetched.add(key);
      const block = blockOf(entry, k);
      bytes += block.storedLength;
      if (!(previous && previous.pack === block.pack && previous.end === block.offset)) requests++;
      previous = { pack: block.pack, end: block.offset + block.storedLength };
    });
  }
  return { bytes, requests };
}

describe('a version-2 vault', () => {
  const { image, ranges } = makeImage();
  let fullId: string;
  let source: StorageLocation;

  beforeAll(async () => {
    source = await makeSource('vdisk.vhd', image, ranges);
    const result = await backupDisk(request(source, env.vault));
    expect(result).toMatchObject({ formatVersion: 2, kind: 'full' });
    fullId = result.backupId;
  });

  test('random reads (across pages, holes, zeros and the short last page) equal the image', async () => {
    const disk = await VaultDisk.open({ vault: env.vault, backupId: fullId, userKey: env.userKey });
    expect(disk).toMatchObject({ size: DISK_BYTES, pageSize: PAGE, backupId: fullId, formatVersion: 2 });
    await expectReads(disk, image, 1, 120);
    expect((await disk.read(DISK_BYTES - 20 * KiB, 20 * KiB)).equals(image.subarray(DISK_BYTES - 20 * KiB))).toBe(true);
    const s = disk.stats();
    expect(s.tablesRead).toBeGreaterThanOrEqual(1);
    expect(s.cacheBytes).toBeLessThanOrEqual(s.cacheHighWaterBytes);
    await expect(disk.read(DISK_BYTES - 10, 11)).rejects.toMatchObject({ code: 'BadInput' });
  });

  test('bytes and requests fetched are exactly those of the pieces a read touches; holes and zeros cost none', async () => {
    const { disk, source: src } = await meteredDisk(env.vault, fullId);
    const fetched = new Set<string>();
    // The first read, of a hole, reads the page table only.
    let before = disk.stats();
    expect((await disk.read(4 * MiB + 100, 3000)).equals(Buffer.alloc(3000))).toBe(true);
    let after = disk.stats();
    expect(delta(after, before).requests).toBe(1);
    expect(after).toMatchObject({ tablesRead: 1, holeReads: 1, piecesFetched: 0 });
    // Not one after another (a read starting where the last ended would prefetch).
    const reads: Array<[number, number]> = [
      [100 * KiB + 3, 5000],
      [1 * MiB - 2 * KiB, 8 * KiB], // the end of the random region into a hole page
      [5 * MiB + 6 * KiB, 100], // the small write inside a page
      [1.5 * MiB + 60 * KiB, 70 * KiB], // three pages of text
      [DISK_BYTES - 30 * KiB, 30 * KiB], // the last whole page's end and the short page
      [100 * KiB + 10, 4 * KiB], // again: cached
    ];
    const expected: Array<{ bytes: number; requests: number }> = [];
    for (const [position, length] of reads) {
      before = disk.stats();
      const got = await disk.read(position, length);
      after = disk.stats();
      expect(got.equals(image.subarray(position, position + length))).toBe(true);
      expected.push(await expectedFetch(src, fetched, position, length));
      expect(delta(after, before)).toEqual(expected[expected.length - 1]);
    }
    // One page each, but three for the text (compressed: fewer stored bytes than the 192 KiB it spans), two at the end, none cached.
    expect(expected.map((e) => e.requests)).toEqual([1, 1, 1, 3, 2, 0]);
    expect(expected[3].bytes).toBeLessThan(3 * PAGE);
    expect(expected[0].bytes).toBeGreaterThan(PAGE); // random bytes do not compress
    expect(disk.stats().cacheHits).toBeGreaterThanOrEqual(1);
    // Allocated zeros (a hole in the backup) and an unwritten hole: no request.
    before = disk.stats();
    expect((await disk.read(3 * MiB + 10, 100 * KiB)).equals(Buffer.alloc(100 * KiB))).toBe(true);
    expect((await disk.read(6 * MiB, 2 * PAGE)).equals(Buffer.alloc(2 * PAGE))).toBe(true);
    after = disk.stats();
    expect(delta(after, before)).toEqual({ bytes: 0, requests: 0 });
    expect(after.holeReads - before.holeReads).toBe(4);
  });

  test('concurrent reads of one piece share one fetch', async () => {
    const { disk } = await meteredDisk(env.vault, fullId);
    await disk.read(7 * MiB, 10); // the table
    const before = disk.stats();
    const reads = await Promise.all(Array.from({ length: 6 }, (_, k) => disk.read(2 * PAGE + k * 1000, 4 * KiB)));
    reads.forEach((got, k) => expect(got.equals(image.subarray(2 * PAGE + k * 1000, 2 * PAGE + k * 1000 + 4 * KiB))).toBe(true));
    const after = disk.stats();
    expect(delta(after, before).requests).toBe(1);
    expect(after.piecesFetched - before.piecesFetched).toBe(1);
    expect(after.cacheHits - before.cacheHits).toBe(5);
  });

  test('a sequential read prefetches the next piece, one at a time', async () => {
    const { disk } = await meteredDisk(env.vault, fullId);
    await disk.read(7 * MiB, 10);
    await disk.read(4 * PAGE, 4 * KiB);
    await disk.idle();
    expect(disk.stats().piecesFetched).toBe(1); // the first read is not a sequence
    await disk.read(4 * PAGE + 4 * KiB, 4 * KiB);
    await disk.idle();
    const before = disk.stats();
    expect(before.piecesFetched).toBe(2); // page 5 came ahead
    const got = await disk.read(5 * PAGE + 1000, 2000); // not in sequence: no prefetch
    expect(got.equals(image.subarray(5 * PAGE + 1000, 5 * PAGE + 3000))).toBe(true);
    await disk.idle();
    expect(delta(disk.stats(), before)).toEqual({ bytes: 0, requests: 0 });
  });

  test('the cache bound holds over reads larger than it, sequential and random', async () => {
    const bound = 3 * PAGE;
    const { disk } = await meteredDisk(env.vault, fullId, bound);
    for (let at = 0; at < 1 * MiB; at += 4 * KiB) {
      const got = await disk.read(at, 4 * KiB);
      expect(got.equals(image.subarray(at, at + 4 * KiB))).toBe(true);
    }
    await expectReads(disk, image, 7, 60);
    await disk.idle();
    const s = disk.stats();
    expect(s.cacheHighWaterBytes).toBeLessThanOrEqual(bound);
    expect(s.cacheBytes).toBeLessThanOrEqual(bound);
    expect(s.piecesFetched).toBeGreaterThan(16); // pages came back after eviction
    // Page 0 was evicted long ago: it is fetched again.
    const before = disk.stats();
    await disk.read(10, 10);
    expect(delta(disk.stats(), before).requests).toBe(1);
  });

  test('an abort ends a read in flight as Aborted, not Corrupt; later reads are refused', async () => {
    const controller = new AbortController();
    const disk = await VaultDisk.open({ vault: env.vault, backupId: fullId, userKey: env.userKey, abortSignal: controller.signal });
    const reading = disk.read(9 * PAGE, 10);
    controller.abort();
    await expect(reading).rejects.toMatchObject({ code: 'Aborted' });
    await expect(disk.read(0, 10)).rejects.toMatchObject({ code: 'Aborted' });
  });

  test('a cache below a page is refused', async () => {
    await expect(VaultDisk.open({ vault: env.vault, backupId: fullId, userKey: env.userKey, cacheBytes: PAGE - 1 })).rejects.toMatchObject({ code: 'BadCacheSize', message: expect.stringContaining(`${PAGE} bytes`) });
    await expect(VaultDisk.open({ vault: env.vault, backupId: fullId, userKey: env.userKey, cacheBytes: 0 })).rejects.toMatchObject({ code: 'BadCacheSize' });
  });

  test("an incremental reads as the changed disk through its own tables; the full still reads as before", async () => {
    const changed = Buffer.from(image);
    const blob = env.sourceClient('vdisk.vhd');
    const write = randomBytes(12 * KiB);
    write.copy(changed, 200 * KiB);
    await blob.uploadPages(write, 200 * KiB, write.length);
    changed.fill(0, 10 * PAGE, 12 * PAGE);
    await blob.clearPages(10 * PAGE, 2 * PAGE);
    const more = randomBytes(PAGE);
    more.copy(changed, 6 * MiB);
    await blob.uploadPages(more, 6 * MiB, PAGE);
    const result = await backupDisk(request(source, env.vault));
    expect(result).toMatchObject({ formatVersion: 2, kind: 'incremental', base: { backupId: fullId } });
    const inc = await VaultDisk.open({ vault: env.vault, backupId: result.backupId, userKey: env.userKey });
    await expectReads(inc, changed, 11, 100);
    expect((await inc.read(200 * KiB - 100, 12 * KiB + 200)).equals(changed.subarray(200 * KiB - 100, 212 * KiB + 100))).toBe(true);
    expect((await inc.read(10 * PAGE, 2 * PAGE)).equals(Buffer.alloc(2 * PAGE))).toBe(true);
    expect((await inc.read(6 * MiB, PAGE)).equals(more)).toBe(true);
    const full = await VaultDisk.open({ vault: env.vault, backupId: fullId, userKey: env.userKey });
    expect((await full.read(200 * KiB, 12 * KiB)).equals(image.subarray(200 * KiB, 212 * KiB))).toBe(true);
    expect((await full.read(10 * PAGE, PAGE)).equals(image.subarray(10 * PAGE, 11 * PAGE))).toBe(true);
  });
});

test('a version-1 vault: random reads equal the image, a page fetched is its block', async () => {
  const { image, ranges } = makeImage();
  const vault = await env.makeVault('vdisk-v1', { version: 1 });
  const source = await makeSource('vdisk-v1.vhd', image, ranges);
  const result = await backupDisk({ ...request(source, vault), takeSnapshot: false });
  const { disk, source: src } = await meteredDisk(vault, result.backupId);
  expect(disk.formatVersion).toBe(1);
  await disk.read(4 * MiB, 10); // the page table
  const before = disk.stats();
  expect((await disk.read(3 * PAGE + 5, 1000)).equals(image.subarray(3 * PAGE + 5, 3 * PAGE + 1005))).toBe(true);
  const fetched = delta(disk.stats(), before);
  expect(fetched).toEqual(await expectedFetch(src, new Set(), 3 * PAGE + 5, 1000));
  expect(fetched.requests).toBe(1);
  await expectReads(disk, image, 3, 80);
});

test('a damaged pack byte is Corrupt naming the disk range and page', async () => {
  const { image, ranges } = makeImage();
  const vault = await env.makeVault('vdisk-corrupt');
  const source = await makeSource('vdisk-corrupt.vhd', image, ranges);
  const result = await backupDisk({ ...request(source, vault), takeSnapshot: false });
  const src = await openBackupSource(vault, result.backupId, env.userKey);
  const page = 7;
  const entry = (await src.groupEntries(Math.floor(page / src.groupPages))).find((e) => e.page === page) as PageRecord2;
  const chunk = entry.chunks[0];
  const pack = env.az.accounts.vault.service.getContainerClient('vdisk-corrupt').getBlockBlobClient(v2names.pack(chunk.pack));
  const bytes = await pack.downloadToBuffer();
  bytes[chunk.offset + Math.floor(chunk.storedLength / 2)] ^= 0x40;
  await pack.uploadData(bytes);

  const disk = await VaultDisk.open({ vault, backupId: result.backupId, userKey: env.userKey });
  const from = page * PAGE + 100;
  const err = await disk.read(from, 50).catch((e: unknown) => e);
  expect(isPagewiseError(err, 'Corrupt')).toBe(true);
  expect((err as Error).message).toContain(`disk bytes ${from}–${from + 49} (page ${page}): page ${page} (offset ${page * PAGE})`);
  expect((err as Error).message).not.toMatch(/sig=/);
  // The neighbours read as ever; the damaged page fails again (a failure is not cached).
  expect((await disk.read(6 * PAGE, 10)).equals(image.subarray(6 * PAGE, 6 * PAGE + 10))).toBe(true);
  await expect(disk.read(from + 1000, 10)).rejects.toMatchObject({ code: 'Corrupt' });
});

test('blocks whose pack is gone (repacked, then deleted) are read where the vault index places them', async () => {
  const { image, ranges } = makeImage();
  const location = await env.makeVault('vdisk-moved');
  const source = await makeSource('vdisk-moved.vhd', image, ranges);
  const result = await backupDisk({ ...request(source, location), takeSnapshot: false });
  const src = await openBackupSource(location, result.backupId, env.userKey);
  const packs = new Set<string>();
  for (let g = 0; g * src.groupPages < src.pageCount; g++) for (const r of (await src.groupEntries(g)) as PageRecord2[]) for (const c of r.chunks) packs.add(c.pack);
  const vault = Vault.open(location);
  const repacked = await repackPacks(vault, await openVaultKeyring(vault, env.userKey), [...packs], () => true);
  expect(repacked.blocksCopied).toBeGreaterThan(0);
  for (const p of packs) await env.az.accounts.vault.service.getContainerClient('vdisk-moved').deleteBlob(v2names.pack(p));

  const { disk } = await meteredDisk(location, result.backupId);
  await expectReads(disk, image, 5, 60);
  expect((await disk.read(2 * PAGE, 3 * PAGE)).equals(image.subarray(2 * PAGE, 5 * PAGE))).toBe(true);
});

test('at most 4 page tables are kept: a fifth evicts the least recently used', async () => {
  // 512-byte pages: 16,384 pages (8 MiB) per table, six tables on a 48 MiB disk with one sector written in each.
  const pageSize = 512;
  const groupBytes = 16_384 * pageSize;
  const image = Buffer.alloc(6 * groupBytes);
  const ranges: Array<[number, number]> = [];
  for (let g = 0; g < 6; g++) {
    randomBytes(pageSize).copy(image, g * groupBytes + 1024);
    ranges.push([g * groupBytes + 1024, g * groupBytes + 1024 + pageSize]);
  }
  const vault = await env.makeVault('vdisk-tables');
  const source = await makeSource('vdisk-tables.vhd', image, ranges);
  const result = await backupDisk({ ...request(source, vault), pageSize, takeSnapshot: false });
  const disk = await VaultDisk.open({ vault, backupId: result.backupId, userKey: env.userKey, cacheBytes: 4 * KiB });
  const readGroup = async (g: number) => expect((await disk.read(g * groupBytes + 1000, 600)).equals(image.subarray(g * groupBytes + 1000, g * groupBytes + 1600))).toBe(true);
  for (let g = 0; g < 6; g++) await readGroup(g);
  expect(disk.stats().tablesRead).toBe(6);
  await readGroup(5); // kept
  await readGroup(2); // kept (groups 2–5)
  expect(disk.stats().tablesRead).toBe(6);
  await readGroup(0); // evicted: read again
  expect(disk.stats().tablesRead).toBe(7);
  expect(disk.stats().cacheHighWaterBytes).toBeLessThanOrEqual(4 * KiB);
});
