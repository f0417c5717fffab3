/**
 * pruneVault on a real Azurite (docs/FORMAT.md §26): a full and incrementals of a small disk, two of them
 * forgotten, pruned with an injected clock. The first run deletes only the grace-ended manifests (and
 * their tombstones) and marks the rest; a dry run changes nothing and names what the next run deletes; a
 * run ≥ D later deletes exactly the blobs no kept backup references — the bytes reclaimed are computed
 * here independently from the listing and the kept manifests — while locked blobs are reported and the
 * sweep goes on; every kept backup restores byte-identical and verifies with every block read; an
 * unreadable kept manifest blocks table and pack deletion. A pruned backup's verification records go
 * before its tombstone (a stopped run's rerun finds them by it); a kept backup's stay.
 */
import { ContainerClient } from '@azure/storage-blob';
import { StorageLocation, VERIFIED_PREFIX, verificationRecord, verifyBackup, writeVerificationRecord } from '../core';
import { sealJson } from '../core/repo/v2/envelope';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { decodeIndexBlob } from '../core/repo/v2/pack-writer';
import { Vault } from '../core/repo/vault';
import { readMarks } from '../core/prune/marks';
import { pruneVault, PruneReport } from '../core/prune/prune';
import { startEnv, TestEnv } from './harness/env';
import { startFaultProxy } from './harness/fault-proxy';
import { configureStorageEndpoints } from '../core';
import { blobsOfBackup, D, DAY, HOUR, KnownBackup, PAGE, PagedDisk, restoredSha256 } from './harness/prune-fixture';
import { forgetBackups } from '../core/retention/forget';
import { upgradeVault } from '../core/repo/v2/marker';
import { inventory, InventoryBlob } from './harness/vault-inventory';

let env: TestEnv;
let vault: StorageLocation;
let container: ContainerClient;
/** Real time at the start: Azurite stamps blobs with it; the prune clock runs days ahead. */
let base: number;
let disk: PagedDisk;
const g: (KnownBackup & { kind: string; manifest: string; tables: string[]; packs: string[]; nameTag: string })[] = [];

beforeAll(async () => {
  env = await startEnv();
  vault = await env.makeVault('prune');
  container = env.az.accounts.vault.service.getContainerClient('prune');
  base = Date.now();
  // g0 full (pages 0–7) → g1 overwrites 0–7 (g0's pack is then g0's alone) → g2 overwrites 0–1 → g3 writes 8–9.
  disk = await PagedDisk.create(env, 'prune.vhd', 16 * PAGE);
  const generations: [number[], number][] = [[[0, 1, 2, 3, 4, 5, 6, 7], 1], [[0, 1, 2, 3, 4, 5, 6, 7], 2], [[0, 1], 3], [[8, 9], 4]];
  for (const [pages, seed] of generations) await backUp(pages, seed);
  expect(g.map((b) => b.packs.length)).toEqual([1, 1, 2, 3]); // g2 names its own pack and g1's; g3 those and its own
});
afterAll(async () => env?.stop());

/** Writes `pages` of the disk and backs it up: g[k] for the k-th call. */
async function backUp(pages: number[], seed: number): Promise<void> {
  await disk.write(pages, seed);
  const b = await disk.backup(vault);
  g.push({ ...b, ...(await blobsOfBackup(vault, env.userKey, b.backupId)), nameTag: (await keyringOf()).nameTag(b.backupId) });
}

async function keyringOf() {
  return openVaultKeyring(Vault.open(vault), env.userKey);
}

/** Forget's tombstone (§26.2), written as forget writes it, its grace ended at `graceEndsMs`. */
async function forget(b: (typeof g)[number], graceEndsMs: number): Promise<void> {
  const keyring = await keyringOf();
  const name = v2names.tombstone(b.nameTag);
  const at = new Date(graceEndsMs).toISOString();
  const body = { format: 'pagewise-tombstone', version: 2, backupId: b.backupId, manifest: b.manifest, formatVersion: 2, forgottenAt: at, graceEndsAt: at, reason: 'forget' };
  await Vault.open(vault).putNew(name, sealJson(keyring, 4, name, body));
}

