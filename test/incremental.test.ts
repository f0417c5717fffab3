/**
 * Forever-incremental backups of a version-2 vault against a real Azurite (with the page-ranges diff
 * patch): ten generations of one disk with random page writes and clears between them, each restored
 * byte-identical; an incremental reads exactly the allocated bytes of the pages that changed, plans only
 * the batches holding them, keeps its snapshot as the next base and releases the earlier one; a base
 * snapshot deleted by someone else, `full: true` and a crash mid-incremental; a version-1 vault and its
 * upgrade (v1-vault, v1-base); a base whose pack is gone (BackupIncomplete, no manifest).
 */
import { AnonymousCredential, ContainerClient, PageBlobClient } from '@azure/storage-blob';
import { backupDisk, planBackup, restoreBackup, runBackupBatch, BackupRequest, BackupResult } from '../core';
import { openVaultKeyring, upgradeVault } from '../core/repo/v2/marker';
import { findManifest2 } from '../core/repo/v2/manifest';
import { v2names } from '../core/repo/v2/names';
import { readTable } from '../core/repo/v2/page-table';
import { readPlan2 } from '../core/repo/v2/staging';
import { Vault } from '../core/repo/vault';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { makeVaultV1 } from '../testkit/vault-v1';

const PAGE = 64 * KiB;
const SECTOR = 512;
/** Pages per batch at 64 KiB pages (1 GiB): region B lies in batch 1, region A in batch 0. */
const BATCH_PAGES = 16_384;
const REGION_PAGES = 32;
const REGIONS = [0, BATCH_PAGES]; // first page of A and B
const DISK_BYTES = (BATCH_PAGES + 64) * PAGE; // 1 GiB + 4 MiB, sparse

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

/** xorshift32: deterministic choices and bytes. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return { int: (n: number) => next() % n, bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => next() & 0xff)) };
}

/**
 * The disk as the test wrote it: the bytes of both regions and which 512-byte sectors are allocated
 * (written and not cleared since) — what a backup must read of a page.
 */
class DiskModel {
  readonly data = REGIONS.map(() => Buffer.alloc(REGION_PAGES * PAGE));
  readonly allocated = new Set<number>(); // sector index on the disk

  constructor(readonly blob: PageBlobClient) {}

  private region(page: number): { k: number; at: number } {
    const k = REGIONS.findIndex((first) => page >= first && page < first + REGION_PAGES);
    if (k < 0) throw new Error(`page ${page} is outside the test's regions`);
    return { k, at: (page - REGIONS[k]) * PAGE };
  }

  async write(page: number, offsetInPage: number, bytes: Buffer): Promise<void> {
    await this.blob.uploadPages(bytes, page * PAGE + offsetInPage, bytes.length);
    const { k, at } = this.region(page);
    bytes.copy(this.data[k], at + offsetInPage);
    for (let s = 0; s < bytes.length / SECTOR; s++) this.allocated.add((page * PAGE + offsetInPage) / SECTOR + s);
  }

  async clear(page: number, offsetInPage: number, length: number): Promise<void> {
    await this.blob.clearPages(page * PAGE + offsetInPage, length);
    const { k, at } = this.region(page);
    this.data[k].fill(0, at + offsetInPage, at + offsetInPage + length);
    for (let s = 0; s < length / SECTOR; s++) this.allocated.delete((page * PAGE + offsetInPage) / SECTOR + s);
  }

  allocatedSectorsOf(page: number): number[] {
    const out: number[] = [];
    for (let s = (page * PAGE) / SECTOR; s < ((page + 1) * PAGE) / SECTOR; s++) if (this.allocated.has(s)) out.push(s);
    return out;
  }

  /** Allocated bytes of `pages`: what a backup reading them downloads. */
  allocatedBytesOf(pages: Iterable<number>): number {
    let n = 0;
    for (const p of pages) n += this.allocatedSectorsOf(p).length * SECTOR;
    return n;
  }

  /** A page's bytes as the disk reads them now. */
  content(page: number): Buffer {
    const { k, at } = this.region(page);
    return Buffer.from(this.data[k].subarray(at, at + PAGE));
  }

  allPages(): number[] {
    return REGIONS.flatMap((first) => Array.from({ length: REGION_PAGES }, (_, k) => first + k));
  }
}

