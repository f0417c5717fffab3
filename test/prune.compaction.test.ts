/**
 * Prune compacts the index (docs/FORMAT.md §26.7 h, §26.11) on a real Azurite, with an injected clock: a dry run and
 * a blocked run write no generation; a run writes generation 1 covering every delta; a run ≥ D later (a new backup's
 * delta uncovered) writes generation 2 and marks the covered deltas and generation 1; a run ≥ D after that deletes
 * them — the kept backups then restore and verify through the generation alone (a repacked pack's hints are stale and
 * the repack's delta is gone). A compaction that crashed between its shards and its covers leaves an incomplete
 * generation: readers and prune ignore it, the next compaction numbers above it, and two runs D apart remove it.
 */
import { ContainerClient } from '@azure/storage-blob';
import { StorageLocation, verifyBackup } from '../core';
import { readMarks, writeMark } from '../core/prune/marks';
import { pruneVault } from '../core/prune/prune';
import { forgetBackups } from '../core/retention/forget';
import { listGenerations, newestGeneration, readShard, writeGeneration } from '../core/repo/v2/index-generation';
import type { IndexEntry } from '../core/repo/v2/records';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { Vault } from '../core/repo/vault';
import { startEnv, TestEnv } from './harness/env';
import { blobsOfBackup, D, DAY, HOUR, KnownBackup, PAGE, PagedDisk, restoredSha256 } from './harness/prune-fixture';
import { inventory } from './harness/vault-inventory';

let env: TestEnv;
let vault: StorageLocation;
let container: ContainerClient;
let base: number;
let disk: PagedDisk;
const g: (KnownBackup & { manifest: string; packs: string[] })[] = [];
/** The prune runs' clocks: every blob built is older than L at t1; then D apart. */
const t1 = () => base + 8 * DAY;
const t2 = () => t1() + D + HOUR;
const t3 = () => t2() + D + HOUR;
const t4 = () => t3() + D + HOUR;

beforeAll(async () => {
  env = await startEnv();
  vault = await env.makeVault('compact');
  container = env.az.accounts.vault.service.getContainerClient('compact');
  base = Date.now();
  disk = await PagedDisk.create(env, 'compact.vhd', 16 * PAGE);
  // g0 full (pages 0–7, one pack); g1 overwrites 0–4 (g0's pack then holds 3 of 8 live blocks: repacked once g0 goes).
  await backUp([0, 1, 2, 3, 4, 5, 6, 7], 1);
  await backUp([0, 1, 2, 3, 4], 2);
});
afterAll(async () => env?.stop());

async function backUp(pages: number[], seed: number): Promise<void> {
  await disk.write(pages, seed);
  const b = await disk.backup(vault);
  g.push({ ...b, ...(await blobsOfBackup(vault, env.userKey, b.backupId)) });
}

const keyringOf = () => openVaultKeyring(Vault.open(vault), env.userKey);
const names = async (prefix: string) => (await inventory(container)).map((b) => b.name).filter((n) => n.startsWith(prefix));
const prune = (at: number, extra: Partial<Parameters<typeof pruneVault>[0]> = {}) => pruneVault({ vault, userKey: env.userKey, clock: () => at, ...extra });

async function expectIntact(kept: (typeof g)[number][]): Promise<number> {
  let relocated = 0;
  for (const b of kept) {
    const v = await verifyBackup({ backupId: b.backupId, vault, userKey: env.userKey, readData: true });
    expect({ ok: v.ok, problems: v.problems }).toEqual({ ok: true, problems: [] });
    relocated += v.blocksRelocated;
    expect(await restoredSha256(env, vault, b.backupId)).toBe(b.sha256);
  }
  return relocated;
}