const bytesOf = (blobs: InventoryBlob[], names: string[]) => names.reduce((n, name) => n + blobs.find((b) => b.name === name)!.bytes, 0);
const named = (blobs: InventoryBlob[]) => blobs.map((b) => b.name);

/** The pack each index delta indexes, read with the format's decoder. */
async function packOfDeltas(blobs: InventoryBlob[]): Promise<Map<string, string>> {
  const keyring = await keyringOf();
  const out = new Map<string, string>();
  for (const b of blobs.filter((x) => x.kind === 'deltas')) {
    const entries = decodeIndexBlob(keyring, b.name, await container.getBlobClient(b.name).downloadToBuffer());
    out.set(b.name, v2names.pack(entries[0].pack));
  }
  return out;
}

/** The blobs the kept backups need (marker, key slot, the index generation, their manifests, tables, packs and those packs' deltas), computed from the kept manifests alone. */
async function keptSet(blobs: InventoryBlob[], kept: (typeof g)[number][]): Promise<Set<string>> {
  const keep = new Set(blobs.filter((b) => b.kind === 'marker' || b.kind === 'keys' || b.kind === 'generations').map((b) => b.name));
  for (const b of kept) for (const name of [b.manifest, ...b.tables, ...b.packs]) keep.add(name);
  for (const [delta, pack] of await packOfDeltas(blobs)) if (keep.has(pack)) keep.add(delta);
  return keep;
}

async function expectKeptIntact(kept: (typeof g)[number][]): Promise<void> {
  for (const b of kept) {
    const v = await verifyBackup({ backupId: b.backupId, vault, userKey: env.userKey, readData: true });
    expect({ ok: v.ok, problems: v.problems }).toEqual({ ok: true, problems: [] });
    expect(v.blocksChecked).toBeGreaterThan(0);
    expect(await restoredSha256(env, vault, b.backupId)).toBe(b.sha256);
  }
}

const t1 = () => base + 8 * DAY; // every blob older than L = 7 days
const t2 = () => t1() + D + HOUR;

