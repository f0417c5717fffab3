/**
 * Repack and the vault index on Azurite (docs/FORMAT.md §18.3, §19 hints, §26.8): live blocks copied
 * unchanged into new packs, the old packs deleted by hand (as prune's later sweep would) — every
 * generation still restores byte-identical and verifies with --read-data through the index; a later
 * incremental finalizes on moved blocks. The writers' side of #13: a base table pruned meanwhile, an
 * expired plan (BackupExpired, injected clock), a forgotten manifest never chosen as a base.
 */
import { randomBytes } from 'node:crypto';
import { AnonymousCredential, ContainerClient, PageBlobClient } from '@azure/storage-blob';
import { backupDisk, BackupRequest, BackupResult, finalizeBackup, planBackup, restoreBackup, runBackupBatch, StorageLocation, verifyBackup } from '../core';
import { Clock } from '../core/clock';
import { repackPacks } from '../core/prune/repack';
import { sealJson } from '../core/repo/v2/envelope';
import { Keyring } from '../core/repo/v2/keyring';
import { findManifest2 } from '../core/repo/v2/manifest';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { readPackTrailer } from '../core/repo/v2/pack-writer';
import { isZeroChunk, readTable } from '../core/repo/v2/page-table';
import { ManifestV2 } from '../core/repo/v2/records';
import { readPlan2 } from '../core/repo/v2/staging';
import { VaultIndex } from '../core/repo/v2/vault-index';
import { Vault } from '../core/repo/vault';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

const PAGE = 64 * KiB;
const DAY = 24 * 60 * 60 * 1000;

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

interface Opened {
  location: StorageLocation;
  container: ContainerClient;
  vault: Vault;
  keyring: () => Promise<Keyring>;
}

async function openVault(name: string): Promise<Opened> {
  const location = await env.makeVault(name);
  const vault = Vault.open(location);
  return { location, container: env.az.accounts.vault.service.getContainerClient(name), vault, keyring: () => openVaultKeyring(vault, env.userKey) };
}

async function manifestOf(v: Opened, backupId: string): Promise<ManifestV2> {
  return (await findManifest2(v.vault, await v.keyring(), backupId))!.manifest;
}

/** Every non-zero chunk of a backup's tables: content ID (hex) and hinted pack. */
async function chunksOf(v: Opened, backupId: string): Promise<Array<{ id: string; pack: string }>> {
  const m = await manifestOf(v, backupId);
  const out: Array<{ id: string; pack: string }> = [];
  for (const t of m.tables) for (const r of await readTable(v.vault, await v.keyring(), t, m.pagesPerTable)) for (const c of r.chunks) if (!isZeroChunk(c)) out.push({ id: c.contentId.toString('hex'), pack: c.pack });
  return out;
}

async function restoredBytes(v: Opened, backupId: string, target: string, bytes: number): Promise<Buffer> {
  await restoreBackup({ backupId, vault: v.location, userKey: env.userKey, target: { url: env.targetUrl(target) } });
  return new PageBlobClient(env.targetUrl(target), new AnonymousCredential()).downloadToBuffer(0, bytes);
}

async function writePages(blob: PageBlobClient, pages: number[]): Promise<void> {
  for (const p of pages) await blob.uploadPages(randomBytes(PAGE), p * PAGE, PAGE);
}

