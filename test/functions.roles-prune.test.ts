/**
 * The prune app (PAGEWISE_APP_ROLE=prune, issue #13): registers forget, undelete, the prune API and its
 * own schedule, and nothing that backs up or restores; its timer forgets by the policy's retention and
 * prunes through the retention orchestration (the real replay, on Azurite).
 */
import * as df from 'durable-functions';
import { initVault } from '../core';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { findFunction } from '../runtime/registry';
import { registeredFunctions } from '../runtime/functionsCore';
import { runScheduledPrune } from '../functions/scheduledPrunes';
import { startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let app: LocalApp;

beforeAll(async () => {
  env = await startEnv();
  await initVault(env.vault, { userKey: env.userKey });
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
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
    ['backupsSettled', 'forgetBackup', 'forgetByPolicy', 'getPrune', 'pruneVaultActivity', 'pruneVaultOrchestrator', 'retainByPolicyOrchestrator', 'scheduledPrune', 'startPrune', 'undeleteBackup'].sort(),
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
