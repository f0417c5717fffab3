/**
 * Issue #10, class 1 — server-side request forgery. "An account is an endpoint": Pagewise sends a
 * storage request only to an account's own Azure blob endpoint, an endpoint configured explicitly, or
 * its connection string's endpoint; everything else is refused before any request, with one message
 * whatever lies behind the URL. Each case proves that nothing was sent: plain TCP listeners on
 * 127.0.0.1 (one open, one closed port) must see no connection, and open and closed ports must give the
 * same answer. Other hosts appear only as text that is refused before any lookup (evil.example, md-…).
 */
import { HttpRequest, HttpResponse, LogLevel } from '@azure/functions';
import { captureIO, run } from '../cli/main';
import { allowedEndpointOf, backupDisk, configureStorageEndpoints, listBackups, writeNewKeyFile, loadUserKey } from '../core';
import { useSnapshotAccess } from '../functions/compute';
import { loadPolicy } from '../functions/policy';
import { readSettings } from '../functions/settings';
import { Orchestrators } from '../orchestrations/contracts';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { closedPort, CountingListener, startCountingListener, startRedirector } from './harness/listeners';
import * as path from 'node:path';

const SUB = '5f8b2c1e-0000-4000-8000-000000000001';
const SAS = 'sv=2024-01-01&sr=b&sp=r&sig=TOPSECRETSIG';
const MD_URL = `https://md-x1y2z3w4v5u6.z1.blob.storage.azure.net/snapc0/abcd?${SAS}`;

/** The one refusal: the same text for an open port, a closed port and a foreign host. */
const refusal = (what: string, setting: string) =>
  `${what} is not on an allowed storage endpoint: Pagewise sends requests only to an account's own blob endpoint (https://<account>.blob.core.windows.net) or to one listed in ${setting}`;
const CLI_SETTING = 'PAGEWISE_STORAGE_ENDPOINTS';
const APP_SETTING = 'PAGEWISE_ALLOWED_ACCOUNTS';

let env: TestEnv;
let app: LocalApp;
let open: CountingListener;
let open2: CountingListener;
let closed: number;
let keyFile: string;
let backupId: string;
let appSettings: Record<string, string>;
const logs: string[] = [];

/** The Azurite URL moved to another loopback port: the same path, so the same (allowed) account name. */
const onPort = (url: string, port: number) => url.replace(`:${env.az.port}/`, `:${port}/`);
/** The three kinds of place behind a refused URL: an open port, a closed port, a foreign host. */
const places = (url: string) => ({
  open: onPort(url, open.port),
  closed: onPort(url, closed),
  foreign: url.replace(`http://127.0.0.1:${env.az.port}/src/`, 'https://src.evil.example/').replace(`http://127.0.0.1:${env.az.port}/vault/`, 'https://vault.evil.example/'),
});

beforeAll(async () => {
  env = await startEnv();
  [open, open2, closed] = await Promise.all([startCountingListener(), startCountingListener(), closedPort()]);
  keyFile = path.join(env.tmp, 'user.key');
  await writeNewKeyFile(keyFile);
  const disk = await env.makeDisk('sec.vhd', MiB, [{ offset: 0, length: 64 * KiB, kind: 'text', seed: 1 }]);
  backupId = (await backupDisk({ source: disk.source, vault: env.vault, userKey: await loadUserKey(keyFile), pageSize: 64 * KiB, cacheBytes: 256 * KiB })).backupId;
  appSettings = {
    PAGEWISE_VAULT_URL: env.vault.url,
    PAGEWISE_USER_KEY: (await loadUserKey(keyFile)).toString('base64'),
    PAGEWISE_ALLOWED_ACCOUNTS: env.az.storageEndpoints,
    PAGEWISE_WATCHED_CONTAINERS: 'disks',
    PAGEWISE_PAGE_SIZE: String(64 * KiB),
    PAGEWISE_CACHE_BYTES: String(256 * KiB),
  };
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings,
    log: (_level: LogLevel, message: string) => logs.push(message),
  });
});

afterAll(async () => {
  await app?.stop();
  await Promise.all([open?.stop(), open2?.stop()]);
  await env?.stop();
});

// Whatever a test did, no refused URL reached a listener.
afterEach(() => {
  expect({ open: open.connections, open2: open2.connections }).toEqual({ open: 0, open2: 0 });
});

