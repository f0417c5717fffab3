/**
 * #18 auth in entra mode (PAGEWISE_AUTH=entra): every API route is registered anonymous and gated by the
 * principal alone. Behind App Service authentication (the host's dispatch, as the platform hands requests
 * on): an absent principal is 401 SignInRequired, a malformed one 401 MalformedPrincipal (never a 500,
 * never echoed), Entra app roles map to Pagewise roles and unknown ones are ignored. Under `pagewise serve`:
 * a forged principal header is stripped, a key is no sign-in, a session is.
 */
import { sendRaw } from './harness/raw-http';
import type { LocalServer } from '../runtime/serve';
import { registeredFunctions } from '../runtime/functionsCore';
import { authMode } from '../functions/auth/authMode';
import { assertAuthenticationInFront } from '../functions/auth/principal';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { serveTestApp } from './harness/serve-app';

let env: TestEnv;
let server: LocalServer;
let sourceUrl: string;

beforeAll(async () => {
  env = await startEnv();
  sourceUrl = (await env.makeDisk('entra.vhd', 2 * MiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 61 }])).source.url;
  server = await serveTestApp(env, { overrides: { PAGEWISE_AUTH: 'entra' } });
});
afterAll(async () => {
  await server?.close();
  await env?.stop();
});

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8').toString('base64');
/** A principal as App Service authentication sends it for an Entra (aad) sign-in. */
function entraPrincipal(roles: string[], name = 'Ada Operator', roleTyp = 'roles'): string {
  return b64({
    auth_typ: 'aad',
    claims: [
      { typ: 'http://schemas.microsoft.com/identity/claims/objectidentifier', val: '00000000-0000-0000-0000-0000000000ad' },
      { typ: 'name', val: name },
      ...roles.map((val) => ({ typ: roleTyp, val })),
    ],
    name_typ: 'name',
    role_typ: roleTyp,
  });
}

