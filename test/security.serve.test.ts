/**
 * `pagewise serve` attacked over real HTTP on 127.0.0.1: every route without its key, with another
 * route's key, with a foreign Host (DNS rebinding), from another origin's page (CSRF), with non-JSON and
 * oversized (streamed, chunked) bodies, with methods and paths it does not serve; and the internal
 * endpoint of the durable client. Each refusal is checked for its status and problem type, and for what
 * did not happen: no orchestration instance was created (the runtime's own list), no key or SAS came
 * back, and the server goes on serving.
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import { Answer, sendRaw } from './harness/raw-http';
import * as path from 'node:path';
import { LocalServer, startLocalServer } from '../runtime/serve';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let server: LocalServer;
let sourceUrl: string;
let keysDir: string;
let closed = false;


const PROBLEMS = 'https://pagewise.dev/problems/';

beforeAll(async () => {
  env = await startEnv();
  sourceUrl = (await env.makeDisk('attacked.vhd', 4 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 21 }])).source.url;
  keysDir = path.join(env.tmp, 'serve-keys');
  server = await startLocalServer({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      ...env.appSettings(),
    },
    keysDir,
    timers: false,
    log: () => undefined,
  });
});
afterAll(async () => {
  if (!closed) await server?.close();
  await env?.stop();
});

/** One request exactly as given (Host, Origin and the request target included). */
function send(method: string, target: string, headers: Record<string, string> = {}, body?: string | Buffer, port = server.port): Promise<Answer> {
  return sendRaw(port, method, target, headers, body);
}

const json = { 'content-type': 'application/json' };
const fnKey = () => ({ 'x-functions-key': server.keys.functionKeys.default });
const durableKey = () => server.keys.systemKeys.durabletask_extension;
const backupBody = () => JSON.stringify({ source: { url: sourceUrl } });
const instanceIds = async () => (await server.app.runtime.listInstances()).map((i) => i.instanceId).sort();

/** The answer is the problem document of this status and type, and carries no key or signature. */
function expectProblem(answer: Answer, status: number, type: string): Record<string, unknown> {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toBe('application/problem+json');
  const body = JSON.parse(answer.text) as Record<string, unknown>;
  expect(body).toMatchObject({ type: `${PROBLEMS}${type}`, status });
  expectNothingSecret(answer);
  return body;
}

function expectNothingSecret(answer: Answer): void {
  const all = `${answer.text}\n${JSON.stringify(answer.headers)}`;
  const keys = [server.keys.masterKey, server.keys.functionKeys.default, ...Object.values(server.keys.systemKeys), server.app.host.systemKey];
  expect(keys.filter((k) => all.includes(k))).toEqual([]);
  expect(all).not.toMatch(/sig=(?!REDACTED)[A-Za-z0-9%+/=]{8,}/i);
  expect(all).not.toMatch(/\bat .+\.(ts|js):\d+/); // no stack trace
}

test('the keys are written to a 0600 file in a 0700 directory, and nowhere else', async () => {
  expect(server.keysFile).toBe(path.join(keysDir, `keys-${server.port}.json`));
  expect((await fs.stat(keysDir)).mode & 0o777).toBe(0o700);
  expect((await fs.stat(server.keysFile)).mode & 0o777).toBe(0o600);
  expect(JSON.parse(await fs.readFile(server.keysFile, 'utf8'))).toEqual(server.keys);
  const all = [server.keys.masterKey, server.keys.functionKeys.default, ...Object.values(server.keys.systemKeys)];
  expect(new Set(all).size).toBe(4);
  for (const key of all) expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes
});

test('a keys directory others can enter is refused before anything listens', async () => {
  const open = path.join(env.tmp, 'open-keys');
  await fs.mkdir(open, { mode: 0o755 });
  await fs.chmod(open, 0o755);
  await expect(
    startLocalServer({ taskHub: { connectionString: env.az.accounts.vault.connectionString }, appSettings: {}, keysDir: open, timers: false, log: () => undefined }),
  ).rejects.toThrow(`the keys directory ${open} must be a directory of this user with mode 0700 (chmod 700 it)`);
  expect(await fs.readdir(open)).toEqual([]);
});