describe('prune compacts the index and removes what the generation replaced, two-phase', () => {
  let gen1Covers: string[];

  test('a dry run writes nothing and compacts nothing', async () => {
    const before = await inventory(container);
    const dry = await prune(t1(), { dryRun: true });
    expect(dry.index).toBeNull();
    expect(await inventory(container)).toEqual(before);
    expect(await names('index/c/')).toEqual([]);
  });

  test('a blocked run compacts nothing', async () => {
    const manifest = container.getBlockBlobClient(g[1].manifest);
    const original = await manifest.downloadToBuffer();
    const damaged = Buffer.from(original);
    damaged[damaged.length - 1] ^= 0xff;
    await manifest.uploadData(damaged);
    try {
      const blocked = await prune(t1());
      expect(blocked.blocked).toMatch(/cannot be read/);
      expect(blocked.index).toBeNull();
      expect(await names('index/c/')).toEqual([]);
    } finally {
      await manifest.uploadData(original);
    }
  });

  test('a run writes generation 1 covering every delta, one entry per content ID', async () => {
    await forgetBackups({ vault, userKey: env.userKey, backupIds: [g[0].backupId], graceMs: 0, clock: () => base });
    const deltasAtT1 = await names('index/d/');
    const first = await prune(t1());
    expect(first.blocked).toBeUndefined();
    expect(first.deleted.manifests).toEqual([g[0].manifest]);
    expect(first.repacked).toMatchObject({ packs: 1, newPacks: 1 }); // g0's pack: 3 of 8 blocks live
    const deltasNow = await names('index/d/');
    expect(deltasNow).toHaveLength(deltasAtT1.length + 1); // the repack's delta
    expect(first.index).toMatchObject({ gen: 1, deltasCovered: deltasNow.length, entries: 8 + 5 }); // g0's 8 chunks (3 live, 5 in no kept backup but their pack stays) + g1's 5
    const keyring = await keyringOf();
    const gen = (await newestGeneration(Vault.open(vault), keyring))!;
    expect(gen.gen).toBe(1);
    expect([...gen.covers.deltas].sort()).toEqual(deltasNow);
    let entries = 0;
    for (const info of gen.covers.shards) entries += (await readShard(Vault.open(vault), keyring, info)).length;
    expect(entries).toBe(13);
    expect(await listGenerations(Vault.open(vault))).toMatchObject([{ gen: 1, complete: true }]);
    // Not yet candidates: the deltas were not covered when this run gathered.
    expect(await names('index/d/')).toEqual(deltasNow);
    await expectIntact([g[1]]);
  });

  test('≥ D later (a new backup\'s delta uncovered): generation 2 covers old and new deltas; the repack\'s source goes with its (covered) delta', async () => {
    gen1Covers = (await newestGeneration(Vault.open(vault), await keyringOf()))!.covers.deltas;
    await backUp([10, 11], 3);
    const deltasBefore = await names('index/d/');
    const second = await prune(t2());
    expect(second.blocked).toBeUndefined();
    expect(second.deleted).toMatchObject({ packs: 1, deltas: 1, generations: 0 }); // g0's pack (the repack's source, marked at t1)
    expect(second.index).toMatchObject({ gen: 2 });
    const gen = (await newestGeneration(Vault.open(vault), await keyringOf()))!;
    expect(gen.gen).toBe(2);
    const deltasAfter = await names('index/d/');
    expect(deltasAfter).toHaveLength(deltasBefore.length - 1);
    expect([...gen.covers.deltas].sort()).toEqual(deltasAfter); // covers carry forward: those generation 1 covered too
    expect(await names('index/c/00000001/')).not.toEqual([]);
    // g1's pages 5–7 hint at g0's pack, now gone: found through the index.
    expect(await expectIntact([g[1], g[2]])).toBeGreaterThan(0);
  });

  test('≥ D after that the deltas generation 1 covered go, and generation 1 is marked; ≥ D later still it goes too; restore and verify work through generation 2 alone', async () => {
    const before = await names('index/d/');
    const third = await prune(t3());
    expect(third.blocked).toBeUndefined();
    expect(third.index).toBeNull(); // nothing uncovered
    const left = await names('index/d/');
    expect(left).toEqual(before.filter((n) => !gen1Covers.includes(n))); // g2's delta: only generation 2 covers it, marked now
    expect(third.deleted).toMatchObject({ deltas: before.length - left.length, generations: 0 });
    expect(left).toHaveLength(1);
    const mark = (await readMarks(Vault.open(vault), await keyringOf())).find((m) => m.name === third.mark)!;
    expect(mark.body.candidates).toMatchObject({ deltas: left, generations: ['00000001'] });
    // The repacked blocks are in a pack only generation 2 names now (the repack's delta is gone).
    expect(await expectIntact([g[1], g[2]])).toBeGreaterThan(0);

    const fourth = await prune(t4());
    expect(fourth.deleted).toMatchObject({ deltas: 1, generations: 1 });
    expect(fourth.index).toBeNull();
    expect(await names('index/d/')).toEqual([]);
    expect((await names('index/c/')).every((n) => n.startsWith('index/c/00000002/'))).toBe(true);
    expect(await expectIntact([g[1], g[2]])).toBeGreaterThan(0);
  });

  test('a compaction that crashed between its shards and its covers: ignored, numbered above, and removed two-phase', async () => {
    const store = Vault.open(vault);
    const keyring = await keyringOf();
    const current = (await newestGeneration(store, keyring))!;
    expect(current.gen).toBe(2);
    // Generation 3's shards are written from generation 2's entries; the iterator dies before the end: no covers.
    async function* dying(): AsyncIterable<IndexEntry> {
      for (const info of current.covers.shards) for (const e of await readShard(store, keyring, info)) yield e;
      throw new Error('killed');
    }
    await expect(writeGeneration(store, keyring, 3, dying(), [])).rejects.toThrow('killed');
    const incomplete = await names('index/c/00000003/');
    expect(incomplete.length).toBeGreaterThan(0);
    expect(incomplete).not.toContain('index/c/00000003/covers.pwe');
    expect((await newestGeneration(store, keyring))!.gen).toBe(2);
    expect(await listGenerations(store)).toMatchObject([{ gen: 2, complete: true }, { gen: 3, complete: false }]);
    await expectIntact([g[1]]);

    // A new backup's delta: the next run compacts into 4 (3 is taken); generation 3 is not yet a candidate (no complete one above it at gather).
    await backUp([12], 4);
    const tA = t4() + HOUR;
    const compacting = await prune(tA);
    expect(compacting.index).toMatchObject({ gen: 4 });
    expect(compacting.deleted.generations).toBe(0);
    // The run after marks 2 and 3 (below the newest complete one, 4); one ≥ D after that deletes them.
    const marking = await prune(tA + HOUR);
    expect(marking.deleted.generations).toBe(0);
    const mark = (await readMarks(store, keyring)).find((m) => m.name === marking.mark)!;
    expect(mark.body.candidates.generations).toEqual(['00000002', '00000003']);
    const sweeping = await prune(tA + HOUR + D + HOUR);
    expect(sweeping.deleted.generations).toBe(2);
    expect((await names('index/c/')).every((n) => n.startsWith('index/c/00000004/'))).toBe(true);
    expect(await expectIntact([g[1], g[2], g[3]])).toBeGreaterThan(0);
    expect(await listGenerations(store)).toMatchObject([{ gen: 4, complete: true }]);
  });

  test('a newest covers that does not authenticate blocks the run (which deltas it covers is unknown): nothing deleted, nothing compacted', async () => {
    await backUp([13], 5); // an uncovered delta: an unblocked run would compact
    const covers = container.getBlockBlobClient('index/c/00000004/covers.pwe');
    const original = await covers.downloadToBuffer();
    const damaged = Buffer.from(original);
    damaged[damaged.length - 1] ^= 0xff;
    await covers.uploadData(damaged);
    try {
      const before = (await inventory(container)).filter((b) => !b.name.startsWith('gc/marks/'));
      const blocked = await prune(t4() + 3 * D);
      expect(blocked.blocked).toMatch(/the newest index generation cannot be read/);
      expect(blocked.problems.join('\n')).toMatch(/covers/);
      expect(blocked.index).toBeNull();
      expect(blocked.deleted).toMatchObject({ tables: 0, packs: 0, deltas: 0, generations: 0 });
      expect((await inventory(container)).filter((b) => !b.name.startsWith('gc/marks/') && !b.name.startsWith('staging/'))).toEqual(before.filter((b) => !b.name.startsWith('staging/')));
    } finally {
      await covers.uploadData(original);
    }
  });

  test('marks: one written before #15 (no generations) still reads and condemns no generation; a malformed generations field is refused', async () => {
    const store = Vault.open(vault);
    const keyring = await keyringOf();
    const body = { format: 'pagewise-prune-mark' as const, version: 2 as const, pruneId: '00000000000000aa', markedAt: new Date(base).toISOString(), abandonAfterMs: 1, deleteAfterMs: 2, candidates: { packs: [], tables: [], deltas: [], staging: [] } };
    const name = await writeMark(store, keyring, body);
    const read = (await readMarks(store, keyring)).find((m) => m.name === name)!;
    expect(read.body.candidates.generations).toBeUndefined();
    await expect(writeMark(store, keyring, { ...body, pruneId: '00000000000000ab', candidates: { ...body.candidates, generations: ['1'] } })).rejects.toThrow(/malformed candidates/);
    await container.deleteBlob(name);
  });
});