test('repack, then the old packs deleted: every generation restores byte-identical and verifies through the index; an incremental finalizes on moved blocks', async () => {
  const v = await openVault('repack1');
  const name = 'repack.vhd';
  const blob = env.sourceClient(name);
  await blob.create(MiB);
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: v.location, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true };
  const images: Buffer[] = [];
  const gens: BackupResult[] = [];
  for (const pages of [[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], [2, 3, 4, 5]]) {
    await writePages(blob, pages);
    images.push(await blob.downloadToBuffer());
    gens.push(await backupDisk(req));
  }
  expect(gens.map((g) => g.kind)).toEqual(['full', 'incremental', 'incremental']);
  const keyring = await v.keyring();
  const chunks = await Promise.all(gens.map((g) => chunksOf(v, g.backupId)));
  const [p0, p1, p2] = chunks.map((c) => [...new Set(c.map((x) => x.pack))]);
  // Each backup wrote one pack; g2 reuses two blocks of g1's pack and two of g0's.
  expect([p0.length, p1.length, p2.length]).toEqual([1, 2, 3]);
  const old = [p0[0], p1.find((p) => p !== p0[0])!];
  const live = new Set(chunks.flat().map((c) => c.id));

  const trailers = await Promise.all(old.map((p) => readPackTrailer(v.vault, keyring, p)));
  const liveEntries = trailers.flat().filter((e) => live.has(e.contentId.toString('hex')));
  expect(liveEntries).toHaveLength(12); // 8 + 4 blocks, all still referenced
  // Killed right before its new pack's commit: nothing committed, no delta; the blocks it staged are dropped by Azure.
  const deltasBefore = (await VaultIndex.open(v.vault, keyring)).deltas.length;
  const steps: string[] = [];
  const kill = async (_step: 'repack', blobName: string) => {
    steps.push(blobName);
    if (blobName.startsWith('packs/ ')) throw new Error('killed');
  };
  await expect(repackPacks(v.vault, keyring, old, (id) => live.has(id), { beforeMutation: kill })).rejects.toThrow('killed');
  expect(steps).toEqual([...old.map((p) => v2names.pack(p)), "packs/ (the new packs' commit)"]);
  expect((await VaultIndex.open(v.vault, keyring)).deltas.length).toBe(deltasBefore);
  const repacked = await repackPacks(v.vault, keyring, old, (id) => live.has(id));
  expect(repacked).toMatchObject({ blocksCopied: 12, bytesCopied: liveEntries.reduce((s, e) => s + e.storedLength, 0) });
  expect(repacked.newPacks).toHaveLength(1);
  expect(repacked.deltas).toHaveLength(1);
  // A rerun after a crash copies again: a second holder, harmless; the newest is the one readers take.
  const rerun = await repackPacks(v.vault, keyring, old, (id) => live.has(id));
  expect(rerun.blocksCopied).toBe(12);

  // Ciphertext unchanged: the block at its new place is byte for byte the one at its old place.
  const index = await VaultIndex.open(v.vault, keyring);
  const sample = liveEntries[0];
  const entries = await index.lookup(sample.contentId.toString('hex'));
  expect(entries.map((e) => e.pack)).toEqual([rerun.newPacks[0], repacked.newPacks[0], sample.pack]);
  const at = entries[0];
  expect((await v.vault.getBytes(v2names.pack(at.pack), at.offset, at.storedLength)).equals(await v.vault.getBytes(v2names.pack(sample.pack), sample.offset, sample.storedLength))).toBe(true);
  // An entry whose pack is gone falls through to the next.
  const fallen = await index.locate(sample.contentId.toString('hex'), async (p) => p !== rerun.newPacks[0]);
  expect(fallen?.pack).toBe(repacked.newPacks[0]);
  expect(index.stats).toEqual({ lookups: 2, deltasRead: index.deltas.length, framesRead: 0 });
  // The cache is bounded: with room for the two newest deltas (the repacks', 12 entries each), a second lookup reads only the older ones again.
  const small = await VaultIndex.open(v.vault, keyring, { cacheEntries: 24 });
  for (let k = 0; k < 2; k++) expect((await small.lookup(sample.contentId.toString('hex'))).length).toBe(3);
  expect(small.deltas).toHaveLength(5);
  expect(small.stats).toEqual({ lookups: 2, deltasRead: 5 + 3, framesRead: 0 });

  // Prune's later sweep, by hand: the old packs, and the first one's delta.
  for (const p of old) await v.container.deleteBlob(v2names.pack(p));
  const [oldDelta] = (await readBatchDeltas(v, gens[0].backupId));
  await v.container.deleteBlob(oldDelta);

  for (const [k, g] of gens.entries()) {
    expect((await restoredBytes(v, g.backupId, `repack-g${k}.vhd`, MiB)).equals(images[k])).toBe(true);
    const moved = chunks[k].filter((c) => old.includes(c.pack)).length;
    const verified = await verifyBackup({ backupId: g.backupId, vault: v.location, userKey: env.userKey, readData: true });
    expect(verified).toMatchObject({ ok: true, problems: [], blocksChecked: chunks[k].length, blocksRelocated: moved, pagesChecked: chunks[k].length });
  }
  expect(chunks.map((c) => c.filter((x) => old.includes(x.pack)).length)).toEqual([8, 8, 4]);

  // g3: pages 6 and 7 unchanged since g0 (their hint names a deleted pack): finalize finds them in the index.
  await writePages(blob, [8]);
  images.push(await blob.downloadToBuffer());
  const g3 = await backupDisk(req);
  expect(g3).toMatchObject({ kind: 'incremental', base: { backupId: gens[2].backupId } });
  expect((await restoredBytes(v, g3.backupId, 'repack-g3.vhd', MiB)).equals(images[3])).toBe(true);
  const g3chunks = await chunksOf(v, g3.backupId);
  expect(await verifyBackup({ backupId: g3.backupId, vault: v.location, userKey: env.userKey, readData: true })).toMatchObject({ ok: true, blocksRelocated: g3chunks.filter((c) => old.includes(c.pack)).length });
  expect(g3chunks.filter((c) => old.includes(c.pack)).length).toBe(4); // pages 0, 1 (g1) and 6, 7 (g0)
});

