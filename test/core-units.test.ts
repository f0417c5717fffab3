/** The engine's pure parts: sizes, page arithmetic, redaction, block and index formats, keys, the cache pool. */
import * as os from 'node:os';
import { promises as fs } from 'node:fs';
import { parseBytes, redact, displayUrl, generateKey, PagewiseError } from '../core';
import { PageGrid, pagesOfRanges, normalizeRanges, validatePageSize } from '../core/source/page-grid';
import { encodeBlock, decodeBlock, Codec, BLOCK_OVERHEAD } from '../core/repo/block-codec';
import { encodeChunk, decodeChunk, PageEntry } from '../core/repo/page-table';
import { decodeUserKey, encodeKeyFile, keyId, unwrapDataKey, wrapDataKey } from '../core/repo/keys';
import { canonicalJson } from '../core/repo/manifest';
import { blockIdOf } from '../core/repo/layout';
import { backupIdFor, snapshotBackupIdFor, validateBackupId } from '../core/repo/backup-id';
import { ScratchCache } from '../core/cache/scratch-cache';
import { effectiveCacheBytes, resolveSettings } from '../core/backup/settings';
import { pagesPerBatchFor } from '../core/repo/backup-plan';
import { parseStorageUrl } from '../core/storage/clients';
import { BatchDedupe, DedupeIndex } from '../core/processor/page-processor';

const MiB = 1024 * 1024;

test('sizes parse with binary and decimal units and reject nonsense', () => {
  expect(parseBytes('4MiB', 'x')).toBe(4 * MiB);
  expect(parseBytes('64 KiB', 'x')).toBe(65536);
  expect(parseBytes('512', 'x')).toBe(512);
  expect(parseBytes('1g', 'x')).toBe(1024 * MiB);
  expect(parseBytes('1GB', 'x')).toBe(1e9);
  expect(() => parseBytes('four', '--cache')).toThrow(/--cache "four" is not a size/);
  expect(() => parseBytes('0', '--cache')).toThrow(PagewiseError);
  expect(() => parseBytes('1.5', '--cache')).toThrow(/whole number/);
});

test('page size must be a multiple of 512 up to 100 MiB', () => {
  expect(validatePageSize(512)).toBe(512);
  expect(validatePageSize(100 * MiB)).toBe(100 * MiB);
  for (const bad of [0, 511, 1000, 4 * MiB + 1, 100 * MiB + 512, -512, 1.5]) expect(() => validatePageSize(bad)).toThrow(PagewiseError);
});

test('allocated ranges are split at page borders and merged within a page', () => {
  const grid = new PageGrid(10 * 1024, 4096); // 3 pages, the last 2 KiB
  expect(grid.pageCount).toBe(3);
  expect(grid.pageLength(2)).toBe(2048);
  const pages = [...pagesOfRanges(grid, [
    { offset: 512, length: 512 },
    { offset: 1024, length: 512 }, // adjacent: merged
    { offset: 3584, length: 1024 }, // spans pages 0 and 1
    { offset: 9216, length: 4096 }, // runs past the end: clipped
  ])];
  expect(pages).toEqual([
    { page: 0, ranges: [{ offset: 512, length: 1024 }, { offset: 3584, length: 512 }] },
    { page: 1, ranges: [{ offset: 4096, length: 512 }] },
    { page: 2, ranges: [{ offset: 9216, length: 1024 }] },
  ]);
  expect(normalizeRanges([{ offset: 100, length: 50 }, { offset: 0, length: 120 }, { offset: 500, length: 10 }], 505)).toEqual([
    { offset: 0, length: 150 },
    { offset: 500, length: 5 },
  ]);
});

test('redaction removes SAS signatures, account keys and connection-string secrets', () => {
  const text = 'GET https://a.blob.core.windows.net/c/d?sv=2024&sig=AbC%2Bdef123456789== failed; DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5c2VjcmV0a2V5;EndpointSuffix=x';
  const out = redact(text);
  expect(out).not.toContain('AbC%2Bdef');
  expect(out).not.toContain('c2VjcmV0');
  expect(out).toContain('sig=REDACTED');
  expect(out).toContain('AccountKey=REDACTED');
  expect(displayUrl('https://a.blob.core.windows.net/c/d.vhd?snapshot=2026-01-01T00:00:00Z&sig=secret')).toBe(
    'https://a.blob.core.windows.net/c/d.vhd?snapshot=2026-01-01T00:00:00Z',
  );
});

