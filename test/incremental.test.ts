/**
 * Forever-incremental backups of a version-2 vault against a real Azurite (with the page-ranges diff
 * patch): ten generations of one disk with random page writes and clears between them, each restored
 * byte-identical; an incremental reads exactly the allocated bytes of the pages that changed, plans only
 * the batches holding them, keeps its snapshot as the next base and releases the earlier one; a base
 * snapshot deleted by someone else, `full: true` and a crash mid-incremental.
 */
import { AnonymousCredential, ContainerClient, PageBlobClient } from '@azure/storage-blob';
import { backupDisk, planBackup, restoreBackup, runBackupBatch, BackupRequest, BackupResult } from '../core';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { findManifest2 } from '../core/repo/v2/manifest';
import { readPlan2 } from '../core/repo/v2/staging';
import { Vault } from '../core/repo/vault';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

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

  allPages(): number[] {
    return REGIONS.flatMap((first) => Array.from({ length: REGION_PAGES }, (_, k) => first + k));
  }
}

/**
 * One generation of changes: random sub-page writes (512-aligned) and clears of allocated sectors, in
 * `regions` (indexes into REGIONS). Returns the pages touched.
 */
async function changeDisk(model: DiskModel, seed: number, regions: number[], writes: number, clears: number): Promise<Set<number>> {
  const r = rng(seed);
  const touched = new Set<number>();
  const pickPage = () => REGIONS[regions[r.int(regions.length)]] + r.int(REGION_PAGES);
  for (let k = 0; k < writes; k++) {
    const page = pickPage();
    const sectors = 1 + r.int(PAGE / SECTOR);
    const first = r.int(PAGE / SECTOR - sectors + 1);
    await model.write(page, first * SECTOR, r.bytes(sectors * SECTOR));
    touched.add(page);
  }
  for (let k = 0; k < clears; k++) {
    const candidates = model.allPages().filter((p) => regions.includes(REGIONS.indexOf(REGIONS.find((f) => p >= f && p < f + REGION_PAGES)!)) && model.allocatedSectorsOf(p).length > 0);
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
    if (generation > 0) {
      // Odd generations change region A only (one batch), even ones both regions (two batches).
      touched = await changeDisk(model, 100 + generation, generation % 2 ? [0] : [0, 1], 12, 4);
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
      expect(result.bytesNew).toBeLessThanOrEqual(touched!.size * PAGE);
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
