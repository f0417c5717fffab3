/**
 * Prune killed at every step, on a real Azurite (issue #13, "crash-safe"): a vault of a full and three
 * incrementals of one disk (two forgotten with no grace, one soft-deleted, two packs mostly unused and so
 * repacked) and an abandoned backup of another disk is pruned by three runs D apart — the first deletes the
 * grace-ended manifests, repacks and marks, the second sweeps, the third drops the first mark. For every
 * mutation k of those runs a copy of the vault is pruned with `beforeMutation` throwing at k (a simulated
 * kill: the error propagates, nothing is cleaned up); right after, every kept backup passes verify --read-data and one restores
 * byte-identical; then the runs are done again from the killed one and the vault must end as an
 * uninterrupted prune leaves it (by name and size; repack's random pack and delta names by size). Once, a
 * real child process is killed with SIGKILL mid-sweep and the rerun finishes the job; and the one point the
 * hook cannot reach — a repack's new pack committed, its index delta not yet written — is made by hand.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { encodeKeyFile, planBackup, runBackupBatch, StorageLocation } from '../core';
import { Clock } from '../core/clock';
import { DEFAULT_DELETE_AFTER_MS } from '../core/prune/protocol';
import { pruneVault, PruneReport, PruneStep } from '../core/prune/prune';
import { forgetBackups } from '../core/retention/forget';
import { TS_NODE_CACHE } from '../testkit/pagewise-process';
import { MiB, startEnv, TestEnv } from './harness/env';
import { expectIntact, KnownBackup, PagedDisk } from './harness/prune-fixture';
import { cloneVault, comparable, countByKind, inventory, InventoryBlob } from './harness/vault-inventory';

const DAY = 86_400_000;
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

let env: TestEnv;
/** The vault as built (never pruned): each case prunes a copy. */
const SEED = 'crashseed';
let t0: number;
/** The prune runs' clocks: past every forgotten backup's grace and past L for everything built; then D later, twice. */
let clocks: number[];
let kept: KnownBackup[];
let forgotten: KnownBackup[];
/** The uninterrupted runs: their mutations in order, their reports and the vault they leave. */
let reference: { mutations: Mutation[]; reports: PruneReport[]; end: InventoryBlob[] };

interface Mutation {
  run: number;
  step: PruneStep;
  blob: string;
}

class SimulatedKill extends Error {}

/** The blobs of the vault as built: a delta not among them was written by a prune's repack (named at random). */
let built: Set<string>;

/** A mutation as two runs can compare it: repack's new packs and deltas and the marks are named at random. */
function named(m: Mutation): string {
  if (m.step === 'deltas' && !built.has(m.blob)) return `${m.run} deltas (a repack's)`;
  return ['repack', 'mark', 'marks'].includes(m.step) ? `${m.run} ${m.step}` : `${m.run} ${m.step} ${m.blob}`;
}

beforeAll(async () => {
  env = await startEnv();
  const vault = await env.makeVault(SEED);
  const disk = await PagedDisk.create(env, 'crash.vhd', 4 * MiB);
  // F: 16 pages (one pack of 16 blocks); I1 rewrites 12 of them, I2 8, I3 2: each a pack of its own.
  await disk.write(range(0, 16), 1);
  const f = await disk.backup(vault);
  await disk.write(range(0, 12), 2);
  const i1 = await disk.backup(vault);
  await disk.write(range(0, 8), 3);
  const i2 = await disk.backup(vault);
  await disk.write([0, 1], 4);
  const i3 = await disk.backup(vault);
  expect([f.kind, i1.kind, i2.kind, i3.kind]).toEqual(['full', 'incremental', 'incremental', 'incremental']);
  // An abandoned backup of another disk: its plan and one batch (a pack of 4 blocks), never finalized.
  const other = await PagedDisk.create(env, 'crash-abandoned.vhd', 1 * MiB);
  await other.write(range(0, 4), 5);
  const abandoned = await planBackup(other.request(vault));
  await runBackupBatch({ ...other.request(vault), backupId: abandoned.backupId, planPosition: 0 });

  t0 = Date.now();
  const at: Clock = () => t0;
  // F and I1 go at the first prune (no grace); I2 is soft-deleted (30 days): still kept, still restorable.
  await forgetBackups({ vault, userKey: env.userKey, backupIds: [f.backupId, i1.backupId], graceMs: 0, clock: at });
  await forgetBackups({ vault, userKey: env.userKey, backupIds: [i2.backupId], graceMs: 30 * DAY, clock: at });
  kept = [i2, i3];
  forgotten = [f, i1];
  // Kept I3 references pages 12–15 of F's pack (4 of 16 live) and 8–11 of I1's (4 of 12): both repacked.
  clocks = [t0 + 10 * DAY, t0 + 10 * DAY + DEFAULT_DELETE_AFTER_MS + DAY, t0 + 10 * DAY + 2 * (DEFAULT_DELETE_AFTER_MS + DAY)];

  built = new Set((await inventory(container(SEED))).map((b) => b.name));
  const copy = await cloneVault(env, SEED, 'crashref');
  const run = await pruneRuns(copy, 0);
  expect(run.killedIn).toBeUndefined();
  reference = { mutations: run.mutations, reports: run.reports, end: await inventory(container('crashref')) };
}, 600_000);
afterAll(async () => env?.stop());