/** The delta names a backup's batch records list (the deltas of the packs it wrote). */
async function readBatchDeltas(v: Opened, backupId: string): Promise<string[]> {
  const { readBatch2 } = await import('../core/repo/v2/staging');
  const keyring = await v.keyring();
  const plan = (await readPlan2(v.vault, keyring, backupId))!;
  const out: string[] = [];
  for (const b of plan.batches) out.push(...(await readBatch2(v.vault, keyring, backupId, b))!.deltas);
  return out;
}

test('a block whose hinted pack is gone and that no index delta places: verify names the pack and the page', async () => {
  const v = await openVault('repack2');
  const name = 'repack-lost.vhd';
  const blob = env.sourceClient(name);
  await blob.create(MiB);
  await writePages(blob, [0, 1]);
  const g = await backupDisk({ source: { url: env.az.sasUrl('src', 'disks', name) }, vault: v.location, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB });
  const [pack] = new Set((await chunksOf(v, g.backupId)).map((c) => c.pack));
  await v.container.deleteBlob(v2names.pack(pack));
  const verified = await verifyBackup({ backupId: g.backupId, vault: v.location, userKey: env.userKey, readData: true });
  expect(verified).toMatchObject({ ok: false, blocksRelocated: 0 });
  expect(verified.problems).toEqual([0, 1].map((p) => `page ${p} (offset ${p * PAGE}): its block's pack ${pack} (${v2names.pack(pack)}) is missing, and the vault index names no existing pack holding its chunk`));
  await expect(restoreBackup({ backupId: g.backupId, vault: v.location, userKey: env.userKey, target: { url: env.targetUrl('repack-lost.vhd') } })).rejects.toThrow(/is missing, and the vault index names no existing pack holding its chunk/);
});

test("finalize: a base's table pruned while the backup ran stops it (BackupIncomplete naming the table); no manifest", async () => {
  const v = await openVault('repack3');
  const name = 'repack-table.vhd';
  const blob = env.sourceClient(name);
  const groupPages = 16_384; // pagesPerTable at 64 KiB pages: two groups on this disk
  await blob.create(groupPages * PAGE + MiB);
  await writePages(blob, [0, groupPages]);
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: v.location, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true };
  const full = await backupDisk(req);
  const baseTables = (await manifestOf(v, full.backupId)).tables;
  expect(baseTables.map((t) => t.index)).toEqual([0, 1]);

  await writePages(blob, [groupPages]); // group 0 unchanged: its table is reused as it is
  const incr = { ...req, backupId: 'incr-table' };
  const plan = await planBackup(incr);
  expect(plan).toMatchObject({ kind: 'incremental', batchCount: 1 });
  expect((await readPlan2(v.vault, await v.keyring(), 'incr-table'))!.baseTables).toEqual(baseTables);
  await runBackupBatch({ ...incr, backupId: 'incr-table', planPosition: 0 });
  await v.container.deleteBlob(v2names.table(baseTables[0].tableId)); // as prune would once the base was forgotten and its grace ended
  await expect(finalizeBackup({ ...incr, backupId: 'incr-table' })).rejects.toMatchObject({
    code: 'BackupIncomplete',
    message: expect.stringMatching(new RegExp(`${v2names.table(baseTables[0].tableId)} \\(group 0\\).*removed by prune; no manifest was written.*start a new backup`)),
  });
  expect(await findManifest2(v.vault, await v.keyring(), 'incr-table')).toBeUndefined();
});

