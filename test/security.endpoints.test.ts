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
import { readSettings, useAppSettings } from '../functions/settings';
import { Orchestrators } from '../orchestrations/contracts';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { jsonRequest } from './harness/http-request';
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

const request = jsonRequest;

async function problemOf(response: HttpResponse): Promise<{ status: number; title: string; detail: string }> {
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  return (await response.json()) as { status: number; title: string; detail: string };
}

const instanceCount = async () => (await app.runtime.listInstances()).length;

test('the rule: Azure\'s own https endpoint of the account on the default port, a configured endpoint, or a sealed grant', () => {
  // The CLI's configuration (the app configured its own when it started, in this same process).
  configureStorageEndpoints(env.az.storageEndpoints.split(','), CLI_SETTING);
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
    [
      'backup <source>',
      'the source disk URL',
      (url) => ['backup', url, '--vault', env.vault.url, '--key-file', keyFile],
    ],
    [
      'backup --vault',
      'the vault URL',
      (url) => ['backup', env.sourceUrl('sec.vhd'), '--vault', url, '--key-file', keyFile],
    ],
    [
      'restore --to',
      'the restore target URL',
      (url) => ['restore', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--to', url],
    ],
    [
      'verify --source',
      'the source disk URL',
      (url) => ['verify', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--source', url],
    ],
    [
      'list --vault',
      'the vault URL',
      (url) => ['list', '--vault', url],
    ],
    [
      'upload <page-blob-url>',
      'the page-blob URL',
      (url) => ['upload', keyFile, url],
    ],
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
    [
      'POST /api/backups source',
      'source.url',
      (url) => request('POST', '/api/backups', { source: { url } }),
      'startBackup',
    ],
    [
      'POST /api/restores target',
      'target.url',
      (url) => request('POST', '/api/restores', { backupId, target: { url } }),
      'startRestore',
    ],
    [
      'POST /api/verifications source',
      'source.url',
      (url) => request('POST', '/api/verifications', { backupId, source: { url } }),
      'startVerification',
    ],
    [
      'GET /api/backups?disk=',
      'the disk query parameter',
      (url) => request('GET', `/api/backups?disk=${encodeURIComponent(url)}`),
      'listBackups',
    ],
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
  // The app's settings in force again: the CLI runs of earlier tests configured their own endpoints in this shared process.
  beforeAll(() => useAppSettings(appSettings));
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

// ---- red team: URLs (issue #10 round 2) ----------------------------------------------------------
describe('round 2: URL spellings hold the rule (WHATWG normalises before the check and before the request)', () => {
  test('other spellings of a host: refused or the same endpoint, never a different one', () => {
    const ok = (url: string) => allowedEndpointOf({ url }, 'blob', 'x');
    const refused = (url: string) => expect(() => ok(url)).toThrow(refusal('x', CLI_SETTING));
    const azure = `https://acct.blob.core.windows.net`;
    expect(ok(`HTTPS://ACCT.BLOB.CORE.WINDOWS.NET/disks/a.vhd?${SAS}`)).toBe(azure);
    expect(ok(`https://acct.blob.core.windows.net:443/disks/a.vhd?${SAS}`)).toBe(azure); // the default port spelt out
    expect(ok(`https://acct.blob.core.win\tdows.net/disks/a.vhd?${SAS}`)).toBe(azure); // a tab is stripped, as the client would
    expect(ok(`https://acct\u3002blob\u3002core\u3002windows\u3002net/disks/a.vhd?${SAS}`)).toBe(azure); // ideographic dots: the same host on the wire
    refused(`https://acct.blob.core.windows.net./disks/a.vhd?${SAS}`); // trailing dot: another name
    refused(`https://acct.blob.core.windows.net%2eevil.example/disks/a.vhd?${SAS}`);
    // A backslash ends the host (as the client reads it too): what follows is path, and no container name.
    expect(() => ok(`https://acct.blob.core.windows.net\\@evil.example/disks/a.vhd?${SAS}`)).toThrow('x has no valid container name: https://acct.blob.core.windows.net/@evil.example/disks/a.vhd');
    expect(() => ok(`https://evil.example\\@acct.blob.core.windows.net/disks/a.vhd?${SAS}`)).toThrow('x has no valid container name: https://evil.example/@acct.blob.core.windows.net/disks/a.vhd');
    expect(() => ok(`https://u@acct.blob.core.windows.net/disks/a.vhd?${SAS}`)).toThrow('x must not carry user:password');
    // A Cyrillic "а" becomes punycode (xn--…): not an account name.
    expect(() => ok(`https://\u0430cct.blob.core.windows.net/disks/a.vhd?${SAS}`)).toThrow(/x has no valid storage account name: https:\/\/xn--cct-5cd\.blob/);
    // The configured emulator's address in decimal, hex, short and octal form is the same address and endpoint.
    const { port } = env.az;
    for (const host of ['2130706433', '0x7f.1', '127.1', '0177.0.0.1']) {
      expect(ok(`http://${host}:${port}/src/disks/a.vhd?${SAS}`)).toBe(env.az.accounts.src.endpoint);
      refused(`http://${host}:${open.port}/src/disks/a.vhd?${SAS}`);
    }
    for (const host of ['[::1]', '[::ffff:127.0.0.1]', '[::127.0.0.1]', 'localhost', 'LOCALHOST', 'localhost.', '0.0.0.0']) refused(`http://${host}:${port}/src/disks/a.vhd?${SAS}`);
  });

  test('a %-encoded "/.." in a blob name is refused: it would resolve into another container (the vault) on the wire', async () => {
    const vaultBefore = await blobNames('vault');
    const target = `${env.az.accounts.vault.endpoint}/restores/x%2F..%2F..%2Fvault%2Fsmuggled.vhd`;
    const expected = (what: string, url: string) => ({ code: 2, stdout: '', stderr: `pagewise: ${what} has a "." or ".." path segment in its blob name: ${url}\n` });
    const conn = { PAGEWISE_TARGET_CONNECTION_STRING: env.az.accounts.vault.connectionString };
    expect(await cli(['restore', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--to', target, '--force'], conn)).toEqual(expected('the restore target URL', target));
    const sneaky = `${env.az.accounts.vault.endpoint}/restores/a%5C..%5C..%5Cvault%5Cs.vhd`; // backslashes
    expect(await cli(['restore', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--to', sneaky], conn)).toEqual(expected('the restore target URL', sneaky));
    const source = `${env.az.accounts.src.endpoint}/disks/x%2F..%2Fsec.vhd`;
    expect(await cli(['backup', source, '--vault', env.vault.url, '--key-file', keyFile], { PAGEWISE_SOURCE_CONNECTION_STRING: env.az.accounts.src.connectionString })).toEqual(expected('the source disk URL', source));
    const upload = `${env.az.accounts.vault.endpoint}/restores/y%2F..%2F..%2Fvault%2Fpagewise-vault.json`;
    expect((await cli(['upload', keyFile, upload], conn)).code).toBe(2);
    // Over HTTP too (the app would write with its own identity).
    const problem = await problemOf(await app.host.invokeHttp('startRestore', request('POST', '/api/restores', { backupId, target: { url: target } })));
    expect(problem).toMatchObject({ status: 400, detail: `target.url has a "." or ".." path segment in its blob name: ${target}` });
    expect(await blobNames('vault')).toEqual(vaultBefore);
    expect(await blobNames('restores')).toEqual([]);
  });

  test('a malformed %-escape or a bare # in the path is bad input, not an internal error or a shortened name', async () => {
    const url = `${env.az.accounts.src.endpoint}/disks/%E0%A4%A.vhd?${SAS}`;
    expect(await cli(['backup', url, '--vault', env.vault.url, '--key-file', keyFile])).toEqual({
      code: 2, stdout: '', stderr: `pagewise: the source disk URL has a malformed %-escape in its path: ${url.split('?')[0]}\n`,
    });
    // A bare # would cut the blob name (and hide the SAS in a fragment that is never sent).
    const hashed = `${env.az.accounts.src.endpoint}/disks/sec#2.vhd?${SAS}`;
    expect(await cli(['backup', hashed, '--vault', env.vault.url, '--key-file', keyFile])).toEqual({
      code: 2, stdout: '', stderr: `pagewise: the source disk URL has a #fragment, which is never sent; write a # in a blob name as %23: ${env.az.accounts.src.endpoint}/disks/sec\n`,
    });
  });

  test('query parameters smuggled twice or in another case are refused; a snapshot must be a snapshot time', async () => {
    const base = env.sourceUrl('sec.vhd');
    const t = '2024-05-02T01:00:00.0000000Z';
    const cases: Array<[string, string]> = [
      [
        `${base}&snapshot=${t}&snapshot=2024-05-03T01:00:00Z`,
        'the source disk URL gives the query parameter "snapshot" more than once',
      ],
      [
        `${base}&snapshot=${t}&Snapshot=2024-05-03T01:00:00Z`,
        'the source disk URL gives the query parameter "snapshot" more than once',
      ],
      [
        `${base}&SNAPSHOT=${t}`,
        'the source disk URL spells the snapshot parameter "SNAPSHOT"; write it as snapshot=',
      ],
      [
        `${base}&sig=second`,
        'the source disk URL gives the query parameter "sig" more than once',
      ],
      [
        `${base}&%73ig=second`,
        'the source disk URL gives the query parameter "sig" more than once',
      ],
      [
        `${base}&snapshot=x%26sig%3Dsmuggled`,
        'the source disk URL has a snapshot parameter that is not a snapshot time (e.g. 2024-05-02T01:00:00.0000000Z)',
      ],
      // A SAS URL's query rides along on every request: these would change what each operation does.
      [
        `${base}&comp=metadata`,
        'the source disk URL has the query parameter "comp": a storage URL\'s query may hold only a SAS and snapshot=',
      ],
      [
        `${base}&restype=container`,
        'the source disk URL has the query parameter "restype": a storage URL\'s query may hold only a SAS and snapshot=',
      ],
      [
        `${base}&timeout=1`,
        'the source disk URL has the query parameter "timeout": a storage URL\'s query may hold only a SAS and snapshot=',
      ],
      [
        `${base}&versionid=2024-05-02T01:00:00.0000000Z`,
        'the source disk URL has the query parameter "versionid": a storage URL\'s query may hold only a SAS and snapshot=',
      ],
      [
        `${base.replace('sv=', 'SV=')}`,
        'the source disk URL has the query parameter "sv": a storage URL\'s query may hold only a SAS and snapshot=',
      ],
      [
        `${base.split('?')[0]}?comp=list`,
        'the source disk URL has the query parameter "comp": a storage URL\'s query may hold only a SAS and snapshot=',
      ], // no SAS: not silently dropped either
    ];
    for (const [url, message] of cases) {
      expect(await cli(['backup', url, '--vault', env.vault.url, '--key-file', keyFile])).toEqual({ code: 2, stdout: '', stderr: `pagewise: ${message}\n` });
    }
    expect(await cli(['restore', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--to', `${env.targetUrl('q.vhd')}&SNAPSHOT=${t}`])).toEqual({
      code: 2, stdout: '', stderr: 'pagewise: the restore target URL spells the snapshot parameter "SNAPSHOT"; write it as snapshot=\n',
    });
    expect(await blobNames('restores')).toEqual([]);
  });

  test('a connection string sends over plain http only to a configured endpoint (an open listener sees nothing)', async () => {
    const key = Buffer.alloc(64, 7).toString('base64');
    const message = (what: string) => `pagewise: ${what} is on a plain http endpoint (its connection string's); Pagewise sends a key's requests over http only to an endpoint listed in ${CLI_SETTING}, use https\n`;
    const onListener = `DefaultEndpointsProtocol=http;AccountName=vault;AccountKey=${key};BlobEndpoint=http://127.0.0.1:${open.port}/vault;`;
    expect(await cli(['list', '--vault', `http://127.0.0.1:${open.port}/vault/vault`], { PAGEWISE_VAULT_CONNECTION_STRING: onListener })).toEqual({ code: 2, stdout: '', stderr: message('the vault URL') });
    // A real account's string with http: refused before any lookup.
    const realHttp = `DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=${key};EndpointSuffix=core.windows.net`;
    expect(await cli(['list', '--vault', 'http://acct.blob.core.windows.net/vault'], { PAGEWISE_VAULT_CONNECTION_STRING: realHttp })).toEqual({ code: 2, stdout: '', stderr: message('the vault URL') });
    // A BlobEndpoint with a container in its path would put the URL's container and blob under it (into the vault).
    const vaultBefore = await blobNames('vault');
    const deep = env.az.accounts.vault.connectionString.replace(/BlobEndpoint=([^;]+);/, 'BlobEndpoint=$1/vault;');
    expect(await cli(['restore', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--to', `${env.az.accounts.vault.endpoint}/restores/deep.vhd`], { PAGEWISE_TARGET_CONNECTION_STRING: deep })).toEqual({
      code: 2, stdout: '', stderr: "pagewise: the connection string's BlobEndpoint has a path beyond the account: it must be the account's endpoint, not a container\n",
    });
    expect(await blobNames('vault')).toEqual(vaultBefore);
    expect(await blobNames('restores')).toEqual([]);
    // The configured emulator keeps working with its http string.
    expect((await cli(['list', '--vault', `${env.az.accounts.vault.endpoint}/vault`], { PAGEWISE_VAULT_CONNECTION_STRING: env.az.accounts.vault.connectionString })).code).toBe(0);
  });
});

test('round 2: PAGEWISE_ALLOWED_ACCOUNTS entries in odd forms are refused by name or mean exactly one endpoint', () => {
  const settingsWith = (entries: string) => readSettings({ ...appSettings, PAGEWISE_VAULT_URL: 'https://acct.blob.core.windows.net/vault', PAGEWISE_ALLOWED_ACCOUNTS: entries });
  const bad = (entries: string, why: string) => expect(() => settingsWith(entries)).toThrow(`${APP_SETTING}: ${why}`);
  try {
    bad('*', '"*" is neither a storage account name nor an endpoint URL');
    bad('acct,https://*.blob.core.windows.net', '"https://*.blob.core.windows.net" must name one host (no wildcards)');
    bad('acct,http://acct.blob.core.windows.net', '"http://acct.blob.core.windows.net" is an Azure storage host: it must be https on the default port');
    bad('acct,https://other.blob.core.windows.net:8443', '"https://other.blob.core.windows.net:8443" is an Azure storage host: it must be https on the default port');
    bad('acct,https://acct.blob.core.windows.net/vault', '"https://acct.blob.core.windows.net/vault" must have no path (an endpoint, not a container)');
    bad(`acct,https://acct.blob.core.windows.net?${SAS}`, '"https://acct.blob.core.windows.net" must be a bare endpoint URL (no credentials, query or fragment)');
    bad('acct.blob.core.windows.net', '"acct.blob.core.windows.net" is neither a storage account name nor an endpoint URL');
    expect(() => settingsWith(' , ,')).toThrow(`${APP_SETTING} lists no storage account`);
    expect([...settingsWith(' ,ACCT,, HTTPS://ACCT.BLOB.CORE.WINDOWS.NET:443/ ').allowedEndpoints]).toEqual(['https://acct.blob.core.windows.net']);
  } finally {
    configureStorageEndpoints(env.az.storageEndpoints.split(','), CLI_SETTING);
  }
});

async function blobNames(container: string): Promise<string[]> {
  const names: string[] = [];
  for await (const b of env.az.accounts.vault.service.getContainerClient(container).listBlobsFlat()) names.push(`${b.name} ${b.properties.etag}`);
  return names.sort();
}

test('round 2: a sealed grant replayed with any change to its URL (query, case, another disk) is not the app\'s own', async () => {
  const { grantedSource, isOwnGrant } = await import('../functions/compute');
  const userKey = await loadUserKey(keyFile);
  const sealed = grantedSource(MD_URL, userKey);
  expect(isOwnGrant(sealed, userKey)).toBe(true);
  for (const url of [
    `${MD_URL}&sp=rw`, // a widened query
    MD_URL.replace('md-x1y2z3w4v5u6', 'MD-X1Y2Z3W4V5U6'), // the same host in another case
    MD_URL.replace('/abcd?', '/other?'), // another disk on the same host
    `${MD_URL} `,
  ]) {
    expect(isOwnGrant({ ...sealed, url }, userKey)).toBe(false);
  }
  expect(isOwnGrant({ ...sealed, grantSeal: sealed.grantSeal!.toUpperCase() }, userKey)).toBe(false);
  expect(isOwnGrant({ url: MD_URL, grantedBy: 'compute' }, userKey)).toBe(false);
  expect(isOwnGrant(sealed, Buffer.alloc(32, 1))).toBe(false); // another app's key
});