/**
 * One generation of changes: random sub-page writes (512-aligned) and clears of allocated sectors, in
 * `regions` (indexes into REGIONS). Returns the pages touched.
 */
async function changeDisk(model: DiskModel, seed: number, regions: number[], writes: number, clears: number, extra: { same?: boolean; zero?: boolean } = {}): Promise<Set<number>> {
  const r = rng(seed);
  const touched = new Set<number>();
  const pickPage = () => REGIONS[regions[r.int(regions.length)]] + r.int(REGION_PAGES);
  const withData = () => model.allPages().filter((p) => regions.includes(p < BATCH_PAGES ? 0 : 1) && model.allocatedSectorsOf(p).length > 0);
  for (let k = 0; k < writes; k++) {
    const page = pickPage();
    const sectors = 1 + r.int(PAGE / SECTOR);
    const first = r.int(PAGE / SECTOR - sectors + 1);
    await model.write(page, first * SECTOR, r.bytes(sectors * SECTOR));
    touched.add(page);
  }
  for (let k = 0; k < clears; k++) {
    const candidates = withData();
    if (candidates.length === 0) break;
    const page = candidates[r.int(candidates.length)];
    const sectors = model.allocatedSectorsOf(page);
    // a run of allocated sectors starting at one of them (clearing only what is there: the diff then reports it)
    const start = sectors[r.int(sectors.length)];
    let end = start + 1;
    while (end < start + 16 && model.allocated.has(end) && end < ((page + 1) * PAGE) / SECTOR) end++;
    await model.clear(page, start * SECTOR - page * PAGE, (end - start) * SECTOR);
    touched.add(page);
  }
  if (extra.same) {
    // A page written again with the bytes it holds: changed for the diff, same content (the base's block is reused).
    const page = withData().find((p) => !touched.has(p) && !model.content(p).equals(Buffer.alloc(PAGE)))!;
    await model.write(page, 0, model.content(page));
    touched.add(page);
  }
  if (extra.zero) {
    // A page written full of zeros: allocated, read, and a hole in the backup.
    const page = withData().find((p) => !touched.has(p))!;
    await model.write(page, 0, Buffer.alloc(PAGE));
    touched.add(page);
  }
  return touched;
}

/** The blob's snapshots (their times), as the service lists them. */
async function snapshotsOf(container: ContainerClient, name: string): Promise<string[]> {
  const out: string[] = [];
  for await (const b of container.listBlobsFlat({ prefix: name, includeSnapshots: true })) if (b.name === name && b.snapshot) out.push(b.snapshot);
  return out.sort();
}

/** Restores `backupId` to a new page blob and checks it equals the model: both regions, nothing outside. */
async function expectRestoresTo(model: DiskModel, backupId: string, target: string): Promise<void> {
  await restoreBackup({ backupId, vault: env.vault, userKey: env.userKey, target: { url: env.targetUrl(target) } });
  const restored = new PageBlobClient(env.targetUrl(target), new AnonymousCredential());
  expect((await restored.getProperties()).contentLength).toBe(DISK_BYTES);
  for (const [k, first] of REGIONS.entries()) {
    const bytes = await restored.downloadToBuffer(first * PAGE, REGION_PAGES * PAGE);
    expect(bytes.equals(model.data[k])).toBe(true);
  }
  // Outside the regions the restored disk holds nothing (reads as zeros, as the source's unwritten space).
  for await (const page of restored.listPageRanges(0, DISK_BYTES)) {
    const inRegion = REGIONS.some((first) => page.start >= first * PAGE && page.end < (first + REGION_PAGES) * PAGE);
    expect(inRegion).toBe(true);
  }
}