function container(name: string) {
  return env.az.accounts.vault.service.getContainerClient(name);
}

/**
 * The prune runs from run `from` on, each at its clock; `killAt` (1-based, counted over all runs) throws
 * SimulatedKill from beforeMutation there; runs before `to`. Returns the run killed (undefined: all finished).
 */
async function pruneRuns(vault: StorageLocation, from: number, killAt?: number, to = clocks.length): Promise<{ killedIn?: number; mutations: Mutation[]; reports: PruneReport[] }> {
  const mutations: Mutation[] = [];
  const reports: PruneReport[] = [];
  for (let run = from; run < to; run++) {
    const now = clocks[run];
    const beforeMutation = (step: PruneStep, blob: string) => {
      mutations.push({ run, step, blob });
      if (mutations.length === killAt) throw new SimulatedKill(`killed before ${step} ${blob}`);
    };
    try {
      reports.push(await pruneVault({ vault, userKey: env.userKey, clock: () => now, beforeMutation }));
    } catch (err) {
      if (!(err instanceof SimulatedKill)) throw err;
      return { killedIn: run, mutations, reports };
    }
  }
  return { mutations, reports };
}

test('the uninterrupted prune: the first run deletes the grace-ended manifests, repacks and marks; the second sweeps what both saw unreferenced; the third drops the first mark', async () => {
  const { mutations, reports, end } = reference;
  const steps = (run: number) => new Set(mutations.filter((m) => m.run === run).map((m) => m.step));
  // Run 1: the two manifests (and their tombstones), a repack, its mark, then the index compacted (#15: generation 1
  // covers every delta); nothing of data is deleted yet.
  expect(steps(0)).toEqual(new Set<PruneStep>(['manifests', 'repack', 'mark', 'index']));
  expect(reports[0].index).toMatchObject({ gen: 1, deltasCovered: 6 }); // F, I1, I2, I3, the abandoned batch's, the repack's
  expect(reports[0].deleted).toMatchObject({ tables: 0, packs: 0, deltas: 0, stagingBlobs: 0 });
  expect(reports[0].deleted.manifests).toHaveLength(2);
  expect(reports[0].repacked.packs).toBe(2); // F's and I1's packs: mostly unused
  // Run 2, D later: F's and I1's tables; F's, I1's and the abandoned backup's packs, their deltas (covered: deleted as
  // the first run's candidates, not with their packs); all staging. The other deltas are covered: marked now.
  expect(steps(1)).toEqual(new Set<PruneStep>(['tables', 'packs', 'deltas', 'staging', 'mark']));
  expect(reports[1].deleted).toMatchObject({ manifests: [], tables: 2, packs: 3, deltas: 3 });
  expect(reports[1].index).toBeNull();
  expect(reports[1].pending).toMatchObject({ packs: 0, tables: 0, staging: 0 });
  // Left: the two kept manifests, I2's tombstone, their two tables, I2's and I3's packs and the repack's, no staging.
  // Run 3, D later again: the deltas generation 1 covers go (the second run marked them); its mark makes the second one
  // at least D old, so the first goes.
  expect(steps(2)).toEqual(new Set<PruneStep>(['deltas', 'mark', 'marks']));
  expect(reports[2].deleted).toMatchObject({ manifests: [], tables: 0, packs: 0, deltas: 3, stagingBlobs: 0, marks: 1 }); // I2's, I3's, the repack's
  expect(countByKind(end)).toMatchObject({ manifests: 2, forgotten: 1, tables: 2, packs: 3, marks: 2 });
  expect(countByKind(end).deltas).toBeUndefined(); // the index is generation 1 alone
  expect(countByKind(end).generations).toBeGreaterThan(2); // shards, filter, covers
  expect(countByKind(end).staging).toBeUndefined();
  await expectIntact(env, { url: env.az.sasUrl('vault', 'crashref') }, kept, kept, 'after the uninterrupted prune');
  // The forgotten backups are gone for good.
  for (const b of forgotten) await expect(expectIntact(env, { url: env.az.sasUrl('vault', 'crashref') }, [b], [], 'forgotten')).rejects.toMatchObject({ code: 'BackupNotFound' });
});

