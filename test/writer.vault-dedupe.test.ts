/**
 * The version-2 writer dedupes each chunk against the whole vault's content index (#15, FORMAT.md §17.1,
 * §26.8 (c)) on a real Azurite: disk B holding disk A's content stores almost nothing and restores; an entry
 * whose pack is older than plan − L is not relied on (the writer's clock moved past L, as prune tests fake
 * time); a pack gone before the lookup is passed over, one deleted after it stops finalize (BackupIncomplete);
 * `vaultDedupe: false` stores everything; the counts of chunks and bytes reused from the vault.
 */
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import { backupDisk, BackupRequest, chunkLengths, closeChunkPools, DEFAULT_CHUNKING, finalizeBackup, gearTable, planBackup, runBackupBatch, verifyBackup } from '../core';
import { Keyring } from '../core/repo/v2/keyring';
import { DAY_MS } from '../core/units';
import { findManifest2 } from '../core/repo/v2/manifest';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { isZeroChunk, readTable } from '../core/repo/v2/page-table';
import { StorageLocation } from '../core';
import { Vault } from '../core/repo/vault';
import { MiB, startEnv, TestEnv } from './harness/env';
import { randomBytes } from './harness/random-bytes';

const PAGE = 4 * MiB;
const DISK = 3 * PAGE;

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await closeChunkPools();
  await env?.stop();
});

/** Disk A's content: three pages of random data. */
const CONTENT = randomBytes(DISK, 41);

async function makeDisk(name: string, content: Buffer): Promise<string> {
  const blob = env.sourceClient(name);
  await blob.create(content.length);
  for (let off = 0; off < content.length; off += PAGE) await blob.uploadPages(content.subarray(off, off + PAGE), off, PAGE);
  return env.sourceUrl(name);
}

/** Disk B: A's content with 4 KiB overwritten in its middle page. */
function cloneWithChange(seed: number): Buffer {
  const b = Buffer.from(CONTENT);
  randomBytes(4096, seed).copy(b, PAGE + 1 * MiB);
  return b;
}

/** Content IDs (hex) → length of a disk's chunks under the default chunking, page by page. */
function chunkIds(keyring: Keyring, disk: Buffer): Map<string, number> {
  const gear = gearTable(keyring.key('name'));
  const out = new Map<string, number>();
  for (let p = 0; p < disk.length; p += PAGE) {
    const page = disk.subarray(p, p + PAGE);
    let at = 0;
    for (const n of chunkLengths(page, DEFAULT_CHUNKING, gear)) {
      out.set(keyring.contentId(page.subarray(at, at + n)).toString('hex'), n);
      at += n;
    }
  }
  return out;
}

async function packsOf(vaultLoc: StorageLocation, backupId: string): Promise<Set<string>> {
  const vault = Vault.open(vaultLoc);
  const keyring = await openVaultKeyring(vault, env.userKey);
  const m = (await findManifest2(vault, keyring, backupId))!.manifest;
  const packs = new Set<string>();
  for (const t of m.tables) for (const r of await readTable(vault, keyring, t, m.pagesPerTable)) for (const c of r.chunks) if (!isZeroChunk(c)) packs.add(c.pack);
  return packs;
}

async function restoredEquals(vaultLoc: StorageLocation, backupId: string, target: string, expected: Buffer): Promise<boolean> {
  const { restoreBackup } = await import('../core');
  await restoreBackup({ backupId, vault: vaultLoc, userKey: env.userKey, target: { url: env.targetUrl(target) } });
  return (await new PageBlobClient(env.targetUrl(target), new AnonymousCredential()).downloadToBuffer(0, expected.length)).equals(expected);
}

function request(vault: StorageLocation, source: string, more: Partial<BackupRequest> = {}): BackupRequest {
  return { source: { url: source }, vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 2 * PAGE, ...more };
}

