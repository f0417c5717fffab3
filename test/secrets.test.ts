/**
 * Secrets never leak. A full backup → list → verify → restore runs through the CLI (in-process `run`,
 * captured IO) and through the HTTP API on the local durable runtime, with real SAS URLs, connection
 * strings and a key file, including failures (problem bodies, failed orchestrations, PAGEWISE_DEBUG
 * stacks). Everything that comes out is kept — stdout/stderr, problem and status bodies (with the
 * orchestration customStatus/output/error they carry), the management link's answer, every
 * InvocationContext log line, console.* and process stdout/stderr writes — and every blob in the vault
 * is downloaded. None may contain a SAS signature used, an account key, a connection string, the user
 * key or any backup's unwrapped data key. The needles include version 1's per-backup data keys, read from
 * its clear plans: the vault is a version-1 vault (makeVaultV1). The same for a version-2 vault (its master
 * key and the keys derived from it): security.vault-v2.test.ts.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { format } from 'node:util';
import { HttpRequest, HttpResponse } from '@azure/functions';
import { captureIO, run } from '../cli/main';
import { configureStorageEndpoints, displayUrl, loadUserKey, redact } from '../core';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { unwrapDataKey } from '../core/repo/keys';
import type { BackupPlan } from '../core/repo/backup-plan';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { LocalServer, startLocalServer } from '../runtime/serve';
import { KiB, makeVaultV1, MiB, startEnv, TestEnv } from './harness/env';
import { jsonRequest } from './harness/http-request';

/** A signature-shaped value for URLs on accounts that are refused (built, so no scanner mistakes it for a real one). */
const FAKE_SIG = 'c2VjcmV0'.concat('LXNpZw%3D%3D');

let env: TestEnv;
let app: LocalApp;
let server: LocalServer | undefined;
let keyFile: string;
const outputs: string[] = [];
const sasUrls: string[] = [];
let restoreSpies: Array<() => void> = [];

/** Every SAS URL the run hands out goes through here, so its signature is a needle. */
function sas(url: string): string {
  sasUrls.push(url);
  return url;
}

beforeAll(async () => {
  env = await startEnv();
  await makeVaultV1(env.vault);
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    const spy = jest.spyOn(console, method).mockImplementation((...args: unknown[]) => void outputs.push(format(...args)));
    restoreSpies.push(() => spy.mockRestore());
  }
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write.bind(stream);
    const spy = jest.spyOn(stream, 'write').mockImplementation(((chunk: unknown, ...rest: unknown[]) => {
      outputs.push(String(chunk));
      return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write);
    restoreSpies.push(() => spy.mockRestore());
  }
});
afterAll(async () => {
  for (const restore of restoreSpies) restore();
  restoreSpies = [];
  if (!server) await app?.stop();
  await env?.stop();
});

async function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, ...extraEnv });
  const code = await run(args, io);
  outputs.push(io.stdoutText(), io.stderrText());
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

const request = jsonRequest;

async function http(fn: string, req: HttpRequest): Promise<{ status: number; body: Record<string, unknown> }> {
  const response: HttpResponse = await app.host.invokeHttp(fn, req);
  const text = await response.text();
  outputs.push(text, JSON.stringify(Object.fromEntries(response.headers.entries())));
  return { status: response.status, body: JSON.parse(text) as Record<string, unknown> };
}

