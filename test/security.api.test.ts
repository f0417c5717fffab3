/**
 * Red team, round 2 (issue #10): `pagewise serve` and the registered functions attacked over real HTTP
 * on 127.0.0.1 by a caller holding no key, the function key, the Event Grid key or the durable system
 * key — hostile path parameters and query strings, forged orchestration inputs through the durable
 * webhook (which skips every HTTP pre-check, so the activities must refuse on their own), hostile
 * events. Each case asserts the status and problem, that no 500 is reachable, and what did not happen:
 * no instance started, no blob written, no key or signature back.
 */
import { Answer, sendRaw } from './harness/raw-http';
import * as path from 'node:path';
import { redact } from '../core';
import { nestsTooDeep } from '../functions/http/jsonDepth';
import { LocalServer, startLocalServer } from '../runtime/serve';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let server: LocalServer;
let sourceUrl: string;
let backupId: string;
let settings: Record<string, string | undefined>;
const logs: string[] = [];


beforeAll(async () => {
  env = await startEnv();
  sourceUrl = (await env.makeDisk('red.vhd', 2 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 31 }])).source.url;
  server = await startLocalServer({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: (settings = env.appSettings({ PAGEWISE_WATCHED_CONTAINERS: 'src/disks' })),
    keysDir: path.join(env.tmp, 'serve-keys'),
    timers: false,
    log: (_level, line) => void logs.push(line),
  });
  // One real backup to restore and verify.
  const started = await send('POST', '/api/backups', { ...json, ...fnKey() }, JSON.stringify({ source: { url: sourceUrl } }));
  expect(started.status).toBe(202);
  const body = JSON.parse(started.text) as { id: string; instanceId: string };
  backupId = body.id;
  expect((await server.app.runtime.waitForCompletion(body.instanceId, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
});
afterAll(async () => {
  await server?.close();
  await env?.stop();
});

function send(method: string, target: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Answer> {
  return sendRaw(server.port, method, target, headers, body);
}

const json = { 'content-type': 'application/json' };
const fnKey = () => ({ 'x-functions-key': server.keys.functionKeys.default });
const durable = (target: string) => `/runtime/webhooks/durabletask/${target}${target.includes('?') ? '&' : '?'}code=${encodeURIComponent(server.keys.systemKeys.durabletask_extension)}`;
const egKey = () => ({ 'x-functions-key': server.keys.systemKeys.eventgrid_extension });
const instanceIds = async () => (await server.app.runtime.listInstances()).map((i) => i.instanceId).sort();
const restoreBlobs = async () => {
  const names: string[] = [];
  for await (const b of env.az.accounts.vault.service.getContainerClient('restores').listBlobsFlat()) names.push(`${b.name} ${b.properties.etag}`);
  return names.sort();
};
const vaultBlobs = async () => {
  const names: string[] = [];
  for await (const b of env.az.accounts.vault.service.getContainerClient('vault').listBlobsFlat()) names.push(`${b.name} ${b.properties.etag}`);
  return names.sort();
};

function expectClean(answer: Answer): void {
  const all = `${answer.text}\n${JSON.stringify(answer.headers)}`;
  const keys = [server.keys.masterKey, server.keys.functionKeys.default, ...Object.values(server.keys.systemKeys)];
  expect(keys.filter((k) => all.includes(k))).toEqual([]);
  expect(all).not.toMatch(/sig=(?!REDACTED)[A-Za-z0-9%+/=]{8,}/i);
  expect(all).not.toMatch(/\bat .+\.(ts|js):\d+/);
  expect(answer.headers['x-powered-by']).toBeUndefined();
  expect(answer.headers.server).toBeUndefined();
}

function expectProblem(answer: Answer, status: number, title: string, detail?: RegExp): void {
  expect({ status: answer.status, type: answer.headers['content-type'] }).toEqual({ status, type: 'application/problem+json' });
  const body = JSON.parse(answer.text) as { title: string; status: number; detail: string };
  expect({ title: body.title, status: body.status }).toEqual({ title, status });
  if (detail) expect(body.detail).toMatch(detail);
  expectClean(answer);
}

test('hostile operation and backup IDs in the path: 400 or 404, never a 500, nothing started', async () => {
  const before = await instanceIds();
  const hostile = ['..', '%2E%2E', 'restore-..%2F..%2Fx', 'restore-%2F', `restore-${'a'.repeat(10 * KiB)}`, 'restore-%00', 'restore-%0D%0Aset-cookie:x', 'restore-%C3%A9', 'restore-x%3Fcode%3D1', 'verify-%23x'];
  const got: string[] = [];
  for (const kind of ['restores', 'verifications']) {
    for (const id of hostile) {
      const answer = await send('GET', `/api/${kind}/${id.replace(/^restore-/, kind === 'restores' ? 'restore-' : 'verify-')}`, fnKey());
      expectClean(answer);
      got.push(`${kind}/${id.slice(0, 40)} ${answer.status} ${(JSON.parse(answer.text) as { title: string }).title}`);
    }
  }
  for (const id of ['..', '%2E%2E%2F%2E%2E', `pw-${'0'.repeat(10 * KiB)}`, '%00', 'pw-%C3%A9']) {
    const answer = await send('GET', `/api/backups/${id}`, fnKey());
    expectClean(answer);
    got.push(`backups/${id.slice(0, 40)} ${answer.status} ${(JSON.parse(answer.text) as { title: string }).title}`);
  }
  expect(got.filter((g) => !/ (404 (OperationNotFound|NotFound)|400 (BadInput|BadRequestTarget))$/.test(g))).toEqual([]);
  expect(await instanceIds()).toEqual(before);
});

test('unknown query parameters are refused on every route (a misplaced ?overwrite=true is no option)', async () => {
  const before = await instanceIds();
  const restores = await restoreBlobs();
  const target = env.targetUrl('q-target.vhd');
  const cases: Array<[string, string, string?]> = [
    ['POST', '/api/restores?overwrite=true', JSON.stringify({ backupId, target: { url: target } })],
    ['POST', '/api/verifications?readData=false', JSON.stringify({ backupId })],
    ['GET', `/api/backups/${backupId}?verbose=1`],
    ['GET', '/api/restores/restore-x?x=1'],
    ['GET', '/api/verifications/verify-x?x=1'],
  ];
  for (const [method, target, body] of cases) {
    expectProblem(await send(method, target, { ...json, ...fnKey() }, body), 400, 'BadQuery', /^unknown query parameter "\w+" \(allowed: none\)$/);
  }
  expect(await instanceIds()).toEqual(before);
  expect(await restoreBlobs()).toEqual(restores);
});

test('JSON bodies with __proto__ / constructor keys, UTF-16, deep nesting or huge numbers: 400, nothing polluted or started', async () => {
  const before = await instanceIds();
  const bodies = [
    `{"__proto__":{"polluted":true},"source":{"url":${JSON.stringify(sourceUrl)}}}`,
    `{"constructor":{"prototype":{"polluted":true}},"source":{"url":${JSON.stringify(sourceUrl)}}}`,
    `{"source":{"url":${JSON.stringify(sourceUrl)},"__proto__":{"polluted":true}}}`,
    `{"source":{"url":${JSON.stringify(sourceUrl)}},"pageSize":1e400}`,
    `{"source":${'['.repeat(20_000)}${']'.repeat(20_000)}}`,
  ];
  const got: string[] = [];
  for (const body of bodies) {
    const answer = await send('POST', '/api/backups', { ...json, ...fnKey() }, body);
    expectClean(answer);
    got.push(`${answer.status} ${body.slice(0, 30)} ${answer.text.slice(0, 300)}`);
  }
  expect(got.filter((g) => !g.startsWith('400 '))).toEqual([]);
  // UTF-16: declared, it is refused as a media type; undeclared, it is no JSON.
  const utf16 = Buffer.from(`{"source":{"url":${JSON.stringify(sourceUrl)}}}`, 'utf16le');
  expectProblem(await send('POST', '/api/backups', { 'content-type': 'application/json; charset=utf-16', ...fnKey() }, utf16), 415, 'UnsupportedMediaType');
  expectProblem(await send('POST', '/api/backups', { ...json, ...fnKey() }, Buffer.concat([Buffer.from([0xff, 0xfe]), utf16])), 400, 'BadInput', /^the request body is not JSON$/);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(await instanceIds()).toEqual(before);
});

test('duplicate and conflicting headers: refused before anything runs', async () => {
  const before = await instanceIds();
  const body = JSON.stringify({ source: { url: sourceUrl } });
  // Node's parser refuses Transfer-Encoding with Content-Length (request smuggling) and two Content-Lengths.
  const raw = async (head: string): Promise<string> => {
    const net = await import('node:net');
    return new Promise((resolve) => {
      const socket = net.connect(server.port, '127.0.0.1', () => socket.end(head));
      let text = '';
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
    });
  };
  const key = server.keys.functionKeys.default;
  const smuggled = await raw(`POST /api/backups HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nx-functions-key: ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
  expect(smuggled).toMatch(/^HTTP\/1\.1 400/);
  const twoLengths = await raw(`POST /api/backups HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nx-functions-key: ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nContent-Length: 5\r\n\r\n${body}`);
  expect(twoLengths).toMatch(/^HTTP\/1\.1 400/);
  // A second Host naming another server, a second key: neither opens anything.
  const twoHosts = await raw(`GET /api/backups HTTP/1.1\r\nHost: rebind.example\r\nHost: 127.0.0.1:${server.port}\r\nx-functions-key: ${key}\r\nConnection: close\r\n\r\n`);
  expect(twoHosts).toMatch(/^HTTP\/1\.1 4(00|21)/);
  const twoKeys = await send('GET', '/api/backups', { 'x-functions-key': `guess, ${key}` });
  expectProblem(twoKeys, 401, 'Unauthorized');
  // Two Content-Types: the second (text/plain) does not slip past the first.
  const twoTypes = await raw(`POST /api/backups HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nx-functions-key: ${key}\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  expect(twoTypes).toMatch(/^HTTP\/1\.1 415/);
  expect(await instanceIds()).toEqual(before);
});

test('the durable webhook: unknown or non-orchestrator names are 404, purging a running instance 409 — never a 500', async () => {
  const before = await instanceIds();
  for (const name of ['nothing', 'restoreBackup', 'startBackup', '__proto__', 'constructor']) {
    const answer = await send('POST', durable(`orchestrators/${name}`), json, '{}');
    expect({ name, status: answer.status, body: JSON.parse(answer.text) as unknown }).toEqual({ name, status: 404, body: { message: 'no orchestrator function has this name' } });
  }
  // An input nested 20,000 deep would make every later listing of instances fail.
  const deep = await send('POST', durable('orchestrators/verifyBackupOrchestrator/deep-input'), json, `{"backupId":${'['.repeat(20_000)}${']'.repeat(20_000)}}`);
  expect({ status: deep.status, body: JSON.parse(deep.text) as unknown }).toEqual({ status: 400, body: { message: 'the request body nests deeper than 64 levels' } });
  // A running instance's history is not purged (the extension purges finished ones only).
  const running = await send('POST', durable('orchestrators/settleBlobOrchestrator/long-settle'), json, JSON.stringify({ source: { url: sourceUrl }, settle: { quietPeriodMs: 3_600_000, maxWaitMs: 7_200_000, attempt: 1 } }));
  expect(running.status).toBe(202);
  const purge = await send('DELETE', durable('instances/long-settle'));
  expect({ status: purge.status, body: JSON.parse(purge.text) as unknown }).toEqual({ status: 409, body: { message: expect.stringMatching(/^instance long-settle is (Pending|Running); terminate it before purging its history$/) } });
  expect((await send('POST', durable('instances/long-settle/terminate?reason=red'))).status).toBe(202);
  expect((await server.app.runtime.waitForCompletion('long-settle')).runtimeStatus).toBe('Terminated');
  expect((await send('DELETE', durable('instances/long-settle'))).status).toBe(200);
  // An instance ID names a task-hub blob: 128 emoji are 256 characters but 512 bytes (1,536 percent-encoded).
  const emoji = await send('POST', durable(`orchestrators/verifyBackupOrchestrator/${'%F0%9F%98%80'.repeat(128)}`), json, JSON.stringify({ backupId }));
  expect({ status: emoji.status, body: JSON.parse(emoji.text) as unknown }).toEqual({ status: 400, body: { message: 'an instance ID is at most 256 bytes (UTF-8) without / \\ # ? or control characters' } });
  for (const op of ['raiseEvent/x', 'rewind', 'restart', 'suspend', 'resume']) {
    const answer = await send('POST', durable(`instances/backup-${backupId}/${op}`), json);
    expect(answer.status).toBe(501);
    expectClean(answer);
  }
  expect(await instanceIds()).toEqual(before);
});

test('the durable webhook with the system key: a forged restore into the vault or with "overwrite": "no" writes nothing', async () => {
  const vault = await vaultBlobs();
  const existing = env.targetUrl('forged-existing.vhd');
  await env.az.accounts.vault.service.getContainerClient('restores').getPageBlobClient('forged-existing.vhd').create(4096);
  const restores = await restoreBlobs();
  const inVault = env.az.sasUrl('vault', 'vault', 'backups/x/manifest.json');
  const forged: Array<[string, unknown, RegExp]> = [
    [
      'forged-vault',
      { backupId, target: { url: inVault } },
      /lies inside (the|a) vault/,
    ],
    [
      'forged-overwrite',
      { backupId, target: { url: existing }, overwrite: 'no' },
      /the planRestore activity's input is invalid: \/overwrite must be boolean, not string/,
    ],
    [
      'forged-elsewhere',
      { backupId, target: { url: 'https://elsewhere.blob.core.windows.net/restores/x.vhd' } },
      /is not on an allowed storage endpoint/,
    ],
  ];
  for (const [id, input, error] of forged) {
    const answer = await send('POST', durable(`orchestrators/restoreDiskOrchestrator/${id}`), json, JSON.stringify(input));
    expect(answer.status).toBe(202);
    const done = await server.app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 });
    expect({ id, status: done.runtimeStatus, output: String(JSON.stringify(done.output)).slice(0, 300) }).toEqual({ id, status: 'Failed', output: expect.stringMatching(error) });
  }
  expect(await vaultBlobs()).toEqual(vault);
  expect(await restoreBlobs()).toEqual(restores);
});

test('the durable webhook with the system key: a forged backup with engine settings off the schema is refused by the activity', async () => {
  const vault = await vaultBlobs();
  const forged: Array<[string, unknown, RegExp]> = [
    [
      'forged-scratch',
      { backupId: 'forged-scratch', source: { url: sourceUrl }, settings: { scratchDir: '/' } },
      /the backup activity's input is invalid: \/settings has an unknown field "scratchDir" \(allowed: pageSize, cacheBytes, concurrency, takeSnapshot, full, chunking, codec, vaultDedupe\)/,
    ],
    [
      'forged-concurrency',
      { backupId: 'forged-concurrency', source: { url: sourceUrl }, settings: { concurrency: 100000 } },
      /concurrency must be <= 64/,
    ],
    [
      'forged-snapshot',
      { backupId: 'forged-snapshot', source: { url: sourceUrl }, settings: { takeSnapshot: 'yes' } },
      /takeSnapshot must be boolean/,
    ],
  ];
  for (const [id, input, error] of forged) {
    const answer = await send('POST', durable(`orchestrators/backupDiskOrchestrator/${id}`), json, JSON.stringify(input));
    expect(answer.status).toBe(202);
    const done = await server.app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 });
    expect({ id, status: done.runtimeStatus }).toEqual({ id, status: 'Failed' });
    expect(String(done.output)).toMatch(error);
  }
  expect(await vaultBlobs()).toEqual(vault);
});

