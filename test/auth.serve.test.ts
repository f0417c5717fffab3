/**
 * #18 auth under `pagewise serve`, over real HTTP on 127.0.0.1 with Azurite: sign-in with the role tokens
 * and the one-time link, the session cookie standing in for the key, the injected principal (and the
 * caller's own principal headers stripped), Origin required for a cookie's state change, /.auth/me and
 * logout, and that no token or cookie value comes back in an answer or goes into the log.
 */
import { promises as fs } from 'node:fs';
import { Answer, sendRaw } from './harness/raw-http';
import type { LocalServer } from '../runtime/serve';
import { encodeClientPrincipal } from '../functions/auth/principal';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { serveTestApp } from './harness/serve-app';

let env: TestEnv;
let server: LocalServer;
let sourceUrl: string;
const logLines: string[] = [];

beforeAll(async () => {
  env = await startEnv();
  sourceUrl = (await env.makeDisk('signed-in.vhd', 2 * MiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 31 }])).source.url;
  server = await serveTestApp(env, { loginThrottle: { maxFailures: 5, windowMs: 3_600_000, failureDelayMs: 10 }, log: (_level, line) => void logLines.push(line) });
});
afterAll(async () => {
  await server?.close();
  await env?.stop();
});

const json = { 'content-type': 'application/json' };
const origin = () => ({ origin: server.url });
const send = (method: string, target: string, headers: Record<string, string> = {}, body?: string) => sendRaw(server.port, method, target, headers, body);
const answers: Answer[] = [];
async function call(method: string, target: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  const answer = await send(method, target, headers, body);
  answers.push(answer);
  return answer;
}

/** Signs in with a token; the cookie header to send after. */
async function signIn(token: string): Promise<{ cookie: string }> {
  const answer = await call('POST', '/.auth/login', { ...json, ...origin() }, JSON.stringify({ token }));
  expect(answer.status).toBe(204);
  const setCookie = answer.headers['set-cookie']?.[0] ?? '';
  expect(setCookie).toMatch(/^pagewise_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=28800$/);
  return { cookie: setCookie.split(';')[0] };
}

test('the keys file holds four reusable role tokens; the one-time link is not in it', async () => {
  const file = JSON.parse(await fs.readFile(server.keysFile, 'utf8')) as { loginTokens: Record<string, string> };
  expect(Object.keys(file.loginTokens).sort()).toEqual(['admin', 'operator', 'reader', 'restorer']);
  expect(file.loginTokens).toEqual(server.loginTokens);
  expect(new Set(Object.values(file.loginTokens)).size).toBe(4);
  expect(server.signInUrl).toMatch(new RegExp(`^${server.url}/portal/#login=[A-Za-z0-9_-]{43}$`));
  const oneTime = server.signInUrl.split('#login=')[1];
  expect(await fs.readFile(server.keysFile, 'utf8')).not.toContain(oneTime);
});

test('a session cookie stands in for the key, and /api/me names its role (implied roles included)', async () => {
  for (const [role, roles] of [
    ['reader', ['reader']],
    ['operator', ['reader', 'operator']],
    ['restorer', ['reader', 'restorer']],
    ['admin', ['reader', 'operator', 'restorer', 'admin']],
  ] as const) {
    const { cookie } = await signIn(server.loginTokens[role]);
    const me = await call('GET', '/api/me', { cookie });
    expect(me.status).toBe(200);
    expect(JSON.parse(me.text)).toEqual({ id: `serve:${role}`, name: `${role} (pagewise serve sign-in)`, roles, via: 'session' });
    const auth = await call('GET', '/.auth/me', { cookie });
    expect(JSON.parse(auth.text)).toMatchObject([{ provider_name: 'pagewise-serve', user_id: `serve:${role}`, user_claims: [{ typ: 'name' }, { typ: 'roles', val: `Pagewise.${role[0].toUpperCase()}${role.slice(1)}` }] }]);
  }
  // The key holder is admin (no principal); nobody is 401.
  expect(JSON.parse((await call('GET', '/api/me', { 'x-functions-key': server.keys.functionKeys.default })).text)).toEqual({ id: 'function-key', name: 'function key', roles: ['reader', 'operator', 'restorer', 'admin'], via: 'key' });
  expect((await call('GET', '/api/me')).status).toBe(401);
  expect((await call('GET', '/api/me', { cookie: 'pagewise_session=forged' })).status).toBe(401);
  expect((await call('GET', '/.auth/me')).status).toBe(401);
});

test("a caller's own x-ms-client-principal headers are stripped: a forged admin principal is nobody, or the session it came with", async () => {
  const forged = encodeClientPrincipal({ id: 'mallory', name: 'mallory', roles: ['admin'] }, 'aad');
  const headers = { 'x-ms-client-principal': forged, 'x-ms-client-principal-name': 'mallory', 'x-ms-client-principal-id': 'mallory', 'x-ms-client-principal-idp': 'aad' };
  expect((await call('GET', '/api/me', headers)).status).toBe(401);
  const { cookie } = await signIn(server.loginTokens.reader);
  const me = JSON.parse((await call('GET', '/api/me', { ...headers, cookie })).text) as { id: string; roles: string[] };
  expect(me).toMatchObject({ id: 'serve:reader', roles: ['reader'] });
  const started = await call('POST', '/api/backups', { ...headers, cookie, ...json, ...origin() }, JSON.stringify({ source: { url: sourceUrl } }));
  expect(started.status).toBe(403);
  expect(JSON.parse(started.text)).toMatchObject({ title: 'Forbidden', neededRole: 'operator', detail: 'this needs the operator role (Entra app role Pagewise.Operator); you have reader' });
});