describe('a disk of four generations, g0 and g2 forgotten', () => {
  let report1: PruneReport;

  test('the first run deletes only the grace-ended manifests and their tombstones, and marks every other unreferenced blob', async () => {
    await forget(g[0], base + DAY);
    await forget(g[2], base + DAY);
    const before = await inventory(container);
    const tombstones = [g[0], g[2]].map((b) => v2names.tombstone(b.nameTag));
    report1 = await pruneVault({ vault, userKey: env.userKey, clock: t1 });
    expect(report1.blocked).toBeUndefined();
    expect(report1.dryRun).toBe(false);
    expect(report1.deleted).toEqual({ manifests: [g[0].manifest, g[2].manifest].sort(), tables: 0, packs: 0, deltas: 0, stagingBlobs: 0, marks: 0, generations: 0 });
    expect(report1.bytesReclaimed).toBe(bytesOf(before, [g[0].manifest, g[2].manifest, ...tombstones]));
    const after = await inventory(container);
    // …and, its last step, compacts the index: generation 1 covers every delta (#15).
    expect(report1.index).toMatchObject({ gen: 1, deltasCovered: before.filter((b) => b.kind === 'deltas').length });
    const generation = named(after.filter((b) => b.kind === 'generations'));
    expect(generation).toContain('index/c/00000001/covers.pwe');
    expect(named(after)).toEqual([...named(before).filter((n) => ![g[0].manifest, g[2].manifest, ...tombstones].includes(n)), report1.mark!, ...generation].sort());
    // The mark: g0's pack and delta, g0's and g2's tables, the staging of all four (each is complete).
    const marks = await readMarks(Vault.open(vault), await keyringOf());
    expect(marks.map((m) => m.name)).toEqual([report1.mark]);
    const deltaOfA = [...(await packOfDeltas(after))].filter(([, pack]) => pack === g[0].packs[0]).map(([delta]) => delta);
    expect(marks[0].body.candidates).toEqual({
      packs: [g[0].packs[0].slice(9, 41)],
      tables: [g[0], g[2]].map((b) => b.tables[0].slice(7, 39)).sort(),
      deltas: deltaOfA,
      staging: g.map((b) => b.nameTag).sort(),
      generations: [],
    });
    expect(marks[0].markedAtMs).toBe(t1());
    expect(report1.pending).toMatchObject({ packs: 1, tables: 2, staging: 4, eligibleAt: new Date(t1() + D).toISOString() });
    expect(report1.kept).toEqual({ manifests: 2, packs: 3, tables: 2 });
    expect(report1.repacked).toEqual({ packs: 0, newPacks: 0, bytesCopied: 0 });
  });

  test('a dry run ≥ D later writes and deletes nothing, and names what a run would delete', async () => {
    const before = await inventory(container);
    const dry = await pruneVault({ vault, userKey: env.userKey, clock: t2, dryRun: true });
    expect(await inventory(container)).toEqual(before);
    expect(dry.dryRun).toBe(true);
    expect(dry.mark).toBeUndefined();
    expect(dry.bytesReclaimed).toBe(0);
    const deltaOfA = [...(await packOfDeltas(before))].filter(([, pack]) => pack === g[0].packs[0]).map(([delta]) => delta);
    expect(dry.wouldDelete).toEqual({
      manifests: [],
      tables: [g[0], g[2]].map((b) => b.tables[0].slice(7, 39)).sort(),
      packs: [g[0].packs[0].slice(9, 41)],
      staging: g.map((b) => b.nameTag).sort(),
      deltas: deltaOfA, // covered by generation 1 now, and the first mark's candidate
      generations: [],
    });
    expect(dry.index).toBeNull();
  });

  test('locked blobs are reported and skipped, the sweep goes on; a rerun without the lock finishes, reclaiming exactly the unreferenced bytes', async () => {
    const before = await inventory(container);
    const keep = await keptSet(before, [g[1], g[3]]);
    const unreferenced = named(before).filter((n) => !keep.has(n) && !n.startsWith('gc/marks/'));
    // What nothing kept references: g0's and g2's tables, g0's pack and its delta, all staging.
    const deltaOfA = [...(await packOfDeltas(before))].filter(([, pack]) => pack === g[0].packs[0]).map(([delta]) => delta);
    expect(unreferenced.filter((n) => !n.startsWith('staging/')).sort()).toEqual([g[0].packs[0], ...g[0].tables, ...g[2].tables, ...deltaOfA].sort());

    // Azurite has no immutability policies: the proxy answers these DELETEs as Azure does for a blob
    // under a time-based retention policy (409 BlobImmutableDueToPolicy) — a stand-in for that service feature.
    const locked = [g[0].tables[0], g[0].packs[0]];
    const proxy = await startFaultProxy({
      target: { host: '127.0.0.1', port: env.az.port },
      seed: 1,
      rate: 0,
      replyIf: (req) => (req.method === 'DELETE' && locked.some((name) => decodeURIComponent((req.url ?? '').split('?')[0]).endsWith(`/prune/${name}`)) ? { status: 409, code: 'BlobImmutableDueToPolicy' } : undefined),
    });
    const direct = env.az.storageEndpoints.split(',');
    configureStorageEndpoints([...direct, ...direct.map((e) => proxy.via(e))], 'PAGEWISE_STORAGE_ENDPOINTS');
    let report2: PruneReport;
    try {
      report2 = await pruneVault({ vault: { url: proxy.via(vault.url) }, userKey: env.userKey, clock: t2 });
    } finally {
      await proxy.stop();
      configureStorageEndpoints(direct, 'PAGEWISE_STORAGE_ENDPOINTS');
    }
    expect(proxy.stats.replied).toBe(2);
    expect(report2.locked).toEqual(locked.map((name) => ({ name, lock: 'policy' })));
    const stagingBlobs = before.filter((b) => b.kind === 'staging').length;
    // g0's delta goes though its pack is locked: it is covered by generation 1, which holds its entries (§26.7).
    expect(report2.deleted).toEqual({ manifests: [], tables: 1, packs: 0, deltas: 1, stagingBlobs, marks: 0, generations: 0 });
    const middle = named(await inventory(container));
    for (const name of locked) expect(middle).toContain(name);
    expect(middle.filter((n) => n.startsWith('staging/'))).toEqual([]);

    const report3 = await pruneVault({ vault, userKey: env.userKey, clock: () => t2() + HOUR });
    expect(report3.locked).toEqual([]);
    expect(report3.deleted).toEqual({ manifests: [], tables: 1, packs: 1, deltas: 0, stagingBlobs: 0, marks: 0, generations: 0 });
    const after = await inventory(container);
    expect(named(after).filter((n) => !n.startsWith('gc/marks/'))).toEqual([...keep].sort());
    expect(report2.bytesReclaimed + report3.bytesReclaimed).toBe(bytesOf(before, unreferenced));
    // After the run: every pack left is kept and full of live blocks; what is unused is their trailers.
    const packs = after.filter((b) => b.kind === 'packs');
    const keyring = await keyringOf();
    let live = 0;
    for (const b of after.filter((x) => x.kind === 'deltas')) for (const e of decodeIndexBlob(keyring, b.name, await container.getBlobClient(b.name).downloadToBuffer())) live += e.storedLength;
    expect(report3.bytesTotal).toBe(packs.reduce((n, b) => n + b.bytes, 0));
    expect(report3.bytesUnused).toBe(report3.bytesTotal - live);
    expect(report3.pending).toEqual({ packs: 0, tables: 0, staging: 0, bytes: 0 });
    // Evidence no longer needed: the first run's mark is the newest one ≥ D old, so none is older than it yet.
    expect(after.filter((b) => b.kind === 'marks')).toHaveLength(3);

    await expectKeptIntact([g[1], g[3]]);
  });

  test('an unreadable kept manifest blocks table, pack and delta deletion (staging still goes); repaired, the next run deletes them', async () => {
    // g4 (an incremental of g3) overwrites pages 8–9: g3's own pack then serves g3 alone. Forget g3; a run marks its pack and table.
    await backUp([8, 9], 5);
    expect(g[4].kind).toBe('incremental');
    const tA = t2() + 2 * HOUR;
    await forget(g[3], base + DAY);
    const rA = await pruneVault({ vault, userKey: env.userKey, clock: () => tA });
    expect(rA.deleted.manifests).toEqual([g[3].manifest]);
    const g3Own = g[3].packs.filter((p) => !g[4].packs.includes(p));
    expect(g3Own).toHaveLength(1);
    expect(rA.pending).toMatchObject({ packs: g3Own.length, tables: 1 });

    // g1's manifest damaged: its references are unknown now.
    const manifest = container.getBlockBlobClient(g[1].manifest);
    const original = await manifest.downloadToBuffer();
    const damaged = Buffer.from(original);
    damaged[damaged.length - 1] ^= 0xff;
    await manifest.uploadData(damaged);
    const tB = tA + D + HOUR;
    const stagingBlobs = (await inventory(container)).filter((b) => b.kind === 'staging').length;
    expect(stagingBlobs).toBeGreaterThan(0); // g4's
    const rB = await pruneVault({ vault, userKey: env.userKey, clock: () => tB });
    expect(rB.blocked).toMatch(new RegExp(`the manifest ${g[1].manifest} cannot be read`));
    expect(rB.deleted).toMatchObject({ tables: 0, packs: 0, deltas: 0, stagingBlobs });
    const names = named(await inventory(container));
    for (const name of [...g3Own, ...g[3].tables]) expect(names).toContain(name);
    expect(rB.problems.join('\n')).toMatch(/fails authentication/);
    // Its mark says blocked and holds staging only; the marks before the last unblocked one ≥ D old (rA's) went.
    const markB = (await readMarks(Vault.open(vault), await keyringOf())).find((m) => m.name === rB.mark)!;
    expect(markB.body).toMatchObject({ blocked: true, candidates: { packs: [], tables: [], deltas: [] } });
    expect(rB.deleted.marks).toBe(3);

    await manifest.uploadData(original);
    const beforeC = await inventory(container);
    const deltasOfG3 = [...(await packOfDeltas(beforeC))].filter(([, pack]) => g3Own.includes(pack)).map(([delta]) => delta);
    expect(deltasOfG3).toHaveLength(g3Own.length);
    const rC = await pruneVault({ vault, userKey: env.userKey, clock: () => tB + HOUR });
    expect(rC.blocked).toBeUndefined();
    // g3's own pack and its delta; and the deltas generation 1 covers that runs ≥ D before marked (#15).
    expect(rC.deleted).toMatchObject({ tables: 1, packs: g3Own.length });
    const left = named(await inventory(container));
    for (const name of deltasOfG3) expect(left).not.toContain(name);
    expect(rC.deleted.deltas).toBe(named(beforeC).filter((n) => n.startsWith('index/d/')).length - left.filter((n) => n.startsWith('index/d/')).length);
    expect(rC.deleted.deltas).toBeGreaterThan(g3Own.length);
    for (const name of [...g3Own, ...g[3].tables]) expect(left).not.toContain(name);
    await expectKeptIntact([g[1], g[4]]);
  });
});