test('an expired plan: a batch and the finalize refuse with BackupExpired (injected clock), and a rerun of the same backup ID stops the same way', async () => {
  const v = await openVault('repack4');
  const name = 'repack-expired.vhd';
  const blob = env.sourceClient(name);
  await blob.create(MiB);
  await writePages(blob, [0, 1, 2]);
  const start = Date.now();
  const at = (ms: number): Clock => () => start + ms;
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: v.location, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, backupId: 'late-1', clock: at(0) };
  await planBackup(req);
  const expired = { code: 'BackupExpired', message: expect.stringMatching(/backup late-1 was planned at .*more than 7 days ago.*Start a new backup.*give it another ID/) };
  await expect(runBackupBatch({ ...req, backupId: 'late-1', planPosition: 0, clock: at(7 * DAY + 1000) })).rejects.toMatchObject(expired);
  expect(await readBatchRecords(v, 'late-1')).toBe(0); // nothing was read or written
  await runBackupBatch({ ...req, backupId: 'late-1', planPosition: 0, clock: at(6 * DAY) });
  // Finalize: its checks, then the limit, right before the manifest Put.
  await expect(finalizeBackup({ ...req, backupId: 'late-1', clock: at(8 * DAY) })).rejects.toMatchObject(expired);
  expect(await findManifest2(v.vault, await v.keyring(), 'late-1')).toBeUndefined();
  // The single-process engine resuming the same ID (a rerun of the same command) stops the same way.
  await expect(backupDisk({ ...req, clock: at(8 * DAY) })).rejects.toMatchObject(expired);
  // Within the limit it finishes; a new backup ID starts afresh.
  const done = await finalizeBackup({ ...req, backupId: 'late-1', clock: at(7 * DAY - 1000) });
  expect(done).toMatchObject({ backupId: 'late-1', kind: 'full' });
  expect(await backupDisk({ ...req, backupId: 'late-2', clock: at(30 * DAY) })).toMatchObject({ backupId: 'late-2' });
});

async function readBatchRecords(v: Opened, backupId: string): Promise<number> {
  let n = 0;
  for await (const _ of v.vault.list(`${v2names.stagingPrefix((await v.keyring()).nameTag(backupId))}batches/`)) n++;
  return n;
}

test('chooseBase skips a forgotten manifest: the next backup takes the older one as its base, or is full (base-forgotten) when all are forgotten', async () => {
  const v = await openVault('repack5');
  const name = 'repack-forgotten.vhd';
  const blob = env.sourceClient(name);
  await blob.create(MiB);
  let keyring: Keyring; // the first backup makes the vault
  /** Backs up a snapshot the test takes (not Pagewise: kept, so every backup's snapshot stays a possible base). */
  const backupSnapshot = async (backupId: string) => {
    const { snapshot } = await blob.createSnapshot();
    return backupDisk({ source: { url: `${env.az.sasUrl('src', 'disks', name)}&snapshot=${encodeURIComponent(snapshot!)}` }, vault: v.location, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, backupId });
  };
  const forget = async (backupId: string) => {
    const nameTag = keyring.nameTag(backupId);
    const blobName = v2names.tombstone(nameTag);
    const manifest = (await findManifest2(v.vault, keyring, backupId))!.name;
    const now = new Date();
    const body = { format: 'pagewise-tombstone', version: 2, backupId, manifest, formatVersion: 2, forgottenAt: now.toISOString(), graceEndsAt: new Date(now.getTime() + 14 * DAY).toISOString(), reason: 'forget' };
    await v.vault.putNew(blobName, sealJson(keyring, 4, blobName, body));
  };
  await writePages(blob, [0, 1, 2]);
  const a = await backupSnapshot('forg-a');
  expect(a).toMatchObject({ kind: 'full', reason: 'no-base' });
  keyring = await v.keyring();
  expect((await readPlan2(v.vault, keyring, 'forg-a'))!.baseTables).toBeNull();
  await writePages(blob, [1]);
  expect(await backupSnapshot('forg-b')).toMatchObject({ kind: 'incremental', base: { backupId: 'forg-a' } });

  await forget('forg-b');
  await writePages(blob, [2]);
  const c = await backupSnapshot('forg-c');
  expect(c).toMatchObject({ kind: 'incremental', base: { backupId: 'forg-a' }, reason: null });
  expect(c.bytesRead).toBe(2 * PAGE); // pages 1 and 2 changed since A, not only page 2 (since the forgotten B)
  expect((await readPlan2(v.vault, keyring, 'forg-c'))!.baseTables).toEqual((await manifestOf(v, 'forg-a')).tables);

  await forget('forg-a');
  await forget('forg-c');
  await writePages(blob, [3]);
  expect(await backupSnapshot('forg-d')).toMatchObject({ kind: 'full', reason: 'base-forgotten' });
  expect((await readPlan2(v.vault, keyring, 'forg-d'))!.baseTables).toBeNull();
});