test('ten generations: a full, then incrementals reading only changed pages, each restoring identical; snapshots kept and released', async () => {
  const name = 'inc.vhd';
  const container = env.az.accounts.src.service.getContainerClient('disks');
  const blob = container.getPageBlobClient(name);
  await blob.create(DISK_BYTES);
  const model = new DiskModel(blob);
  // Generation 0's content: both regions partly written.
  const touched0 = await changeDisk(model, 1, [0, 1], 40, 0);
  expect(touched0.size).toBeGreaterThan(10);
  // A full-permission SAS: taking and deleting snapshots needs write and delete.
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true };
  const vault = Vault.open(env.vault);

  let previous: BackupResult | undefined;
  for (let generation = 0; generation < 10; generation++) {
    let touched: Set<number> | undefined;
    const before = new Map(model.allPages().map((p) => [p, model.content(p)]));
    if (generation > 0) {
      // Odd generations change region A only (one batch), even ones both regions (two batches).
      touched = await changeDisk(model, 100 + generation, generation % 2 ? [0] : [0, 1], 12, 4, { same: generation % 3 === 0, zero: generation % 4 === 0 });
    }
    const plan = await planBackup(req);
    const result = await backupDisk(req);
    expect(result.backupId).toBe(plan.backupId);
    expect(result.formatVersion).toBe(2);
    expect(result.alreadyExisted).toBe(false);
    if (generation === 0) {
      expect(result).toMatchObject({ kind: 'full', reason: 'no-base', base: null });
      expect(result.bytesRead).toBe(model.allocatedBytesOf(model.allPages()));
      expect(plan.batchCount).toBe(2);
    } else {
      expect(result).toMatchObject({ kind: 'incremental', reason: null, base: { backupId: previous!.backupId, snapshot: previous!.sourceSnapshot!.snapshot } });
      // Exactly the allocated bytes of the pages written or cleared since the base.
      expect(result.bytesRead).toBe(model.allocatedBytesOf(touched!));
      expect(plan.allocatedBytes).toBe(result.bytesRead); // the progress total is what is read
      expect(plan.batchCount).toBe(generation % 2 ? 1 : 2);
      // What the changed pages hold now: all zero (a hole; read if still allocated), the base's content
      // (its block reused), or new content (a new block, one per page: random bytes never repeat).
      const read = [...touched!].filter((p) => model.allocatedSectorsOf(p).length > 0);
      const zero = read.filter((p) => model.content(p).equals(Buffer.alloc(PAGE)));
      const same = read.filter((p) => !zero.includes(p) && model.content(p).equals(before.get(p)!));
      const fresh = read.length - zero.length - same.length;
      expect(result).toMatchObject({ zeroPages: zero.length, storedBlocks: fresh, bytesNew: fresh * PAGE, dedupedPages: same.length });
      if (generation % 3 === 0) expect(same.length).toBeGreaterThan(0);
      if (generation % 4 === 0) expect(zero.length).toBeGreaterThan(0);
      expect(result.bytesChanged).toBeGreaterThan(0);
      expect(result.releasedSnapshots).toEqual([previous!.sourceSnapshot!.snapshot]);
    }
    expect(result.allocatedBytes).toBe(model.allocatedBytesOf(model.allPages()));
    // This backup's snapshot is kept as the next base; every earlier one Pagewise took is gone.
    expect(result.sourceSnapshot).toEqual({ snapshot: expect.any(String), deleted: false });
    expect(await snapshotsOf(container, name)).toEqual([result.sourceSnapshot!.snapshot]);
    const keyring = await openVaultKeyring(vault, env.userKey);
    expect((await findManifest2(vault, keyring, result.backupId))?.manifest.generation).toBe(generation);
    await expectRestoresTo(model, result.backupId, `inc-gen${generation}.vhd`);
    previous = result;
  }

  // Someone else deletes the base snapshot: the next backup is full, and says why.
  await blob.withSnapshot(previous!.sourceSnapshot!.snapshot).delete();
  await changeDisk(model, 500, [0], 3, 0);
  const gone = await backupDisk(req);
  expect(gone).toMatchObject({ kind: 'full', reason: 'base-snapshot-gone', base: null });
  expect(gone.bytesRead).toBe(model.allocatedBytesOf(model.allPages()));
  await expectRestoresTo(model, gone.backupId, 'inc-gone.vhd');

  // A base exists, but `full: true` forces a full backup.
  await changeDisk(model, 600, [1], 3, 0);
  const forced = await backupDisk({ ...req, full: true });
  expect(forced).toMatchObject({ kind: 'full', reason: 'forced', base: null });
  expect(forced.bytesRead).toBe(model.allocatedBytesOf(model.allPages()));
  await expectRestoresTo(model, forced.backupId, 'inc-forced.vhd');
});

