/**
 * #18 follow-up: what reading `lastVerified` costs in storage requests (docs/FORMAT.md §28.1). The catalog
 * (GET /api/backups, every portal poll) reads it each time; counted with core's request observer on
 * Azurite for a catalog of N backups: the first read of a process, then a warm read, then after a new record;
 * a record written under a newer key epoch than the remembered keyring holds reopens it at once.
 */
import { backupDisk, forgetRememberedRecords, listBackups, observeStorageRequests, readLastVerified, verificationRecord, withLastVerified, writeVerificationRecord } from '../core';
import type { BackupListing } from '../core';
import { randomBytes } from 'node:crypto';
import { Keyring, writeKeySlot } from '../core/repo/v2/keyring';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { Vault } from '../core/repo/vault';
import { KiB, startEnv, TestEnv } from './harness/env';

const N = 5;
let env: TestEnv;
let listings: BackupListing[];
const ids: string[] = [];

beforeAll(async () => {
  env = await startEnv();
  for (let i = 0; i < N; i++) {
    const disk = await env.makeDisk(`d${i}.vhd`, 256 * KiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: i + 1 }]);
    ids.push((await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 64 * KiB, cacheBytes: 4 * 64 * KiB })).backupId);
  }
  // Every backup but the last has a record; the first two have an older one too (left by a writer without delete).
  for (let i = 0; i < N - 1; i++) {
    const at = new Date(Date.UTC(2026, 11, 1, 2, 0, i)).toISOString();
    await writeVerificationRecord(env.vault, env.userKey, verificationRecord(ids[i], { at, ok: i !== 1, by: 'schedule', readData: true, ...(i === 1 ? { problems: ['page 3: bad'] } : {}) }));
  }
  listings = await listBackups(env.vault, { userKey: env.userKey });
});
afterAll(async () => {
  observeStorageRequests(undefined);
  await env?.stop();
});

/** The storage requests one call sends, by kind (a listing — of verified/ or keys/ —, a GET of a record, anything else). */
async function counted<T>(call: () => Promise<T>): Promise<{ result: T; listings: number; recordGets: number; other: number }> {
  const seen: { method: string; path: string }[] = [];
  observeStorageRequests((r) => seen.push({ method: r.method, path: r.path }));
  try {
    const result = await call();
    // A listing is a GET of the container itself (?restype=container&comp=list; the query is not reported).
    const listingsOfVerified = seen.filter((r) => r.method === 'GET' && /\/vault\/?$/.test(r.path)).length;
    const recordGets = seen.filter((r) => r.method === 'GET' && r.path.includes('/vault/verified/')).length;
    return { result, listings: listingsOfVerified, recordGets, other: seen.length - listingsOfVerified - recordGets };
  } finally {
    observeStorageRequests(undefined);
  }
}

test('lastVerified of N backups: a warm read costs one listing of verified/ and no record GET', async () => {
  const first = await counted(() => withLastVerified(env.vault, env.userKey, listings));
  const verified = first.result.backups.filter((b) => b.status === 'complete' && b.lastVerified);
  expect(verified.map((b) => b.backupId).sort()).toEqual(ids.slice(0, N - 1).sort());
  expect(first.recordGets).toBe(N - 1);
  // eslint-disable-next-line no-console
  console.log(`lastVerified of ${N} backups, first read: ${JSON.stringify({ ...first, result: undefined })}`);

  const warm = await counted(() => withLastVerified(env.vault, env.userKey, listings));
  // eslint-disable-next-line no-console
  console.log(`lastVerified of ${N} backups, warm read: ${JSON.stringify({ ...warm, result: undefined })}`);
  expect(warm.result.backups).toEqual(first.result.backups);
  expect(warm.recordGets).toBe(0);
  expect(warm.listings).toBe(1);
  expect(warm.other).toBe(0);

  // A new verification of backup 0: its record is the one GET of the next read, which shows it.
  await writeVerificationRecord(env.vault, env.userKey, verificationRecord(ids[0], { at: '2026-12-02T02:00:00.000Z', ok: false, by: 'http', readData: true, problems: ['page 1: bad'] }));
  const after = await counted(() => withLastVerified(env.vault, env.userKey, listings));
  expect({ listings: after.listings, recordGets: after.recordGets, other: after.other }).toEqual({ listings: 1, recordGets: 1, other: 0 });
  const zero = after.result.backups.find((b) => b.backupId === ids[0]);
  expect(zero?.status === 'complete' && zero.lastVerified).toEqual({ at: '2026-12-02T02:00:00.000Z', ok: false, by: 'http', readData: true, problems: ['page 1: bad'] });

  // A process that forgot (or a minute later, the keyring) starts cold again: the keyring and each record read.
  forgetRememberedRecords();
  const cold = await counted(() => withLastVerified(env.vault, env.userKey, listings));
  expect(cold.recordGets).toBe(N - 1);
  expect(cold.result.backups).toEqual(after.result.backups);
});

test('a record under a newer epoch than the remembered keyring: the keyring is reopened at once and the record read', async () => {
  // Warm: the keyring of epoch 0 is remembered.
  await withLastVerified(env.vault, env.userKey, listings);
  // The vault's keys advance to epoch 1 (as a key rotation does: a new master, the slot rewritten).
  const vault = Vault.open(env.vault);
  const old = await openVaultKeyring(vault, env.userKey);
  const plain = old.slotPlaintext();
  const masters = Array.from({ length: plain[0] + 1 }, (_, e) => Buffer.from(plain.subarray(1 + 32 * e, 33 + 32 * e)));
  await writeKeySlot(vault, Keyring.fromMasters(old.vaultId, [...masters, randomBytes(32)]), env.userKey);
  await writeVerificationRecord(env.vault, env.userKey, verificationRecord(ids[N - 1], { at: '2026-12-03T02:00:00.000Z', ok: true, by: 'cli', readData: false }));

  const read = await counted(() => withLastVerified(env.vault, env.userKey, listings));
  expect(read.result.problems).toEqual([]);
  const last = read.result.backups.find((b) => b.backupId === ids[N - 1]);
  expect(last?.status === 'complete' && last.lastVerified).toEqual({ at: '2026-12-03T02:00:00.000Z', ok: true, by: 'cli', readData: false });
  // The listing and the GET with the remembered keyring, then the keyring reopened, the listing and the GET again.
  expect([read.listings - 1 /* keys/ */, read.recordGets]).toEqual([2, 2]);
});

test("a vault read before it had a keyring shows the first backup's record at once (no keyring is remembered absent)", async () => {
  const fresh = await env.makeVault('fresh-vault');
  // Before its first backup: nothing is readable, and nothing of that is kept.
  expect((await readLastVerified(fresh, env.userKey, ['pw-000000000000000000000000'])).readable).toBe(false);
  const disk = await env.makeDisk('fresh.vhd', 256 * KiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 77 }]);
  const { backupId } = await backupDisk({ source: disk.source, vault: fresh, userKey: env.userKey, pageSize: 64 * KiB, cacheBytes: 4 * 64 * KiB });
  await writeVerificationRecord(fresh, env.userKey, verificationRecord(backupId, { at: '2026-12-01T03:00:00.000Z', ok: true, by: 'http', readData: true }));
  const read = await readLastVerified(fresh, env.userKey, [backupId]);
  expect(read.readable).toBe(true);
  expect(read.byBackup.get(backupId)).toEqual({ at: '2026-12-01T03:00:00.000Z', ok: true, by: 'http', readData: true });
});
