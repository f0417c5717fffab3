/**
 * Vault usage (#15, "cost visible") on a real Azurite: stored bytes unique and shared per backup and per
 * disk, and the vault's totals — checked against figures counted here independently from the tables
 * (every manifest, every table, a map of content IDs) and against hand-known ones: a page of random
 * bytes is one block of 64 KiB + 60 stored as it is. Incrementals share their base's unchanged chunks,
 * a second disk reuses chunks of the first through the vault index and a third stores its own copies
 * (duplicates: unreferenced), a forgotten backup is flagged and its bytes move to
 * "unreferenced" once prune deleted its manifest; version-1 backups of an upgraded vault count as unique.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { captureIO, run } from '../cli/main';
import { backupDisk, encodeKeyFile, formatBytes, StorageLocation, VaultUsage, vaultUsage, vaultUsageAt } from '../core';
import { pruneVault } from '../core/prune/prune';
import { openVaultKeyring, upgradeVault } from '../core/repo/v2/marker';
import { readManifest2 } from '../core/repo/v2/manifest';
import { isZeroChunk, readTable } from '../core/repo/v2/page-table';
import { Vault } from '../core/repo/vault';
import { forgetBackups } from '../core/retention/forget';
import { MiB, startEnv, TestEnv } from './harness/env';
import { PAGE, PagedDisk } from './harness/prune-fixture';

/** A page of random bytes: one block stored as it is (no codec shrinks it): the page plus the block overhead. */
const S = PAGE + 60;
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

interface Expected {
  backups: Map<string, { disk: string; referenced: number; unique: number }>;
  disks: Map<string, { referenced: number; unique: number; backups: number }>;
  referenced: number;
  packBytes: number;
}

/** The figures counted the plain way: every manifest and table read, content ID → (backup → stored length). */
async function expectedOf(location: StorageLocation): Promise<Expected> {
  const vault = Vault.open(location);
  const keyring = await openVaultKeyring(vault, env.userKey);
  const named = new Map<string, Map<string, number>>();
  const diskOf = new Map<string, string>();
  for await (const name of vault.list('manifests/')) {
    const m = await readManifest2(vault, keyring, name);
    diskOf.set(m.backupId, m.disk.armDiskId ?? m.disk.identity);
    for (const t of m.tables) {
      for (const r of await readTable(vault, keyring, t, m.pagesPerTable)) {
        for (const c of r.chunks) {
          if (isZeroChunk(c)) continue;
          const id = c.contentId.toString('hex');
          const by = named.get(id) ?? new Map<string, number>();
          by.set(m.backupId, Math.max(by.get(m.backupId) ?? 0, c.storedLength));
          named.set(id, by);
        }
      }
    }
  }
  const backups = new Map([...diskOf].map(([id, disk]) => [id, { disk, referenced: 0, unique: 0 }]));
  const disks = new Map<string, { referenced: number; unique: number; backups: number }>();
  for (const disk of diskOf.values()) disks.set(disk, { referenced: 0, unique: 0, backups: (disks.get(disk)?.backups ?? 0) + 1 });
  let referenced = 0;
  for (const by of named.values()) {
    const longest = Math.max(...by.values());
    referenced += longest;
    for (const [id, len] of by) {
      backups.get(id)!.referenced += len;
      if (by.size === 1) backups.get(id)!.unique += len;
    }
    const ofDisks = new Set([...by.keys()].map((id) => diskOf.get(id)!));
    for (const disk of ofDisks) {
      disks.get(disk)!.referenced += longest;
      if (ofDisks.size === 1) disks.get(disk)!.unique += longest;
    }
  }
  let packBytes = 0;
  for await (const b of vault.listDetailed('packs/')) packBytes += b.contentLength;
  return { backups, disks, referenced, packBytes };
}

/** The version-2 part of a usage equals the plain count. */
function expectMatches(u: VaultUsage, e: Expected): void {
  const v2 = u.backups.filter((b) => b.formatVersion === 2);
  expect(Object.fromEntries(v2.map((b) => [b.backupId, { disk: b.disk, referenced: b.referencedBytes, unique: b.uniqueBytes, shared: b.sharedBytes }]))).toEqual(
    Object.fromEntries([...e.backups].map(([id, b]) => [id, { ...b, shared: b.referenced - b.unique }])),
  );
  expect(Object.fromEntries(u.disks.map((d) => [d.disk, { referenced: d.referencedBytes, unique: d.uniqueBytes, backups: d.backups, shared: d.sharedBytes }]))).toEqual(
    Object.fromEntries([...e.disks].map(([disk, d]) => [disk, { ...d, shared: d.referenced - d.unique }])),
  );
  expect(u.vault.referencedBytes).toBe(e.referenced);
  expect(u.vault.packBytes).toBe(e.packBytes);
  expect(u.vault.unreferencedBytes).toBe(e.packBytes - e.referenced);
  const v = u.vault;
  expect(v.totalBytes).toBe(v.packBytes + v.indexBytes + v.tableBytes + v.otherBytes + v.v1Bytes);
}