test('the durable webhook with the system key: forged settle and retry settings fail the orchestration before any activity', async () => {
  const vault = await vaultBlobs();
  const settle = (over: Record<string, number>) => ({ quietPeriodMs: 300_000, maxWaitMs: 86_400_000, attempt: 1, ...over });
  const forged: Array<[string, string, unknown, RegExp]> = [
    [
      'settle-no-wait',
      'settleBlobOrchestrator',
      { source: { url: sourceUrl }, settle: settle({ quietPeriodMs: 0 }) },
      /^BadInput: the settle settings are out of range/,
    ],
    [
      'settle-endless',
      'settleBlobOrchestrator',
      { source: { url: sourceUrl }, settle: settle({ quietPeriodMs: 1000, maxWaitMs: 2_000_000_000 }) },
      /^BadInput: the settle settings are out of range/,
    ],
    [
      'settle-rounds',
      'settleBlobOrchestrator',
      { source: { url: sourceUrl }, settle: settle({ attempt: -1_000_000 }) },
      /^BadInput: the settle settings are out of range/,
    ],
    [
      'settle-missing',
      'settleBlobOrchestrator',
      { source: { url: sourceUrl } },
      /^BadInput: the settle settings are out of range/,
    ],
    [
      'backup-hammer',
      'backupDiskOrchestrator',
      { backupId: 'hammer', source: { url: sourceUrl }, retry: { firstRetryIntervalInMs: 1, maxAttempts: 1_000_000_000 } },
      /^BadInput: the retry settings are out of range \(maxAttempts 1 to 10/,
    ],
    [
      'verify-hammer',
      'verifyBackupOrchestrator',
      { backupId, retry: { firstRetryIntervalInMs: 0, maxAttempts: 3 } },
      /^BadInput: the retry settings are out of range/,
    ],
  ];
  for (const [id, name, input, error] of forged) {
    const answer = await send('POST', durable(`orchestrators/${name}/${id}`), json, JSON.stringify(input));
    expect(answer.status).toBe(202);
    const done = await server.app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 });
    expect({ id, status: done.runtimeStatus, output: String(done.output) }).toEqual({ id, status: 'Failed', output: expect.stringMatching(error) });
    const history = (await server.app.runtime.getStatus(id, { showHistory: true }))?.history ?? [];
    // No activity was scheduled (TaskScheduled) but #18's report of the failure, which carries no input of the engine.
    expect((history as Array<{ EventType: number; Name?: string }>).filter((e) => e.EventType === 4 && e.Name !== 'reportOperation')).toEqual([]);
  }
  const real = (await server.app.runtime.getStatus(`backup-${backupId}`, { showHistory: true }))?.history ?? [];
  expect(JSON.stringify(real)).toMatch(/"EventType":4\b/); // as a real backup's history shows
  expect(await vaultBlobs()).toEqual(vault);
});