test('storage URLs: virtual-host and path-style, blob vs container', () => {
  expect(parseStorageUrl('https://acct.blob.core.windows.net/disks/a/b.vhd?sig=x', 'blob', 's')).toMatchObject({ account: 'acct', container: 'disks', blob: 'a/b.vhd', hasSas: true, pathStyle: false });
  expect(parseStorageUrl('http://127.0.0.1:10000/src/disks/b.vhd', 'blob', 's')).toMatchObject({ account: 'src', container: 'disks', blob: 'b.vhd', pathStyle: true });
  expect(() => parseStorageUrl('https://acct.blob.core.windows.net/Disks/x', 'blob', 'the source')).toThrow(/container name/);
  // A managed-disk snapshot's read SAS (from Compute's grant access) lives on a host with dashes.
  expect(parseStorageUrl('https://md-impexp-t0abcd1234.z1.blob.storage.azure.net/x1y2z3w4v5u6/abcd?sv=2018-03-28&sr=b&sig=s', 'blob', 's')).toMatchObject({ account: 'md-impexp-t0abcd1234', container: 'x1y2z3w4v5u6', blob: 'abcd', hasSas: true });
  expect(() => parseStorageUrl('https://acct.blob.core.windows.net/disks', 'blob', 'the source')).toThrow(/must name a blob/);
  expect(() => parseStorageUrl('https://acct.blob.core.windows.net/disks/x', 'container', 'the vault')).toThrow(/container URL/);
});

test('a block round-trips, records its codec, and any damage fails authentication', async () => {
  const key = generateKey();
  const text = Buffer.from('hello pagewise '.repeat(1000));
  const packed = await encodeBlock(text, key, 'pw-1');
  expect(packed.codec).toBe(Codec.Lz4);
  expect(packed.bytes.length).toBeLessThan(text.length);
  expect(await decodeBlock(packed.bytes, key, 'pw-1', 'page 0')).toEqual(text);
  const noise = (await import('node:crypto')).randomBytes(65536);
  const stored = await encodeBlock(noise, key, 'pw-1');
  expect(stored.codec).toBe(Codec.Stored);
  expect(stored.bytes.length).toBe(noise.length + BLOCK_OVERHEAD);
  const flipped = Buffer.from(packed.bytes);
  flipped[30] ^= 1;
  await expect(decodeBlock(flipped, key, 'pw-1', 'page 7')).rejects.toThrow(/page 7: .*fails authentication/);
  await expect(decodeBlock(packed.bytes, key, 'pw-2', 'page 7')).rejects.toThrow(/fails authentication/); // moved between backups
  await expect(decodeBlock(packed.bytes.subarray(0, 20), key, 'pw-1', 'page 7')).rejects.toThrow(/truncated/);
});

test('page-table chunks round-trip and are bound to their segment', () => {
  const key = generateKey();
  const entries: PageEntry[] = [
    { page: 5, ref: 0, codec: 1, segment: 0, offset: 0, storedLength: 100, plainLength: 4096, sha256: Buffer.alloc(32, 1) },
    { page: 2 ** 40, ref: 0, codec: 0, segment: 0, offset: 2 ** 33, storedLength: 4136, plainLength: 4096, sha256: Buffer.alloc(32, 2) },
  ];
  const chunk = encodeChunk(entries, 0, key, 'pw-x');
  expect(decodeChunk(chunk, 0, key, 'pw-x')).toEqual(entries);
  expect(() => decodeChunk(chunk, 1, key, 'pw-x')).toThrow(/segment 1 fails authentication/);
});