async function totalListed(location: StorageLocation, prefix: string): Promise<number> {
  let n = 0;
  for await (const b of Vault.open(location).listDetailed(prefix)) n += b.contentLength;
  return n;
}

describe('a vault with an incremental, three disks sharing chunks (reused and copied), a forgotten backup', () => {
  let vault: StorageLocation;
  let fa: string;
  let ia: string;
  let fb: string;
  let fc: string;
  const diskA = 'blob:src/disks/usage-a.vhd';
  const diskB = 'blob:src/disks/usage-b.vhd';
  const diskC = 'blob:src/disks/usage-c.vhd';
  let before: VaultUsage;

  beforeAll(async () => {
    vault = await env.makeVault('usage');
    const a = await PagedDisk.create(env, 'usage-a.vhd', 1 * MiB);
    const b = await PagedDisk.create(env, 'usage-b.vhd', 4 * PAGE);
    const c = await PagedDisk.create(env, 'usage-c.vhd', 4 * PAGE);
    await a.write(range(0, 8), 1); // P0..P7
    await a.write([8, 9], 3); // R8, R9
    fa = (await a.backup(vault)).backupId; // {P0..P7, R8, R9}
    await a.write([0, 1, 8], 2); // Q0, Q1, Q8
    const inc = await a.backup(vault);
    expect(inc.kind).toBe('incremental');
    ia = inc.backupId; // {Q0, Q1, P2..P7, Q8, R9}
    await b.write(range(0, 4), 1); // the same bytes as P0..P3: the same content IDs
    const onB = await backupDisk(b.request(vault));
    expect(onB.chunksReusedFromVault).toBe(4); // found through the vault index: disk B stores nothing of its own
    fb = onB.backupId; // {P0..P3}
    // Disk C holds the same bytes too, backed up without vault-wide dedupe: its own copies of P0..P3.
    await c.write(range(0, 4), 1);
    const onC = await backupDisk(c.request(vault, { vaultDedupe: false }));
    expect(onC.chunksReusedFromVault ?? 0).toBe(0);
    fc = onC.backupId; // {P0..P3}, stored a second time
  });

  test('per backup and per disk: unique and shared, as counted from the tables and by hand', async () => {
    before = await vaultUsageAt(vault, env.userKey, { scratchDir: env.tmp });
    expectMatches(before, await expectedOf(vault));
    const of = (id: string) => before.backups.find((b) => b.backupId === id);
    expect(of(fa)).toEqual({ backupId: fa, disk: diskA, formatVersion: 2, referencedBytes: 10 * S, uniqueBytes: 1 * S, sharedBytes: 9 * S }); // R8 alone is its own
    expect(of(ia)).toEqual({ backupId: ia, disk: diskA, formatVersion: 2, referencedBytes: 10 * S, uniqueBytes: 3 * S, sharedBytes: 7 * S }); // Q0, Q1, Q8
    expect(of(fb)).toEqual({ backupId: fb, disk: diskB, formatVersion: 2, referencedBytes: 4 * S, uniqueBytes: 0, sharedBytes: 4 * S });
    expect(of(fc)).toEqual({ backupId: fc, disk: diskC, formatVersion: 2, referencedBytes: 4 * S, uniqueBytes: 0, sharedBytes: 4 * S });
    expect(before.disks).toEqual([
      { disk: diskA, backups: 2, referencedBytes: 13 * S, uniqueBytes: 9 * S, sharedBytes: 4 * S },
      { disk: diskB, backups: 1, referencedBytes: 4 * S, uniqueBytes: 0, sharedBytes: 4 * S },
      { disk: diskC, backups: 1, referencedBytes: 4 * S, uniqueBytes: 0, sharedBytes: 4 * S },
    ]);
    // Stored: A's full 10 blocks, its incremental 3, disk C's 4 copies (disk B none): one pack each, with its
    // trailer of 44 + 48 bytes per block (§17.2). Named: 13 chunks once each; C's copies are duplicates.
    const trailers = [10, 3, 4].reduce((sum, n) => sum + 44 + 48 * n, 0);
    expect(before.vault).toMatchObject({ packBytes: 17 * S + trailers, referencedBytes: 13 * S, unreferencedBytes: 4 * S + trailers, forgottenOnlyBytes: 0, v1Bytes: 0 });
    expect(before.vault.tableBytes).toBe(await totalListed(vault, 'tables/'));
    expect(before.vault.indexBytes).toBe(await totalListed(vault, 'index/'));
    expect(before.tablesRead).toBe(4); // one table per backup (1 MiB of 64 KiB pages is one group; B's and C's hints differ)
    expect({ unread: before.manifestsUnread, problems: before.problems }).toEqual({ unread: 0, problems: [] });
  });

  test('without a key: the totals only, every version-2 manifest unread', async () => {
    const locked = await vaultUsage(Vault.open(vault), null);
    expect(locked).toMatchObject({ backups: [], disks: [], manifestsUnread: 4, tablesRead: 0, problems: [] });
    expect(locked.vault).toMatchObject({ packBytes: before.vault.packBytes, tableBytes: before.vault.tableBytes, referencedBytes: 0, unreferencedBytes: before.vault.packBytes });
  });

  test('pagewise list: UNIQUE and SHARED per backup, each disk, the vault; --json carries usage; --no-usage reads no table', async () => {
    const keyFile = path.join(env.tmp, 'usage.key');
    await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
    const cli = async (args: string[]) => {
      const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
      const code = await run(['list', '--vault', vault.url, '--key-file', keyFile, ...args], io);
      return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
    };
    const table = await cli([]);
    expect({ code: table.code, stderr: table.stderr }).toEqual({ code: 0, stderr: '' });
    const lines = table.stdout.split('\n');
    expect(lines).toContain(`disk ${diskA} (2 backups; stored ${formatBytes(13 * S)}: ${formatBytes(9 * S)} its own, ${formatBytes(4 * S)} shared with other disks)`);
    expect(lines).toContain(`disk ${diskB} (1 backup; stored ${formatBytes(4 * S)}: 0 B its own, ${formatBytes(4 * S)} shared with other disks)`);
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}COMPLETED +KIND +BASE +LOGICAL +READ +NEW +STORED +UNIQUE +SHARED +BACKUP ID +VERIFIED +STATUS$/));
    const rowOf = (id: string) => lines.find((l) => l.includes(id) && !l.startsWith('disk'))!.trim().split(/ {2,}/);
    expect(rowOf(ia).slice(-5)).toEqual([formatBytes(3 * S), formatBytes(7 * S), ia, 'never', 'complete']);
    expect(rowOf(fb).slice(-5)).toEqual(['0 B', formatBytes(4 * S), fb, 'never', 'complete']);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^vault: \\S+ \\S+ in all — packs \\S+ \\S+ \\(${formatBytes(13 * S).replace('.', '\\.')} named by backups, `)));

    const json = JSON.parse((await cli(['--json'])).stdout);
    expect(json.usage.backups.find((b: { backupId: string }) => b.backupId === fa)).toEqual({ backupId: fa, disk: diskA, formatVersion: 2, referencedBytes: 10 * S, uniqueBytes: S, sharedBytes: 9 * S });
    expect(json.usage.disks).toEqual(before.disks);
    expect(json.usage.vault).toEqual(before.vault);

    const bare = await cli(['--no-usage']);
    expect(bare.stdout).not.toMatch(/UNIQUE|^vault:/m);
    expect(bare.stdout).toMatch(/^ {2}COMPLETED +KIND +BASE +LOGICAL +READ +NEW +STORED +BACKUP ID +VERIFIED +STATUS$/m);
    expect(JSON.parse((await cli(['--no-usage', '--json'])).stdout)).not.toHaveProperty('usage');
  });

  test("forgotten: flagged and still counted; once prune deleted its manifest, its own bytes are unreferenced and its base's shared ones its incremental's", async () => {
    const t = Date.now();
    await forgetBackups({ vault, userKey: env.userKey, backupIds: [fa], graceMs: 0, clock: () => t });
    const forgotten = await vaultUsageAt(vault, env.userKey);
    expectMatches(forgotten, await expectedOf(vault));
    expect(forgotten.backups.find((b) => b.backupId === fa)).toEqual({ backupId: fa, disk: diskA, formatVersion: 2, referencedBytes: 10 * S, uniqueBytes: S, sharedBytes: 9 * S, deleted: true });
    expect(forgotten.vault).toMatchObject({ referencedBytes: 13 * S, forgottenOnlyBytes: S, packBytes: before.vault.packBytes });

    const pruned = await pruneVault({ vault, userKey: env.userKey, clock: () => t + 60_000 });
    expect(pruned.deleted.manifests).toHaveLength(1);
    const after = await vaultUsageAt(vault, env.userKey);
    expectMatches(after, await expectedOf(vault));
    expect(after.backups.map((b) => b.backupId).sort()).toEqual([ia, fb, fc].sort());
    // The incremental now alone names P4..P7 and R9 too; P2, P3 it still shares with disk B.
    expect(after.backups.find((b) => b.backupId === ia)).toMatchObject({ referencedBytes: 10 * S, uniqueBytes: 8 * S, sharedBytes: 2 * S });
    // The packs are still there (prune deletes them two-phase, D later): R8, only the forgotten backup's, is unreferenced now; P0, P1 disk B still names.
    expect(after.vault.packBytes).toBe(before.vault.packBytes);
    expect(after.vault.referencedBytes).toBe(12 * S);
    expect(after.vault.unreferencedBytes).toBe(before.vault.unreferencedBytes + S);
    expect(after.vault.forgottenOnlyBytes).toBe(0);
  });
});

test('an upgraded vault: a version-1 backup counts its segments as its own, beside the version-2 backups of its disk', async () => {
  const location = await env.makeVault('usagev1', { version: 1 });
  const disk = await PagedDisk.create(env, 'usage-v1.vhd', 8 * PAGE);
  await disk.write(range(0, 3), 21);
  const v1 = await disk.backup(location);
  expect(await upgradeVault(Vault.open(location), env.userKey)).toEqual({ upgraded: true });
  await disk.write([3], 22);
  const v2 = await disk.backup(location);
  const u = await vaultUsageAt(location, env.userKey);
  const segments = await totalListed(location, `backups/${v1.backupId}/segments/`);
  expect(segments).toBeGreaterThan(0);
  const identity = 'blob:src/disks/usage-v1.vhd';
  expect(u.backups).toEqual([
    { backupId: v1.backupId, disk: identity, formatVersion: 1, referencedBytes: segments, uniqueBytes: segments, sharedBytes: 0 },
    { backupId: v2.backupId, disk: identity, formatVersion: 2, referencedBytes: 4 * S, uniqueBytes: 4 * S, sharedBytes: 0 }, // full (v1-base): nothing shared with version 1
  ].sort((a, b) => a.backupId.localeCompare(b.backupId)));
  expect(u.disks).toEqual([{ disk: identity, backups: 2, referencedBytes: segments + 4 * S, uniqueBytes: segments + 4 * S, sharedBytes: 0 }]);
  expect(u.vault.v1Bytes).toBe(await totalListed(location, 'backups/'));
  expect(u.vault.referencedBytes).toBe(4 * S);
});

test('a table that fails its checks: its backups are flagged incomplete and the problem named; the rest is counted', async () => {
  const location = await env.makeVault('usagebad');
  const disk = await PagedDisk.create(env, 'usage-bad.vhd', 4 * PAGE);
  await disk.write([0, 1], 31);
  const good = await disk.backup(location);
  const other = await PagedDisk.create(env, 'usage-bad2.vhd', 4 * PAGE);
  await other.write([0], 32);
  const bad = await other.backup(location);
  const store = Vault.open(location);
  const keyring = await openVaultKeyring(store, env.userKey);
  let tableOfBad = '';
  for await (const name of store.list('manifests/')) {
    const m = await readManifest2(store, keyring, name);
    if (m.backupId === bad.backupId) tableOfBad = `tables/${m.tables[0].tableId}.pwt`;
  }
  const blob = env.az.accounts.vault.service.getContainerClient('usagebad').getBlockBlobClient(tableOfBad);
  const bytes = await blob.downloadToBuffer();
  bytes[bytes.length - 1] ^= 1;
  await blob.uploadData(bytes); // the same size, another SHA-256
  const u = await vaultUsageAt(location, env.userKey);
  expect(u.backups.find((b) => b.backupId === good.backupId)).toEqual({ backupId: good.backupId, disk: 'blob:src/disks/usage-bad.vhd', formatVersion: 2, referencedBytes: 2 * S, uniqueBytes: 2 * S, sharedBytes: 0 });
  expect(u.backups.find((b) => b.backupId === bad.backupId)).toMatchObject({ referencedBytes: 0, problem: expect.stringMatching(/^its page table 0 could not be read, its figures leave it out: page table 0 \(tables\/[0-9a-f]{32}\.pwt\) does not match the manifest's entry/) });
  expect(u.problems).toEqual([expect.stringMatching(/does not match the manifest's entry/)]);
  expect(u.tablesRead).toBe(1);
});