test('a crash mid-incremental resumes as the same incremental', async () => {
  const name = 'inc-crash.vhd';
  const container = env.az.accounts.src.service.getContainerClient('disks');
  const blob = container.getPageBlobClient(name);
  await blob.create(DISK_BYTES);
  const model = new DiskModel(blob);
  await changeDisk(model, 7, [0, 1], 30, 0);
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true };
  const full = await backupDisk(req);
  expect(full.kind).toBe('full');

  const touched = await changeDisk(model, 8, [0, 1], 10, 3);
  const inA = [...touched].filter((p) => p < BATCH_PAGES);
  const inB = [...touched].filter((p) => p >= BATCH_PAGES);
  expect(inA.length).toBeGreaterThan(0);
  expect(inB.length).toBeGreaterThan(0);
  // The process "crashes" after the plan and the first batch (as a durable run whose host died).
  const plan = await planBackup(req);
  expect(plan).toMatchObject({ kind: 'incremental', batchCount: 2 });
  const first = await runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0 });
  expect(first.bytesRead).toBe(model.allocatedBytesOf(inA));

  // Started again: the same backup (same ID, pinned to the snapshot its plan took), still incremental;
  // batch 0 is not redone.
  const again = await backupDisk(req);
  expect(again).toMatchObject({ backupId: plan.backupId, kind: 'incremental', base: { backupId: full.backupId } });
  expect(again.bytesReadNow).toBe(model.allocatedBytesOf(inB));
  expect(again.bytesRead).toBe(model.allocatedBytesOf(touched));
  const vault = Vault.open(env.vault);
  const keyring = await openVaultKeyring(vault, env.userKey);
  expect((await readPlan2(vault, keyring, plan.backupId))?.batches).toEqual([0, 1]);
  await expectRestoresTo(model, again.backupId, 'inc-crash-restored.vhd');
  expect(await snapshotsOf(container, name)).toEqual([again.sourceSnapshot!.snapshot]);
});

test('a version-1 vault backs up in full (v1-vault); upgraded, a disk backed up in version 1 gets a full first v2 backup (v1-base), then incrementals', async () => {
  await env.az.accounts.vault.service.getContainerClient('v1vault').create();
  const vaultV1 = { url: env.az.sasUrl('vault', 'v1vault') };
  await makeVaultV1(vaultV1);
  const name = 'inc-v1.vhd';
  const blob = env.sourceClient(name);
  await blob.create(4 * MiB);
  const model = { blob, write: (page: number, bytes: Buffer) => blob.uploadPages(bytes, page * PAGE, bytes.length) };
  await model.write(0, Buffer.alloc(PAGE, 1));
  await model.write(3, Buffer.alloc(PAGE, 2));
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: vaultV1, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true };

  const v1 = await backupDisk(req);
  expect(v1).toMatchObject({ formatVersion: 1, kind: 'full', reason: 'v1-vault', base: null, bytesRead: 2 * PAGE, bytesChanged: 2 * PAGE });
  expect(v1.bytesNew).toBe(v1.bytesStored);

  expect(await upgradeVault(Vault.open(vaultV1), env.userKey)).toEqual({ upgraded: true });
  await model.write(5, Buffer.alloc(PAGE, 3));
  const first = await backupDisk(req);
  expect(first).toMatchObject({ formatVersion: 2, kind: 'full', reason: 'v1-base', base: null, bytesRead: 3 * PAGE });
  await model.write(3, Buffer.alloc(PAGE, 4));
  const next = await backupDisk(req);
  expect(next).toMatchObject({ formatVersion: 2, kind: 'incremental', reason: null, base: { backupId: first.backupId }, bytesRead: PAGE, storedBlocks: 1 });
  // The version-1 backup stays restorable beside the version-2 ones.
  await restoreBackup({ backupId: v1.backupId, vault: vaultV1, userKey: env.userKey, target: { url: env.targetUrl('inc-v1-restored.vhd') } });
  const restored = await new PageBlobClient(env.targetUrl('inc-v1-restored.vhd'), new AnonymousCredential()).downloadToBuffer(0, 4 * PAGE);
  expect(restored.equals(Buffer.concat([Buffer.alloc(PAGE, 1), Buffer.alloc(2 * PAGE), Buffer.alloc(PAGE, 2)]))).toBe(true);
});