test("finalize relies on a table another backup stored (409) only when it is young enough (§26.8 (c)); else it stores the table under its own alternate name", async () => {
  const v = await openVault('repack6');
  const name = 'repack-alternate.vhd';
  const blob = env.sourceClient(name);
  await blob.create(MiB);
  const snapshotUrl = async () => `${env.az.sasUrl('src', 'disks', name)}&snapshot=${encodeURIComponent((await blob.createSnapshot()).snapshot!)}`;
  const settings = { vault: v.location, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB };
  await writePages(blob, [0, 1]);
  await backupDisk({ ...settings, source: { url: await snapshotUrl() }, backupId: 'alt-a' });
  const keyring = await v.keyring();
  await blob.clearPages(PAGE, PAGE); // page 1 cleared: the group's table = A's record of page 0, whoever writes it
  const cleared = await snapshotUrl();
  const image = await blob.downloadToBuffer();
  const b = await backupDisk({ ...settings, source: { url: cleared }, backupId: 'alt-b' });
  expect(b).toMatchObject({ kind: 'incremental', base: { backupId: 'alt-a' } });
  const tableB = (await manifestOf(v, 'alt-b')).tables[0].tableId;
  // C and D back up the same state on base A (B forgotten): the same table plaintext, so their Put answers 409.
  const forget = async (backupId: string) => {
    const tombstone = v2names.tombstone(keyring.nameTag(backupId));
    const manifest = (await findManifest2(v.vault, keyring, backupId))!.name;
    await v.vault.putNew(tombstone, sealJson(keyring, 4, tombstone, { format: 'pagewise-tombstone', version: 2, backupId, manifest, formatVersion: 2, forgottenAt: new Date().toISOString(), graceEndsAt: new Date(Date.now() + 14 * DAY).toISOString(), reason: 'forget' }));
  };
  await forget('alt-b');
  const c = await backupDisk({ ...settings, source: { url: cleared }, backupId: 'alt-c' });
  expect(c).toMatchObject({ kind: 'incremental', base: { backupId: 'alt-a' } });
  expect((await manifestOf(v, 'alt-c')).tables[0].tableId).toBe(tableB); // young: relied on
  await forget('alt-c');
  // D's plan is 30 days after B's table was stored: more than L, so D must not rely on it.
  const late: Clock = () => Date.now() + 30 * DAY;
  const d = await backupDisk({ ...settings, source: { url: cleared }, backupId: 'alt-d', clock: late });
  expect(d).toMatchObject({ kind: 'incremental', base: { backupId: 'alt-a' } });
  const tableD = (await manifestOf(v, 'alt-d')).tables[0].tableId;
  expect(tableD).not.toBe(tableB);
  expect(await v.vault.exists(v2names.table(tableD))).toBe(true);
  expect((await restoredBytes(v, 'alt-d', 'repack-alt-d.vhd', MiB)).equals(image)).toBe(true);
  expect(await verifyBackup({ backupId: 'alt-d', vault: v.location, userKey: env.userKey, readData: true })).toMatchObject({ ok: true, tablesChecked: 1 });
});
