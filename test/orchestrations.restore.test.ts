/**
 * The restore fan-out (#17 R) with the real engine on Azurite and the real durable replay through the
 * local runtime: plan → window ranges → finalize reproduces the disk byte for byte; a window run twice
 * writes the same target; a failure mid-way abandons (no target left); a file target appears only when
 * finalized; later steps refuse a plan or a target that is not theirs.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { abandonRestore, backupDisk, finalizeRestore, openBackupSource, planRestore, restoreWindow } from '../core';
import type { RestorePlan } from '../core';
import { Orchestrators, RestoreOrchestrationOutput, RestoreProgressStatus } from '../orchestrations/contracts';
import { HistoryEventType } from '../runtime/durable/history';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let app: LocalApp;
let backupId: string;
let diskSha: string;
const pageSize = 64 * KiB;
const WINDOW = 512 * KiB; // 8 pages: a 2 MiB disk is 4 windows

beforeAll(async () => {
  env = await startEnv();
  // Data in every window, a hole between, zero runs inside pages (left unwritten), a short run at the end.
  const disk = await env.makeDisk('fan.vhd', 2 * MiB, [
    { offset: 0, length: 96 * KiB, kind: 'text', seed: 1 },
    { offset: 600 * KiB, length: 200 * KiB, kind: 'random', seed: 2 },
    { offset: 1100 * KiB, length: 128 * KiB, kind: 'zero' },
    { offset: 1300 * KiB, length: 60 * KiB, kind: 'text', seed: 3 },
    { offset: 2 * MiB - 8 * KiB, length: 8 * KiB, kind: 'random', seed: 4 },
  ]);
  diskSha = disk.sha256;
  backupId = (await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize, cacheBytes: 256 * KiB })).backupId;
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: env.appSettings({ PAGEWISE_RESTORE_WINDOW_BYTES: String(WINDOW) }),
  });
});

afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

const targetClient = (name: string) => env.az.accounts.vault.service.getContainerClient('restores').getPageBlobClient(name);
const step = (name: string) => ({ backupId, vault: env.vault, userKey: env.userKey, target: { url: env.targetUrl(name) } });

async function history(instanceId: string): Promise<Array<{ EventType: HistoryEventType; Name?: string }>> {
  return ((await app.runtime.getStatus(instanceId, { showHistory: true }))?.history ?? []) as Array<{ EventType: HistoryEventType; Name?: string }>;
}

test('a restore runs plan → window ranges → finalize: 4 windows, the disk byte for byte, the target marked complete', async () => {
  const instanceId = 'restore-fanout-ok';
  const target = env.targetUrl('fan-restored.vhd');
  await app.runtime.startNew(Orchestrators.restoreDisk, { instanceId, input: { backupId, target: { url: target } } });
  const status = await app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
  expect([status.runtimeStatus, status.output && typeof status.output === 'string' ? status.output : '']).toEqual(['Completed', '']);
  const reader = await openBackupSource(env.vault, backupId, env.userKey);
  const output = status.output as RestoreOrchestrationOutput;
  expect(output).toMatchObject({ backupId, diskBytes: 2 * MiB, windows: 4, pagesWritten: reader.entryCount });
  expect(await env.blobSha256(target)).toBe(diskSha);
  expect((await targetClient('fan-restored.vhd').getProperties()).metadata).toEqual({ pagewise_restore: 'complete', pagewise_backup: backupId, pagewise_operation: instanceId });
  expect(status.customStatus).toMatchObject({
    phase: 'done',
    windowsTotal: 4,
    windowsDone: 4,
    pagesDone: reader.entryCount,
    pagesTotal: reader.entryCount,
    bytesDone: await reader.entryBytes(),
  } satisfies Partial<RestoreProgressStatus>);
  // The root: plan, one range sub-orchestration, finalize; the range: the 4 window activities.
  const root = await history(instanceId);
  expect(root.filter((e) => e.EventType === HistoryEventType.TaskScheduled).map((e) => e.Name)).toEqual(['planRestore', 'finalizeRestore', 'reportOperation']); // #18: the end's telemetry
  expect(root.filter((e) => e.EventType === HistoryEventType.SubOrchestrationInstanceCreated)).toHaveLength(1);
  const range = await history(`${instanceId}:r0+4`);
  expect(range.filter((e) => e.EventType === HistoryEventType.TaskScheduled).map((e) => e.Name)).toEqual(Array(4).fill('restoreWindow'));
});

test('a window run twice writes the same target (a retried activity), and the result is the disk', async () => {
  const plan = await planRestore({ ...step('twice.vhd'), operationId: 'restore-twice', windowBytes: WINDOW });
  expect(plan).toMatchObject({ kind: 'blob', windowCount: 4, windowPages: 8, pageCount: 32, diskBytes: 2 * MiB });
  expect(JSON.stringify(plan)).not.toMatch(/sig=|\?/); // no SAS, no query: the plan travels through histories
  expect((await targetClient('twice.vhd').getProperties()).metadata).toMatchObject({ pagewise_restore: 'incomplete' });
  const written = [];
  for (let w = 0; w < plan.windowCount; w++) written.push(await restoreWindow(step('twice.vhd'), plan, w));
  const once = await env.blobSha256(env.targetUrl('twice.vhd'));
  const again = await restoreWindow(step('twice.vhd'), plan, 1);
  expect(again).toEqual(written[1]);
  expect(again.pages).toBeGreaterThan(0);
  expect(await env.blobSha256(env.targetUrl('twice.vhd'))).toBe(once);
  await finalizeRestore(step('twice.vhd'), plan);
  await finalizeRestore(step('twice.vhd'), plan); // a retried finalize finds its work done
  expect(await env.blobSha256(env.targetUrl('twice.vhd'))).toBe(diskSha);
  // Finished: abandon (a late one) leaves a completed restore alone.
  expect(await abandonRestore(step('twice.vhd'), plan)).toEqual({ removed: false });
  expect(await targetClient('twice.vhd').exists()).toBe(true);
});

test('a failure mid-way (a damaged block in the last window) abandons: the orchestration fails and no target is left', async () => {
  const disk = await env.makeDisk('damaged.vhd', 2 * MiB, [
    { offset: 0, length: 2 * MiB, kind: 'random', seed: 77 }, // every page, every window
  ]);
  const damagedId = (await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize, cacheBytes: 256 * KiB })).backupId;
  // Damage the block of the disk's last page (window 3 of 4): its authentication fails, a permanent failure.
  const reader = await openBackupSource(env.vault, damagedId, env.userKey);
  const last = (await reader.groupEntries(Math.floor(31 / reader.groupPages))).find((e) => e.page === 31) as unknown as { chunks: Array<{ pack: string; offset: number; storedLength: number }> };
  const chunk = last.chunks[0];
  const pack = env.az.accounts.vault.service.getContainerClient('vault').getBlockBlobClient(`packs/${chunk.pack.slice(0, 2)}/${chunk.pack}.pwp`);
  const bytes = await pack.downloadToBuffer();
  bytes[chunk.offset + Math.floor(chunk.storedLength / 2)] ^= 0xff;
  await pack.uploadData(bytes);

  const instanceId = 'restore-fanout-damaged';
  await app.runtime.startNew(Orchestrators.restoreDisk, { instanceId, input: { backupId: damagedId, target: { url: env.targetUrl('damaged-restored.vhd') }, retry: { firstRetryIntervalInMs: 10, maxAttempts: 2 } } });
  const status = await app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
  expect(status.runtimeStatus).toBe('Failed');
  // The range sub-orchestration failed with the window activity's permanent failure, named as it was.
  expect(String(status.output)).toMatch(/Corrupt: page 31 \(offset 2031616\), chunk 0 .*fails authentication/);
  expect(status.customStatus).toMatchObject({ phase: 'failed', windowsTotal: 4 });
  const scheduled = (await history(instanceId)).filter((e) => e.EventType === HistoryEventType.TaskScheduled).map((e) => e.Name);
  expect(scheduled).toEqual(['planRestore', 'abandonRestore', 'reportOperation']);
  // Windows 0 and 1 were written before the failure: abandon removed the whole target.
  const windows = (await history(`${instanceId}:r0+4`)).filter((e) => e.EventType === HistoryEventType.TaskCompleted);
  expect(windows.length).toBeGreaterThanOrEqual(2);
  expect(await targetClient('damaged-restored.vhd').exists()).toBe(false);
});

test('a file target: the windows write a 0600 partial file beside it; the target appears only when finalized', async () => {
  const file = path.join(env.tmp, 'fan.img');
  const fileStep = { ...step('unused'), target: { url: file } };
  const plan: RestorePlan = await planRestore({ ...fileStep, operationId: 'restore-file', windowBytes: WINDOW });
  expect(plan.kind).toBe('file');
  expect(path.dirname(plan.partial!)).toBe(path.dirname(await fs.realpath(env.tmp + '/.') + '/fan.img'));
  expect((await fs.stat(plan.partial!)).mode & 0o777).toBe(0o600);
  for (let w = 0; w < plan.windowCount; w++) await restoreWindow(fileStep, plan, w);
  await expect(fs.lstat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  await finalizeRestore(fileStep, plan);
  expect(await fileSha256(file)).toBe(diskSha);
  await expect(fs.lstat(plan.partial!)).rejects.toMatchObject({ code: 'ENOENT' });

  // A second restore to the now existing file without overwrite is refused before anything is made.
  await expect(planRestore({ ...fileStep, operationId: 'restore-file-2', windowBytes: WINDOW })).rejects.toMatchObject({ code: 'TargetExists' });
  // A file that appears at the target during a restore is never replaced.
  const other = path.join(env.tmp, 'raced.img');
  const racedStep = { ...fileStep, target: { url: other } };
  const raced = await planRestore({ ...racedStep, operationId: 'restore-raced', windowBytes: WINDOW });
  await fs.writeFile(other, 'someone else');
  await expect(finalizeRestore(racedStep, raced)).rejects.toMatchObject({ code: 'TargetExists' });
  expect(await fs.readFile(other, 'utf8')).toBe('someone else');
  expect(await abandonRestore(racedStep, raced)).toEqual({ removed: true });
  expect((await fs.readdir(env.tmp)).filter((n) => n.includes('.pagewise-partial-'))).toEqual([]);
});

test('the steps refuse what is not theirs: an existing target, another target, a blob this operation did not create', async () => {
  await targetClient('taken.vhd').create(2 * MiB);
  await expect(planRestore({ ...step('taken.vhd'), operationId: 'restore-taken' })).rejects.toMatchObject({ code: 'TargetExists' });
  expect((await targetClient('taken.vhd').getProperties()).metadata).toEqual({}); // untouched

  const plan = await planRestore({ ...step('mine.vhd'), operationId: 'restore-mine', windowBytes: WINDOW });
  // The plan handed to a step of another target (a forged sub-orchestration input) is refused.
  await expect(restoreWindow(step('taken.vhd'), plan, 0)).rejects.toMatchObject({ code: 'BadInput', message: expect.stringMatching(/does not belong to this request: another target/) });
  // A plan naming the target but not its operation's marks: nothing written, nothing deleted.
  const forged = { ...plan, display: plan.display.replace('mine.vhd', 'taken.vhd') };
  await expect(restoreWindow(step('taken.vhd'), forged, 0)).rejects.toMatchObject({ code: 'BadInput', message: expect.stringMatching(/is not the incomplete target restore restore-mine/) });
  expect(await abandonRestore(step('taken.vhd'), forged)).toEqual({ removed: false });
  expect(await targetClient('taken.vhd').exists()).toBe(true);
  await expect(restoreWindow(step('mine.vhd'), plan, 4)).rejects.toMatchObject({ code: 'BadInput', message: 'restore window 4 does not exist (the plan has 4)' });
  // A retried plan of the same operation makes its target again; abandon removes it.
  const retried = await planRestore({ ...step('mine.vhd'), operationId: 'restore-mine', windowBytes: WINDOW });
  expect(retried).toEqual(plan);
  expect(await abandonRestore(step('mine.vhd'), plan)).toEqual({ removed: true });
  expect(await targetClient('mine.vhd').exists()).toBe(false);
});

test('PAGEWISE_RESTORE_WINDOW_BYTES: default 1 GiB, whole bytes from 512 to 16 GiB, a clear error naming the setting otherwise', async () => {
  const { restoreWindowBytes } = await import('../functions/settings');
  expect(restoreWindowBytes({})).toBe(1024 * MiB);
  expect(restoreWindowBytes({ PAGEWISE_RESTORE_WINDOW_BYTES: ' 524288 ' })).toBe(512 * KiB);
  for (const bad of ['511', '17179869185', '1e9', '0x1000', '-4096', '4096.5']) {
    expect(() => restoreWindowBytes({ PAGEWISE_RESTORE_WINDOW_BYTES: bad })).toThrow(/^app setting PAGEWISE_RESTORE_WINDOW_BYTES must be a whole number of bytes from 512 to 17179869184, got "/);
  }
});