test('a full run through the CLI and the HTTP API leaks no secret into any output or any vault blob', async () => {
  const { az } = env;
  const vaultCs = az.accounts.vault.connectionString;
  const srcCs = az.accounts.src.connectionString;
  const vaultNoSas = `${az.accounts.vault.endpoint}/vault`;
  await env.makeDisk('secret.vhd', 8 * MiB, [
    { offset: 0, length: 256 * KiB, kind: 'text', seed: 1 },
    { offset: 4 * MiB, length: 512 * KiB, kind: 'random', seed: 2 },
  ]);
  await env.makeDisk('api.vhd', 4 * MiB, [{ offset: MiB, length: 256 * KiB, kind: 'random', seed: 3 }]);
  const source = sas(env.sourceUrl('secret.vhd'));
  const vault = sas(az.sasUrl('vault', 'vault'));
  const settings = ['--page-size', '64KiB', '--cache', '256KiB'];

  // ---- CLI: keygen, backup (inline and orchestrated), list, verify, restore, and failures ----------
  keyFile = path.join(env.tmp, 'user.key');
  expect((await cli(['keygen', keyFile])).code).toBe(0);
  const backup = await cli(['backup', source, '--vault', vaultNoSas, '--key-file', keyFile, ...settings, '--json'], { PAGEWISE_VAULT_CONNECTION_STRING: vaultCs });
  expect(backup.stderr).toBe('');
  const backupId = JSON.parse(backup.stdout).backupId as string;
  expect((await cli(['backup', source, '--vault', vaultNoSas, '--key-file', keyFile, ...settings, '--backup-id', 'secrets-local', '--engine', 'local'], { PAGEWISE_VAULT_CONNECTION_STRING: vaultCs })).code).toBe(0);
  expect((await cli(['backup', source, '--vault', vault, '--key-file', keyFile, ...settings, '--backup-id', 'secrets-damaged', '--json'])).code).toBe(0);
  expect((await cli(['list', '--vault', vault, '--json'])).code).toBe(0);
  expect((await cli(['list', '--vault', vaultNoSas], { PAGEWISE_VAULT_CONNECTION_STRING: vaultCs })).code).toBe(0);
  expect((await cli(['verify', backupId, '--vault', vault, '--key-file', keyFile, '--read-data', '--source', source, '--json'])).code).toBe(0);
  expect((await cli(['verify', 'secrets-local', '--vault', vaultNoSas, '--key-file', keyFile, '--source', `${az.accounts.src.endpoint}/disks/secret.vhd`], { PAGEWISE_VAULT_CONNECTION_STRING: vaultCs, PAGEWISE_SOURCE_CONNECTION_STRING: srcCs })).code).toBe(0);
  const target = sas(env.targetUrl('cli-restored.vhd'));
  expect((await cli(['restore', backupId, '--vault', vault, '--key-file', keyFile, '--to', target, '--json'])).code).toBe(0);
  expect((await cli(['restore', backupId, '--vault', vaultNoSas, '--key-file', keyFile, '--to', `${az.accounts.vault.endpoint}/restores/cli-cs.vhd`], { PAGEWISE_VAULT_CONNECTION_STRING: vaultCs, PAGEWISE_TARGET_CONNECTION_STRING: vaultCs })).code).toBe(0);
  expect((await cli(['restore', backupId, '--vault', vault, '--key-file', keyFile, '--to', path.join(env.tmp, 'cli.img')])).code).toBe(0);
  // Failures, some with PAGEWISE_DEBUG=1 (the cause's stack is printed, redacted).
  const debug = { PAGEWISE_DEBUG: '1' };
  const failures = [
    await cli(['restore', backupId, '--vault', vault, '--key-file', keyFile, '--to', target], debug),
    await cli(['backup', sas(az.sasUrl('src', 'disks', 'secret.vhd', { permissions: 'r', startsOn: new Date(Date.now() - 7200_000), expiresOn: new Date(Date.now() - 3600_000) })), '--vault', vault, '--key-file', keyFile], debug),
    await cli(['backup', sas(az.sasUrl('src', 'disks', undefined, { permissions: 'l' }).replace('/disks?', '/disks/secret.vhd?')), '--vault', vault, '--key-file', keyFile], debug),
    await cli(['backup', sas(env.sourceUrl('missing.vhd')), '--vault', vault, '--key-file', keyFile], debug),
    await cli(['backup', source, '--vault', sas(az.sasUrl('vault', 'vault', undefined, { permissions: 'rl' })), '--key-file', keyFile, ...settings, '--backup-id', 'denied-write'], debug),
    await cli(['list', '--vault', vaultNoSas], { PAGEWISE_VAULT_CONNECTION_STRING: srcCs, ...debug }),
    await cli(['list', '--vault', `${az.accounts.vault.endpoint}/vault`], { PAGEWISE_VAULT_CONNECTION_STRING: 'AccountName=vault;AccountKey=notbase64!!;Garbage', ...debug }),
  ];
  for (const f of failures) expect(f.code).not.toBe(0);

  // Damage a copy so verification and restore through the API fail (their errors are returned too).
  const segment = az.accounts.vault.service.getContainerClient('vault').getBlockBlobClient('backups/secrets-damaged/segments/00000000.seg');
  const bytes = await segment.downloadToBuffer();
  for (let i = 64; i < bytes.length; i += 8192) bytes[i] ^= 0x5a;
  await segment.uploadData(bytes);

  // ---- HTTP API on the local runtime: vault by connection string, user key as key-file JSON ---------
  const logs: string[] = [];
  const apiSettings = {
    PAGEWISE_VAULT_URL: vaultNoSas,
    PAGEWISE_VAULT_CONNECTION_STRING: vaultCs,
    PAGEWISE_USER_KEY: await fs.readFile(keyFile, 'utf8'),
    PAGEWISE_ALLOWED_ACCOUNTS: env.az.storageEndpoints,
    PAGEWISE_WATCHED_CONTAINERS: 'disks',
    PAGEWISE_PAGE_SIZE: String(64 * KiB),
    PAGEWISE_CACHE_BYTES: String(256 * KiB),
  };
  app = await startLocalApp({
    taskHub: { connectionString: vaultCs },
    appSettings: apiSettings,
    log: (level, message, fn) => logs.push(`${level} ${fn} ${message}`),
  });
  // Activity and orchestrator logs go to the runtime's log, which startLocalApp does not expose (info
  // lines are dropped by default): route them here too, so every InvocationContext line is scanned.
  (app.runtime as unknown as { log: (level: string, message: string) => void }).log = (level, message) => logs.push(`${level} (durable) ${message}`);
  const apiSource = sas(env.sourceUrl('api.vhd'));
  const started = await http('startBackup', request('POST', '/api/backups', { source: { url: apiSource } }));
  expect(started.status).toBe(202);
  const apiId = started.body.id as string;
  await app.runtime.waitForCompletion(`backup-${apiId}`, { timeoutInMs: 60_000 });
  expect((await http('getBackup', request('GET', `/api/backups/${apiId}`, undefined, { id: apiId }))).body.runtimeStatus).toBe('Completed');
  expect((await http('getBackup', request('GET', `/api/backups/${backupId}`, undefined, { id: backupId }))).status).toBe(200); // catalog entry
  await http('listBackups', request('GET', '/api/backups'));
  await http('listBackups', request('GET', `/api/backups?disk=${encodeURIComponent(apiSource)}`));
  expect((await http('startBackup', request('POST', '/api/backups', { source: { url: apiSource } }))).status).toBe(200); // duplicate

  // The management link handed out answers without the input (which holds the SAS).
  const management = (started.body.management as { statusQueryGetUri: string }).statusQueryGetUri;
  const hostOrigin = (app.host as unknown as { origin: string }).origin;
  const webhook = await fetch(`${management.replace('http://127.0.0.1:7071', hostOrigin)}&code=${app.host.systemKey}`);
  expect(webhook.status).toBe(200);
  const webhookText = await webhook.text();
  outputs.push(webhookText);
  expect(JSON.parse(webhookText)).toMatchObject({ runtimeStatus: 'Completed', input: null });

  const ops: Array<[string, string, string]> = [];
  for (const [fn, get, body] of [
    ['startRestore', 'getRestore', { backupId: apiId, target: { url: sas(env.targetUrl('api-restored.vhd')) } }],
    ['startVerification', 'getVerification', { backupId: apiId, source: { url: apiSource } }],
    ['startVerification', 'getVerification', { backupId: 'secrets-damaged', readData: true, source: { url: source } }],
  ] as const) {
    const r = await http(fn, request('POST', `/api/${fn === 'startRestore' ? 'restores' : 'verifications'}`, body));
    expect(r.status).toBe(202);
    ops.push([get, r.body.id as string, fn]);
  }
  const finals: string[] = [];
  for (const [get, id] of ops) {
    await app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 });
    const view = await http(get, request('GET', `/api/x/${id}`, undefined, { id }));
    finals.push(view.body.runtimeStatus as string);
  }
  // (A restore of the damaged copy would fail too, but only after the activity's five retries: the
  // orchestration retries every activity failure, permanent ones included.)
  expect(finals).toEqual(['Completed', 'Completed', 'Failed']);

  // Problem bodies that name URLs carrying a SAS.
  const problems = [
    await http('startBackup', request('POST', '/api/backups', { source: { url: `https://elsewhere.blob.core.windows.net/vhds/d.vhd?sv=2024-01-01&sig=${FAKE_SIG}` } })),
    await http('startBackup', request('POST', '/api/backups', { source: { url: sas(env.sourceUrl('missing.vhd')) } })),
    await http('startBackup', request('POST', '/api/backups', { source: { url: sas(az.sasUrl('src', 'disks', undefined, { permissions: 'l' }).replace('/disks?', '/disks/api.vhd?')) } })),
    await http('startRestore', request('POST', '/api/restores', { backupId: apiId, target: { url: sas(env.targetUrl('api-restored.vhd')) }, overwrite: false })),
    await http('startRestore', request('POST', '/api/restores', { backupId: apiId, target: { url: sas(env.targetUrl('cli-restored.vhd')) } })),
  ];
  // (The same restore again is a new operation now, refused because its target exists: 409, not the first run's 200.)
  expect(problems.map((p) => p.status)).toEqual([403, 404, 403, 409, 409]);
  await app.host.invokeEventGrid('diskEvents', {
    id: 'ssrf', eventType: 'Microsoft.Storage.BlobCreated', topic: '/subscriptions/x/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/elsewhere',
    subject: '/blobServices/default/containers/disks/blobs/d.vhd', data: { blobType: 'PageBlob', url: `https://elsewhere.blob.core.windows.net/disks/d.vhd?sig=${FAKE_SIG}` },
  });
  outputs.push(...logs);

  // ---- Every route of `pagewise serve` over HTTP, answers and refusals (bodies and headers kept) ----
  // >>> serve routes (issue #10 class 3)
  await app.stop(); // one runtime per task hub at a time
  server = await startLocalServer({ taskHub: { connectionString: vaultCs }, appSettings: apiSettings, keysDir: path.join(env.tmp, 'serve-keys'), timers: false, log: (level, message, fn) => logs.push(`${level} ${fn} ${message}`) });
  (server.app.runtime as unknown as { log: (level: string, message: string) => void }).log = (level, message) => logs.push(`${level} (durable) ${message}`);
  const k = server.keys;
  const served: number[] = [];
  const call = async (method: string, target: string, key: string | undefined, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server!.url}${target}`, {
      method,
      headers: { ...(key ? { 'x-functions-key': key } : {}), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    outputs.push(await response.text(), JSON.stringify([...response.headers]));
    served.push(response.status);
  };
  const failedVerify = ops[2][1];
  const egEvent = (id: string) => ({
    id, eventType: 'Microsoft.Storage.BlobCreated', topic: '/subscriptions/x/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/elsewhere',
    subject: '/blobServices/default/containers/disks/blobs/d.vhd', data: { blobType: 'PageBlob', url: `https://elsewhere.blob.core.windows.net/disks/d.vhd?sig=${FAKE_SIG}` },
  });
  const instancesHook = '/runtime/webhooks/durabletask/instances';
  await call('GET', '/api/backups', k.functionKeys.default);
  await call('GET', `/api/backups?disk=${encodeURIComponent(apiSource)}&code=${k.functionKeys.default}`, undefined);
  await call('GET', `/api/backups/${apiId}`, k.functionKeys.default);
  await call('GET', `/api/backups/${backupId}`, k.masterKey);
  await call('POST', '/api/backups', k.functionKeys.default, { source: { url: apiSource } });
  await call('POST', '/api/backups', k.functionKeys.default, { source: { url: `https://elsewhere.blob.core.windows.net/vhds/d.vhd?sv=2024-01-01&sig=${FAKE_SIG}` } });
  await call('POST', '/api/backups', k.functionKeys.default, { source: { url: sas(env.sourceUrl('missing.vhd')) } });
  await call('POST', '/api/restores', k.functionKeys.default, { backupId: apiId, target: { url: sas(env.targetUrl('cli-restored.vhd')) } });
  await call('GET', `/api/restores/${ops[0][1]}`, k.functionKeys.default);
  await call('GET', `/api/verifications/${failedVerify}`, k.functionKeys.default);
  await call('GET', '/api/nothing-here', k.functionKeys.default);
  await call('GET', instancesHook, k.systemKeys.durabletask_extension);
  await call('GET', `${instancesHook}?runtimeStatus=Failed,Completed&code=${k.systemKeys.durabletask_extension}`, undefined);
  await call('GET', `${instancesHook}/backup-${apiId}`, k.systemKeys.durabletask_extension);
  await call('GET', `${instancesHook}/backup-${apiId}?showHistory=true`, k.systemKeys.durabletask_extension);
  await call('GET', `${instancesHook}/${failedVerify}?showHistory=true`, k.masterKey);
  await call('GET', `${instancesHook}/nothing`, k.systemKeys.durabletask_extension);
  await call('DELETE', `${instancesHook}/nothing`, k.systemKeys.durabletask_extension);
  await call('POST', `${instancesHook}/nothing/terminate`, k.systemKeys.durabletask_extension);
  await call('POST', `${instancesHook}/nothing/rewind`, k.systemKeys.durabletask_extension);
  await call('POST', '/runtime/webhooks/durabletask/orchestrators/backupDiskOrchestrator', k.systemKeys.durabletask_extension, '{"source":');
  await call('POST', '/admin/functions/diskEvents', k.masterKey, { input: JSON.stringify(egEvent('admin')) });
  await call('POST', '/admin/functions/diskEvents', k.masterKey, 'not json');
  await call('POST', '/admin/functions/nothing', k.masterKey, {});
  await call('POST', '/runtime/webhooks/eventgrid?functionName=diskEvents', k.systemKeys.eventgrid_extension, [egEvent('webhook')]);
  await call('POST', '/runtime/webhooks/eventgrid?functionName=diskEvents', k.systemKeys.eventgrid_extension, 'not json');
  await call('GET', instancesHook, undefined);
  await call('GET', instancesHook, k.functionKeys.default);
  await call('POST', '/api/backups', k.functionKeys.default, { source: { url: apiSource } }, { Origin: 'http://evil.example' });
  await call('POST', '/api/backups', k.functionKeys.default, JSON.stringify({ source: { url: apiSource } }), { 'Content-Type': 'text/plain' });
  await call('POST', '/api/backups', k.functionKeys.default, 'x'.repeat(70 * KiB));
  await call('PUT', '/api/backups', k.functionKeys.default);
  expect(served).toEqual([200, 200, 200, 200, 200, 403, 404, 409, 200, 200, 404, 200, 200, 200, 200, 200, 404, 404, 404, 501, 400, 202, 400, 404, 200, 400, 401, 401, 403, 415, 413, 405]);
  await server.close();
  // <<< serve routes

  // ---- The needles --------------------------------------------------------------------------------
  const userKey = await loadUserKey(keyFile);
  const vaultContainer = az.accounts.vault.service.getContainerClient('vault');
  const dataKeys: Buffer[] = [];
  for await (const blob of vaultContainer.listBlobsFlat({ prefix: 'backups/' })) {
    const m = /^backups\/([^/]+)\/plan\.json$/.exec(blob.name);
    if (!m) continue;
    const plan = JSON.parse((await vaultContainer.getBlobClient(blob.name).downloadToBuffer()).toString()) as BackupPlan;
    dataKeys.push(unwrapDataKey(userKey, plan.encryption.wrappedDataKey, m[1], plan.encryption.keyId));
  }
  expect(dataKeys.length).toBeGreaterThanOrEqual(4);
  const signatures = sasUrls.map((u) => /[?&]sig=([^&]+)/.exec(u)![1]);
  expect(new Set(signatures).size).toBeGreaterThanOrEqual(8);
  const textNeedles = new Map<string, string>();
  for (const s of signatures) {
    textNeedles.set(s, 'a SAS signature (URL-encoded)');
    textNeedles.set(decodeURIComponent(s), 'a SAS signature');
  }
  for (const [name, key] of [['master key', server.keys.masterKey], ['function key', server.keys.functionKeys.default], ...Object.entries(server.keys.systemKeys), ['app system key', app.host.systemKey]]) {
    textNeedles.set(key, `serve's ${name}`);
  }
  for (const account of Object.values(az.accounts)) {
    textNeedles.set(account.key, `account key of ${account.name}`);
    textNeedles.set(encodeURIComponent(account.key), `account key of ${account.name} (URL-encoded)`);
    textNeedles.set(account.connectionString, `connection string of ${account.name}`);
  }
  for (const [name, key] of [['the user key', userKey], ...dataKeys.map((k, i) => [`data key ${i}`, k] as const)] as Array<[string, Buffer]>) {
    textNeedles.set(key.toString('base64'), `${name} (base64)`);
    textNeedles.set(key.toString('hex'), `${name} (hex)`);
    textNeedles.set(key.toString('base64url'), `${name} (base64url)`);
  }
  const byteNeedles = new Map<Buffer, string>([[userKey, 'the user key (raw)'], ...dataKeys.map((k, i) => [k, `data key ${i} (raw)`] as [Buffer, string])]);
  for (const [needle, name] of textNeedles) byteNeedles.set(Buffer.from(needle, 'utf8'), name);

  // The scanner itself finds what it looks for (a SAS URL, a connection string, a raw data key).
  const control = Buffer.concat([Buffer.from(`x ${vault} ${vaultCs} ${server.keys.masterKey} `), dataKeys[0]]);
  expect(new Set([...byteNeedles].filter(([n]) => control.includes(n)).map(([, name]) => name.replace(/ \(.*\)$/, '')))).toEqual(
    new Set(['a SAS signature', 'account key of vault', 'connection string of vault', 'data key 0', "serve's master key"]),
  );

  // ---- Scan the outputs ---------------------------------------------------------------------------
  expect(outputs.join('').length).toBeGreaterThan(5000);
  expect(logs.filter((l) => l.includes('(durable)')).length).toBeGreaterThanOrEqual(2);
  expect(logs.length).toBeGreaterThanOrEqual(5);
  const text = outputs.join('\n');
  const leaks = [...textNeedles].filter(([needle]) => text.includes(needle)).map(([, name]) => name);
  expect(leaks).toEqual([]);
  expect(text).not.toMatch(/sig=(?!REDACTED)[A-Za-z0-9%+/=]{8,}/i);
  expect(text).not.toMatch(/AccountKey=(?!REDACTED)/);

  // ---- Scan every blob in the vault (plan, batch records, segments, page tables, manifests, marker) --
  let scanned = 0;
  const blobLeaks: string[] = [];
  for await (const blob of vaultContainer.listBlobsFlat()) {
    const content = await vaultContainer.getBlobClient(blob.name).downloadToBuffer();
    scanned++;
    for (const [needle, name] of byteNeedles) if (content.includes(needle)) blobLeaks.push(`${blob.name}: ${name}`);
  }
  expect(scanned).toBeGreaterThan(20);
  expect(blobLeaks).toEqual([]);

  // The task hub (orchestration state, same account) holds no key, connection string or data key.
  // (It does hold the SAS URLs of orchestration inputs, as Durable Functions' own task hub does.)
  const hub = az.accounts.vault.service.getContainerClient('pagewise-taskhub');
  const hubLeaks: string[] = [];
  for await (const blob of hub.listBlobsFlat()) {
    const content = await hub.getBlobClient(blob.name).downloadToBuffer();
    for (const [needle, name] of byteNeedles) if (!/SAS signature/.test(name) && content.includes(needle)) hubLeaks.push(`${blob.name}: ${name}`);
  }
  expect(hubLeaks).toEqual([]);
});

