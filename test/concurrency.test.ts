/**
 * Concurrency: backups of different disks running at the same time (in one process through the
 * engine, and as orchestrations on the local durable runtime) do not disturb each other; two
 * simultaneous HTTP starts of the same disk state make one backup (one instance ID, one manifest).
 */
import * as path from 'node:path';
import * as df from 'durable-functions';
import { HttpRequest, HttpResponse } from '@azure/functions';
import { startOnce } from '../functions/starter';
import { findFunction } from '../runtime/registry';
import { accountHighWater, backupDisk, configureRequestsPerAccount, DEFAULT_REQUESTS_PER_ACCOUNT, deriveBackupId, restoreBackup } from '../core';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';
import { backupOf, manifestBlobs } from './harness/vault-blobs';

let env: TestEnv;
let app: LocalApp;

beforeAll(async () => {
  env = await startEnv();
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      ...env.appSettings(),
    },
  });
});
afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

const layout = (seed: number) => [
  { offset: 0, length: 256 * KiB, kind: 'text' as const, seed },
  { offset: 3 * MiB, length: 512 * KiB, kind: 'random' as const, seed: seed + 1 },
  { offset: 5 * MiB, length: 256 * KiB, kind: 'repeat' as const, seed: seed + 2 },
  { offset: 7 * MiB, length: 256 * KiB, kind: 'repeat' as const, seed: seed + 2 },
];

/** The vault's manifest blobs, in either layout. */
const manifests = () => manifestBlobs(env.az.accounts.vault.service.getContainerClient('vault'));

function post(path: string, body: unknown): HttpRequest {
  return new HttpRequest({
    method: 'POST',
    url: `http://127.0.0.1:7071${path}`,
    headers: { 'content-type': 'application/json' },
    body: { string: JSON.stringify(body) },
  });
}

const json = async (r: HttpResponse) => (await r.json()) as { id: string; instanceId: string; duplicate: boolean };

let engineBackupId: string;

test('two disks backed up in parallel by the engine both complete, restore identical, and share the per-account request limit', async () => {
  const disks = await Promise.all([env.makeDisk('par-a.vhd', 8 * MiB, layout(10)), env.makeDisk('par-b.vhd', 8 * MiB, layout(20))]);
  // Each backup alone would keep up to 4 requests in flight per account; together they must share 3.
  configureRequestsPerAccount({ PAGEWISE_REQUESTS_PER_ACCOUNT: '3' });
  const results = await Promise.all(
    disks.map((d) => backupDisk({ source: d.source, vault: env.vault, userKey: env.userKey, pageSize: 64 * KiB, cacheBytes: 512 * KiB, concurrency: 4 })),
  );
  configureRequestsPerAccount({ PAGEWISE_REQUESTS_PER_ACCOUNT: String(DEFAULT_REQUESTS_PER_ACCOUNT) });
  const host = `127.0.0.1:${env.az.port}`;
  for (const account of ['src', 'vault']) {
    expect(accountHighWater(host, account)).toBeGreaterThanOrEqual(2);
    expect(accountHighWater(host, account)).toBeLessThanOrEqual(3);
  }
  expect(new Set(results.map((r) => r.backupId)).size).toBe(2);
  results.forEach((r, k) => expect(r.bytesRead).toBe(disks[k].allocatedBytes));
  const files = results.map((r) => path.join(env.tmp, `${r.backupId}.img`));
  await Promise.all(results.map((r, k) => restoreBackup({ backupId: r.backupId, vault: env.vault, userKey: env.userKey, target: { url: files[k] } })));
  for (let k = 0; k < 2; k++) expect(await fileSha256(files[k])).toBe(disks[k].sha256);
  engineBackupId = results[0].backupId;
});