async function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, ...extraEnv });
  const code = await run(args, io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

function request(method: 'GET' | 'POST', url: string, body?: unknown): HttpRequest {
  const u = new URL(url, 'http://127.0.0.1:7071');
  return new HttpRequest({
    method,
    url: u.href,
    headers: { 'content-type': 'application/json' },
    query: Object.fromEntries(u.searchParams),
    ...(body !== undefined ? { body: { string: JSON.stringify(body) } } : {}),
  });
}

async function problemOf(response: HttpResponse): Promise<{ status: number; title: string; detail: string }> {
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  return (await response.json()) as { status: number; title: string; detail: string };
}

const instanceCount = async () => (await app.runtime.listInstances()).length;

test('the rule: Azure\'s own https endpoint of the account on the default port, a configured endpoint, or a sealed grant', () => {
  const ok = (url: string, grant = false) => allowedEndpointOf({ url, ...(grant ? { managedDiskGrant: true } : {}) }, 'blob', 'x');
  const refused = (url: string, grant = false) => expect(() => ok(url, grant)).toThrow(refusal('x', CLI_SETTING));
  expect(ok(`https://acct.blob.core.windows.net/disks/a.vhd?${SAS}`)).toBe('https://acct.blob.core.windows.net');
  refused(`http://acct.blob.core.windows.net/disks/a.vhd?${SAS}`); // not https
  refused(`https://acct.blob.core.windows.net:8443/disks/a.vhd?${SAS}`); // not the default port
  refused(`https://acct.blob.core.windows.net.evil.example/disks/a.vhd?${SAS}`);
  refused(`https://acct.evil.example/disks/a.vhd?${SAS}`);
  refused(`https://acct.blob.core.chinacloudapi.cn/disks/a.vhd?${SAS}`); // another cloud: not unless chosen
  refused(MD_URL); // a managed-disk host, typed
  expect(ok(MD_URL, true)).toBe('https://md-x1y2z3w4v5u6.z1.blob.storage.azure.net'); // the app's own grant
  refused(MD_URL.replace('.net/', '.net:444/'), true);
  refused(MD_URL.replace('https:', 'http:'), true);
  expect(ok(`${env.az.accounts.src.endpoint}/disks/a.vhd?${SAS}`)).toBe(env.az.accounts.src.endpoint); // configured
  refused(`${env.az.accounts.src.endpoint.replace('127.0.0.1', 'localhost')}/disks/a.vhd?${SAS}`); // another host spelling
  refused(`http://127.0.0.1:${env.az.port}/other/disks/a.vhd?${SAS}`); // another account on the configured host
  try {
    configureStorageEndpoints([], CLI_SETTING, 'core.chinacloudapi.cn');
    expect(ok(`https://acct.blob.core.chinacloudapi.cn/disks/a.vhd?${SAS}`)).toBe('https://acct.blob.core.chinacloudapi.cn');
    expect(() => ok(`https://acct.blob.core.windows.net/disks/a.vhd?${SAS}`)).toThrow(/https:\/\/<account>\.blob\.core\.chinacloudapi\.cn/);
    expect(() => configureStorageEndpoints([], CLI_SETTING, 'evil.example')).toThrow(/PAGEWISE_STORAGE_SUFFIX must be one of core\.windows\.net, core\.chinacloudapi\.cn, core\.usgovcloudapi\.net/);
    expect(() => configureStorageEndpoints(['http://127.0.0.1:10000'], CLI_SETTING)).toThrow(/must name the account as its only path segment/);
    expect(() => configureStorageEndpoints(['http://127.0.0.1:10000/src/disks'], CLI_SETTING)).toThrow(/must name the account as its only path segment/);
    expect(() => configureStorageEndpoints([`http://127.0.0.1:10000/src?${SAS}`], CLI_SETTING)).toThrow(/must be a bare endpoint URL/);
    expect(() => configureStorageEndpoints(['https://md-x1.z1.blob.storage.azure.net'], CLI_SETTING)).toThrow(/is a managed-disk export host/);
    expect(() => configureStorageEndpoints(['ftp://127.0.0.1/src'], CLI_SETTING)).toThrow(/must be an http\(s\) URL/);
  } finally {
    configureStorageEndpoints(env.az.storageEndpoints.split(','), CLI_SETTING);
  }
});

describe('CLI: a URL off the allowed endpoints is refused with one message, before any request', () => {
  const commands: Array<[string, string, (url: string) => string[]]> = [
    ['backup <source>', 'the source disk URL', (url) => ['backup', url, '--vault', env.vault.url, '--key-file', keyFile]],
    ['backup --vault', 'the vault URL', (url) => ['backup', env.sourceUrl('sec.vhd'), '--vault', url, '--key-file', keyFile]],
    ['restore --to', 'the restore target URL', (url) => ['restore', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--to', url]],
    ['verify --source', 'the source disk URL', (url) => ['verify', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--source', url]],
    ['list --vault', 'the vault URL', (url) => ['list', '--vault', url]],
    ['upload <page-blob-url>', 'the page-blob URL', (url) => ['upload', keyFile, url]],
  ];
  test.each(commands)('%s', async (_name, what, args) => {
    const base = what === 'the vault URL' ? env.az.sasUrl('vault', 'vault') : what === 'the source disk URL' ? env.sourceUrl('sec.vhd') : env.targetUrl('sec-restored.vhd');
    const at = places(base);
    const expected = `pagewise: ${refusal(what, CLI_SETTING)}\n`;
    const outcomes = [await cli(args(at.open)), await cli(args(at.closed)), await cli(args(at.foreign))];
    // Without a SAS the credential would be DefaultAzureCredential: refused before any token is asked for too.
    outcomes.push(await cli(args(at.open.split('?')[0])));
    for (const o of outcomes) expect(o).toEqual({ code: 2, stdout: '', stderr: expected });
    expect(await env.az.accounts.vault.service.getContainerClient('restores').getPageBlobClient('sec-restored.vhd').exists()).toBe(false);
  });

  test('a managed-disk host typed on the command line', async () => {
    expect(await cli(['backup', MD_URL, '--vault', env.vault.url, '--key-file', keyFile])).toEqual({ code: 2, stdout: '', stderr: `pagewise: ${refusal('the source disk URL', CLI_SETTING)}\n` });
  });

  test('a URL off its connection string\'s endpoint is refused, not redirected: no request to either', async () => {
    const key = Buffer.alloc(64, 7).toString('base64');
    const stringOn = (port: number) => `DefaultEndpointsProtocol=http;AccountName=vault;AccountKey=${key};BlobEndpoint=http://127.0.0.1:${port}/vault;`;
    const expected = { code: 2, stdout: '', stderr: "pagewise: the vault URL is not on the blob endpoint of its connection string; Pagewise sends a request only to the URL's own endpoint, never to another\n" };
    // URL on one listener, string on the other.
    expect(await cli(['list', '--vault', `http://127.0.0.1:${open.port}/vault/vault`], { PAGEWISE_VAULT_CONNECTION_STRING: stringOn(open2.port) })).toEqual(expected);
    // URL on the configured emulator endpoint, string on a listener: the string would have taken the request there.
    expect(await cli(['list', '--vault', `${env.az.accounts.vault.endpoint}/vault`], { PAGEWISE_VAULT_CONNECTION_STRING: stringOn(open.port) })).toEqual(expected);
    // String for another account of the same host.
    expect(await cli(['list', '--vault', `${env.az.accounts.vault.endpoint}/vault`], { PAGEWISE_VAULT_CONNECTION_STRING: env.az.accounts.src.connectionString })).toEqual(expected);
  });
});

describe('HTTP: a URL off PAGEWISE_ALLOWED_ACCOUNTS gets 403 with one message and starts nothing', () => {
  const routes: Array<[string, string, (url: string) => HttpRequest, string]> = [
    ['POST /api/backups source', 'source.url', (url) => request('POST', '/api/backups', { source: { url } }), 'startBackup'],
    ['POST /api/restores target', 'target.url', (url) => request('POST', '/api/restores', { backupId, target: { url } }), 'startRestore'],
    ['POST /api/verifications source', 'source.url', (url) => request('POST', '/api/verifications', { backupId, source: { url } }), 'startVerification'],
    ['GET /api/backups?disk=', 'the disk query parameter', (url) => request('GET', `/api/backups?disk=${encodeURIComponent(url)}`), 'listBackups'],
  ];
  test.each(routes)('%s', async (_name, what, build, fn) => {
    const before = await instanceCount();
    const at = places(env.sourceUrl('sec.vhd'));
    for (const url of [at.open, at.closed, at.foreign, at.open.split('?')[0], MD_URL]) {
      const problem = await problemOf(await app.host.invokeHttp(fn, build(url)));
      expect(problem).toMatchObject({ status: 403, title: 'AccessDenied', detail: refusal(what, APP_SETTING) });
    }
    expect(await instanceCount()).toBe(before);
  });

  test('an orchestration started with a forged Compute grant (no seal, or another URL\'s seal) fails before any request', async () => {
    const { grantedSource } = await import('../functions/compute');
    const target = onPort(env.sourceUrl('sec.vhd'), open.port);
    const sealedElsewhere = grantedSource(MD_URL, await loadUserKey(keyFile));
    for (const [id, source] of [
      ['backup-forged-grant', { url: target, grantedBy: 'compute' }],
      ['backup-forged-seal', { ...sealedElsewhere, url: target }],
      ['backup-typed-md-host', { url: MD_URL, grantedBy: 'compute', grantSeal: 'f'.repeat(64) }],
    ] as const) {
      await app.runtime.startNew(Orchestrators.backupDisk, { instanceId: id, input: { backupId: id.slice(7), source } });
      const status = await app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 });
      expect(status.runtimeStatus).toBe('Failed');
      expect(JSON.stringify(status.output)).toContain(refusal('the source disk URL', APP_SETTING));
    }
  });

  test('PAGEWISE_POLICY_URL off the allowed endpoints is refused before it is fetched', async () => {
    const settings = readSettings(appSettings);
    for (const url of Object.values(places(env.sourceUrl('policy.json')))) {
      await expect(loadPolicy({ url }, settings)).rejects.toThrow(refusal('PAGEWISE_POLICY_URL', APP_SETTING));
    }
  });
});

describe('Event Grid: event data cannot point the app elsewhere', () => {
  test('BlobCreated whose data.url is on another port with an allowed account name', async () => {
    for (const url of [onPort(`${env.az.accounts.src.endpoint}/disks/sec.vhd`, open.port), onPort(`${env.az.accounts.src.endpoint}/disks/sec.vhd`, closed)]) {
      logs.length = 0;
      const before = await instanceCount();
      await app.host.invokeEventGrid('diskEvents', {
        id: `ev-${closed}`,
        topic: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/src`,
        subject: '/blobServices/default/containers/disks/blobs/sec.vhd',
        eventType: 'Microsoft.Storage.BlobCreated',
        data: { api: 'CopyBlob', blobType: 'PageBlob', url, eTag: '0x8DC0000000000AA' },
      });
      expect(logs.filter((l) => / rejected: /.test(l))).toEqual([`event ev-${closed} rejected: AccessDenied: ${refusal('the created blob', APP_SETTING)}`]);
      expect(await instanceCount()).toBe(before);
    }
  });

  test('a grant that returns a URL off the managed-disk hosts and the allowed endpoints is refused', async () => {
    useSnapshotAccess({ grantRead: async () => onPort(env.sourceUrl('sec.vhd'), open.port) });
    logs.length = 0;
    const before = await instanceCount();
    const snapshot = `/subscriptions/${SUB}/resourceGroups/vm-rg/providers/Microsoft.Compute/snapshots/forged`;
    await app.host.invokeEventGrid('diskEvents', { id: 'snap-1', eventType: 'Microsoft.Resources.ResourceWriteSuccess', subject: snapshot, data: { resourceUri: snapshot, operationName: 'Microsoft.Compute/snapshots/write' } });
    expect(logs.filter((l) => / rejected: /.test(l))).toEqual([`event snap-1 rejected: AccessDenied: ${refusal('the URL the Compute grant returned', APP_SETTING)}`]);
    expect(await instanceCount()).toBe(before);
  });
});

describe('defence in depth: the endpoint guard on every client refuses a request leaving the checked endpoint', () => {
  test('a same-origin redirect to another account (path-style) is not followed; a cross-origin one goes nowhere', async () => {
    const toOtherAccount = await startRedirector((p) => p.replace(/^\/src\//, '/vault/'));
    const toListener = await startRedirector((p) => `http://127.0.0.1:${open.port}${p}`);
    try {
      configureStorageEndpoints([...env.az.storageEndpoints.split(','), `http://127.0.0.1:${toOtherAccount.port}/src`, `http://127.0.0.1:${toListener.port}/src`], CLI_SETTING);
      await expect(listBackups({ url: `http://127.0.0.1:${toOtherAccount.port}/src/vault?${SAS}` })).rejects.toMatchObject({ code: 'AccessDenied', message: refusal('the vault URL', CLI_SETTING) });
      expect(toOtherAccount.paths.length).toBeGreaterThan(0);
      expect(toOtherAccount.paths.every((p) => p.startsWith('/src/vault?'))).toBe(true);
      await expect(listBackups({ url: `http://127.0.0.1:${toListener.port}/src/vault?${SAS}` })).rejects.toBeDefined();
      expect(toListener.paths.length).toBeGreaterThan(0);
    } finally {
      configureStorageEndpoints(env.az.storageEndpoints.split(','), CLI_SETTING);
      await Promise.all([toOtherAccount.stop(), toListener.stop()]);
    }
  });
});
