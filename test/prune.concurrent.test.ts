/**
 * Prune beside backups that are running (issue #13, "concurrent with backups"), on a real Azurite, the
 * engine's steps (plan → batches → finalize) interleaved by hand with forget and prune:
 * - an incremental planned on a base B that is then forgotten: with the default grace it finishes and
 *   restores byte-identical after B is pruned; with no grace B's manifest goes at once, but B's table and
 *   pack (older than L) are not marked, because the in-flight plan's baseTables name them, and the sweep D
 *   later keeps them; the incremental still finishes from its plan's baseTables and restores identical;
 * - an in-flight backup resumed after L is refused (BackupExpired), the prunes that follow remove its
 *   staging and its unreferenced pack, and a new backup of the disk works;
 * - a backup and a sweeping, repacking prune at the same time (Promise.all): both finish, every backup
 *   restores byte-identical — after a later prune deleted the repacked packs its hints still name.
 */
import { planBackup, runBackupBatch, finalizeBackup, backupDisk, StorageLocation, verifyBackup } from '../core';
import { DEFAULT_ABANDON_AFTER_MS, DEFAULT_DELETE_AFTER_MS, DEFAULT_GRACE_MS } from '../core/prune/protocol';
import { readMarks } from '../core/prune/marks';
import { pruneVault } from '../core/prune/prune';
import { forgetBackups } from '../core/retention/forget';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { sealJson } from '../core/repo/v2/envelope';
import { v2names } from '../core/repo/v2/names';
import { readPlan2 } from '../core/repo/v2/staging';
import { Vault } from '../core/repo/vault';
import { MiB, startEnv, TestEnv } from './harness/env';
import { blobsOfBackup, existing, expectIntact, KnownBackup, PagedDisk } from './harness/prune-fixture';

const HOUR = 3_600_000;
const L = DEFAULT_ABANDON_AFTER_MS;
const D = DEFAULT_DELETE_AFTER_MS;
const G = DEFAULT_GRACE_MS;
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

async function stagingOf(vault: StorageLocation, backupId: string): Promise<string[]> {
  const store = Vault.open(vault);
  const keyring = await openVaultKeyring(store, env.userKey);
  const out: string[] = [];
  for await (const name of store.list(v2names.stagingPrefix(keyring.nameTag(backupId)))) out.push(name);
  return out;
}

/**
 * A base B (16 pages, one pack) and an incremental of it planned at the writer's clock W, more than L after
 * B's blobs were created (so only references, not age, keep B's table and pack from being candidates),
 * then B forgotten with `graceMs`.
 */
async function plannedOnForgottenBase(container: string, graceMs: number | undefined) {
  const vault = await env.makeVault(container);
  const disk = await PagedDisk.create(env, `${container}.vhd`, 4 * MiB);
  await disk.write(range(0, 16), 21);
  const b = await disk.backup(vault);
  const ofB = await blobsOfBackup(vault, env.userKey, b.backupId);
  expect(ofB.packs).toHaveLength(1);
  const w = Date.now() + L + HOUR;
  await disk.write([0, 1, 2], 22);
  const req = disk.request(vault, { clock: () => w });
  const plan = await planBackup(req);
  expect(plan).toMatchObject({ kind: 'incremental', base: { backupId: b.backupId }, batchCount: 1 });
  const store = Vault.open(vault);
  const keyring = await openVaultKeyring(store, env.userKey);
  const planned = await readPlan2(store, keyring, plan.backupId);
  expect(planned?.baseTables?.map((t) => t.tableId)).toEqual(ofB.tableIds); // B's table refs, whole: the batch and finalize need no more of B
  expect(planned?.baseGeneration).toBe(0);
  await forgetBackups({ vault, userKey: env.userKey, backupIds: [b.backupId], graceMs, clock: () => w });
  /** The incremental's batch and finalize at W + `hours`: three pages read, thirteen reused from B's pack. */
  const finish = async (hours: number): Promise<KnownBackup> => {
    const batch = await runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0, clock: () => w + hours * HOUR });
    expect(batch).toMatchObject({ bytesRead: 3 * 64 * 1024 });
    const done = await finalizeBackup({ ...req, backupId: plan.backupId, clock: () => w + (hours + 1) * HOUR });
    expect(done).toMatchObject({ kind: 'incremental', base: { backupId: b.backupId }, storedBlocks: 3 });
    expect((await blobsOfBackup(vault, env.userKey, plan.backupId)).packs).toContain(ofB.packs[0]);
    return { backupId: plan.backupId, sha256: disk.sha256() };
  };
  return { vault, store, keyring, b, ofB, bPack: ofB.packs[0].replace(/^packs\/..\/(.*)\.pwp$/, '$1'), w, plan, req, finish };
}