test('every route refuses a request without its key (401), and nothing starts', async () => {
  const before = await instanceIds();
  const attempts: Array<[string, string, Record<string, string>, string?]> = [
    ['GET', '/api/backups', {}],
    ['POST', '/api/backups', json, backupBody()],
    ['GET', '/runtime/webhooks/durabletask/instances', {}],
    [
      'POST',
      '/runtime/webhooks/durabletask/orchestrators/backupDiskOrchestrator/evil',
      json,
      JSON.stringify({ source: { url: sourceUrl } }),
    ],
    ['POST', '/runtime/webhooks/durabletask/instances/x/terminate', {}],
    ['DELETE', '/runtime/webhooks/durabletask/instances/x', {}],
    ['POST', '/admin/functions/scheduledBackups', json, '{}'],
    ['POST', '/runtime/webhooks/eventgrid?functionName=diskEvents', json, '[]'],
  ];
  const details = new Set<string>();
  for (const [method, target, headers, body] of attempts) {
    for (const wrong of [{} as Record<string, string>, { 'x-functions-key': 'guess' }, { 'x-functions-key': `${server.keys.functionKeys.default}x` }]) {
      const answer = await send(method, target, { ...headers, ...wrong }, body);
      details.add(String(expectProblem(answer, 401, 'unauthorized').detail));
    }
    const byQuery = await send(method, `${target}${target.includes('?') ? '&' : '?'}code=guess`, headers, body);
    expectProblem(byQuery, 401, 'unauthorized');
  }
  expect([...details]).toEqual(['a valid key is required (x-functions-key header or code query parameter)']);
  expect(await instanceIds()).toEqual(before);
});

test('a key opens only its own routes: the function key is no system or master key', async () => {
  const before = await instanceIds();
  const { functionKeys, systemKeys, masterKey } = server.keys;
  const wrongLevel: Array<[string, string, string, string?]> = [
    [functionKeys.default, 'GET', '/runtime/webhooks/durabletask/instances'],
    [functionKeys.default, 'POST', '/admin/functions/scheduledBackups', '{}'],
    [functionKeys.default, 'POST', '/runtime/webhooks/eventgrid?functionName=diskEvents', '[]'],
    [systemKeys.durabletask_extension, 'POST', '/api/backups', backupBody()],
    [systemKeys.durabletask_extension, 'POST', '/admin/functions/scheduledBackups', '{}'],
    [systemKeys.eventgrid_extension, 'GET', '/runtime/webhooks/durabletask/instances'],
    [systemKeys.eventgrid_extension, 'POST', '/admin/functions/scheduledBackups', '{}'],
  ];
  for (const [key, method, target, body] of wrongLevel) expectProblem(await send(method, target, { ...json, 'x-functions-key': key }, body), 401, 'unauthorized');
  expect(await instanceIds()).toEqual(before);
  // The right keys (and the master key everywhere) open them.
  expect((await send('GET', '/api/backups', { 'x-functions-key': masterKey })).status).toBe(200);
  expect((await send('GET', `/api/backups?code=${encodeURIComponent(functionKeys.default)}`)).status).toBe(200);
  expect((await send('GET', '/runtime/webhooks/durabletask/instances', { 'x-functions-key': masterKey })).status).toBe(200);
  expect((await send('GET', `/runtime/webhooks/durabletask/instances?code=${durableKey()}`)).status).toBe(200);
});