test('key files and key wrapping', () => {
  const key = generateKey();
  expect(decodeUserKey(encodeKeyFile(key), 'k')).toEqual(key);
  expect(() => decodeUserKey('{"format":"pagewise-user-key","version":2}', 'the key file k')).toThrow(/version 2/);
  expect(() => decodeUserKey('nope', 'the key file k')).toThrow(/not a Pagewise key file/);
  const damaged = JSON.parse(encodeKeyFile(key));
  damaged.keyId = '0000000000000000';
  expect(() => decodeUserKey(JSON.stringify(damaged), 'k')).toThrow(/damaged/);
  const dataKey = generateKey();
  const wrapped = wrapDataKey(key, dataKey, 'pw-a');
  expect(unwrapDataKey(key, wrapped, 'pw-a', keyId(key))).toEqual(dataKey);
  expect(() => unwrapDataKey(generateKey(), wrapped, 'pw-a', keyId(key))).toThrow(/does not match/);
  expect(() => unwrapDataKey(key, wrapped, 'pw-b', keyId(key))).toThrow(/fails authentication/);
  expect(JSON.stringify(wrapped)).not.toContain(dataKey.toString('base64'));
});

test('canonical JSON sorts keys at every level', () => {
  expect(canonicalJson({ b: 1, a: [{ d: 'x', c: null }], e: true })).toBe('{"a":[{"c":null,"d":"x"}],"b":1,"e":true}');
});

test('IDs: block IDs have one length; backup IDs are stable and validated', () => {
  expect(Buffer.from(blockIdOf(0), 'base64').length).toBe(20);
  expect(blockIdOf(0).length).toBe(blockIdOf(2 ** 40).length);
  const src = { account: 'a', container: 'c', blob: 'b', snapshot: '', etag: '"1"' };
  expect(backupIdFor(src, 4096)).toBe(backupIdFor({ ...src }, 4096));
  expect(backupIdFor(src, 4096)).not.toBe(backupIdFor({ ...src, etag: '"2"' }, 4096));
  // The page size is part of the ID (docs/FORMAT.md §8.1): another page size is another backup.
  expect(backupIdFor(src, 4096)).not.toBe(backupIdFor(src, 8192));
  expect(snapshotBackupIdFor('/subscriptions/S/x', 4096)).toBe(snapshotBackupIdFor('/SUBSCRIPTIONS/s/X', 4096));
  expect(snapshotBackupIdFor('/subscriptions/s/x', 4096)).not.toBe(snapshotBackupIdFor('/subscriptions/s/x', 8192));
  expect(validateBackupId(backupIdFor(src, 4096))).toMatch(/^pw-[0-9a-f]{24}$/);
  expect(() => validateBackupId('../x')).toThrow(/not a backup ID/);
});

test('settings: the cache holds whole pages and is always smaller than the disk', () => {
  const s = resolveSettings({ pageSize: MiB, cacheBytes: 10 * MiB + 5 });
  expect(effectiveCacheBytes(s, 100)).toBe(10 * MiB);
  expect(effectiveCacheBytes(s, 4)).toBe(3 * MiB); // a 4-page disk gets a 3-page cache
  expect(effectiveCacheBytes(s, 1)).toBe(MiB);
  expect(() => resolveSettings({ pageSize: 4 * MiB, cacheBytes: MiB })).toThrow(/smaller than one page/);
  expect(() => resolveSettings({ concurrency: 0 })).toThrow(/concurrency/);
  expect(pagesPerBatchFor(4 * MiB, 16384)).toBe(256);
  expect(pagesPerBatchFor(512, 16384)).toBe(16384);
  expect(pagesPerBatchFor(3 * 512, 16384)).toBe(16384);
  expect(pagesPerBatchFor(100 * MiB, 16384)).toBe(8);
});

