/**
 * No secret in the task hub. Backups, a restore to a page blob and verifications (one compared with
 * its source, one that fails) are started over real HTTP (`pagewise serve`) with SAS URLs, and a
 * backup through the CLI's local engine; the app has its vault by connection string and a user key.
 * When all have ended, every blob of the task hub (content and metadata) is read: none may hold a SAS
 * signature used (raw or %-encoded), an account key, a connection string or the user key (base64 or
 * hex) — the sealed form stands where the SAS was. The results still restore and verify.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { captureIO, run } from '../cli/main';
import { encodeKeyFile } from '../core';
import { DEFAULT_TASK_HUB_CONTAINER } from '../runtime/localApp';
import { LocalServer, startLocalServer } from '../runtime/serve';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let server: LocalServer;
let serverClosed = false;
const sasUrls: string[] = [];

/** Every SAS URL handed to the app goes through here, so its signature is a needle. */
const sas = (url: string): string => (sasUrls.push(url), url);

beforeAll(async () => {
  env = await startEnv();
  server = await startLocalServer({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: env.appSettings({
      PAGEWISE_VAULT_URL: `${env.az.accounts.vault.endpoint}/vault`,
      PAGEWISE_VAULT_CONNECTION_STRING: env.az.accounts.vault.connectionString,
    }),
    keysDir: path.join(env.tmp, 'serve-keys'),
    timers: false,
    log: () => undefined,
  });
});
afterAll(async () => {
  if (!serverClosed) await server?.close();
  await env?.stop();
});

async function post(route: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${server.port}/api/${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-functions-key': server.keys.functionKeys.default },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function ended(instanceId: string): Promise<{ runtimeStatus: string; output: unknown }> {
  return server.app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
}

/** Each secret in every spelling it could be stored in. */
function needles(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const url of sasUrls) {
    const sig = new URL(url).searchParams.get('sig')!;
    out.push(['sig', sig], ['sig %-encoded', encodeURIComponent(sig)], ['sig as in the URL', /[?&]sig=([^&]+)/.exec(url)![1]]);
  }
  for (const account of Object.values(env.az.accounts)) out.push([`${account.name} key`, account.key], [`${account.name} connection string`, account.connectionString]);
  out.push(['user key (base64)', env.userKey.toString('base64')], ['user key (hex)', env.userKey.toString('hex')]);
  return out;
}

test('orchestrations started with SAS URLs leave no secret in any task-hub blob, and still restore and verify', async () => {
  const disk = await env.makeDisk('hub.vhd', 4 * MiB, [
    { offset: 0, length: 192 * KiB, kind: 'random', seed: 31 },
    { offset: 2 * MiB, length: 128 * KiB, kind: 'text', seed: 32 },
  ]);
  await env.makeDisk('hub-other.vhd', 4 * MiB, [{ offset: MiB, length: 64 * KiB, kind: 'random', seed: 33 }]);
  const source = sas(disk.source.url);

  // Backups over HTTP.
  const backup = await post('backups', { source: { url: source } });
  expect(backup.status).toBe(202);
  const backupId = backup.body.id as string;
  expect((await ended(`backup-${backupId}`)).runtimeStatus).toBe('Completed');
  const otherBackup = await post('backups', { source: { url: sas(env.sourceUrl('hub-other.vhd')) } });
  expect(otherBackup.status).toBe(202);
  expect((await ended(`backup-${otherBackup.body.id as string}`)).runtimeStatus).toBe('Completed');

  // A restore to a page blob with a SAS URL, and verifications with a source SAS (one of another disk: fails).
  const target = sas(env.targetUrl('hub-restored.vhd'));
  const restore = await post('restores', { backupId, target: { url: target } });
  const verify = await post('verifications', { backupId, readData: true, source: { url: sas(env.sourceUrl('hub.vhd')) } });
  const mismatch = await post('verifications', { backupId, readData: true, source: { url: sas(env.sourceUrl('hub-other.vhd')) } });
  expect([restore.status, verify.status, mismatch.status]).toEqual([202, 202, 202]);
  const restored = await ended(restore.body.id as string);
  const verified = await ended(verify.body.id as string);
  const failed = await ended(mismatch.body.id as string);
  expect(restored.runtimeStatus).toBe('Completed');
  expect(verified).toMatchObject({ runtimeStatus: 'Completed', output: { ok: true, readData: true, comparedWithSource: true } });
  expect(failed.runtimeStatus).toBe('Failed');
  expect(String(failed.output)).toMatch(/failed verification/);
  // The restore is the disk, byte for byte.
  expect(await env.blobSha256(target)).toBe(await env.blobSha256(source));

  // A backup through the CLI's local engine (the same starter as HTTP), into the same task hub, once
  // serve has given it up (one runtime per task hub).
  await server.close();
  serverClosed = true;
  const keyFile = path.join(env.tmp, 'hub.key');
  await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, PAGEWISE_VAULT_CONNECTION_STRING: env.az.accounts.vault.connectionString });
  const code = await run(['backup', sas(env.sourceUrl('hub-other.vhd')), '--vault', `${env.az.accounts.vault.endpoint}/vault`, '--key-file', keyFile, '--page-size', '64KiB', '--cache', '256KiB', '--backup-id', 'hub-local', '--engine', 'local', '--json'], io);
  expect(io.stderrText()).toBe('');
  expect(code).toBe(0);

  // Every blob of the task hub, content and metadata.
  const hub = env.az.accounts.vault.service.getContainerClient(DEFAULT_TASK_HUB_CONTAINER);
  const blobs: Array<[string, string]> = [];
  for await (const item of hub.listBlobsFlat({ includeMetadata: true })) {
    const content = (await hub.getBlobClient(item.name).downloadToBuffer()).toString('utf8');
    blobs.push([item.name, `${content}\n${JSON.stringify(item.metadata ?? {})}`]);
  }
  const names = blobs.map(([name]) => name);
  expect(names).toEqual(expect.arrayContaining([`instances/backup-${backupId}.json`, `instances/${restore.body.id as string}.json`, `instances/${mismatch.body.id as string}.json`, 'instances/backup-hub-local.json']));
  const found = needles().flatMap(([what, needle]) => blobs.filter(([, text]) => text.includes(needle)).map(([name]) => `${what} in ${name}`));
  expect(found).toEqual([]);
  // The SAS is there sealed: the restore's target, the verification's source, each backup's source.
  const sealed = (name: string) => blobs.find(([n]) => n === name)![1].match(/"sealedSas":"v1\.[A-Za-z0-9_-]+"/g) ?? [];
  for (const name of [`instances/backup-${backupId}.json`, `instances/${restore.body.id as string}.json`, `instances/${verify.body.id as string}.json`, 'instances/backup-hub-local.json']) {
    expect(sealed(name).length).toBeGreaterThan(0);
  }
});