test('a foreign Host (DNS rebinding) is refused with 421 before routing; links use the bound address', async () => {
  const before = await instanceIds();
  for (const host of [`rebind.example:${server.port}`, '127.0.0.1', `127.0.0.1:${server.port + 1}`, `localhost.rebind.example:${server.port}`]) {
    const answer = await send('POST', '/api/backups', { ...json, ...fnKey(), host }, backupBody());
    expectProblem(answer, 421, 'misdirectedrequest');
    expect(answer.headers.location).toBeUndefined();
  }
  // An absolute-form request target would move the URL's origin: refused.
  expectProblem(await send('POST', 'http://rebind.example/api/backups', { ...json, ...fnKey() }, backupBody()), 400, 'badrequesttarget');
  expect(await instanceIds()).toEqual(before);

  // Host: localhost:<port> is this server; the Location and status links name the bound address.
  const fresh = (await env.makeDisk('located.vhd', 2 * MiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 22 }])).source.url;
  const started = await send('POST', '/api/backups', { ...json, ...fnKey(), host: `localhost:${server.port}` }, JSON.stringify({ source: { url: fresh } }));
  expect(started.status).toBe(202);
  expect(started.headers.location).toMatch(new RegExp(`^${server.url}/api/backups/`));
  const body = JSON.parse(started.text) as { instanceId: string; statusUri: string; management: Record<string, string> };
  for (const link of [body.statusUri, ...Object.values(body.management)]) expect(link.startsWith(`${server.url}/`)).toBe(true);
  expectNothingSecret(started);
  expect((await server.app.runtime.waitForCompletion(body.instanceId, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
});

test('a cross-origin browser request (CSRF) is refused with 403; a non-JSON body with 415', async () => {
  const before = await instanceIds();
  const csrf: Array<Record<string, string>> = [
    { 'content-type': 'text/plain', origin: 'http://evil.example' },
    { ...json, origin: 'http://evil.example' },
    { ...json, origin: `http://127.0.0.1:${server.port + 1}` },
    { ...json, origin: 'null' },
    { 'content-type': 'text/plain', 'sec-fetch-site': 'cross-site' },
  ];
  for (const headers of csrf) expectProblem(await send('POST', '/api/backups', { ...fnKey(), ...headers }, backupBody()), 403, 'crossoriginrefused');
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1']) {
    const answer = await send('POST', '/api/backups', { ...fnKey(), 'content-type': type }, backupBody());
    expectProblem(answer, 415, 'unsupportedmediatype');
  }
  expectProblem(await send('POST', '/api/backups', fnKey(), backupBody()), 415, 'unsupportedmediatype'); // a body without a type
  expect(await instanceIds()).toEqual(before);
  // The server's own origin is fine.
  expect((await send('GET', '/api/backups', { ...fnKey(), origin: server.url })).status).toBe(200);
  expect((await send('GET', '/api/backups', { ...fnKey(), origin: `http://localhost:${server.port}`, 'sec-fetch-site': 'same-origin' })).status).toBe(200);
});

/**
 * Streams up to 64 MiB in 64 KiB chunks (chunked transfer-encoding) until the server answers; returns
 * the answer, how much had been handed to the socket when it came, and once the connection is gone.
 */
async function streamUntilAnswered(headers: Record<string, string>): Promise<{ answer: Answer; sentAtResponse: number; total: number; destroyed: boolean }> {
  const total = 64 * MiB; // far more than loopback socket buffers hold, so an early answer is visible
  const chunk = Buffer.alloc(64 * KiB, 0x20);
  const req = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/api/backups', headers, agent: false });
  let sent = 0;
  let sentAtResponse = -1;
  const answer = new Promise<Answer>((resolve) =>
    req.on('response', (res) => {
      sentAtResponse = sent;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    }),
  );
  const closed = new Promise<void>((resolve) => req.on('close', () => resolve()));
  req.on('error', () => undefined); // the server stops reading and closes: the client's writes fail
  let open = true;
  void closed.then(() => (open = false));
  while (open && sentAtResponse < 0 && sent < total) {
    sent += chunk.length;
    if (!req.write(chunk)) await Promise.race([new Promise((r) => req.once('drain', r)), closed, answer]);
  }
  const result = await answer;
  await closed; // the connection is gone
  return { answer: result, sentAtResponse, total, destroyed: req.destroyed };
}