describe('a version-1 backup in an upgraded vault', () => {
  test('prune refuses a version-1 vault; upgraded, a forgotten version-1 backup goes after its grace: manifest.json first, the rest of its prefix, then its tombstone; a forged mark is ignored', async () => {
    const location = await env.makeVault('prunev1', { version: 1 });
    const v1Container = env.az.accounts.vault.service.getContainerClient('prunev1');
    const small = await PagedDisk.create(env, 'v1.vhd', 4 * PAGE);
    await small.write([0, 3], 11);
    const v1 = await small.backup(location);
    await expect(pruneVault({ vault: location, userKey: env.userKey })).rejects.toMatchObject({ code: 'BadInput', message: expect.stringMatching(/prune works on a version-2 vault; run pagewise upgrade first/) });

    expect(await upgradeVault(Vault.open(location), env.userKey)).toEqual({ upgraded: true });
    await small.write([1], 12);
    const v2 = await small.backup(location);
    const forgottenAt = Date.now();
    const forgot = await forgetBackups({ vault: location, userKey: env.userKey, backupIds: [v1.backupId], graceMs: 0, clock: () => forgottenAt });
    expect(forgot.forgotten.map((f) => f.backupId)).toEqual([v1.backupId]);

    // A mark that does not authenticate (here: random bytes under a mark's name, backdated) proves nothing: ignored and told.
    const forged = 'gc/marks/20200101T000000000Z-0123456789abcdef.pwe';
    await v1Container.getBlockBlobClient(forged).uploadData(Buffer.alloc(200, 7));
    const before = await inventory(v1Container);
    const prefix = named(before).filter((n) => n.startsWith(`backups/${v1.backupId}/`));
    const manifest = `backups/${v1.backupId}/manifest.json`;
    const tombstone = named(before).filter((n) => n.startsWith('forgotten/'));
    expect(prefix).toContain(manifest);
    expect(tombstone).toHaveLength(1);
    const mutations: string[] = [];
    const report = await pruneVault({ vault: location, userKey: env.userKey, clock: () => forgottenAt + HOUR, beforeMutation: (step, name) => void mutations.push(`${step} ${name}`) });
    expect(mutations[0]).toBe(`manifests ${manifest}`);
    expect(mutations.slice(1, prefix.length).sort()).toEqual(prefix.filter((n) => n !== manifest).map((n) => `manifests ${n}`).sort());
    expect(mutations.slice(prefix.length)).toEqual([`manifests ${tombstone[0]}`, `mark ${report.mark}`, 'index index/c/']);
    expect(report.deleted.manifests).toEqual([manifest]);
    expect(report.problems).toContainEqual(expect.stringMatching(new RegExp(`^the mark ${forged} is ignored: .*(not a Pagewise|fails authentication)`)));
    expect(report.bytesReclaimed).toBe(bytesOf(before, [...prefix, ...tombstone]));
    const after = await inventory(v1Container);
    expect(named(after)).toEqual([...named(before).filter((n) => !prefix.includes(n) && !tombstone.includes(n)), report.mark, ...named(after.filter((b) => b.kind === 'generations'))].sort());
    expect(report.index).toMatchObject({ gen: 1, deltasCovered: 1 }); // the version-2 backup's
    expect(await restoredSha256(env, location, v2.backupId)).toBe(v2.sha256);
  });
});