test('an incremental planned on B, B then forgotten (default grace): it finishes in the grace; prunes past the grace and D delete what only B used; it restores identical', async () => {
  const { vault, b, ofB, w, finish } = await plannedOnForgottenBase('concg', undefined);
  const during = await pruneVault({ vault, userKey: env.userKey, clock: () => w + HOUR });
  expect(during.deleted.manifests).toEqual([]); // B is in its grace: kept
  const incremental = await finish(2);
  const ended = w + G + HOUR;
  const first = await pruneVault({ vault, userKey: env.userKey, clock: () => ended });
  expect(first.deleted.manifests).toEqual([ofB.manifest]);
  const sweep = await pruneVault({ vault, userKey: env.userKey, clock: () => ended + D + HOUR });
  expect(sweep.deleted).toMatchObject({ tables: 1, packs: 0 }); // B's table (group 0 changed); its pack holds 13 of the incremental's pages
  expect(await existing(vault, [ofB.manifest, ...ofB.tables, ...ofB.packs])).toEqual(ofB.packs);
  await expectIntact(env, vault, [incremental], [incremental], `the incremental of ${b.backupId}, after B was pruned`);
});

test('an incremental planned on B, B forgotten with no grace: B\'s manifest goes at once, but its table and pack are not marked (the plan\'s baseTables) and a sweep D later keeps them', async () => {
  const { vault, store, keyring, b, ofB, bPack, w } = await plannedOnForgottenBase('concn', 0);
  const first = await pruneVault({ vault, userKey: env.userKey, clock: () => w + HOUR });
  expect(first.blocked).toBeUndefined();
  expect(first.deleted.manifests).toEqual([ofB.manifest]);
  const marks = await readMarks(store, keyring);
  expect(marks).toHaveLength(1);
  for (const id of ofB.tableIds) expect(marks[0].body.candidates.tables).not.toContain(id);
  expect(marks[0].body.candidates.packs).not.toContain(bPack);
  expect(marks[0].body.candidates.staging).toContain(keyring.nameTag(b.backupId)); // B's own staging: it had a manifest
  // D later the plan is past L (it can no longer finish) and B's table and pack are candidates — but only now: kept.
  const sweep = await pruneVault({ vault, userKey: env.userKey, clock: () => w + HOUR + D + HOUR });
  expect(sweep.deleted).toMatchObject({ manifests: [], tables: 0, packs: 0, stagingBlobs: 2 }); // B's plan and batch record
  expect(sweep.pending).toMatchObject({ tables: ofB.tables.length });
  expect(await existing(vault, [...ofB.tables, ...ofB.packs])).toEqual([...ofB.tables, ...ofB.packs]);
});

// FORMAT §26.3: the plan holds its base's table refs and generation, so the batch and finalize of the
// incremental never read its base manifest: pruned with no grace, B's manifest is gone, its tables (kept
// through the plan's baseTables) are all the incremental needs.
test('an incremental whose base was forgotten with no grace and pruned finishes from its plan\'s baseTables and restores identical', async () => {
  const { vault, w, finish } = await plannedOnForgottenBase('concf', 0);
  await pruneVault({ vault, userKey: env.userKey, clock: () => w + HOUR });
  const incremental = await finish(2);
  await expectIntact(env, vault, [incremental], [incremental], 'the incremental finished after its base was pruned');
});

