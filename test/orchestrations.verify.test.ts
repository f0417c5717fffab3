/**
 * The verify fan-out (#17) with the real engine on Azurite through the local durable runtime: plan →
 * window range sub-orchestration → verifyWindow activities (a small PAGEWISE_RESTORE_WINDOW_BYTES, so a
 * 4 MiB disk makes 8 windows) → the result, equal to the one-process verify's (core verifyBackup, which
 * runs the same steps); a damaged block fails the orchestration naming its page; a window cannot be
 * pointed at another backup's manifest.
 */
import { openBackupSource } from '../core/repo/backup-source';
import type { PageRecord2 } from '../core/repo/v2/records';
import { v2names } from '../core/repo/v2/names';
import { backupDisk, verifyBackup, verifyWindow } from '../core';
import type { VerifyResult } from '../core';
import { Orchestrators } from '../orchestrations/contracts';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

const PAGE = 64 * KiB;
const WINDOW = 512 * KiB; // 8 pages: a 4 MiB disk (64 pages) is 8 windows, all within the one page table
const FAST_RETRY = { firstRetryIntervalInMs: 10, maxAttempts: 2 };
let env: TestEnv;
let app: LocalApp;

beforeAll(async () => {
  env = await startEnv();
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      PAGEWISE_VAULT_URL: env.vault.url,
      PAGEWISE_USER_KEY: env.userKey.toString('base64'),
      PAGEWISE_ALLOWED_ACCOUNTS: env.az.storageEndpoints,
      PAGEWISE_RESTORE_WINDOW_BYTES: String(WINDOW),
    },
  });
});
afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

/** A 4 MiB disk with data in four of its eight windows (pages 0–3, 16–20, 49–52, 63; zeros written in window 5), backed up in 64 KiB pages. */
async function backedUp(name: string, seed: number) {
  const disk = await env.makeDisk(name, 4 * MiB, [
    { offset: 0, length: 256 * KiB, kind: 'text', seed },
    { offset: MiB + 4 * KiB, length: 300 * KiB, kind: 'random', seed: seed + 1 },
    { offset: 2 * MiB + 512 * KiB, length: 128 * KiB, kind: 'zero' },
    { offset: 3 * MiB + 64 * KiB, length: 200 * KiB, kind: 'random', seed: seed + 2 },
    { offset: 4 * MiB - 64 * KiB, length: 64 * KiB, kind: 'text', seed: seed + 3 },
  ]);
  const { backupId } = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 8 * PAGE });
  return { disk, backupId };
}

async function verifyThroughOrchestration(instanceId: string, input: object) {
  await app.runtime.startNew(Orchestrators.verifyBackup, { instanceId, input: { retry: FAST_RETRY, ...input } });
  return app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
}

const withoutDuration = ({ durationMs: _d, ...rest }: VerifyResult) => rest;

test('a verification fans out over 8 windows and finds what the one-process verify finds, count for count', async () => {
  const { disk, backupId } = await backedUp('fan.vhd', 40);
  const done = await verifyThroughOrchestration('verify-fan', { backupId, readData: true, source: disk.source });
  expect([done.runtimeStatus, done.output && (done.output as VerifyResult).problems]).toEqual(['Completed', []]);
  const output = done.output as VerifyResult;

  const cli = await verifyBackup({ backupId, vault: env.vault, userKey: env.userKey, readData: true, source: disk.source, windowBytes: WINDOW });
  expect(withoutDuration(output)).toEqual(withoutDuration(cli));
  // 4 + 5 + 4 + 1 pages with data (the zeros are holes); one page table, counted once across its 8 windows.
  expect(output).toMatchObject({ ok: true, formatVersion: 2, readData: true, comparedWithSource: true, pagesChecked: 14, tablesChecked: 1, bytesChecked: 14 * PAGE });
  expect(output.blocksChecked).toBeGreaterThanOrEqual(14);
  // The same checks as one window of the whole disk (only packs are counted per window).
  const whole = await verifyBackup({ backupId, vault: env.vault, userKey: env.userKey, readData: true, source: disk.source });
  expect([whole.pagesChecked, whole.blocksChecked, whole.bytesChecked, whole.tablesChecked, whole.problems]).toEqual([14, output.blocksChecked, output.bytesChecked, 1, []]);
  expect(output.packsChecked).toBeGreaterThanOrEqual(whole.packsChecked);

  expect(done.customStatus).toEqual({ phase: 'done', backupId, ok: true, windowsTotal: 8, windowsDone: 8, pagesDone: 14, pagesTotal: 14, bytesDone: 14 * PAGE, bytesTotal: 14 * PAGE });
  // Root: plan + one range of 8 windows; the range ran the 8 window activities.
  const family = await app.runtime.listInstances({ prefix: 'verify-fan' });
  expect(family.map((s) => s.instanceId).sort()).toEqual(['verify-fan', 'verify-fan:r0+8']);
  const range = await app.runtime.getStatus('verify-fan:r0+8', { showHistory: true });
  const scheduled = JSON.stringify(range?.history ?? []).match(/"Name":"verifyWindow"/g) ?? [];
  expect(scheduled.length).toBeGreaterThanOrEqual(8);
  expect(range?.customStatus).toEqual({ windowsTotal: 8, windowsDone: 8, pagesDone: 14, bytesDone: 14 * PAGE });
});

