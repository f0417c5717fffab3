/**
 * The prune app (PAGEWISE_APP_ROLE=prune, issue #13): registers forget, undelete, the prune API and its
 * own schedule, and nothing that backs up or restores; its timer forgets by the policy's retention and
 * prunes through the retention orchestration (the real replay, on Azurite), which waits on durable timers
 * (fired by the test) while a backup of its run still runs.
 */
import * as df from 'durable-functions';
import { initVault } from '../core';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { findFunction } from '../runtime/registry';
import { registeredFunctions } from '../runtime/functionsCore';
import { runScheduledPrune } from '../functions/scheduledPrunes';
import { ManualTimers } from '../runtime/durable/manualTimers';
import { Orchestrators, RetainByPolicyInput } from '../orchestrations/contracts';
import { startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let app: LocalApp;
// Durable timers fire when the test says: the retention's waits for backups take no wall-clock time.
const timers = new ManualTimers();

beforeAll(async () => {
  env = await startEnv();
  await initVault(env.vault, { userKey: env.userKey });
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    durableTimers: timers,
    // No policy: the prune app then only prunes.
    appSettings: { ...env.appSettings(), PAGEWISE_APP_ROLE: 'prune', PAGEWISE_PRUNE_SCHEDULE: '0 0 3 * * 0' },
  });
});

afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

test('a prune-role app registers prune, undelete, forget and its schedule; nothing that backs up or restores', () => {
  const names = [...registeredFunctions().keys()].sort();
  expect(names).toEqual(
    ['backupsSettled', 'forgetBackup', 'forgetByPolicy', 'getPrune', 'listAudit', 'me', 'pruneVaultActivity', 'pruneVaultOrchestrator', 'reportOperation', 'retainByPolicyOrchestrator', 'scheduledPrune', 'startPrune', 'undeleteBackup'].sort(),
  );
  expect(findFunction('scheduledPrune', 'timerTrigger').trigger.schedule).toBe('%PAGEWISE_PRUNE_SCHEDULE%');
});

test('its timer prunes through the retention orchestration; a firing delivered twice starts it once', async () => {
  const timer = findFunction('scheduledPrune', 'timerTrigger');
  const context = app.host.contextFor(timer);
  const client = df.getClient(context);
  const firedAt = new Date('2026-12-06T03:00:00Z');
  const id = await runScheduledPrune(client, context, firedAt);
  expect(id).toBe('retain-20261206T0300Z');
  expect(await runScheduledPrune(client, context, firedAt)).toBe(id);
  const done = await app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 });
  expect(done.runtimeStatus).toBe('Completed');
  expect(done.output).toMatchObject({
    waitedRounds: 0,
    forget: { forgotten: [], kept: [], alreadyForgotten: [] },
    prune: { dryRun: false, kept: { manifests: 0 }, deleted: { manifests: [] }, mark: expect.stringMatching(/^gc\/marks\//) },
  });
  expect((await app.runtime.listInstances({ prefix: 'retain-' })).map((s) => s.instanceId)).toEqual([id]);
});

test('the retention waits on durable timers while a backup of its run still runs, then forgets and prunes', async () => {
  const client = app.host.durableClient();
  // A stand-in for a long backup: an instance named as a backup that itself waits (on itself) for two rounds.
  const blocker = 'backup-pw-00000000000000000000b10c';
  const waitsOnItself: RetainByPolicyInput = { backupInstances: [blocker], prune: false, pollMinutes: 5, maxWaitMinutes: 10 };
  await client.startNew(Orchestrators.retainByPolicy, { instanceId: blocker, input: waitsOnItself });
  const input: RetainByPolicyInput = { backupInstances: [blocker], prune: true, pollMinutes: 5, maxWaitMinutes: 600 };
  await client.startNew(Orchestrators.retainByPolicy, { instanceId: 'retain-waiting', input });
  let fired = 0;
  for (;;) {
    const status = await app.runtime.getStatus('retain-waiting');
    if (status && ['Completed', 'Failed', 'Terminated'].includes(status.runtimeStatus)) break;
    if (timers.waiting > 0) {
      timers.fireNext();
      fired++;
    } else await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const blocked = await app.runtime.waitForCompletion(blocker, { timeoutInMs: 60_000 });
  // The stand-in gave up after its 2 rounds (it was running itself) and did not prune (prune: false).
  expect(blocked.output).toMatchObject({ waitedRounds: 2, stillRunning: 1 });
  expect(blocked.output).not.toHaveProperty('prune');
  const done = await app.runtime.waitForCompletion('retain-waiting', { timeoutInMs: 60_000 });
  expect(done.runtimeStatus).toBe('Completed');
  // It waited until the stand-in had finished (at least the stand-in's 2 rounds), then went on.
  const output = done.output as { waitedRounds: number; stillRunning: number; prune?: { dryRun: boolean } };
  expect(output.stillRunning).toBe(0);
  expect(output.waitedRounds).toBeGreaterThanOrEqual(2);
  expect(output.prune).toMatchObject({ dryRun: false });
  expect(fired).toBeGreaterThanOrEqual(4);
});