test('a state-changing request on a session cookie needs this origin: without Origin 403, nothing starts', async () => {
  const before = (await server.app.runtime.listInstances()).length;
  const { cookie } = await signIn(server.loginTokens.operator);
  const body = JSON.stringify({ source: { url: sourceUrl } });
  const noOrigin = await call('POST', '/api/backups', { cookie, ...json }, body);
  expect(noOrigin.status).toBe(403);
  expect(JSON.parse(noOrigin.text)).toMatchObject({ title: 'OriginRequired' });
  expect((await call('POST', '/api/backups', { cookie, ...json, origin: 'http://evil.example' }, body)).status).toBe(403);
  expect((await call('DELETE', '/api/backups/pw-000000000000000000000000', { cookie })).status).toBe(403);
  expect((await server.app.runtime.listInstances()).length).toBe(before);
  // The same from this origin's page starts the backup; a GET needs no Origin.
  const started = await call('POST', '/api/backups', { cookie, ...json, ...origin() }, body);
  expect(started.status).toBe(202);
  const { instanceId } = JSON.parse(started.text) as { instanceId: string };
  expect((await server.app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  expect((await call('GET', '/api/backups?usage=false', { cookie })).status).toBe(200);
  // Sign-in itself must come from this origin too.
  expect((await call('POST', '/.auth/login', json, JSON.stringify({ token: server.loginTokens.admin }))).status).toBe(403);
});

test('the one-time sign-in link opens one admin session, then nothing', async () => {
  const oneTime = server.signInUrl.split('#login=')[1];
  const { cookie } = await signIn(oneTime);
  expect(JSON.parse((await call('GET', '/api/me', { cookie })).text)).toMatchObject({ roles: ['reader', 'operator', 'restorer', 'admin'] });
  const again = await call('POST', '/.auth/login', { ...json, ...origin() }, JSON.stringify({ token: oneTime }));
  expect(again.status).toBe(401);
  expect(JSON.parse(again.text)).toMatchObject({ title: 'SignInFailed' });
  // The session it opened lasts; logging out ends it.
  const out = await call('POST', '/.auth/logout', { ...origin(), cookie });
  expect(out.status).toBe(204);
  expect(out.headers['set-cookie']?.[0]).toBe('pagewise_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0');
  expect((await call('GET', '/api/me', { cookie })).status).toBe(401);
});

test('/, /portal and /portal/ lead to the portal function; sign-in paths answer only their methods', async () => {
  for (const p of ['/', '/portal', '/portal/']) {
    const answer = await call('GET', p);
    expect(answer.status).toBe(302);
    expect(answer.headers.location).toBe('/api/portal/');
  }
  expect((await call('GET', '/.auth/login')).status).toBe(405);
  expect((await call('GET', '/.auth/elsewhere')).status).toBe(404);
  expect((await call('POST', `/.auth/login?token=${server.loginTokens.admin}`, { ...json, ...origin() }, '{}')).status).toBe(400);
  expect((await call('POST', '/.auth/login', { ...json, ...origin() }, '{"token": 5}')).status).toBe(400);
  expect((await call('POST', '/.auth/login', { 'content-type': 'text/plain', ...origin() }, 'x')).status).toBe(415);
});

test('failed sign-ins are counted: past the limit every sign-in is refused (429), the right token too', async () => {
  // One failure before (the used one-time link): four more reach the limit of five.
  for (let i = 0; i < 4; i++) {
    const wrong = await call('POST', '/.auth/login', { ...json, ...origin() }, JSON.stringify({ token: `${server.loginTokens.admin}x` }));
    expect(wrong.status).toBe(401);
  }
  const locked = await call('POST', '/.auth/login', { ...json, ...origin() }, JSON.stringify({ token: server.loginTokens.admin }));
  expect(locked.status).toBe(429);
  expect(JSON.parse(locked.text)).toMatchObject({ title: 'TooManyFailedSignIns' });
  expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
  expect(locked.headers['set-cookie']).toBeUndefined();
});

test('no token or session cookie value appears in any answer or log line', () => {
  const secrets = [...Object.values(server.loginTokens), server.keys.functionKeys.default, server.keys.masterKey];
  const cookies = answers.flatMap((a) => a.headers['set-cookie'] ?? []).map((c) => c.split(';')[0].split('=')[1]).filter((v) => v);
  expect(cookies.length).toBeGreaterThan(5);
  const bodies = answers.map((a) => `${a.text}\n${JSON.stringify({ ...a.headers, 'set-cookie': undefined })}`).join('\n');
  const logs = logLines.join('\n');
  expect(logLines.filter((l) => l.startsWith('signed in:')).length).toBeGreaterThan(5);
  for (const secret of [...secrets, ...cookies, server.signInUrl.split('#login=')[1]]) {
    expect(bodies.includes(secret)).toBe(false);
    expect(logs.includes(secret)).toBe(false);
  }
});
