/**
 * #13's "done means": a disk backed up nightly for ~14 months under a 7 daily / 4 weekly / 12 monthly
 * policy, with forget and prune after every backup, keeps a vault whose packs hold the kept backups'
 * data and nothing else but what waits for its second mark; every kept backup restores byte-identical.
 *
 * 420 real nightly backups would take too long for the suite, so the test makes 44 real backups and
 * moves the injected clock (backup, forget, prune) by 1–35 days between them: the policy's buckets (days, ISO
 * weeks, months) and the protocol's delays (L, D, grace) see a calendar of 14 months, with runs of
 * consecutive nights (the daily rule at work) and gaps longer than D (a mark's candidates swept on the
 * next prune) as well as shorter ones (pending across several prunes). The injected clock only runs ahead
 * of the emulator's (blob creation times), as FORMAT.md §26.1 allows for a test.
 */
import { backupDisk, BackupRequest, restoreBackup } from '../core';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { Vault } from '../core/repo/vault';
import { applyKeepPolicy, KeepPolicy } from '../core/retention/keep-policy';
import { forgetBackups } from '../core/retention/forget';
import { pruneVault, PruneReport } from '../core/prune/prune';
import { DEFAULT_DELETE_AFTER_MS, DEFAULT_GRACE_MS } from '../core/prune/protocol';
import { NightlyDisk } from '../testkit/nightly-disk';
import { prng } from '../testkit/prng';
import { keptData, packAccount, vaultBytes } from '../testkit/vault-accounting';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';

jest.setTimeout(600_000); // ~2 min on a quiet 2-core machine; generous for a loaded one

const DAY = 24 * 3600 * 1000;
const HOUR = 3600 * 1000;
const POLICY: KeepPolicy = { daily: 7, weekly: 4, monthly: 12 };
const BACKUPS = 44;
/** Days between two backups: mostly consecutive nights, now and then a gap (a week away, a month without backups). */
const GAPS = [1, 1, 1, 1, 1, 2, 3, 7, 9, 14, 21, 30, 35];

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

interface Night {
  backupId: string;
  timeMs: number;
  sha256: string;
  forgottenAtMs?: number;
}