test('a plan written before baseTables reads its base manifest: its batch runs while B is there; pruned with no grace, its finalize stops, BackupIncomplete', async () => {
  const { vault, store, keyring, ofB, w, plan, req } = await plannedOnForgottenBase('conco', 0);
  // The plan as a writer before #13 wrote it: without baseTables and baseGeneration.
  const name = v2names.plan(keyring.nameTag(plan.backupId));
  const { baseTables, baseGeneration, ...old } = (await readPlan2(store, keyring, plan.backupId))!;
  expect([baseTables?.length, baseGeneration]).toEqual([1, 0]);
  await store.putBytes(name, sealJson(keyring, 1, name, old));
  const batch = await runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0, clock: () => w + HOUR });
  expect(batch).toMatchObject({ bytesRead: 3 * 64 * 1024, resumed: false }); // B's manifest read for its tables (there still)
  const pruned = await pruneVault({ vault, userKey: env.userKey, clock: () => w + HOUR });
  expect(pruned.deleted.manifests).toEqual([ofB.manifest]);
  await expect(finalizeBackup({ ...req, backupId: plan.backupId, clock: () => w + 2 * HOUR })).rejects.toMatchObject({
    code: 'BackupIncomplete',
    message: expect.stringMatching(new RegExp(`its base manifest ${ofB.manifest.replace(/[.]/g, '\\.')} is no longer in the vault: its base was deleted by prune while it ran; no manifest was written`)),
  });
});

test('prune reading a plan whose baseTables are not table refs reports it, naming the plan and what is wrong', async () => {
  const { vault, store, keyring, ofB, w, plan } = await plannedOnForgottenBase('concr', 0);
  const name = v2names.plan(keyring.nameTag(plan.backupId));
  const stored = (await readPlan2(store, keyring, plan.backupId))!;
  await store.putBytes(name, sealJson(keyring, 1, name, { ...stored, baseTables: ofB.tableIds })); // names only: the shape before the refs
  const report = await pruneVault({ vault, userKey: env.userKey, clock: () => w + HOUR });
  expect(report.problems).toContainEqual(expect.stringMatching(new RegExp(`the plan ${name} is not a version-2 Pagewise plan of this backup: baseTables: a table entry is malformed`)));
  // Candidates: B's staging (it has a manifest) and this one: an unreadable plan's staging counts by its
  // blobs' age, past L at this clock (§26.4).
  expect(report.pending.staging).toBe(2);
});

test('an in-flight backup resumed after L is refused (BackupExpired); the prunes after remove its staging; a new backup of the disk works', async () => {
  const vault = await env.makeVault('concb');
  const disk = await PagedDisk.create(env, 'conc-b.vhd', 4 * MiB);
  await disk.write(range(0, 8), 31);
  const b = await disk.backup(vault);
  await disk.write([8, 9], 32);
  const req = disk.request(vault);
  const plan = await planBackup(req);
  expect(plan).toMatchObject({ kind: 'incremental', base: { backupId: b.backupId } });
  const late = Date.now() + L + HOUR;
  await expect(runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0, clock: () => late })).rejects.toMatchObject({ code: 'BackupExpired' });
  // Its batch ran in time (a pack of two blocks), its finalize comes too late.
  await runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0 });
  await expect(finalizeBackup({ ...req, backupId: plan.backupId, clock: () => late })).rejects.toMatchObject({ code: 'BackupExpired' });
  await expect(backupDisk({ ...req, clock: () => late })).rejects.toMatchObject({ code: 'BackupExpired' });
  const staged = await stagingOf(vault, plan.backupId);
  expect(staged).toHaveLength(2); // the plan and the batch record

  const first = await pruneVault({ vault, userKey: env.userKey, clock: () => late });
  expect(first.deleted.stagingBlobs).toBe(0); // one observation is not enough
  expect(first.pending.staging).toBeGreaterThanOrEqual(1);
  const second = await pruneVault({ vault, userKey: env.userKey, clock: () => late + D + HOUR });
  expect(await stagingOf(vault, plan.backupId)).toEqual([]);
  expect(second.deleted).toMatchObject({ packs: 1, deltas: 1 }); // the expired batch's pack: referenced by nothing
  expect(second.deleted.stagingBlobs).toBeGreaterThanOrEqual(2);

  // The disk backs up again (the same state: the same backup ID, planned anew), incremental on B.
  const again = await disk.backup(vault);
  expect(again).toMatchObject({ backupId: plan.backupId, kind: 'incremental', baseId: b.backupId });
  await expectIntact(env, vault, [b, again], [again], 'a new backup after an expired one');
});