test('a base whose pack is gone: the incremental stops before its manifest (BackupIncomplete naming the pack); a forced full backup stores the pages again', async () => {
  const name = 'inc-pack.vhd';
  const blob = env.sourceClient(name);
  await blob.create(4 * MiB);
  await blob.uploadPages(Buffer.alloc(2 * PAGE, 7), 0, 2 * PAGE);
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true };
  const full = await backupDisk(req);
  expect(full).toMatchObject({ kind: 'full', reason: 'no-base', segments: 1, storedBlocks: 1, dedupedPages: 1 }); // two equal pages: one block
  const vault = Vault.open(env.vault);
  const keyring = await openVaultKeyring(vault, env.userKey);
  const manifest = (await findManifest2(vault, keyring, full.backupId))!.manifest;
  const packs = new Set<string>();
  for (const t of manifest.tables) for (const r of await readTable(vault, keyring, t, manifest.pagesPerTable)) for (const c of r.chunks) packs.add(c.pack);
  expect(packs.size).toBe(1);
  const [pack] = packs;
  await env.az.accounts.vault.service.getContainerClient('vault').deleteBlob(v2names.pack(pack)); // as a wrong prune would

  await blob.uploadPages(Buffer.alloc(PAGE, 8), 0, PAGE); // page 1 unchanged: its chunk is the lost pack's
  await expect(backupDisk(req)).rejects.toMatchObject({ code: 'BackupIncomplete', message: expect.stringContaining(v2names.pack(pack)) });
  const forced = await backupDisk({ ...req, full: true, backupId: 'inc-pack-full' });
  // Page 0's new content is in the stopped incremental's pack (young, indexed): found through the content
  // index (#15); page 1's only copy was in the lost pack, so it is stored again.
  expect(forced).toMatchObject({ kind: 'full', reason: 'forced', bytesRead: 2 * PAGE, storedBlocks: 1, chunksReusedFromVault: 1, bytesReusedFromVault: PAGE });
  await restoreBackup({ backupId: forced.backupId, vault: env.vault, userKey: env.userKey, target: { url: env.targetUrl('inc-pack-restored.vhd') } });
  const restored = await new PageBlobClient(env.targetUrl('inc-pack-restored.vhd'), new AnonymousCredential()).downloadToBuffer(0, 2 * PAGE);
  expect(restored.equals(Buffer.concat([Buffer.alloc(PAGE, 8), Buffer.alloc(PAGE, 7)]))).toBe(true);
});

test('the single-process engine reads each base table once across its batches and finalize, and the base manifest not at all after planning (two groups)', async () => {
  const name = 'inc-reads.vhd';
  const blob = env.az.accounts.src.service.getContainerClient('disks').getPageBlobClient(name);
  await blob.create(DISK_BYTES); // two page groups (tables) and two batches at 64 KiB pages
  for (const first of REGIONS) await blob.uploadPages(Buffer.alloc(2 * PAGE, first === 0 ? 3 : 4), first * PAGE, 2 * PAGE);
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true };
  const full = await backupDisk(req);
  expect(full).toMatchObject({ kind: 'full' });
  const vault = Vault.open(env.vault);
  const base = (await findManifest2(vault, await openVaultKeyring(vault, env.userKey), full.backupId))!;
  expect(base.manifest.tables.map((t) => t.index)).toEqual([0, 1]);
  for (const first of REGIONS) await blob.uploadPages(Buffer.alloc(PAGE, 5), first * PAGE, PAGE); // a page of each group

  const reads = new Map<string, number>();
  const original = Vault.prototype.getBytes;
  const getBytes = jest.spyOn(Vault.prototype, 'getBytes').mockImplementation(function (this: Vault, ...args: Parameters<Vault['getBytes']>) {
    reads.set(args[0], (reads.get(args[0]) ?? 0) + 1);
    return original.apply(this, args);
  });
  let incr: BackupResult;
  try {
    incr = await backupDisk(req);
  } finally {
    getBytes.mockRestore();
  }
  expect(incr).toMatchObject({ kind: 'incremental', base: { backupId: full.backupId }, bytesRead: 2 * PAGE, storedBlocks: 2 }); // one block per batch: batches do not share blocks
  // The base manifest: once by the base search and once by the snapshot release's look at older manifests;
  // the batches and the finalize read the base from the plan's baseTables (§26.3). Each base table: once
  // for its batch and the finalize.
  expect(reads.get(base.name)).toBe(2);
  for (const t of base.manifest.tables) expect(reads.get(v2names.table(t.tableId))).toBe(1);
});
