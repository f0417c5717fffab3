/**
 * The portal's server side through `pagewise serve` on 127.0.0.1 (Azurite, the local durable runtime):
 * GET /api/operations (kinds, status filters, top, reasons of failures, bad queries) and the portal
 * function's static files (the fixed list, its headers, traversal refused, the redirects to it).
 */
import { randomBytes } from 'node:crypto';
import { Orchestrators } from '../orchestrations/contracts';
import { PORTAL_CSP, PORTAL_FILES, portalConfig } from '../functions/http/portal';
import type { LocalServer } from '../runtime/serve';
import { Answer, sendRaw } from './harness/raw-http';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { serveTestApp } from './harness/serve-app';

let env: TestEnv;
let server: LocalServer;
let sourceUrl: string;
let backupId: string;
let verifyId: string;
let beforeFirstBackup: { operations: Answer; vmBackups: Answer };
const failedVerifyId = `verify-${randomBytes(16).toString('hex')}`;

const key = () => ({ 'x-functions-key': server.keys.functionKeys.default });
const get = (target: string, headers: Record<string, string> = key()) => sendRaw(server.port, 'GET', target, headers);
const post = (target: string, body: unknown) => sendRaw(server.port, 'POST', target, { ...key(), 'content-type': 'application/json' }, JSON.stringify(body));
const json = (answer: Answer) => JSON.parse(answer.text) as Record<string, unknown>;

interface Listed {
  kind: string;
  id: string;
  instanceId: string;
  runtimeStatus: string;
  reason?: string;
  customStatus: Record<string, unknown> | null;
}
async function listed(query: string): Promise<{ operations: Listed[]; truncated: boolean }> {
  const answer = await get(`/api/operations${query}`);
  expect(answer.status).toBe(200);
  return json(answer) as unknown as { operations: Listed[]; truncated: boolean };
}

