/**
 * The method of the claim, end to end on Azurite: a disk much larger than the scratch cache is backed up
 * page by page, only allocated ranges are downloaded, the cache never holds more than its capacity, and
 * the backup restores byte-identical as a page blob and as a sparse file.
 */
import * as path from 'node:path';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import { backupDisk, restoreBackup, verifyBackup, listBackups } from '../core';
import { findManifest2 } from '../core/repo/v2/manifest';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { isZeroChunk, readTable } from '../core/repo/v2/page-table';
import { Vault } from '../core/repo/vault';
import { sampleVmLayout } from '../testkit/sample-disk';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;

/** Distinct non-zero chunks the backup's tables name: each stored by the backup once, or found in the vault. */
async function distinctChunks(backupId: string): Promise<number> {
  const vault = Vault.open(env.vault);
  const keyring = await openVaultKeyring(vault, env.userKey);
  const m = (await findManifest2(vault, keyring, backupId))!.manifest;
  const ids = new Set<string>();
  for (const t of m.tables) for (const r of await readTable(vault, keyring, t, m.pagesPerTable)) for (const c of r.chunks) if (!isZeroChunk(c)) ids.add(c.contentId.toString('hex'));
  return ids.size;
}

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

test('a disk 16× larger than the cache is backed up without exceeding the cache, reading only allocated bytes', async () => {
  const diskBytes = 128 * MiB;
  const disk = await env.makeDisk('claim.vhd', diskBytes, sampleVmLayout(diskBytes, 3));
  const pageSize = 1 * MiB;
  const cacheBytes = diskBytes / 16; // 8 MiB: 8 slots
  const progress: number[] = [];
  const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize, cacheBytes, onProgress: (p) => progress.push(p.pagesDone) });

  expect(result.diskBytes).toBe(diskBytes);
  expect(result.cacheCapacityBytes).toBe(cacheBytes);
  expect(result.cacheCapacityBytes * 16).toBeLessThanOrEqual(diskBytes);
  expect(result.cacheHighWaterBytes).toBeGreaterThan(0);
  expect(result.cacheHighWaterBytes).toBeLessThanOrEqual(result.cacheCapacityBytes);
  // Holes are never downloaded: bytes read equal the allocated bytes exactly.
  expect(result.allocatedBytes).toBe(disk.allocatedBytes);
  expect(result.bytesRead).toBe(disk.allocatedBytes);
  expect(result.bytesRead).toBeLessThan(diskBytes);
  expect(result.zeroPages).toBeGreaterThan(0); // the explicitly zeroed region
  expect(result.dedupedPages).toBeGreaterThan(0); // the repeated regions
  // Every page is a zero page, a deduplicated one, or has at least one new block (#15: a page is cut into
  // chunks, so a page with new data may store several).
  const pagesWithNewBlocks = result.pages - result.dedupedPages - result.zeroPages;
  expect(pagesWithNewBlocks).toBeGreaterThan(0);
  expect(result.storedBlocks).toBeGreaterThanOrEqual(pagesWithNewBlocks);
  expect(result.storedBlocks + result.chunksReusedFromVault!).toBe(await distinctChunks(result.backupId));
  expect(progress.length).toBe(result.pages);

  const listed = await listBackups(env.vault, { userKey: env.userKey });
  expect(listed.map((b) => b.backupId)).toContain(result.backupId);

  const verified = await verifyBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, source: disk.source });
  expect(verified.problems).toEqual([]);
  expect(verified.ok).toBe(true);
  expect(verified.blocksChecked).toBe(result.chunks); // every non-zero chunk of every non-zero page (#15)

  const file = path.join(env.tmp, 'claim.img');
  const toFile = await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(toFile.diskBytes).toBe(diskBytes);
  expect(await fileSha256(file)).toBe(disk.sha256);

  const target = env.targetUrl('claim-restored.vhd');
  const toBlob = await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: target } });
  expect(toBlob.pagesWritten).toBe(result.pages - result.zeroPages);
  expect(await env.blobSha256(target)).toBe(disk.sha256);
  // Only non-hole pages were written to the restored page blob.
  let written = 0;
  for await (const r of new PageBlobClient(target, new AnonymousCredential()).listPageRanges()) written += r.end - r.start + 1;
  expect(written).toBe(toBlob.bytesWritten);
  expect(written).toBeLessThan(diskBytes / 2);
});

test('a repeated start of the same disk state resumes into the same backup and does not duplicate it', async () => {
  const disk = await env.makeDisk('again.vhd', 8 * MiB, [{ offset: 0, length: 2 * MiB, kind: 'text' }]);
  const first = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 1 * MiB, cacheBytes: 2 * MiB });
  const second = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 1 * MiB, cacheBytes: 2 * MiB });
  expect(second.backupId).toBe(first.backupId);
  expect(second.bytesStored).toBe(first.bytesStored);
  const ids = (await listBackups(env.vault, { userKey: env.userKey })).map((b) => b.backupId).filter((id) => id === first.backupId);
  expect(ids).toHaveLength(1);
});

describe.each([
  ['512 B', 512, 256 * KiB],
  ['64 KiB', 64 * KiB, 4 * MiB],
  ['4 MiB', 4 * MiB, 40 * MiB],
])('page size %s', (_label, pageSize, diskBytes) => {
  test('backs up and restores byte-identical with a cache of 1/16 of the disk or one page', async () => {
    const regions = [
      { offset: 0, length: 8 * KiB, kind: 'text' as const, seed: pageSize },
      { offset: diskBytes / 4, length: Math.max(pageSize, diskBytes / 8), kind: 'random' as const, seed: 2 },
      { offset: diskBytes - 1024, length: 1024, kind: 'random' as const, seed: 3 },
    ];
    const disk = await env.makeDisk(`ps-${pageSize}.vhd`, diskBytes, regions);
    const cacheBytes = Math.max(pageSize, diskBytes / 16);
    const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize, cacheBytes });
    expect(result.pageSize).toBe(pageSize);
    expect(result.bytesRead).toBe(disk.allocatedBytes);
    expect(result.cacheHighWaterBytes).toBeLessThanOrEqual(cacheBytes);
    expect(result.cacheCapacityBytes).toBeLessThan(diskBytes);
    const file = path.join(env.tmp, `ps-${pageSize}.img`);
    await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(disk.sha256);
  });
});