test('a streamed chunked body over the limit gets 413 while it is still being sent, the socket is closed, and the server goes on', async () => {
  const before = await instanceIds();
  const { answer: response, sentAtResponse, total, destroyed } = await streamUntilAnswered({ ...json, ...fnKey() });
  expectProblem(response, 413, 'payloadtoolarge');
  expect(response.headers.connection).toBe('close');
  expect(sentAtResponse).toBeGreaterThan(0);
  expect(sentAtResponse).toBeLessThan(total); // answered before the client finished sending
  expect(destroyed).toBe(true);

  // Without a key the body is not read at all: 401, and the connection goes the same way.
  const anonymous = await streamUntilAnswered(json);
  expectProblem(anonymous.answer, 401, 'unauthorized');
  expect(anonymous.answer.headers.connection).toBe('close');
  expect(anonymous.sentAtResponse).toBeLessThan(anonymous.total);

  // A declared Content-Length over the limit is refused before a byte is read.
  const declared = await new Promise<Answer>((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/api/backups', headers: { ...json, ...fnKey(), 'content-length': String(10 * MiB) }, agent: false });
    r.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    r.on('error', reject);
    r.flushHeaders();
  });
  expectProblem(declared, 413, 'payloadtoolarge');

  // The same limit on the durable webhook and the admin endpoint.
  const big = Buffer.alloc(128 * KiB, 0x20);
  expectProblem(await send('POST', `/runtime/webhooks/durabletask/orchestrators/backupDiskOrchestrator?code=${durableKey()}`, json, big), 413, 'payloadtoolarge');
  expectProblem(await send('POST', '/admin/functions/scheduledBackups', { ...json, 'x-functions-key': server.keys.masterKey }, big), 413, 'payloadtoolarge');

  // Still serving.
  expect((await send('GET', '/api/backups', fnKey())).status).toBe(200);
  expect(await instanceIds()).toEqual(before);
});

test('non-JSON to the Event Grid, admin and durable webhooks is a 400, not a 500', async () => {
  const before = await instanceIds();
  const eg = { 'x-functions-key': server.keys.systemKeys.eventgrid_extension };
  const master = { 'x-functions-key': server.keys.masterKey };
  const cases: Array<[string, Record<string, string>, string, string]> = [
    [
      '/runtime/webhooks/eventgrid?functionName=diskEvents',
      { ...eg, ...json },
      'not json',
      'the request body is not JSON',
    ],
    [
      '/runtime/webhooks/eventgrid?functionName=diskEvents',
      { ...eg, 'content-type': 'application/cloudevents+json' },
      '{"id":',
      'the request body is not JSON',
    ],
    [
      '/runtime/webhooks/eventgrid?functionName=diskEvents',
      { ...eg, ...json },
      '[1, "x"]',
      'an event must be a JSON object',
    ],
    [
      '/admin/functions/diskEvents',
      { ...master, ...json },
      'not json',
      'the request body is not JSON',
    ],
    [
      '/admin/functions/diskEvents',
      { ...master, ...json },
      '{"input": "not json"}',
      'the request body is not JSON',
    ],
    [
      '/admin/functions/diskEvents',
      { ...master, ...json },
      '{"input": 42}',
      'input must be a string (the trigger payload as JSON text)',
    ],
    [
      '/admin/functions/diskEvents',
      { ...master, ...json },
      '[]',
      'the body must be a JSON object {"input": "…"}',
    ],
  ];
  for (const [target, headers, body, detail] of cases) {
    expect(expectProblem(await send('POST', target, headers, body), 400, 'badrequestbody').detail).toBe(detail);
  }
  const durable = await send('POST', `/runtime/webhooks/durabletask/orchestrators/backupDiskOrchestrator?code=${durableKey()}`, json, '{"source":');
  expect(durable.status).toBe(400);
  expect(JSON.parse(durable.text)).toEqual({ message: 'the request body is not JSON' });
  // Unknown function names are 404s.
  expectProblem(await send('POST', '/runtime/webhooks/eventgrid?functionName=startBackup', { ...eg, ...json }, '[]'), 404, 'functionnotfound');
  expectProblem(await send('POST', '/admin/functions/nothing', { ...master, ...json }, '{}'), 404, 'functionnotfound');
  expect(await instanceIds()).toEqual(before);
});