test('two disks backed up in parallel as orchestrations both complete and restore identical', async () => {
  const disks = await Promise.all([env.makeDisk('orc-a.vhd', 8 * MiB, layout(30)), env.makeDisk('orc-b.vhd', 8 * MiB, layout(40))]);
  const started = await Promise.all(disks.map((d) => app.host.invokeHttp('startBackup', post('/api/backups', { source: { url: d.source.url } })).then(json)));
  expect(new Set(started.map((s) => s.instanceId)).size).toBe(2);
  const statuses = await Promise.all(started.map((s) => app.runtime.waitForCompletion(s.instanceId, { timeoutInMs: 60_000 })));
  expect(statuses.map((s) => s.runtimeStatus)).toEqual(['Completed', 'Completed']);
  for (let k = 0; k < 2; k++) {
    const target = env.targetUrl(`orc-${k}.vhd`);
    await restoreBackup({ backupId: started[k].id, vault: env.vault, userKey: env.userKey, target: { url: target } });
    expect(await env.blobSha256(target)).toBe(disks[k].sha256);
  }
});

test('two simultaneous POST /api/backups of the same disk state make one backup', async () => {
  // One disk state (the blob is not written meanwhile: same ETag, same derived backup ID). A blob
  // snapshot would be the production form, but Azurite 3.37 refuses SAS reads of snapshots (403).
  const disk = await env.makeDisk('same.vhd', 8 * MiB, layout(50));
  const url = disk.source.url;
  const before = await manifests();

  const responses = await Promise.all([1, 2].map(() => app.host.invokeHttp('startBackup', post('/api/backups', { source: { url } }))));
  const bodies = await Promise.all(responses.map(json));
  expect(responses.map((r) => r.status)).toEqual([202, 202]);
  const backupId = await deriveBackupId({ url }, 64 * KiB);
  expect(bodies.map((b) => b.id)).toEqual([backupId, backupId]);
  expect(bodies.map((b) => b.instanceId)).toEqual([`backup-${backupId}`, `backup-${backupId}`]);
  expect(bodies.map((b) => b.duplicate).sort()).toEqual([false, true]); // exactly one of them started it

  const status = await app.runtime.waitForCompletion(`backup-${backupId}`, { timeoutInMs: 60_000 });
  expect(status.runtimeStatus).toBe('Completed');
  const roots = (await app.runtime.listInstances({ prefix: `backup-${backupId}` })).filter((s) => !s.instanceId.includes(':'));
  expect(roots.map((s) => s.instanceId)).toEqual([`backup-${backupId}`]);
  // Exactly one manifest more, and it is this backup's: the racing starts wrote one backup, once.
  const added = (await manifests()).filter((n) => !before.includes(n));
  expect(added).toHaveLength(1);
  expect(await manifestBlobs(env.az.accounts.vault.service.getContainerClient('vault'), await backupOf(env.vault, env.userKey, backupId))).toEqual(added);

  const target = env.targetUrl('same-restored.vhd');
  await restoreBackup({ backupId, vault: env.vault, userKey: env.userKey, target: { url: target } });
  expect(await env.blobSha256(target)).toBe(disk.sha256);
});

test('three starters racing on each of five instance IDs: one starts each, none fails', async () => {
  // The loser of a start race used to get an error (HTTP 500) when the winner's instance was still
  // being created and not yet readable; startOnce now waits for it to appear.
  const client = df.getClient(app.host.contextFor(findFunction('startBackup', 'httpTrigger')));
  const input = { backupId: engineBackupId, readData: false };
  for (let k = 0; k < 5; k++) {
    const results = await Promise.allSettled([1, 2, 3].map(() => startOnce(client, 'verifyBackupOrchestrator', `race-${k}`, input)));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const started = results.map((r) => (r as PromiseFulfilledResult<{ started: boolean }>).value.started);
    expect(started.filter(Boolean)).toHaveLength(1);
  }
  for (let k = 0; k < 5; k++) expect((await app.runtime.waitForCompletion(`race-${k}`, { timeoutInMs: 30_000 })).runtimeStatus).toBe('Completed');
});