test('a disk whose size is not a multiple of the page size keeps its short last page', async () => {
  const diskBytes = 10 * MiB + 3 * 512;
  const disk = await env.makeDisk('odd.vhd', diskBytes, [
    { offset: 3 * MiB, length: 2 * MiB, kind: 'text' },
    { offset: diskBytes - 1536, length: 1536, kind: 'random', seed: 9 },
  ]);
  const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 4 * MiB, cacheBytes: 4 * MiB });
  expect(result.pages).toBe(3); // pages 0, 1 (data at 3–5 MiB) and the 1536-byte last page
  const file = path.join(env.tmp, 'odd.img');
  await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
  const blob = env.targetUrl('odd.vhd');
  await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: blob } });
  expect(await env.blobSha256(blob)).toBe(disk.sha256);
});

test('a disk with no allocated pages backs up to an empty secondary copy and restores as zeros', async () => {
  const disk = await env.makeDisk('empty.vhd', 16 * MiB, []);
  const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 1 * MiB, cacheBytes: 2 * MiB });
  expect(result).toMatchObject({ bytesRead: 0, bytesStored: 0, pages: 0, segments: 0, allocatedBytes: 0 });
  expect((await verifyBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, source: disk.source })).ok).toBe(true);
  const file = path.join(env.tmp, 'empty.img');
  await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
});

test('tiny scattered allocated ranges: only those bytes are read', async () => {
  const diskBytes = 64 * MiB;
  const regions = Array.from({ length: 40 }, (_, k) => ({ offset: k * 1536 * KiB + (k % 3) * 512, length: 512 * (1 + (k % 4)), kind: 'random' as const, seed: k + 1 }));
  const disk = await env.makeDisk('scattered.vhd', diskBytes, regions);
  const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 64 * KiB, cacheBytes: 256 * KiB, concurrency: 4 });
  expect(result.bytesRead).toBe(disk.allocatedBytes);
  expect(result.bytesRead).toBe(regions.reduce((s, r) => s + r.length, 0));
  expect(result.pages).toBe(40);
  const file = path.join(env.tmp, 'scattered.img');
  await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
});

test('identical pages are stored once and zero pages not at all', async () => {
  const disk = await env.makeDisk('dedupe.vhd', 32 * MiB, [
    { offset: 0, length: 8 * MiB, kind: 'repeat', seed: 5 }, // 8 identical 1 MiB pages
    { offset: 8 * MiB, length: 4 * MiB, kind: 'zero' }, // 4 explicitly written zero pages
    { offset: 16 * MiB, length: 2 * MiB, kind: 'random', seed: 6 },
  ]);
  const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 1 * MiB, cacheBytes: 4 * MiB });
  expect(result.pages).toBe(14);
  expect(result.zeroPages).toBe(4);
  // One page of the repeated pattern and the two random pages store blocks: their distinct chunks (#15),
  // the other seven pages none.
  expect(result.storedBlocks + result.chunksReusedFromVault!).toBe(await distinctChunks(result.backupId));
  expect(result.storedBlocks).toBeGreaterThanOrEqual(3);
  expect(result.dedupedPages).toBe(7);
  expect(result.bytesStored).toBeLessThan(3 * MiB + 1024);
  const file = path.join(env.tmp, 'dedupe.img');
  await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
});

test('batches overlap (one drains while the next downloads) within the same cache and page bounds, and dedupe across them restores identical', async () => {
  // 4 KiB pages: a batch is 16,384 pages = 64 MiB, so this disk has four batches. Each holds random
  // data at its start and the same repeated pattern at its end, so identical pages recur across batches.
  const diskBytes = 256 * MiB;
  const regions = [0, 1, 2, 3].flatMap((b) => [
    { offset: b * 64 * MiB, length: 256 * 1024, kind: 'random' as const, seed: 40 + b },
    { offset: b * 64 * MiB + 63 * MiB, length: 512 * 1024, kind: 'repeat' as const, seed: 9 },
  ]);
  const disk = await env.makeDisk('overlap.vhd', diskBytes, regions);
  const pageSize = 4096;
  const cacheBytes = 64 * pageSize;
  const concurrency = 4;
  const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize, cacheBytes, concurrency });

  expect(result.bytesRead).toBe(disk.allocatedBytes);
  expect(result.cacheHighWaterBytes).toBeLessThanOrEqual(cacheBytes);
  expect(result.pagesInMemoryHighWater).toBeGreaterThan(0);
  expect(result.pagesInMemoryHighWater).toBeLessThanOrEqual(concurrency);
  // The 64 KiB pattern has 16 distinct pages: every other repeated page, in any batch, is a duplicate.
  expect(result.dedupedPages).toBeGreaterThanOrEqual(4 * 128 - 4 * 16);
  // 4 KiB pages are one chunk each (the default chunking clamped to the page): one new block per page that is
  // neither zero nor deduplicated (by its batch, or through the vault index from an earlier batch).
  expect(result.storedBlocks + result.dedupedPages + result.zeroPages).toBe(result.pages);

  const verified = await verifyBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, readData: true });
  expect(verified.problems).toEqual([]);
  const file = path.join(env.tmp, 'overlap.img');
  await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
});
