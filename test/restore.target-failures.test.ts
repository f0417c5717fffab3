/**
 * A restore target that cannot be written fails with its own code, not the vault's: a missing target
 * container is TargetNotFound, final at once (no retries in the orchestration, exit code 2 in the CLI),
 * and the message names the container; nothing is created.
 */
import * as path from 'node:path';
import { captureIO, run } from '../cli/main';
import { backupDisk, restoreBackup, writeNewKeyFile, loadUserKey } from '../core';
import { Orchestrators } from '../orchestrations/contracts';
import { HistoryEventType } from '../runtime/durable/history';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let app: LocalApp;
let backupId: string;
let keyFile: string;
const MISSING = 'no-such-container';

beforeAll(async () => {
  env = await startEnv();
  keyFile = path.join(env.tmp, 'user.key');
  await writeNewKeyFile(keyFile);
  const userKey = await loadUserKey(keyFile);
  const disk = await env.makeDisk('target.vhd', 1 * MiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 7 }]);
  backupId = (await backupDisk({ source: disk.source, vault: env.vault, userKey, pageSize: 64 * KiB, cacheBytes: 256 * KiB })).backupId;
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: env.appSettings({ PAGEWISE_USER_KEY: userKey.toString('base64') }),
  });
});

afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

function missingTarget(name: string): string {
  return env.az.sasUrl('vault', MISSING, name);
}

async function missingContainerExists(): Promise<boolean> {
  return env.az.accounts.vault.service.getContainerClient(MISSING).exists();
}

test('core: a restore into a missing container fails with TargetNotFound naming the container', async () => {
  const userKey = await loadUserKey(keyFile);
  await expect(restoreBackup({ backupId, vault: env.vault, userKey, target: { url: missingTarget('core.vhd') } })).rejects.toMatchObject({
    code: 'TargetNotFound',
    message: expect.stringMatching(/^the container of the restore target .*\/no-such-container\/core\.vhd does not exist \(ContainerNotFound\)/),
  });
  expect(await missingContainerExists()).toBe(false);
});

test('CLI: a restore into a missing container exits 2 with the specific message', async () => {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
  const code = await run(['restore', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--to', missingTarget('cli.vhd')], io);
  expect(code).toBe(2);
  expect(io.stderrText()).toMatch(/^pagewise: the container of the restore target .*no-such-container\/cli\.vhd does not exist \(ContainerNotFound\); create it first/);
  expect(io.stderrText()).not.toMatch(/sig=/);
  expect(await missingContainerExists()).toBe(false);
});

test('orchestration: a restore into a missing container fails at once, its activity scheduled once and never retried', async () => {
  const instanceId = 'restore-missing-container';
  await app.runtime.startNew(Orchestrators.restoreDisk, { instanceId, input: { backupId, target: { url: missingTarget('orch.vhd') } } });
  const status = await app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
  expect(status.runtimeStatus).toBe('Failed');
  expect(String(status.output)).toMatch(/^TargetNotFound: the container of the restore target .*no-such-container\/orch\.vhd does not exist/);
  const history = ((await app.runtime.getStatus(instanceId, { showHistory: true }))?.history ?? []) as Array<{ EventType: HistoryEventType; Name?: string }>;
  const count = (type: HistoryEventType) => history.filter((e) => e.EventType === type).length;
  // One attempt: a retry would add a retry timer and a second scheduled activity (#18: then the failure's telemetry report).
  expect(history.filter((e) => e.EventType === HistoryEventType.TaskScheduled).map((e) => e.Name)).toEqual(['planRestore', 'reportOperation']);
  expect(count(HistoryEventType.TimerCreated)).toBe(0);
  expect(await missingContainerExists()).toBe(false);
});