// ---- red team: redaction (issue #10 round 2) ---------------------------------------------------
/** Built from parts, so no scanner takes them for real credentials. */
const NEEDLE = 'c2lnTkVFRExF'.concat('c2VjcmV0');
const JWT = ['eyJhbGciOiJSUzI1NiJ9', 'eyJhdWQiOiJzdG9yYWdlIn0', NEEDLE].join('.');

test('round 2: redact removes a secret in every spelling a message can carry it', () => {
  const spellings = [
    `https://a.blob.core.windows.net/c/d?sv=1&sig=${NEEDLE}&se=2`, `?Sig=${NEEDLE}`, `?SIG=${NEEDLE}`, `?%73ig=${NEEDLE}`, `?%73%69%67=${NEEDLE}`,
    `sig=${NEEDLE}&sv=1`, `https://a/c/d#sig=${NEEDLE}`, `&amp;sig=${NEEDLE}`,
    // A SAS URL inside another URL's query (GET /api/backups?disk=…), and inside JSON.
    `/api/backups?disk=${encodeURIComponent(`https://a/c/d?sv=1&sig=${NEEDLE}`)}`, JSON.stringify({ url: `https://a/c/d?sv=1&sig=${NEEDLE}` }),
    `DefaultEndpointsProtocol=https;AccountName=a;accountkey=${NEEDLE};EndpointSuffix=core.windows.net`, `AccountKey%3D${NEEDLE}`,
    `BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig=${NEEDLE}`,
    `Authorization: Bearer ${NEEDLE}`, `"authorization": "Bearer ${NEEDLE}"`, `{ authorization: 'SharedKey acct:${NEEDLE}' }`,
    `x-ms-copy-source: https://a/c/d?sv=1&sig=${NEEDLE}`, `x-ms-copy-source-authorization: Bearer ${NEEDLE}`,
    `token ${JWT}`, `{"sig":"${NEEDLE}"}`, `{ sig: '${NEEDLE}' }`,
  ];
  expect(spellings.map(redact).filter((text) => text.includes(NEEDLE))).toEqual([]);
  // A URL that does not parse is shown without its query, fragment or user:password.
  expect(displayUrl(`https://user:${NEEDLE}@host:99999/c/d#sig=${NEEDLE}`)).toBe('https://host:99999/c/d');
  // What is not a secret stays readable.
  expect(redact('signal=1&design=2; partitionKey: "p1"; https://a/c/d?snapshot=2024-05-02T01:00:00Z')).toBe('signal=1&design=2; partitionKey: "p1"; https://a/c/d?snapshot=2024-05-02T01:00:00Z');
});