test("disk B with disk A's content stores only its changed chunks, counts the rest as reused from the vault, and restores", async () => {
  const vault = await env.makeVault('vd-clone');
  const a = await backupDisk(request(vault, await makeDisk('vd-a.vhd', CONTENT)));
  expect(a).toMatchObject({ kind: 'full', chunksReusedFromVault: 0, bytesReusedFromVault: 0, bytesNew: DISK });
  const chunksOfA = a.storedBlocks;
  expect(chunksOfA).toBeGreaterThanOrEqual(24); // ~256 KiB chunks in three 4 MiB pages

  const bContent = cloneWithChange(42);
  const b = await backupDisk(request(vault, await makeDisk('vd-b.vhd', bContent)));
  // Another disk: no base, a full read; the 4 KiB overwrite changes the chunk holding it (and, if it
  // moved a cut point, the next few until the cuts agree again): those alone are stored.
  const keyring = await openVaultKeyring(Vault.open(vault), env.userKey);
  const ofA = chunkIds(keyring, CONTENT);
  const fresh = [...chunkIds(keyring, bContent)].filter(([id]) => !ofA.has(id));
  expect(fresh.length).toBeGreaterThanOrEqual(1);
  expect(fresh.length).toBeLessThanOrEqual(4);
  expect(b).toMatchObject({ kind: 'full', reason: 'no-base', bytesRead: DISK, storedBlocks: fresh.length, bytesNew: fresh.reduce((sum, [, n]) => sum + n, 0) });
  expect(b.chunksReusedFromVault! + b.storedBlocks).toBe(b.chunks);
  expect(b.bytesReusedFromVault! + b.bytesNew).toBe(DISK);
  // B's chunks from the index point into A's packs: B wrote only the pack of its new chunks.
  const packsOfA = await packsOf(vault, a.backupId);
  const packsOfB = await packsOf(vault, b.backupId);
  expect([...packsOfB].filter((p) => !packsOfA.has(p))).toHaveLength(1);
  expect(b.segments).toBe(1);
  expect(await restoredEquals(vault, b.backupId, 'vd-b-restored.vhd', bContent)).toBe(true);
  expect(await verifyBackup({ backupId: b.backupId, vault, userKey: env.userKey, readData: true })).toMatchObject({ ok: true, pagesChecked: 3 });

  // The same content under --no-vault-dedupe: every chunk stored again.
  const c = await backupDisk(request(vault, await makeDisk('vd-c.vhd', bContent), { vaultDedupe: false }));
  expect(c).toMatchObject({ kind: 'full', chunksReusedFromVault: 0, bytesReusedFromVault: 0, bytesNew: DISK, storedBlocks: c.chunks });
});

test('an index entry whose pack is older than plan − L is not relied on: the chunk is stored again (§26.8 (c))', async () => {
  const vault = await env.makeVault('vd-old');
  const a = await backupDisk(request(vault, await makeDisk('vd-old-a.vhd', CONTENT)));
  const source = await makeDisk('vd-old-b.vhd', CONTENT);
  // The writer's clock 7 days and 1 minute on: A's packs (Creation-Time: now) are older than plan − L.
  const late = await backupDisk(request(vault, source, { clock: () => Date.now() + 7 * DAY_MS + 60_000, backupId: 'vd-old-late' }));
  expect(late).toMatchObject({ kind: 'full', chunksReusedFromVault: 0, storedBlocks: a.storedBlocks, bytesNew: DISK });
  // Within L (6 days on) the same packs may be relied on: nothing new is stored.
  const within = await backupDisk(request(vault, source, { clock: () => Date.now() + 6 * DAY_MS, backupId: 'vd-old-within' }));
  expect(within).toMatchObject({ kind: 'full', storedBlocks: 0, bytesNew: 0, bytesReusedFromVault: DISK, segments: 0 });
  expect(within.chunksReusedFromVault).toBe(within.chunks);
  expect(await restoredEquals(vault, 'vd-old-late', 'vd-old-late.vhd', CONTENT)).toBe(true);
});

test('a pack gone before the lookup is passed over (stored again); one deleted after it stops finalize with BackupIncomplete', async () => {
  const vault = await env.makeVault('vd-gone');
  const containerOf = () => env.az.accounts.vault.service.getContainerClient('vd-gone');
  const a = await backupDisk(request(vault, await makeDisk('vd-gone-a.vhd', CONTENT)));
  const [packOfA] = await packsOf(vault, a.backupId);
  expect(await packsOf(vault, a.backupId)).toEqual(new Set([packOfA]));

  // Deleted after B's batch found A's chunks through the index, before B's finalize (as a prune could).
  const reqB = request(vault, await makeDisk('vd-gone-b.vhd', CONTENT), { backupId: 'vd-gone-b' });
  const plan = await planBackup(reqB);
  expect(plan.batchCount).toBe(1);
  const batch = await runBackupBatch({ ...reqB, backupId: plan.backupId, planPosition: 0 });
  expect(batch).toMatchObject({ chunksReusedFromVault: a.storedBlocks, bytesReusedFromVault: DISK, bytesStaged: 0 });
  await containerOf().deleteBlob(v2names.pack(packOfA));
  await expect(finalizeBackup({ ...reqB, backupId: plan.backupId })).rejects.toMatchObject({
    code: 'BackupIncomplete',
    message: expect.stringContaining(v2names.pack(packOfA)),
  });

  // A backup after the deletion: the index still names the pack, the HEAD says it is gone, the chunks are stored.
  const c = await backupDisk(request(vault, await makeDisk('vd-gone-c.vhd', CONTENT), { backupId: 'vd-gone-c' }));
  expect(c).toMatchObject({ kind: 'full', chunksReusedFromVault: 0, bytesNew: DISK, storedBlocks: a.storedBlocks });
  expect(await restoredEquals(vault, 'vd-gone-c', 'vd-gone-c.vhd', CONTENT)).toBe(true);
});