/** A request as the platform hands it to the function after App Service authentication. */
async function behindEasyAuth(method: string, pathAndQuery: string, principal?: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await server.app.host.dispatchHttp({
    method,
    url: `http://127.0.0.1:7071${pathAndQuery}`,
    headers: { 'content-type': 'application/json', ...(principal !== undefined ? { 'x-ms-client-principal': principal } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

test('PAGEWISE_AUTH: keys by default, entra, anything else refused naming the setting', () => {
  expect(authMode({})).toBe('keys');
  expect(authMode({ PAGEWISE_AUTH: ' Entra ' })).toBe('entra');
  expect(() => authMode({ PAGEWISE_AUTH: 'none' })).toThrow('app setting PAGEWISE_AUTH must be one of keys, entra, got "none"');
});

test('entra mode fails closed on an App Service app without App Service authentication (a principal header could be forged)', async () => {
  expect(() => assertAuthenticationInFront({ WEBSITE_SITE_NAME: 'pagewise-app' })).toThrow('PAGEWISE_AUTH is entra but App Service authentication is not enabled on this app');
  expect(() => assertAuthenticationInFront({ WEBSITE_SITE_NAME: 'pagewise-app', WEBSITE_AUTH_ENABLED: 'False' })).toThrow(/not enabled/);
  expect(() => assertAuthenticationInFront({ WEBSITE_SITE_NAME: 'pagewise-app', WEBSITE_AUTH_ENABLED: 'True' })).not.toThrow();
  // Not on App Service (pagewise serve, tests): serve itself strips and injects the principal.
  expect(() => assertAuthenticationInFront({})).not.toThrow();
  const saved = { site: process.env.WEBSITE_SITE_NAME, auth: process.env.WEBSITE_AUTH_ENABLED };
  process.env.WEBSITE_SITE_NAME = 'pagewise-app';
  delete process.env.WEBSITE_AUTH_ENABLED;
  try {
    const answer = await behindEasyAuth('GET', '/api/me', entraPrincipal(['Pagewise.Admin']));
    expect([answer.status, answer.json.title]).toEqual([503, 'AuthenticationNotEnabled']);
  } finally {
    if (saved.site === undefined) delete process.env.WEBSITE_SITE_NAME;
    else process.env.WEBSITE_SITE_NAME = saved.site;
    if (saved.auth !== undefined) process.env.WEBSITE_AUTH_ENABLED = saved.auth;
  }
});

test('every API route is registered anonymous: the browser holds no key', () => {
  const levels = [...registeredFunctions().values()].filter((f) => f.trigger.type === 'httpTrigger').map((f) => f.trigger.authLevel);
  expect(levels.length).toBeGreaterThanOrEqual(19);
  expect(new Set(levels)).toEqual(new Set(['anonymous']));
});

test('behind App Service authentication: no principal is 401 SignInRequired, on every kind of route', async () => {
  for (const [method, target] of [['GET', '/api/backups'], ['GET', '/api/me'], ['POST', '/api/backups'], ['DELETE', '/api/backups/pw-000000000000000000000000'], ['GET', '/api/audit']]) {
    const answer = await behindEasyAuth(method, target, undefined, method === 'POST' ? { source: { url: sourceUrl } } : undefined);
    expect([target, answer.status, answer.json.title]).toEqual([target, 401, 'SignInRequired']);
  }
});

test('a malformed principal is a 401 naming what is wrong, never a 500, never echoed', async () => {
  const malformed = [
    'not base64!!',
    b64('not json'),
    b64([]),
    b64({ claims: [] }),
    b64({ auth_typ: 'aad', claims: 'admin' }),
    b64({ auth_typ: 'aad', claims: [{ typ: 'roles', val: 7 }] }),
    b64({ auth_typ: 'aad', claims: Array.from({ length: 501 }, () => ({ typ: 'roles', val: 'Pagewise.Admin' })) }),
    'A'.repeat(40 * 1024),
  ];
  for (const value of malformed) {
    const answer = await behindEasyAuth('GET', '/api/backups', value);
    expect([answer.status, answer.json.title]).toEqual([401, 'MalformedPrincipal']);
    expect(String(answer.json.detail)).toMatch(/^the x-ms-client-principal header is not a principal App Service authentication sends \(.+\); sign in again$/);
    expect(JSON.stringify(answer.json)).not.toContain(value.slice(0, 12));
  }
});

test('Entra app roles map to Pagewise roles (implied ones added, unknown ones ignored); a user without one is signed in with none', async () => {
  const restorer = entraPrincipal(['Pagewise.Restorer', 'Other.Admin', 'pagewise.admin']);
  expect((await behindEasyAuth('GET', '/api/me', restorer)).json).toEqual({ id: '00000000-0000-0000-0000-0000000000ad', name: 'Ada Operator', roles: ['reader', 'restorer'], via: 'entra' });
  expect((await behindEasyAuth('GET', '/api/backups?usage=false', restorer)).status).toBe(200);
  const prune = await behindEasyAuth('POST', '/api/prunes', restorer, { dryRun: true });
  expect(prune).toMatchObject({ status: 403, json: { title: 'Forbidden', neededRole: 'admin', detail: 'this needs the admin role (Entra app role Pagewise.Admin); you have reader, restorer' } });

  const longRoleType = entraPrincipal(['Pagewise.Operator'], 'Op', 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role');
  expect((await behindEasyAuth('GET', '/api/me', longRoleType)).json).toMatchObject({ roles: ['reader', 'operator'] });

  const nobody = entraPrincipal([]);
  expect((await behindEasyAuth('GET', '/api/me', nobody)).json).toMatchObject({ roles: [], via: 'entra' });
  expect((await behindEasyAuth('GET', '/api/backups', nobody)).json).toMatchObject({ title: 'Forbidden', detail: 'this needs the reader role (Entra app role Pagewise.Reader); you have no Pagewise role' });
});

test('under serve: a forged principal is stripped, a function key is no sign-in, a session is', async () => {
  const before = (await server.app.runtime.listInstances()).length;
  const forged = { 'x-ms-client-principal': entraPrincipal(['Pagewise.Admin']), 'x-ms-client-principal-idp': 'aad' };
  const json = { 'content-type': 'application/json' };
  const body = JSON.stringify({ source: { url: sourceUrl } });
  for (const headers of [forged, { 'x-functions-key': server.keys.functionKeys.default }, { ...forged, 'x-functions-key': server.keys.masterKey }]) {
    const answer = await sendRaw(server.port, 'POST', '/api/backups', { ...json, ...headers }, body);
    expect([answer.status, (JSON.parse(answer.text) as { title: string }).title]).toEqual([401, 'SignInRequired']);
  }
  expect((await server.app.runtime.listInstances()).length).toBe(before);

  const login = await sendRaw(server.port, 'POST', '/.auth/login', { ...json, origin: server.url }, JSON.stringify({ token: server.loginTokens.operator }));
  const cookie = (login.headers['set-cookie']?.[0] ?? '').split(';')[0];
  const me = await sendRaw(server.port, 'GET', '/api/me', { cookie, ...forged });
  expect(JSON.parse(me.text)).toMatchObject({ id: 'serve:operator', roles: ['reader', 'operator'], via: 'session' });
  const started = await sendRaw(server.port, 'POST', '/api/backups', { ...json, cookie, origin: server.url }, body);
  expect(started.status).toBe(202);
  const { instanceId } = JSON.parse(started.text) as { instanceId: string };
  expect((await server.app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
});