test('a backup and a sweeping, repacking prune at once: both finish; every backup restores identical, also once the repacked packs are gone', async () => {
  const vault = await env.makeVault('concc');
  const disk = await PagedDisk.create(env, 'conc-c.vhd', 4 * MiB);
  await disk.write(range(0, 16), 41);
  const f = await disk.backup(vault);
  await disk.write(range(0, 12), 42);
  const i1 = await disk.backup(vault);
  await disk.write(range(0, 2), 43);
  const i2 = await disk.backup(vault);
  // F forgotten: its pack is 4/16 live (I1 and I2 still read pages 12–15 from it) and is repacked.
  const ofF = await blobsOfBackup(vault, env.userKey, f.backupId);
  expect(ofF.packs).toHaveLength(1);
  expect((await blobsOfBackup(vault, env.userKey, i2.backupId)).packs).toContain(ofF.packs[0]);
  await forgetBackups({ vault, userKey: env.userKey, backupIds: [f.backupId], graceMs: 0 });
  const c0 = Date.now() + L + HOUR; // F's pack older than L: it may be repacked
  const marked = await pruneVault({ vault, userKey: env.userKey, clock: () => c0 });
  expect(marked.repacked.packs).toBe(1);

  // D later: the sweep (F's table and its old pack) runs while the next incremental of the disk runs;
  // that incremental reuses pages 12–15 of its base I2, whose table hints F's old pack.
  await disk.write([3, 5], 44);
  const [i3, sweep] = await Promise.all([disk.backup(vault), pruneVault({ vault, userKey: env.userKey, clock: () => c0 + D + HOUR })]);
  expect(i3).toMatchObject({ kind: 'incremental', baseId: i2.backupId });
  expect(sweep.blocked).toBeUndefined();
  expect(sweep.deleted).toMatchObject({ tables: 1, packs: 1, deltas: 1 });
  expect(await existing(vault, [...ofF.packs, ...ofF.tables])).toEqual([]);
  const kept = [i1, i2, i3];
  await expectIntact(env, vault, kept, kept, 'after a prune beside a backup');
  // Each of them reads pages 12–15 through a stale hint (F's old pack, gone): the index places them in the repacked pack.
  expect((await blobsOfBackup(vault, env.userKey, i3.backupId)).packs).toContain(ofF.packs[0]);
  for (const b of kept) expect(await verifyBackup({ backupId: b.backupId, vault, userKey: env.userKey })).toMatchObject({ ok: true, blocksRelocated: 4 });

  // D later again: nothing kept is touched, nothing referenced is pending; the stale hints still read.
  const later = await pruneVault({ vault, userKey: env.userKey, clock: () => c0 + 2 * (D + HOUR) });
  expect(later.deleted).toMatchObject({ manifests: [], tables: 0, packs: 0 });
  expect(later.pending).toMatchObject({ packs: 0, tables: 0 });
  await expectIntact(env, vault, kept, [i3], 'after a later prune');

  // Three more rounds, the prune started a little later each time (other interleavings): the oldest kept
  // backup forgotten (no grace), a page changed, a backup and a prune D after the last one, at once.
  let clock = c0 + 2 * (D + HOUR);
  for (let round = 1; round <= 3; round++) {
    const oldest = kept.shift()!;
    await forgetBackups({ vault, userKey: env.userKey, backupIds: [oldest.backupId], graceMs: 0, clock: () => clock });
    await disk.write([5 + round], 60 + round);
    clock += D + HOUR;
    const at = clock;
    const [next, pruned] = await Promise.all([disk.backup(vault), new Promise((r) => setTimeout(r, 300 * round)).then(() => pruneVault({ vault, userKey: env.userKey, clock: () => at }))]);
    expect({ round, kind: next.kind, blocked: pruned.blocked, manifests: pruned.deleted.manifests.length }).toEqual({ round, kind: 'incremental', blocked: undefined, manifests: 1 });
    // The forgotten backup's leftovers: swept, or — when the prune met the backup beside it mid-write — held
    // pending (what a running backup may reference is never deleted under it); which one depends on timing.
    expect(pruned.deleted.tables + pruned.deleted.stagingBlobs + pruned.pending.tables + pruned.pending.staging).toBeGreaterThan(0);
    kept.push(next);
    await expectIntact(env, vault, kept, [next], `round ${round} of a backup beside a prune`);
  }
});