test('methods, paths and URLs serve does not answer: 405, 404, 400, 431', async () => {
  for (const method of ['OPTIONS', 'HEAD', 'PUT', 'PATCH', 'TRACE']) {
    const answer = await send(method, '/api/backups', fnKey());
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe('GET, POST, DELETE'); // DELETE: forget a backup (issue #13)
  }
  expectProblem(await send('GET', '/durabletask/instances', fnKey()), 404, 'notfound'); // the client RPC is not served here
  expectProblem(await send('GET', '/api/backups/%E0%A4%A', fnKey()), 400, 'badrequesttarget');
  const malformed = await send('GET', `/runtime/webhooks/durabletask/instances/%E0%A4%A?code=${durableKey()}`);
  expect(malformed.status).toBe(400);
  const badId = await send('GET', `/runtime/webhooks/durabletask/instances/${'x'.repeat(300)}?code=${durableKey()}`);
  expect(badId.status).toBe(400);
  const huge = await send('GET', `/api/backups?disk=${'a'.repeat(20 * KiB)}`, fnKey());
  expect(huge.status).toBe(431);
  expect((await send('GET', '/api/backups', fnKey())).status).toBe(200);
});

test('the webhooks list and show instances redacted, with the system key', async () => {
  // The API's starters seal a SAS before it enters the task hub; an instance started with a raw SAS in
  // its input (as the durable API allows the system key's holder) is shown redacted.
  await server.app.runtime.startNew('verifyBackupOrchestrator', { instanceId: 'verify-raw-sas', input: { backupId: 'pw-raw-sas', source: { url: sourceUrl } } });
  await server.app.runtime.waitForCompletion('verify-raw-sas', { timeoutInMs: 60_000 });
  const list = await send('GET', `/runtime/webhooks/durabletask/instances?code=${durableKey()}`);
  expect(list.status).toBe(200);
  const instances = JSON.parse(list.text) as Array<{ instanceId: string; input: unknown }>;
  expect(instances.length).toBeGreaterThan(1);
  expect(list.text).toContain('sig=REDACTED');
  expect(list.text).toMatch(/"sealedSas":"v1\.[A-Za-z0-9_-]+"/);
  expectNothingSecret(list);
  const one = await send('GET', `/runtime/webhooks/durabletask/instances/${instances[0].instanceId}?showHistory=true&code=${durableKey()}`);
  expect(one.status).toBe(200);
  expectNothingSecret(one);
});

test('the durable client endpoint inside the process is keyed too', async () => {
  const before = await instanceIds();
  const port = Number(new URL(server.app.host.clientData().rpcBaseUrl).port);
  for (const [method, target, body] of [
    ['GET', '/durabletask/instances', undefined],
    ['POST', '/durabletask/orchestrators/backupDiskOrchestrator/evil', backupBody()],
    ['GET', `/guess/durabletask/instances`, undefined],
    ['GET', '/runtime/webhooks/durabletask/instances', undefined],
    ['GET', `/runtime/webhooks/durabletask/instances?code=${server.keys.functionKeys.default}`, undefined],
  ] as const) {
    expectProblem(await send(method, target, json, body, port), 401, 'unauthorized');
  }
  expectProblem(await send('GET', '/durabletask/instances', { host: `rebind.example:${port}` }, undefined, port), 421, 'misdirectedrequest');
  expect(await instanceIds()).toEqual(before);
});

test('a port in use fails the start and leaves nothing running or written', async () => {
  // (Runs late: a second app in this process resets the shared app settings when it stops.)
  const filesBefore = (await fs.readdir(keysDir)).sort();
  await expect(
    startLocalServer({ taskHub: { connectionString: env.az.accounts.vault.connectionString, container: 'other-hub' }, appSettings: {}, port: server.port, keysDir, timers: false, log: () => undefined }),
  ).rejects.toThrow(/EADDRINUSE/);
  expect((await fs.readdir(keysDir)).sort()).toEqual(filesBefore);
  expect((await send('GET', `/runtime/webhooks/durabletask/instances?code=${durableKey()}`)).status).toBe(200); // the first server still serves
});

test('close removes the keys file', async () => {
  await fs.stat(server.keysFile);
  await server.close();
  closed = true;
  await expect(fs.stat(server.keysFile)).rejects.toThrow(/ENOENT/);
});
