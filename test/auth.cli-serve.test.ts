/**
 * #18 auth through the CLI: `pagewise serve` prints one sign-in link (never a reusable token or key),
 * and that link signs in once — as an admin — then opens nothing.
 */
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { startPagewise } from '../testkit/pagewise-process';
import { startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let child: ChildProcess | undefined;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await env?.stop();
});

test('serve prints a one-time admin sign-in link: it opens one admin session, then nothing; the keys file holds the role tokens', async () => {
  const settings: Record<string, string> = {
    PAGEWISE_TASKHUB_CONNECTION_STRING: env.az.accounts.vault.connectionString,
    PAGEWISE_VAULT_URL: env.vault.url,
    PAGEWISE_USER_KEY: env.userKey.toString('base64'),
    PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints,
    PAGEWISE_ALLOWED_ACCOUNTS: env.az.storageEndpoints,
    PAGEWISE_SCRATCH_DIR: env.tmp,
  };
  const run = startPagewise(['serve', '--keys-dir', path.join(env.tmp, 'serve-keys')], { env: settings });
  child = run.child;
  let out = '';
  const printed = await new Promise<string>((resolve, reject) => {
    run.child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^portal: .*\n/m.test(out) && /^keys .*\n/m.test(out)) resolve(out);
    });
    void run.done.then((exit) => reject(new Error(`serve ended before listening: ${JSON.stringify(exit)}`)));
  });
  const link = /^portal: open (http:\/\/127\.0\.0\.1:\d+)\/portal\/#login=([A-Za-z0-9_-]{43}) once to sign in as admin/m.exec(printed);
  expect(link).not.toBeNull();
  const [, url, token] = link!;
  const keysFile = /in (\S+keys-\d+\.json), removed at exit/.exec(printed)![1];
  const keys = JSON.parse(await fs.readFile(keysFile, 'utf8')) as { masterKey: string; functionKeys: { default: string }; loginTokens: Record<string, string> };
  for (const secret of [keys.masterKey, keys.functionKeys.default, ...Object.values(keys.loginTokens)]) expect(printed.includes(secret)).toBe(false);
  expect(Object.values(keys.loginTokens)).not.toContain(token);

  const login = () => fetch(`${url}/.auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: url }, body: JSON.stringify({ token }) });
  const first = await login();
  expect(first.status).toBe(204);
  const cookie = (first.headers.get('set-cookie') ?? '').split(';')[0];
  expect(await (await fetch(`${url}/api/me`, { headers: { cookie } })).json()).toMatchObject({ roles: ['reader', 'operator', 'restorer', 'admin'], via: 'session' });
  expect((await login()).status).toBe(401);
  // A reusable token from the keys file signs in as often as needed.
  for (let i = 0; i < 2; i++) {
    const reader = await fetch(`${url}/.auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: url }, body: JSON.stringify({ token: keys.loginTokens.reader }) });
    expect(reader.status).toBe(204);
  }
  run.child.kill('SIGINT');
  await run.done;
});