test('nightly backups over 14 simulated months: forget + prune each night keep packs = referenced + pending, and every kept backup restores', async () => {
  const disk = await NightlyDisk.create(env.sourceClient('nightly.vhd'), 4 * MiB, 64 * KiB, { allocatedFraction: 0.6, hotPages: 2, seed: 7 });
  const vaultLocation = await env.makeVault('nightly');
  const req: BackupRequest = {
    source: { url: env.az.sasUrl('src', 'disks', 'nightly.vhd', { permissions: 'racwd' }) },
    vault: vaultLocation,
    userKey: env.userKey,
    pageSize: 64 * KiB,
    cacheBytes: 256 * KiB,
    scratchDir: env.tmp,
    takeSnapshot: true,
  };
  const rand = prng(2); // its 43 gaps: 440 days in all, 19 of 1 day, 16 longer than D
  // The calendar starts at the next 02:00 UTC: the injected clock is never behind the emulator's.
  let nowMs = Math.ceil((Date.now() - 2 * HOUR) / DAY) * DAY + 2 * HOUR;
  const startMs = nowMs;
  const nights: Night[] = [];
  const vault = Vault.open(vaultLocation);
  let sweptSomething = 0;
  let repacked = 0;
  let lastPruneMs: number | undefined;

  for (let n = 0; n < BACKUPS; n++) {
    if (n > 0) {
      nowMs += GAPS[Math.floor(rand() * GAPS.length)] * DAY;
      await disk.night(n, { hotPages: 2, rewrites: 2, added: 1, zeroed: 1 });
    }
    const backupId = `nightly-${String(n).padStart(3, '0')}`;
    const clock = () => nowMs;
    const result = await backupDisk({ ...req, backupId, clock });
    expect(result.kind).toBe(n === 0 ? 'full' : 'incremental');
    nights.push({ backupId, timeMs: nowMs, sha256: disk.sha256() });

    // forget by the policy (the backups' times are the calendar's: the clock was injected into them too),
    // checked against restic's rule applied here to the backups not yet forgotten
    const active = nights.filter((x) => x.forgottenAtMs === undefined);
    const expected = applyKeepPolicy(active.map((x) => ({ backupId: x.backupId, time: new Date(x.timeMs).toISOString() })), POLICY).filter((d) => !d.keep).map((d) => d.backupId);
    const forgotten = await forgetBackups({ vault: vaultLocation, userKey: env.userKey, policy: POLICY, clock });
    const drop = forgotten.forgotten.map((f) => f.backupId);
    expect([...drop].sort()).toEqual([...expected].sort());
    expect(drop).not.toContain(backupId);
    for (const x of nights) if (drop.includes(x.backupId)) x.forgottenAtMs = nowMs;

    const pruneMs = nowMs + 3 * HOUR;
    const report: PruneReport = await pruneVault({ vault: vaultLocation, userKey: env.userKey, clock: () => pruneMs });
    expect(report.blocked).toBeUndefined();
    expect(report.locked).toEqual([]);
    sweptSomething += report.deleted.packs + report.deleted.tables;
    repacked += report.repacked.packs;

    // The account, made without the prune's code: kept = not forgotten, or forgotten less than the grace ago.
    const keyring = await openVaultKeyring(vault, env.userKey);
    const kept = await keptData(vault, keyring, (m) => {
      const x = nights.find((y) => y.backupId === m.backupId);
      return x !== undefined && (x.forgottenAtMs === undefined || x.forgottenAtMs + DEFAULT_GRACE_MS > pruneMs);
    });
    const expectedKept = nights.filter((x) => x.forgottenAtMs === undefined || x.forgottenAtMs + DEFAULT_GRACE_MS > pruneMs).length;
    expect(kept.manifests).toHaveLength(expectedKept); // no kept manifest deleted, every grace-ended one gone
    expect(report.kept.manifests).toBe(expectedKept);
    const packs = await packAccount(vault, keyring, kept.contentIds.keys());
    // The invariant: every block a kept backup names is in an existing pack.
    expect(packs.missing).toEqual([]);
    // Nothing unreferenced is left but what waits for its second mark: the packs that hold no kept
    // backup's data (no content's holder), the tables no kept manifest names and the staging of finished
    // backups are exactly what the report calls pending, in count and in bytes.
    const bytes = await vaultBytes(vault);
    let unreferencedTableBytes = 0;
    let unreferencedTables = 0;
    for await (const t of vault.listDetailed('tables/')) {
      if (kept.tableIds.has(t.name.slice('tables/'.length, -'.pwt'.length))) continue;
      unreferencedTables++;
      unreferencedTableBytes += t.contentLength;
    }
    expect(report.pending.packs).toBe(packs.unreferenced.size);
    expect(report.pending.tables).toBe(unreferencedTables);
    expect(report.pending.bytes).toBe(packs.unreferencedBytes + unreferencedTableBytes + bytes.byPrefix['staging/'].bytes);
    if (lastPruneMs !== undefined && pruneMs - lastPruneMs >= DEFAULT_DELETE_AFTER_MS) {
      // The previous run's mark is ≥ D old: everything it marked that is still unreferenced went now, so
      // what is pending was found unreferenced by this run first (its earliest deletion is D from now).
      expect(report.pending.eligibleAt === undefined || Date.parse(report.pending.eligibleAt) === pruneMs + DEFAULT_DELETE_AFTER_MS).toBe(true);
    }
    // The report's pack figures: every pack's bytes, of which all but the kept backups' unique blocks unused.
    expect(bytes.byPrefix['packs/'].bytes).toBe(packs.packBytes);
    expect(report.bytesTotal).toBe(packs.packBytes);
    expect(report.bytesUnused).toBe(packs.packBytes - kept.uniqueStoredBytes);
    // Bounded by the referenced data: the referenced packs hold the kept backups' unique blocks, and at
    // most as much again (repack takes the packs less than half live once the vault is over maxUnused).
    expect(packs.referencedBytes).toBeGreaterThanOrEqual(kept.uniqueStoredBytes);
    expect(packs.referencedBytes).toBeLessThanOrEqual(2 * kept.uniqueStoredBytes + packs.referenced.size * 64 * KiB);
    lastPruneMs = pruneMs;
  }

  // ~14 months went by, and the protocol acted in them.
  expect(nowMs - startMs).toBeGreaterThan(420 * DAY);
  expect(sweptSomething).toBeGreaterThan(0);
  expect(repacked).toBeGreaterThan(0);

  // What the policy keeps at the end: 7 daily, 4 weekly, 12 monthly (overlapping) — and each restores byte-identical.
  const finalMs = lastPruneMs!;
  const keptNights = nights.filter((x) => x.forgottenAtMs === undefined || x.forgottenAtMs + DEFAULT_GRACE_MS > finalMs);
  expect(keptNights.length).toBeGreaterThanOrEqual(12);
  for (const x of keptNights) {
    const target = `${env.tmp}/${x.backupId}.img`;
    await restoreBackup({ backupId: x.backupId, vault: vaultLocation, userKey: env.userKey, target: { url: target }, overwrite: true });
    expect({ backupId: x.backupId, sha256: await fileSha256(target) }).toEqual({ backupId: x.backupId, sha256: x.sha256 });
  }
});