test('a damaged block fails the verification, naming its page, as the one-process verify names it', async () => {
  const { backupId } = await backedUp('damaged.vhd', 50);
  // Damage one stored byte of page 17's block (window 2) in its pack; the pack's size stays the same.
  const reader = await openBackupSource(env.vault, backupId, env.userKey);
  const record = (await reader.groupEntries(0)).find((e) => e.page === 17) as PageRecord2;
  const chunk = record.chunks.find((c) => c.storedLength > 0)!;
  const pack = env.az.accounts.vault.service.getContainerClient('vault').getBlockBlobClient(v2names.pack(chunk.pack));
  const bytes = await pack.downloadToBuffer();
  bytes[chunk.offset + Math.floor(chunk.storedLength / 2)] ^= 0xff;
  await pack.uploadData(bytes);

  const cli = await verifyBackup({ backupId, vault: env.vault, userKey: env.userKey, readData: true, windowBytes: WINDOW });
  expect(cli.ok).toBe(false);
  expect(cli.problems).toHaveLength(1);
  expect(cli.problems[0]).toMatch(new RegExp(`^page 17 \\(offset ${17 * PAGE}\\), chunk \\d+ \\(pack ${chunk.pack}\\): the block fails authentication`));

  const failed = await verifyThroughOrchestration('verify-damaged', { backupId, readData: true });
  expect(failed.runtimeStatus).toBe('Failed');
  expect(String(failed.output)).toContain(`backup ${backupId} failed verification: ${cli.problems[0]}`);
  expect(failed.customStatus).toMatchObject({ phase: 'failed', ok: false, windowsTotal: 8, windowsDone: 8, pagesDone: cli.pagesChecked, pagesTotal: 14 });
});

test("a window refuses another backup's manifest, and a window beyond the disk, as bad input", async () => {
  const a = await backedUp('window-a.vhd', 60);
  const b = await backedUp('window-b.vhd', 70);
  const manifestOfA = (await openBackupSource(env.vault, a.backupId, env.userKey)).manifestName!;
  const window = { vault: env.vault, userKey: env.userKey, readData: true, windowPages: 8 };
  await expect(verifyWindow({ ...window, backupId: b.backupId, manifestName: manifestOfA, window: 0 })).rejects.toMatchObject({ code: 'BadInput', message: expect.stringContaining(`not ${b.backupId}'s`) });
  await expect(verifyWindow({ ...window, backupId: b.backupId, window: 8 })).rejects.toMatchObject({ code: 'BadInput', message: "window 8 of 8 pages is not within the backup's 64 pages" });
  // Its own manifest by name: window 2 (pages 16–23) holds 5 pages with data.
  expect(await verifyWindow({ ...window, backupId: a.backupId, manifestName: manifestOfA, window: 2 })).toMatchObject({ windows: 1, pagesChecked: 5, tablesChecked: 0, problems: [] });
});
