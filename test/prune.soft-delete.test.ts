/**
 * Soft delete under prune (issue #13): backups forgotten with a grace period stay whole while prunes run
 * during the grace — prunes that do delete what another forgotten backup (no grace) alone referenced —
 * are listed as deleted, restore byte-identical and pass verify --read-data; undeleted within the grace
 * they are ordinary backups again, kept by every later prune.
 */
import { listBackups } from '../core';
import { DEFAULT_ABANDON_AFTER_MS, DEFAULT_DELETE_AFTER_MS } from '../core/prune/protocol';
import { pruneVault } from '../core/prune/prune';
import { forgetBackups, undeleteBackups } from '../core/retention/forget';
import { MiB, startEnv, TestEnv } from './harness/env';
import { blobsOfBackup, existing, expectIntact, PagedDisk } from './harness/prune-fixture';

const DAY = 86_400_000;
const GRACE = 30 * DAY;
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

test('forgotten backups undeleted within their grace are intact, after prunes that ran during the grace', async () => {
  const vault = await env.makeVault('softdel');
  const disk = await PagedDisk.create(env, 'softdel.vhd', 4 * MiB);
  await disk.write(range(0, 16), 51);
  const f = await disk.backup(vault);
  await disk.write(range(0, 8), 52);
  const i1 = await disk.backup(vault);
  await disk.write(range(0, 4), 53);
  const i2 = await disk.backup(vault);
  await disk.write([0, 1], 54);
  const i3 = await disk.backup(vault);
  const ofI3 = await blobsOfBackup(vault, env.userKey, i3.backupId);
  const ofI2 = await blobsOfBackup(vault, env.userKey, i2.backupId);
  const onlyI3 = [...ofI3.tables, ...ofI3.packs.filter((p) => !ofI2.packs.includes(p))];
  expect(onlyI3).toHaveLength(2); // its table and the pack of its two pages

  const t = Date.now();
  // F and I1 soft-deleted for 30 days (long enough for a mark and a sweep of I3's blobs, which must first
  // be older than L); I3 forgotten for good (no grace): the prunes have work.
  const soft = await forgetBackups({ vault, userKey: env.userKey, backupIds: [f.backupId, i1.backupId], graceMs: GRACE, clock: () => t });
  expect(soft.forgotten.map((x) => [x.backupId, x.graceEndsAt]).sort()).toEqual(
    [f.backupId, i1.backupId].map((id) => [id, new Date(t + GRACE).toISOString()]).sort(),
  );
  await forgetBackups({ vault, userKey: env.userKey, backupIds: [i3.backupId], graceMs: 0, clock: () => t });
  const listed = await listBackups(vault, { userKey: env.userKey });
  for (const b of [f, i1]) expect(listed.find((x) => x.backupId === b.backupId)).toMatchObject({ deleted: { graceEndsAt: new Date(t + GRACE).toISOString() } });

  // Two prunes D apart, both inside the grace: I3 goes (its manifest at once, its own table and pack on the second).
  const c1 = t + DEFAULT_ABANDON_AFTER_MS + DAY;
  const c2 = c1 + DEFAULT_DELETE_AFTER_MS + DAY;
  expect(c2).toBeLessThan(t + GRACE);
  const first = await pruneVault({ vault, userKey: env.userKey, clock: () => c1 });
  expect(first.deleted.manifests).toEqual([ofI3.manifest]);
  expect(first.kept.manifests).toBe(3); // F and I1 in their grace count as kept
  await expectIntact(env, vault, [f, i1, i2], [f], 'soft-deleted, after the first prune');
  const second = await pruneVault({ vault, userKey: env.userKey, clock: () => c2 });
  expect(second.deleted).toMatchObject({ tables: 1, packs: 1 });
  expect(await existing(vault, onlyI3)).toEqual([]);
  await expectIntact(env, vault, [f, i1, i2], [i1], 'soft-deleted, after the sweep');

  // Undeleted within the grace: listed as ordinary backups, intact, kept by any later prune.
  const back = await undeleteBackups({ vault, userKey: env.userKey, backupIds: [f.backupId, i1.backupId], clock: () => c2 + DAY });
  expect(back).toEqual({ restored: expect.arrayContaining([f.backupId, i1.backupId]), notForgotten: [], expired: [] });
  expect(back.restored).toHaveLength(2);
  const relisted = await listBackups(vault, { userKey: env.userKey });
  for (const b of [f, i1]) {
    const x = relisted.find((y) => y.backupId === b.backupId);
    expect({ status: x?.status, deleted: x && 'deleted' in x ? x.deleted : undefined }).toEqual({ status: 'complete', deleted: undefined });
  }
  const much = await pruneVault({ vault, userKey: env.userKey, clock: () => t + GRACE + 30 * DAY });
  const muchLater = await pruneVault({ vault, userKey: env.userKey, clock: () => t + GRACE + 30 * DAY + DEFAULT_DELETE_AFTER_MS + DAY });
  for (const r of [much, muchLater]) expect(r.deleted).toMatchObject({ manifests: [], tables: 0, packs: 0 });
  expect(muchLater.kept.manifests).toBe(3);
  await expectIntact(env, vault, [f, i1, i2], [f, i1, i2], 'undeleted, after prunes past the grace');
  // I3 cannot come back: prune deleted its manifest, then its tombstone.
  const late = await undeleteBackups({ vault, userKey: env.userKey, backupIds: [i3.backupId] });
  expect(late).toEqual({ restored: [], notForgotten: [i3.backupId], expired: [] });
});

test("the prune app's minimum grace holds a tombstone written with none (or a backdated one): counted from the service's Creation-Time", async () => {
  const vault = await env.makeVault('mingrace');
  const disk = await PagedDisk.create(env, 'mingrace.vhd', 4 * MiB);
  await disk.write(range(0, 8), 61);
  const f = await disk.backup(vault);
  await disk.write([0, 1], 62);
  const i1 = await disk.backup(vault);
  const ofF = await blobsOfBackup(vault, env.userKey, f.backupId);
  // Whoever holds the backup identity (and so the key) forgets F with no grace, and backdates it a year.
  const forged = Date.now() - 365 * DAY;
  await forgetBackups({ vault, userKey: env.userKey, backupIds: [f.backupId], graceMs: 0, clock: () => forged });
  const MIN_GRACE = 7 * DAY;
  const early = await pruneVault({ vault, userKey: env.userKey, minGraceMs: MIN_GRACE, clock: () => Date.now() + MIN_GRACE - DAY });
  expect(early.deleted.manifests).toEqual([]);
  expect(early.kept.manifests).toBe(2);
  expect(await existing(vault, [ofF.manifest])).toEqual([ofF.manifest]);
  // The backup stays whole and restorable through the minimum grace: time for an operator to notice.
  await expectIntact(env, vault, [f, i1], [f], 'forgotten with no grace, inside the minimum grace');
  const late = await pruneVault({ vault, userKey: env.userKey, minGraceMs: MIN_GRACE, clock: () => Date.now() + MIN_GRACE + DAY });
  expect(late.deleted.manifests).toEqual([ofF.manifest]);
});