describe('verification records (FORMAT §28) of pruned backups', () => {
  test('a pruned backup’s records go before its tombstone, a kept one’s stay; a run stopped between them finishes them on the rerun', async () => {
    const location = await env.makeVault('prunerec');
    const recContainer = env.az.accounts.vault.service.getContainerClient('prunerec');
    const small = await PagedDisk.create(env, 'rec.vhd', 4 * PAGE);
    const made: string[] = [];
    for (const seed of [21, 22, 23]) {
      await small.write([0, 1], seed);
      made.push((await small.backup(location)).backupId);
    }
    // Manifests are listed newest first: `gone` (newer) is pruned before `stopped`.
    const [stopped, gone, kept] = made;
    // Each verified; `kept` twice by a writer that could not delete (two records), `gone` once.
    const record = (id: string, at: string) => writeVerificationRecord(location, env.userKey, verificationRecord(id, { at, ok: true, by: 'schedule', readData: true }));
    for (const id of made) await record(id, '2026-12-01T02:00:00.000Z');
    const keyring = await openVaultKeyring(Vault.open(location), env.userKey);
    const recordsOf = async (id: string) => named(await inventory(recContainer)).filter((n) => n.startsWith(`${VERIFIED_PREFIX}${keyring.nameTag(id)}/`));
    const olderOfKept = `${VERIFIED_PREFIX}${keyring.nameTag(kept)}/${'9'.repeat(13)}-00000000.pwe`;
    await Vault.open(location).putNew(olderOfKept, Buffer.from('an older record a writer without delete left'));
    expect((await recordsOf(gone)).length).toBe(1);
    expect((await recordsOf(kept)).length).toBe(2);

    const forgottenAt = Date.now();
    await forgetBackups({ vault: location, userKey: env.userKey, backupIds: [gone, stopped], graceMs: 0, clock: () => forgottenAt });
    const tombstoneOf = (id: string) => v2names.tombstone(keyring.nameTag(id));
    const [recordOfGone] = await recordsOf(gone);
    const [recordOfStopped] = await recordsOf(stopped);
    const before = await inventory(recContainer);

    // First run: killed as it deletes `stopped`'s record (its manifest is gone, its tombstone stays).
    const mutations: string[] = [];
    await expect(
      pruneVault({
        vault: location, userKey: env.userKey, clock: () => forgottenAt + HOUR,
        beforeMutation: (step, name) => {
          if (name === recordOfStopped) throw new Error('killed');
          mutations.push(`${step} ${name}`);
        },
      }),
    ).rejects.toThrow('killed');
    const manifestOf = (id: string) => before.find((b) => b.kind === 'manifests' && b.name.includes(keyring.nameTag(id)))!.name;
    expect(mutations.indexOf(`manifests ${recordOfGone}`)).toBe(mutations.indexOf(`manifests ${manifestOf(gone)}`) + 1);
    expect(mutations.indexOf(`manifests ${tombstoneOf(gone)}`)).toBe(mutations.indexOf(`manifests ${recordOfGone}`) + 1);
    expect(await recordsOf(gone)).toEqual([]);
    expect(await recordsOf(stopped)).toEqual([recordOfStopped]);
    const between = named(await inventory(recContainer));
    expect(between).not.toContain(manifestOf(stopped));
    expect(between).toContain(tombstoneOf(stopped));

    // The rerun: the tombstone without a manifest brings it back to the record, then the tombstone goes.
    const rerun: string[] = [];
    const report = await pruneVault({ vault: location, userKey: env.userKey, clock: () => forgottenAt + HOUR, beforeMutation: (step, name) => void rerun.push(`${step} ${name}`) });
    expect(rerun.slice(0, 2)).toEqual([`manifests ${recordOfStopped}`, `manifests ${tombstoneOf(stopped)}`]);
    expect(report.problems).toEqual([]);
    const after = named(await inventory(recContainer));
    expect(after.filter((n) => n.startsWith(VERIFIED_PREFIX))).toEqual((await recordsOf(kept)).sort());
    expect((await recordsOf(kept)).length).toBe(2);
    expect(after.filter((n) => n.startsWith('forgotten/'))).toEqual([]);
    expect(await restoredSha256(env, location, kept)).toBe(small.sha256());
  });
});
