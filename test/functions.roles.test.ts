/**
 * App roles (issue #13): the function app loaded as PAGEWISE_APP_ROLE=backup — what the backup app of a
 * split deployment runs under an identity without the delete right — registers no prune, undelete or
 * prune-schedule function; forget (a tombstone, no delete) and the backup API stay. Routed as the host
 * routes, so a missing function is the host's 404.
 */
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { registeredFunctions } from '../runtime/functionsCore';
import { MiB, KiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let app: LocalApp;

beforeAll(async () => {
  env = await startEnv();
  app = await startLocalApp({ taskHub: { connectionString: env.az.accounts.vault.connectionString }, appSettings: { ...env.appSettings(), PAGEWISE_APP_ROLE: 'backup' } });
});

afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; title?: string }> {
  const response = await app.host.dispatchHttp({ method, url: `http://127.0.0.1:7071${path}`, headers: { 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const json = (await response.json()) as { title?: string };
  return { status: response.status, title: json.title };
}

test('a backup-role app has no prune or undelete route (404 NotFound: no function serves them)', async () => {
  expect(await call('POST', '/api/prunes', { dryRun: true })).toEqual({ status: 404, title: 'NotFound' });
  expect(await call('GET', '/api/prunes/prune-0000000000000000')).toEqual({ status: 404, title: 'NotFound' });
  expect(await call('POST', '/api/backups/pw-000000000000000000000000/undelete')).toEqual({ status: 404, title: 'NotFound' });
  const names = [...registeredFunctions().keys()];
  for (const absent of ['startPrune', 'getPrune', 'undeleteBackup', 'scheduledPrune', 'pruneVaultActivity', 'pruneVaultOrchestrator']) expect(names).not.toContain(absent);
  for (const present of ['startBackup', 'forgetBackup', 'scheduledBackups', 'forgetByPolicy', 'retainByPolicyOrchestrator']) expect(names).toContain(present);
});

test('it still backs up and forgets: forget writes a tombstone, which needs no delete right', async () => {
  const disk = await env.makeDisk('role.vhd', 2 * MiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 51 }]);
  const started = await call('POST', '/api/backups', { source: { url: disk.source.url } });
  expect(started.status).toBe(202);
  const listed = (await (await app.host.dispatchHttp({ method: 'GET', url: 'http://127.0.0.1:7071/api/backups' })).json()) as { backups: Array<{ id: string }> };
  const id = listed.backups[0].id;
  expect((await app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  const forgotten = await app.host.dispatchHttp({ method: 'DELETE', url: `http://127.0.0.1:7071/api/backups/${id}` });
  expect(forgotten.status).toBe(202);
  expect(((await forgotten.clone().json()) as { links: object }).links).toEqual({ self: `/api/backups/${id}` });
  // No undelete link: this app cannot undelete.
  expect(await forgotten.json()).toMatchObject({ backupId: id, alreadyForgotten: false, links: { self: `/api/backups/${id}` } });
  expect(await call('DELETE', '/api/backups/pw-000000000000000000000000')).toEqual({ status: 404, title: 'BackupNotFound' });
});