test('killed before each mutation in turn: kept backups stay intact, and the rerun ends where an uninterrupted prune ends', async () => {
  const total = reference.mutations.length;
  expect(total).toBeGreaterThanOrEqual(20);
  const want = comparable(reference.end);
  // The next case's copy is made while this one runs (a copy waits out the second it was made in).
  let next = cloneVault(env, SEED, 'crashk1');
  for (let k = 1; k <= total; k++) {
    const name = `crashk${k}`;
    const vault = await next;
    if (k < total) next = cloneVault(env, SEED, `crashk${k + 1}`);
    const killed = await pruneRuns(vault, 0, k);
    const at = reference.mutations[k - 1];
    const when = `killed at mutation ${k} (run ${at.run + 1}, ${at.step} ${at.blob})`;
    expect({ when, killedIn: killed.killedIn }).toEqual({ when, killedIn: at.run });
    // The kill came before mutation k: the same k−1 mutations as the uninterrupted run, in order.
    expect(killed.mutations.map(named)).toEqual(reference.mutations.slice(0, k).map(named));
    await expectIntact(env, vault, kept, [kept[k % 2]], when);

    const rerun = await pruneRuns(vault, killed.killedIn!);
    expect(rerun.killedIn).toBeUndefined();
    const end = await inventory(container(name));
    expect({ when, ...comparable(end) }).toEqual({ when, ...want });
    expect(end.filter((b) => b.kind === 'marks').length).toBeGreaterThanOrEqual(2);
    // Equal names and sizes to the verified reference; a repack redone holds new copies: those are read again.
    if (at.run === 0 || k === total) await expectIntact(env, vault, kept, [], `${when}, then rerun`);
    await container(name).delete();
  }
}, 1_200_000);

test('a prune process killed with SIGKILL mid-sweep: the kept backups stay intact and a rerun finishes the job', async () => {
  const name = 'crashsigkill';
  const vault = await cloneVault(env, SEED, name);
  // Run 1 in process; run 2 in a child, killed at its first pack deletion (tables already gone).
  expect((await pruneRuns(vault, 0, undefined, 1)).killedIn).toBeUndefined();
  const keyFile = path.join(env.tmp, 'sigkill.key');
  await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
  const run2 = reference.mutations.filter((m) => m.run === 1);
  const hangAt = run2.findIndex((m) => m.step === 'packs') + 1;
  expect(hangAt).toBeGreaterThan(1);
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-r', TS_NODE_CACHE, '-r', 'ts-node/register/transpile-only', path.join(__dirname, 'harness', 'prune-child.ts')], {
    cwd: path.join(__dirname, '..'),
    env: { PATH: process.env.PATH, PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, PRUNE_VAULT_URL: vault.url, PRUNE_KEY_FILE: keyFile, PRUNE_CLOCK_MS: String(clocks[1]), PRUNE_HANG_AT: String(hangAt) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('hanging at')) resolve();
    });
    child.on('close', () => reject(new Error(`the prune process ended before its hang point: ${stdout} ${stderr}`)));
  });
  expect(stdout).toContain(`hanging at ${hangAt} packs `);
  child.kill('SIGKILL');
  expect(await exited).toEqual({ code: null, signal: 'SIGKILL' });

  // Killed mid-sweep: the tables are gone, the packs not yet; every kept backup is whole.
  const mid = countByKind(await inventory(container(name)));
  expect(mid).toMatchObject({ tables: 2, manifests: 2 });
  expect(mid.packs).toBeGreaterThan(3);
  await expectIntact(env, vault, kept, kept, 'after SIGKILL');
  const rerun = await pruneRuns(vault, 1);
  expect(rerun.killedIn).toBeUndefined();
  expect(comparable(await inventory(container(name)))).toEqual(comparable(reference.end));
  await expectIntact(env, vault, kept, kept, 'after SIGKILL and a rerun');
}, 300_000);

test('killed between a repack pack\'s commit and its delta (made by hand: no hook there): kept backups intact, the rerun ends the same', async () => {
  const name = 'crashdelta';
  const vault = await cloneVault(env, SEED, name);
  const markAt = reference.mutations.findIndex((m) => m.run === 0 && m.step === 'mark') + 1;
  expect(reference.mutations.slice(markAt).filter((m) => m.run === 0).map((m) => m.step)).toEqual(['index']); // then only the compaction
  const killed = await pruneRuns(vault, 0, markAt); // the repack done, its mark not written
  expect(killed.killedIn).toBe(0);
  const seed = new Set((await inventory(container(SEED))).map((b) => b.name));
  const newDeltas = (await inventory(container(name))).filter((b) => b.kind === 'deltas' && !seed.has(b.name));
  expect(newDeltas).toHaveLength(1);
  for (const d of newDeltas) await container(name).deleteBlob(d.name); // as if killed before this Put
  await expectIntact(env, vault, kept, kept, 'a repacked pack without its delta');
  const rerun = await pruneRuns(vault, 0);
  expect(rerun.killedIn).toBeUndefined();
  expect(rerun.reports[0].repacked.packs).toBe(2); // the sources are still the holders: repacked again
  expect(comparable(await inventory(container(name)))).toEqual(comparable(reference.end)); // the orphan pack: marked by that rerun, swept D later
  await expectIntact(env, vault, kept, kept, 'a repacked pack without its delta, then rerun');
}, 300_000);