test('the scratch cache never lends more slots than it has, and records its high-water mark', async () => {
  const cache = await ScratchCache.create({ capacityBytes: 3 * 4096 + 100, pageSize: 4096, dir: os.tmpdir() });
  expect(cache.slotCount).toBe(3);
  expect(cache.capacityBytes).toBe(3 * 4096);
  const a = await cache.acquire();
  const b = await cache.acquire();
  const c = await cache.acquire();
  let fourth = false;
  const waiting = cache.acquire().then((slot) => {
    fourth = true;
    return slot;
  });
  await new Promise((r) => setTimeout(r, 20));
  expect(fourth).toBe(false);
  await a.prepare(4096);
  await a.writeGathered([Buffer.from('da'), Buffer.from('ta')], 100);
  const read = await a.read(98, 8);
  expect(read).toEqual(Buffer.from([0, 0, 100, 97, 116, 97, 0, 0]));
  cache.release(a);
  const d = await waiting;
  expect(fourth).toBe(true);
  expect(cache.highWaterBytes).toBe(3 * 4096);
  [b, c, d].forEach((s) => cache.release(s));
  expect(cache.bytesInUse).toBe(0);
  const dir = cache.dir;
  await cache.dispose();
  await expect(fs.stat(dir)).rejects.toThrow();
  await expect(ScratchCache.create({ capacityBytes: 100, pageSize: 4096 })).rejects.toThrow(/smaller than one page/);
});

test('runs of consecutive pages fit the cache: run length × runs in flight never exceeds the slots', async () => {
  const { runsOf } = require('../core/source/page-grid') as typeof import('../core/source/page-grid');
  const { runShape } = require('../core/backup/run-batch') as typeof import('../core/backup/run-batch');
  const pages = [0, 1, 2, 3, 4, 7, 8, 20].map((page) => ({ page }));
  const runs: number[][] = [];
  for await (const r of runsOf(pages, 3)) runs.push(r.map((p) => p.page));
  expect(runs).toEqual([[0, 1, 2], [3, 4], [7, 8], [20]]);
  for (const [pageSize, slots, concurrency] of [[4 * MiB, 16, 4], [4 * MiB, 2, 4], [512, 16, 4], [MiB, 64, 8], [64 * MiB, 3, 4], [4 * MiB, 1, 1]]) {
    const { runPages, runsInFlight } = runShape(pageSize, slots, concurrency);
    expect(runPages).toBeGreaterThanOrEqual(1);
    expect(runPages * pageSize).toBeLessThanOrEqual(Math.max(pageSize, 16 * MiB));
    expect(runPages * runsInFlight).toBeLessThanOrEqual(slots);
  }
  expect(runShape(4 * MiB, 16, 4)).toEqual({ runPages: 4, runsInFlight: 4 });
});

test('taking several slots at once is first come, first served', async () => {
  const cache = await ScratchCache.create({ capacityBytes: 4 * 512, pageSize: 512 });
  const first = await cache.acquireMany(3);
  const order: string[] = [];
  const big = cache.acquireMany(4).then((s) => (order.push('big'), s));
  const small = cache.acquire().then((s) => (order.push('small'), s));
  await new Promise((r) => setTimeout(r, 10));
  expect(order).toEqual([]); // one slot is free, but the 4-slot request came first
  first.forEach((s) => cache.release(s));
  const got = await big;
  expect(order).toEqual(['big']);
  got.forEach((s) => cache.release(s));
  cache.release(await small);
  expect(cache.highWaterBytes).toBe(4 * 512);
  await expect(cache.acquireMany(5)).rejects.toThrow(/cannot take 5/);
  await cache.dispose();
});

test('restore writes only the non-zero 512-byte runs of a page', () => {
  const { nonZeroRuns } = require('../core/restore/restore') as typeof import('../core/restore/restore');
  const page = Buffer.alloc(8 * 512);
  page[10] = 1; // sector 0
  page[512 + 3] = 1; // sector 1 (coalesced with 0)
  page[5 * 512] = 1; // sector 5
  page[8 * 512 - 1] = 1; // sector 7, the last
  expect([...nonZeroRuns(page)]).toEqual([
    { start: 0, end: 1024 },
    { start: 2560, end: 3072 },
    { start: 3584, end: 4096 },
  ]);
  expect([...nonZeroRuns(Buffer.alloc(4096))]).toEqual([]);
});