beforeAll(async () => {
  env = await startEnv();
  sourceUrl = (await env.makeDisk('portal-api.vhd', 2 * MiB, [{ offset: 0, length: 192 * KiB, kind: 'random', seed: 18 }])).source.url;
  server = await serveTestApp(env);
  // What a new install shows, before its first backup made the vault.
  beforeFirstBackup = { operations: await get('/api/operations'), vmBackups: await get('/api/vm-backups') };
  // A backup, a verification of it, and a verification of a backup the vault does not hold (fails in its activity).
  const backup = await post('/api/backups', { source: { url: sourceUrl } });
  expect(backup.status).toBe(202);
  backupId = json(backup).id as string;
  expect((await server.app.runtime.waitForCompletion(`backup-${backupId}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  const verify = await post('/api/verifications', { backupId, readData: true });
  expect(verify.status).toBe(202);
  verifyId = json(verify).id as string;
  expect((await server.app.runtime.waitForCompletion(verifyId, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  await server.app.runtime.startNew(Orchestrators.verifyBackup, { instanceId: failedVerifyId, input: { backupId: 'pw-000000000000000000000000', readData: true, retry: { maxAttempts: 1, firstRetryIntervalInMs: 1 } } });
  expect((await server.app.runtime.waitForCompletion(failedVerifyId, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Failed');
});
afterAll(async () => {
  await server?.close();
  await env?.stop();
});

test('before the first backup: no operation, no VM backup (a vault without its marker yet is empty, not an error)', () => {
  expect([beforeFirstBackup.operations.status, json(beforeFirstBackup.operations)]).toEqual([200, { operations: [], truncated: false }]);
  expect([beforeFirstBackup.vmBackups.status, json(beforeFirstBackup.vmBackups)]).toEqual([200, { vmBackups: [] }]);
});

test('GET /api/operations lists the top-level operations, newest first, with kind, status and progress', async () => {
  const all = await listed('');
  expect(all.truncated).toBe(false);
  expect(all.operations.map((o) => [o.kind, o.id, o.runtimeStatus])).toEqual([
    ['verifications', failedVerifyId, 'Failed'],
    ['verifications', verifyId, 'Completed'],
    ['backups', backupId, 'Completed'],
  ]);
  const backup = all.operations[2];
  expect(backup).toMatchObject({ instanceId: `backup-${backupId}`, links: { self: `/api/backups/${backupId}` } });
  expect(backup.customStatus).toMatchObject({ backupId, bytesDone: 192 * KiB, bytesTotal: 192 * KiB }); // the allocated bytes read
  // Sub-orchestrations (ranges, windows) are parts of these and never listed; no SAS in what is shown.
  expect(all.operations.every((o) => !o.instanceId.includes(':'))).toBe(true);
  expect(JSON.stringify(all)).not.toMatch(/sig=(?!REDACTED)/);
});

test('?status=failed lists the failed operation with its reason; ?status=running none after all finished', async () => {
  const failed = await listed('?status=failed');
  expect(failed.operations.map((o) => o.id)).toEqual([failedVerifyId]);
  expect(failed.operations[0].reason).toMatch(/pw-000000000000000000000000/);
  expect((await listed('?status=running')).operations).toEqual([]);
});

test('?kind= and ?top= narrow the list; truncated says more matched', async () => {
  expect((await listed('?kind=backups')).operations.map((o) => o.id)).toEqual([backupId]);
  expect((await listed('?kind=verifications&status=all')).operations.map((o) => o.id)).toEqual([failedVerifyId, verifyId]);
  expect((await listed('?kind=restores')).operations).toEqual([]);
  const top = await listed('?top=1');
  expect(top.operations.map((o) => o.id)).toEqual([failedVerifyId]);
  expect(top.truncated).toBe(true);
});

test.each([
  ['?status=done', 'status "done" is not supported (allowed: running, failed, all)'],
  ['?kind=settle', 'kind "settle" is not supported (allowed: backups, vm-backups, restores, verifications, prunes)'],
  ['?top=0', 'top must be a whole number from 1 to 200'],
  ['?top=201', 'top must be a whole number from 1 to 200'],
  ['?top=1e2', 'top must be a whole number from 1 to 200'],
  ['?state=running', 'unknown query parameter "state" (allowed: status, kind, top)'],
])('GET /api/operations%s is a 400 that says why', async (query, detail) => {
  const answer = await get(`/api/operations${query}`);
  expect(answer.status).toBe(400);
  expect(json(answer)).toMatchObject({ title: 'BadQuery', detail });
});

test('the portal files are served to anyone (no key, no session) with the strict headers; nothing else is', async () => {
  const get = (target: string) => sendRaw(server.port, 'GET', target); // anonymous
  for (const [name, type] of Object.entries(PORTAL_FILES)) {
    const answer = await get(`/api/portal/${name}`);
    expect([name, answer.status, answer.headers['content-type']]).toEqual([name, 200, type]);
    expect(answer.headers['content-security-policy']).toBe(PORTAL_CSP);
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
    expect(answer.headers['x-frame-options']).toBe('DENY');
    expect(answer.headers['referrer-policy']).toBe('no-referrer');
  }
  expect(PORTAL_CSP).toContain("frame-ancestors 'none'");
  expect(PORTAL_CSP).toContain("script-src 'self'");
  expect(PORTAL_CSP).not.toContain('unsafe');
  const index = await get('/api/portal/');
  expect(index.status).toBe(200);
  expect(index.text).toContain('<script type="module" src="app.js"></script>');
  // No inline script and no inline style anywhere in the page: the CSP would refuse them.
  expect(index.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  expect(index.text).not.toMatch(/\sstyle=|<style/);
  expect(json(await get('/api/portal/config.json'))).toEqual({ signIn: 'token', entraLogin: '/.auth/login/aad' });
  for (const target of ['/api/portal/tsconfig.json', '/api/portal/..%2Fpackage.json', '/api/portal/%2e%2e/%2e%2e/package.json', '/api/portal/x/app.js', '/api/portal/APP.JS', '/api/portal/app.js%00']) {
    const answer = await get(target);
    expect([target, answer.status]).toEqual([target, 404]);
    expect(answer.text).not.toContain('"name": "pagewise"');
  }
  expect((await get('/api/portal/x/app.js')).headers['content-security-policy']).toBe(PORTAL_CSP); // the portal's own 404
  const bare = await get('/api/portal');
  expect([bare.status, bare.headers.location]).toEqual([308, 'portal/']);
});

test('GET /api/operations needs the reader role: a reader session reads it, no session is a 401', async () => {
  const login = await sendRaw(server.port, 'POST', '/.auth/login', { 'content-type': 'application/json', origin: server.url }, JSON.stringify({ token: server.loginTokens.reader }));
  expect(login.status).toBe(204);
  const cookie = (login.headers['set-cookie']?.[0] ?? '').split(';')[0];
  const asReader = await sendRaw(server.port, 'GET', '/api/operations?kind=backups', { cookie });
  expect([asReader.status, (json(asReader).operations as Listed[]).map((o) => o.id)]).toEqual([200, [backupId]]);
  expect((await sendRaw(server.port, 'GET', '/api/operations')).status).toBe(401);
  // The reader cannot start what the portal hides from them.
  const start = await sendRaw(server.port, 'POST', '/api/verifications', { cookie, origin: server.url, 'content-type': 'application/json' }, JSON.stringify({ backupId }));
  expect([start.status, json(start).title]).toEqual([403, 'Forbidden']);
});

test('serve sends /, /portal and /portal/ to the portal (a fixed Location)', async () => {
  for (const target of ['/', '/portal', '/portal/']) {
    const answer = await sendRaw(server.port, 'GET', target);
    expect([target, answer.status, answer.headers.location]).toEqual([target, 302, '/api/portal/']);
  }
  expect((await sendRaw(server.port, 'GET', '/portalx')).status).toBe(404);
  expect((await sendRaw(server.port, 'POST', '/', { 'content-type': 'application/json' }, '{}')).status).toBe(404);
});

test('config.json tells the page to sign in with Entra ID behind App Service authentication, with a token otherwise', () => {
  expect(portalConfig({ PAGEWISE_AUTH: 'entra' })).toEqual({ signIn: 'entra', entraLogin: '/.auth/login/aad' });
  expect(portalConfig({ PAGEWISE_AUTH: 'keys' })).toEqual({ signIn: 'token', entraLogin: '/.auth/login/aad' });
  expect(portalConfig({})).toEqual({ signIn: 'token', entraLogin: '/.auth/login/aad' });
});

test('a failed backup orchestration is a failure until its backup is complete in the vault (then it is left out)', async () => {
  // The same backup ID run again and failed (a forged source: refused before anything is written) while the vault holds it complete,
  // and a failed backup the vault does not hold.
  const retry = { maxAttempts: 1, firstRetryIntervalInMs: 1 };
  const forged = { url: 'https://elsewhere.example/disks/x.vhd' };
  const otherId = 'pw-0123456789abcdef01234567';
  expect(await server.app.runtime.purge(`backup-${backupId}`)).toBe(true);
  for (const id of [backupId, otherId]) {
    await server.app.runtime.startNew(Orchestrators.backupDisk, { instanceId: `backup-${id}`, input: { backupId: id, source: forged, retry } });
    expect((await server.app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Failed');
  }
  const failed = await listed('?status=failed&kind=backups');
  expect(failed.operations.map((o) => o.id)).toEqual([otherId]);
  expect(failed.operations[0].reason).toMatch(/^AccessDenied: the source disk URL is not on an allowed storage endpoint/);
  const backup = await get(`/api/backups/${backupId}`);
  expect([backup.status, json(backup).status]).toEqual([200, 'complete']);
});