test('round 2: an error that quotes the request (URL %-encoded, headers dumped, a token) reaches stderr without a secret', async () => {
  // A verbose storage endpoint on 127.0.0.1: its error message quotes the request the way SDK dumps do.
  const server = createServer((req, res) => {
    const url = `http://127.0.0.1${req.url ?? ''}`;
    const message = `request ${encodeURIComponent(url)} failed; headers {"authorization": "Bearer ${JWT}", "x-ms-copy-source": "${url}"} ${url.replace('sig=', '%73ig=')}`;
    res.writeHead(400, { 'content-type': 'application/xml', 'x-ms-error-code': 'InvalidQueryParameterValue' });
    res.end(`<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidQueryParameterValue</Code><Message>${message.replace(/&/g, '&amp;')}</Message></Error>`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/vault`;
  try {
    const out = await cli(['list', '--vault', `${endpoint}/vault?sv=2024-01-01&sr=c&sp=rl&sig=${NEEDLE}`], {
      PAGEWISE_DEBUG: '1', PAGEWISE_STORAGE_ENDPOINTS: `${env.az.storageEndpoints},${endpoint}`,
    });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^pagewise: backups\/ in the vault http:\/\/127\.0\.0\.1:\d+\/vault\/vault could not be reached \(InvalidQueryParameterValue\)/);
    expect(out.stderr).toContain('headers {"authorization": "REDACTED"'); // the dump was printed (PAGEWISE_DEBUG), redacted
    expect(out.stderr).not.toContain(NEEDLE);
    expect(out.stderr).not.toContain(JWT.split('.')[1]);
  } finally {
    configureStorageEndpoints(env.az.storageEndpoints.split(','), 'PAGEWISE_STORAGE_ENDPOINTS');
    await new Promise((resolve) => server.close(resolve));
  }
});
