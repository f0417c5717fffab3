/**
 * The orchestrations with the real engine on Azurite: a backup runs plan → batch ranges → finalize
 * through the local durable runtime (the same activities Azure runs); a repeat start makes no second
 * backup; restore and verify run as orchestrations; a permanent failure leaves the orchestration
 * Failed at once and no manifest (transient failures are retried: see runtime.test.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { listBackups, planBackup, restoreBackup } from '../core';
import { Orchestrators } from '../orchestrations/contracts';
import { backupInstanceId } from '../orchestrations/instanceIds';
import { runBackupThroughOrchestration } from '../runtime/backupThroughOrchestration';
import { startLocalApp } from '../runtime/localApp';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let disk: Awaited<ReturnType<TestEnv['makeDisk']>>;
let taskHub: { connectionString: string };
const settings = { pageSize: 4 * KiB, cacheBytes: 64 * KiB, concurrency: 4 }; // 64 MiB batches

beforeAll(async () => {
  env = await startEnv();
  taskHub = { connectionString: env.az.accounts.vault.connectionString };
  // 192 MiB with data in each 64 MiB window: three batches, holes between them.
  disk = await env.makeDisk('orch.vhd', 192 * MiB, [
    { offset: 0, length: 512 * KiB, kind: 'text', seed: 1 },
    { offset: 64 * MiB + 4 * KiB, length: 256 * KiB, kind: 'random', seed: 2 },
    { offset: 130 * MiB, length: 128 * KiB, kind: 'zero' },
    { offset: 131 * MiB, length: 256 * KiB, kind: 'text', seed: 1 },
  ]);
});
afterAll(async () => env?.stop());

test('a backup runs as plan → batch sub-orchestrations → finalize, and a repeat start makes no second backup', async () => {
  const statuses: unknown[] = [];
  const first = await runBackupThroughOrchestration({
    source: disk.source,
    vault: env.vault,
    userKey: env.userKey,
    taskHub,
    settings,
    onStatus: (s) => statuses.push(s.customStatus),
  });
  expect([first.runtimeStatus, first.error]).toEqual(['Completed', undefined]);
  expect(first.started).toBe(true);
  const output = first.output!;
  expect(output.batches.batches).toBe(3);
  expect(output.rangeOrchestrations).toBe(1);
  expect(output.result.bytesRead).toBe(disk.allocatedBytes);
  expect(output.result.diskBytes).toBe(192 * MiB);
  expect(output.result.cacheHighWaterBytes).toBeLessThanOrEqual(settings.cacheBytes);
  expect(first.activityInvocations).toBe(6); // plan + 3 batches + finalize + #18's telemetry report
  expect(statuses[statuses.length - 1]).toMatchObject({ phase: 'done', batchesTotal: 3, batchesDone: 3 });
  expect((await listBackups(env.vault, { userKey: env.userKey })).map((b) => b.backupId)).toContain(first.backupId);
  console.info(`history events per orchestration (192 MiB demo disk, 3 batches): ${JSON.stringify(first.historyEvents)}`);
  for (const events of Object.values(first.historyEvents)) expect(events).toBeLessThan(40);

  const again = await runBackupThroughOrchestration({ source: disk.source, vault: env.vault, userKey: env.userKey, taskHub, settings });
  expect(again.backupId).toBe(first.backupId);
  expect(again.started).toBe(false);
  expect(again.activityInvocations).toBe(0);
});

test('restore and verify run as orchestrations and reproduce the disk', async () => {
  const { backupId } = await runBackupThroughOrchestration({ source: disk.source, vault: env.vault, userKey: env.userKey, taskHub, settings });
  const app = await startLocalApp({
    taskHub,
    appSettings: {
      PAGEWISE_VAULT_URL: env.vault.url,
      PAGEWISE_USER_KEY: env.userKey.toString('base64'),
      PAGEWISE_ALLOWED_ACCOUNTS: env.az.storageEndpoints,
    },
  });
  try {
    const target = env.targetUrl('orch-restored.vhd');
    await app.runtime.startNew(Orchestrators.restoreDisk, { instanceId: 'restore-test', input: { backupId, target: { url: target } } });
    await app.runtime.startNew(Orchestrators.verifyBackup, { instanceId: 'verify-test', input: { backupId, readData: true, source: disk.source } });
    const restored = await app.runtime.waitForCompletion('restore-test', { timeoutInMs: 60_000 });
    const verified = await app.runtime.waitForCompletion('verify-test', { timeoutInMs: 60_000 });
    expect(restored.runtimeStatus).toBe('Completed');
    expect(await env.blobSha256(target)).toBe(disk.sha256);
    expect(verified.runtimeStatus).toBe('Completed');
    expect(verified.output).toMatchObject({ ok: true, problems: [] });
  } finally {
    await app.stop();
  }
});

test('a permanent failure ends the orchestration Failed at once, without retries, and no manifest is written', async () => {
  const changing = await env.makeDisk('changing.vhd', 64 * MiB, [{ offset: 0, length: 256 * KiB, kind: 'random', seed: 9 }]);
  // Plan a backup ID for the disk's current state, then change the disk: every later plan attempt
  // for that ID is refused (another disk state): a permanent failure, reported, not retried.
  const plan = await planBackup({ source: changing.source, vault: env.vault, userKey: env.userKey, ...settings });
  const writable = env.sourceClient('changing.vhd');
  await writable.uploadPages(Buffer.alloc(4 * KiB, 7), 8 * MiB, 4 * KiB);

  const statuses: unknown[] = [];
  const failed = await runBackupThroughOrchestration({
    onStatus: (s) => statuses.push(s.customStatus),
    source: changing.source,
    vault: env.vault,
    userKey: env.userKey,
    taskHub,
    settings,
    backupId: plan.backupId,
    retry: { firstRetryIntervalInMs: 10, maxAttempts: 3, backoffCoefficient: 2 },
  });
  expect(failed.instanceId).toBe(backupInstanceId(plan.backupId));
  expect(failed.runtimeStatus).toBe('Failed');
  expect(failed.error).toMatch(/BadInput: .*already used by another backup: the disk changed since \(ETag .* then, .* now\); give another backup ID/);
  expect(failed.error).not.toMatch(/sig=(?!REDACTED)/);
  expect(failed.activityInvocations).toBe(2); // the plan once (retrying bad input would only delay the answer) + #18's report
  expect(statuses[statuses.length - 1]).toMatchObject({ phase: 'failed', backupId: plan.backupId }); // not stuck at "planning"
  expect((await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete').map((b) => b.backupId)).not.toContain(plan.backupId);
});

test('an incremental through the orchestration plans only the changed batch, fans out to it alone and restores on its own', async () => {
  // A vault of its own (no marker: its first backup makes it version 2); the source SAS may take and delete snapshots.
  await env.az.accounts.vault.service.getContainerClient('incr-vault').create();
  const vault = { url: env.az.sasUrl('vault', 'incr-vault') };
  const incr = await env.makeDisk('incr.vhd', 192 * MiB, [
    { offset: 0, length: 512 * KiB, kind: 'text', seed: 3 },
    { offset: 64 * MiB, length: 512 * KiB, kind: 'random', seed: 4 },
    { offset: 128 * MiB, length: 512 * KiB, kind: 'random', seed: 5 },
  ]);
  const source = { url: env.az.sasUrl('src', 'disks', 'incr.vhd', { permissions: 'racwd' }) };
  const run = (statuses: unknown[] = []) =>
    runBackupThroughOrchestration({ source, vault, userKey: env.userKey, taskHub, settings: { ...settings, takeSnapshot: true }, onStatus: (s) => statuses.push(s.customStatus) });

  const first = await run();
  expect([first.runtimeStatus, first.error]).toEqual(['Completed', undefined]);
  expect(first.output!.result).toMatchObject({ kind: 'full', base: null, reason: 'no-base', formatVersion: 2, bytesRead: incr.allocatedBytes });
  expect(first.activityInvocations).toBe(6); // plan + 3 batches + finalize + #18's telemetry report

  // Change 8 pages (32 KiB) in the middle window only: two of its pages partly, six whole.
  const blob = env.sourceClient('incr.vhd');
  await blob.uploadPages(randomBytes(32 * KiB), 64 * MiB + 256 * KiB, 32 * KiB);

  const statuses: unknown[] = [];
  const second = await run(statuses);
  expect(second.runtimeStatus).toBe('Completed');
  const result = second.output!.result;
  expect(result).toMatchObject({ kind: 'incremental', base: { backupId: first.backupId }, reason: null, formatVersion: 2, bytesRead: 32 * KiB, bytesChanged: 32 * KiB });
  expect(result.bytesNew).toBeLessThanOrEqual(32 * KiB);
  // The fan-out covers the one changed batch: plan + 1 batch + finalize, one range orchestration.
  expect(second.output!.batches.batches).toBe(1);
  expect(second.output!.batches.bytesRead).toBe(32 * KiB);
  expect(second.activityInvocations).toBe(4); // plan + the changed batch + finalize + #18's report
  expect(statuses[statuses.length - 1]).toMatchObject({ phase: 'done', batchesTotal: 1, batchesDone: 1, kind: 'incremental', base: { backupId: first.backupId } });

  // The incremental restores the disk as it is now, by itself.
  const target = env.targetUrl('incr-restored.vhd');
  await restoreBackup({ backupId: second.backupId, vault, userKey: env.userKey, target: { url: target } });
  const now = createHash('sha256').update(await blob.downloadToBuffer()).digest('hex');
  expect(await env.blobSha256(target)).toBe(now);
});