test('block runs stay within 16 MiB of stored bytes and of plaintext', () => {
  const { blockRuns } = require('../core/repo/backup-reader') as typeof import('../core/repo/backup-reader');
  const entry = (page: number, offset: number, storedLength: number, plainLength = 4 * MiB): PageEntry => ({
    page, ref: 0, codec: 1, segment: 0, offset, storedLength, plainLength, sha256: Buffer.alloc(32),
  });
  // 10 well-compressed pages of 4 MiB stored in 100 KiB each: runs of 4 pages (16 MiB of plaintext).
  const small = Array.from({ length: 10 }, (_, k) => entry(k, k * 100 * 1024, 100 * 1024));
  expect(blockRuns(small).map((r) => r.length)).toEqual([4, 4, 2]);
  // A gap (a block reused from earlier) breaks a run.
  const gap = [entry(0, 0, 1000), entry(1, 1000, 1000), entry(2, 0, 1000), entry(3, 2000, 1000)];
  expect(blockRuns(gap).map((r) => r.map((e) => e.page))).toEqual([[0, 1], [2], [3]]);
});

test('the per-account request gate holds requests past its limit and refuses a bad setting', async () => {
  const { accountGate, setRequestsPerAccount, DEFAULT_REQUESTS_PER_ACCOUNT, configureRequestsPerAccount } = require('../core/storage/account-gate') as typeof import('../core/storage/account-gate');
  setRequestsPerAccount(2);
  const gate = accountGate('unit.test', 'acct');
  const release: Array<() => void> = [];
  const started: number[] = [];
  const jobs = [0, 1, 2, 3].map((k) => gate.run(() => new Promise<void>((resolve) => { started.push(k); release.push(resolve); })));
  await new Promise((r) => setTimeout(r, 10));
  expect(started).toEqual([0, 1]);
  release.shift()!();
  await new Promise((r) => setTimeout(r, 10));
  expect(started).toEqual([0, 1, 2]);
  while (release.length) release.shift()!();
  await new Promise((r) => setTimeout(r, 10));
  while (release.length) release.shift()!();
  await Promise.all(jobs);
  expect(gate.highWater).toBe(2);
  setRequestsPerAccount(DEFAULT_REQUESTS_PER_ACCOUNT);
  expect(() => configureRequestsPerAccount({ PAGEWISE_REQUESTS_PER_ACCOUNT: 'lots' })).toThrow(/PAGEWISE_REQUESTS_PER_ACCOUNT "lots"/);
});

test('a large incompressible page is stored without compressing it whole; a compressible one is compressed', async () => {
  const { looksIncompressible } = require('../core/repo/block-codec') as typeof import('../core/repo/block-codec');
  const { randomBytes } = await import('node:crypto');
  const noise = randomBytes(MiB);
  const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(30000)).subarray(0, MiB);
  expect(looksIncompressible(noise)).toBe(true);
  expect(looksIncompressible(text)).toBe(false);
  expect(looksIncompressible(randomBytes(128 * 1024))).toBe(false); // small pages: always try
  const key = generateKey();
  expect((await encodeBlock(noise, key, 'pw-p')).codec).toBe(Codec.Stored);
  const packed = await encodeBlock(text, key, 'pw-p');
  expect(packed.codec).toBe(Codec.Lz4);
  expect(await decodeBlock(packed.bytes, key, 'pw-p', 'page 0')).toEqual(text);
});

test("a batch refers only to its own blocks and to those of batches whose record is written", () => {
  const recorded = new DedupeIndex();
  const first = new BatchDedupe(recorded);
  const second = new BatchDedupe(recorded);
  first.remember(0, 'h1', 10);
  expect(first.lookup(0, 'h1')).toBe(10);
  // Batch one is still running (it could be redone on resume): batch two must not refer to its block.
  expect(second.lookup(0, 'h1')).toBeUndefined();
  first.publish();
  expect(second.lookup(0, 'h1')).toBe(10);
  expect(second.lookup(1, 'h1')).toBeUndefined(); // dedupe stays within a segment
  second.remember(0, 'h1', 20); // the first staged block stays the one referred to
  second.publish();
  expect(recorded.lookup(0, 'h1')).toBe(10);
});