test('a forged instance with hostile input fields does not break the listings (no 500 for everyone after)', async () => {
  const forged: Array<[string, string, unknown]> = [
    ['backup-forged-url', 'backupDiskOrchestrator', { backupId: 'forged-url', source: { url: 123 } }],
    ['backup-forged-source', 'backupDiskOrchestrator', { backupId: 'forged-source', source: 'http://x' }],
    ['restore-forged-target', 'restoreDiskOrchestrator', { backupId: 7, target: { url: ['x'] } }],
    ['backup-forged-null', 'backupDiskOrchestrator', null],
  ];
  for (const [id, name, input] of forged) {
    expect((await send('POST', durable(`orchestrators/${name}/${id}`), json, JSON.stringify(input))).status).toBe(202);
    expect((await server.app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Failed');
  }
  const list = await send('GET', '/api/backups', fnKey());
  expect(list.status).toBe(200);
  expectClean(list);
  expect((JSON.parse(list.text) as { backups: Array<{ id: string }> }).backups.map((b) => b.id)).toEqual(expect.arrayContaining(['forged-url', 'forged-source', 'forged-null']));
  for (const target of ['/api/backups/forged-url', '/api/backups/forged-null']) {
    const one = await send('GET', target, fnKey());
    expect(one.status).toBe(200);
    expectClean(one);
  }
  expect((await send('GET', durable('instances'))).status).toBe(200);
});

test('Event Grid: malformed percent-encoding in data.url and a topic of another account are no 500 and start nothing', async () => {
  const before = await instanceIds();
  const blobUrl = `${env.az.accounts.src.endpoint}/disks/red.vhd`;
  const ignoredWhy: string[] = [];
  const event = (url: string, account: string) => ({
    id: `e-${Math.random().toString(16).slice(2)}`,
    eventType: 'Microsoft.Storage.BlobCreated',
    subject: '/blobServices/default/containers/disks/blobs/red.vhd',
    topic: `/subscriptions/5f8b2c1e-0000-4000-8000-000000000001/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${account}`,
    eventTime: '2024-05-02T01:00:00Z',
    dataVersion: '',
    data: { api: 'PutBlob', eTag: '0x8DC0', blobType: 'PageBlob', url },
  });
  const hostile = [
    event(`${env.az.accounts.src.endpoint}/disks/%E0%A4%A.vhd`, 'src'),
    // The topic names the watched account; the URL is a blob of another (allowed) account's unwatched container.
    event(`${env.az.accounts.vault.endpoint}/disks/red.vhd`, 'src'),
    event(`${env.az.accounts.vault.endpoint}/vault/pagewise-vault.json`, 'src'),
  ];
  for (const e of hostile) {
    logs.length = 0;
    const answer = await send('POST', '/runtime/webhooks/eventgrid?functionName=diskEvents', { ...json, ...egKey() }, JSON.stringify([e]));
    expect({ status: answer.status, text: answer.text }).toEqual({ status: 200, text: '{"delivered":1}' });
    ignoredWhy.push(...logs.filter((l) => / ignored: /.test(l)).map((l) => l.replace(/^event \S+ ignored: /, '')));
  }
  expect(ignoredWhy).toEqual([
    'the event carries no blob URL',
    'the blob URL is on account vault, not on account src that raised the event',
    'the blob URL is on account vault, not on account src that raised the event',
  ]);
  // An event ID or type with line breaks forges no log line.
  logs.length = 0;
  const forged = { ...event(blobUrl, 'src'), id: 'x\nevent forged ignored: all is well', eventType: 'Evil\r\nevent forged2' };
  const answer = await send('POST', '/runtime/webhooks/eventgrid?functionName=diskEvents', { ...json, ...egKey() }, JSON.stringify(forged));
  expect(answer.status).toBe(200);
  expect(logs.join('\n').split('\n').filter((l) => l.startsWith('event forged'))).toEqual([]);
  expect(logs.some((l) => l.includes('event x\\x0Aevent forged ignored: all is well ignored: event type Evil\\x0D\\x0Aevent forged2 is not handled'))).toBe(true);
  expect(await instanceIds()).toEqual(before);
});

test('an Event Grid validation handshake needs the Event Grid key and echoes nothing; an unknown /api path is a capped problem', async () => {
  const before = await instanceIds();
  const validation = [{ id: 'v-1', eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent', subject: '', eventTime: '2024-05-02T01:00:00Z', dataVersion: '1', data: { validationCode: 'ATTACKER-<script>-CODE', validationUrl: 'http://127.0.0.1:9/evil' } }];
  expectProblem(await send('POST', '/runtime/webhooks/eventgrid?functionName=diskEvents', { ...json, ...fnKey() }, JSON.stringify(validation)), 401, 'Unauthorized');
  const answer = await send('POST', '/runtime/webhooks/eventgrid?functionName=diskEvents', { ...json, ...egKey() }, JSON.stringify(validation));
  expect({ status: answer.status, text: answer.text }).toEqual({ status: 200, text: '{"delivered":1}' });
  expectClean(answer);
  const unknown = await send('GET', `/api/${'x'.repeat(5000)}`, fnKey());
  expectProblem(unknown, 404, 'NotFound', new RegExp(`^no function serves GET /api/x{75}…$`));
  expect(JSON.parse(unknown.text)).toMatchObject({ type: 'https://pagewise.dev/problems/notfound' });
  expect(await instanceIds()).toEqual(before);
});

test('a policy blob of 9 MiB is refused before it is read; the admin endpoint says the timer failed and why', async () => {
  const before = await instanceIds();
  const blob = env.az.accounts.src.service.getContainerClient('disks').getBlockBlobClient('policy.json');
  await blob.upload(Buffer.alloc(9 * MiB, 0x20), 9 * MiB);
  settings.PAGEWISE_POLICY_URL = env.az.sasUrl('src', 'disks', 'policy.json', { permissions: 'r' });
  try {
    const answer = await send('POST', '/admin/functions/scheduledBackups', { ...json, 'x-functions-key': server.keys.masterKey }, '{}');
    expectProblem(answer, 500, 'FunctionFailed', /^scheduledBackups failed: BadInput: the backup policy at PAGEWISE_POLICY_URL is 9437184 bytes; at most 8388608 bytes are read$/);
  } finally {
    delete settings.PAGEWISE_POLICY_URL;
  }
  expect(await instanceIds()).toEqual(before);
});

test('redact removes function keys from URLs and headers, and a SAS inside a percent-encoded URL, in any case', () => {
  const key = 'aB3_dEf-9876543210zyxwvutsrqponmlkjihgfedcb';
  for (const text of [
    `http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/x?taskHub=h&code=${key}`,
    `http://127.0.0.1:7071/api/backups?CODE=${key}`,
    `x-functions-key: ${key}`,
    `{"x-functions-key":"${key}"}`,
    `?sv=1&SIG=${key}`,
    `AccountKey=${key};`,
    `/api/x%3Fsv%3D2024%26SIG%3D${key}%26se%3D1`,
    `https%3A%2F%2Fa.blob.core.windows.net%2Fc%2Fb%3Fsig%3D${key}`,
  ]) {
    expect(redact(text)).not.toContain(key);
  }
  expect(redact(`/api/x%3Fsv%3D2024%26sig%3D${key}%26se%3D1`)).toBe('/api/x%3Fsv%3D2024%26sig%3DREDACTED%26se%3D1');
});

test('the nesting count ignores brackets inside strings (escaped quotes included) and allows 64 levels', () => {
  expect(nestsTooDeep(JSON.stringify({ a: '['.repeat(1000), b: 'x\\"[[[[' + '{'.repeat(100) }))).toBe(false);
  expect(nestsTooDeep(`${'['.repeat(64)}${']'.repeat(64)}`)).toBe(false);
  expect(nestsTooDeep(`${'['.repeat(65)}${']'.repeat(65)}`)).toBe(true);
  expect(nestsTooDeep(`{"a":"\\\\"${'['.repeat(65)}`)).toBe(true); // an escaped backslash ends before the quote: the brackets are outside
});
