/**
 * The bad-input catalog: one table of bad inputs across the three surfaces — the CLI (in-process
 * `run` with captured IO), the HTTP functions (real HttpRequest/InvocationContext through the local
 * durable runtime) and the Event Grid function — each with the status or exit code and the message
 * it must produce. For every case:
 *   CLI        exit ≠ 0 (the given code), nothing on stdout, exactly one `pagewise: …` line on stderr;
 *   HTTP       the given 4xx, `application/problem+json`, a {type,title,status,detail} body;
 *   Event Grid acknowledged (the handler does not throw), one log line naming why it was not acted on;
 *   serve      over real HTTP to `pagewise serve`: the given status and problem title, no key or SAS back;
 * and nothing half-written: no blob of the vault appears or changes (so no manifest, in either layout), no
 * orchestration instance is created, and no restore target is created or changed. The vault is a version-1
 * vault (makeVaultV1): its cases include a backup made with another user key, which only version 1 holds
 * (a version-2 vault has one keyring); the version-2 answers to a wrong key or an unfinished backup are in
 * security.vault-v2.test.ts.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, promises as fs, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { HttpRequest, HttpResponse, LogLevel } from '@azure/functions';
import { captureIO, run } from '../cli/main';
import { backupDisk, generateKey, loadUserKey, planBackup, writeNewKeyFile } from '../core';
import { request } from 'node:http';
import { LocalApp } from '../runtime/localApp';
import { LocalServer, startLocalServer } from '../runtime/serve';
import { assertSnapshotReadable, useSnapshotAccess } from '../functions/compute';
import { KiB, makeVaultV1, MiB, startEnv, TestEnv } from './harness/env';
import { manifestBlobs } from './harness/vault-blobs';
import { recordSummary } from './harness/fault-summary';
import { closedPort, CountingListener, startCountingListener } from './harness/listeners';
import { fifoIn as hostileFifo, sharedDirIn, TERMINAL_ESCAPES } from './harness/hostile-files';

type Surface = 'cli' | 'http' | 'eventgrid' | 'serve';

interface Fixture {
  env: TestEnv;
  sourceUrl: string;
  vaultUrl: string;
  keyFile: string;
  otherKeyFile: string;
  backupId: string;
  otherKeyBackupId: string;
  incompleteBackupId: string;
  existingFile: string;
  existingBlobUrl: string;
  tmp: string;
}

type Input =
  | { cli: string[]; env?: Record<string, string> }
  | { method: 'GET' | 'POST'; path: string; body?: unknown; params?: Record<string, string>; headers?: Record<string, string>; fn: string }
  | { event: unknown }
  // serve (issue #10 class 3): one request over HTTP to `pagewise serve`, with the key of a level (or none)
  | { serve: { method: string; path: string; key: 'function' | 'durabletask' | 'eventgrid' | 'master' | 'none'; headers?: Record<string, string>; body?: string } };

interface Case {
  surface: Surface;
  description: string;
  input: (f: Fixture) => Input;
  /** CLI exit code, HTTP status, or what happens to an event. */
  expected: number | 'ignored' | 'rejected';
  /** HTTP and serve: the problem's title. */
  title?: string;
  message: RegExp;
  /** A restore target (file path or blob URL) that must not be created or changed. */
  target?: (f: Fixture) => string;
}

const SUB = '5f8b2c1e-0000-4000-8000-000000000001';
const DISK = 'bi.vhd';

/** URL of `blob` under a container-level SAS (e.g. list-only). */
const containerSasBlobUrl = (f: Fixture, permissions: string, blob = DISK) => {
  const url = f.env.az.sasUrl('src', 'disks', undefined, { permissions });
  return url.replace('/disks?', `/disks/${blob}?`);
};
const expiredSourceUrl = (f: Fixture) =>
  f.env.az.sasUrl('src', 'disks', DISK, { permissions: 'r', startsOn: new Date(Date.now() - 2 * 3600_000), expiresOn: new Date(Date.now() - 3600_000) });
const expiredVaultUrl = (f: Fixture) =>
  f.env.az.sasUrl('vault', 'vault', undefined, { startsOn: new Date(Date.now() - 2 * 3600_000), expiresOn: new Date(Date.now() - 3600_000) });
const cliBackup = (f: Fixture, source: string, ...extra: string[]) => ({ cli: ['backup', source, '--vault', f.vaultUrl, '--key-file', f.keyFile, '--page-size', '64KiB', '--cache', '256KiB', ...extra] });
const cliRestore = (f: Fixture, id: string, to: string, ...extra: string[]) => ({ cli: ['restore', id, '--vault', f.vaultUrl, '--key-file', f.keyFile, '--to', to, ...extra] });
const newFile = (f: Fixture, name: string) => path.join(f.tmp, name);
const startBackup = (body: unknown, headers?: Record<string, string>) => ({ method: 'POST' as const, path: '/api/backups', body, fn: 'startBackup', ...(headers ? { headers } : {}) });
const startRestore = (body: unknown) => ({ method: 'POST' as const, path: '/api/restores', body, fn: 'startRestore' });

function blobCreated(account: string, url: string, overrides: Record<string, unknown> = {}, data: Record<string, unknown> = {}) {
  return {
    topic: `/subscriptions/${SUB}/resourceGroups/storage-rg/providers/Microsoft.Storage/storageAccounts/${account}`,
    subject: `/blobServices/default/containers/disks/blobs/${DISK}`,
    eventType: 'Microsoft.Storage.BlobCreated',
    id: `bad-${Math.random().toString(16).slice(2)}`,
    data: { api: 'PutBlob', eTag: '0x8DC00000000AAAA', blobType: 'PageBlob', url, contentLength: 0, ...data },
    dataVersion: '',
    metadataVersion: '1',
    eventTime: '2024-05-02T01:00:00Z',
    ...overrides,
  };
}

// ---- SSRF (issue #10 class 1): an account is an endpoint; one refusal whatever lies behind a URL -----
// A URL off the allowed endpoints (an allowed account name on another loopback port, open or closed, a
// foreign host, a typed managed-disk host) is refused before any request: the listener sees nothing.
/** The one message a URL off the allowed endpoints gets, after `prefix` (exactly, to the end of the line). */
function refusedEndpoint(prefix: string, setting: string, anchored = true): RegExp {
  const text = `${prefix} is not on an allowed storage endpoint: Pagewise sends requests only to an account's own blob endpoint (https://<account>.blob.core.windows.net) or to one listed in ${setting}`;
  return new RegExp(`${anchored ? '^' : ''}${text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`);
}
let ssrfOpen: CountingListener;
let ssrfClosedPort: number;
beforeAll(async () => {
  [ssrfOpen, ssrfClosedPort] = await Promise.all([startCountingListener(), closedPort()]);
});
afterAll(async () => ssrfOpen?.stop());
const elsewhere = (f: Fixture, url: string, port: number | 'closed') => url.replace(`:${f.env.az.port}/`, `:${port === 'closed' ? ssrfClosedPort : port}/`);
const CLI_ENDPOINTS = 'PAGEWISE_STORAGE_ENDPOINTS';
const APP_ENDPOINTS = 'PAGEWISE_ALLOWED_ACCOUNTS';
const MD_HOST_URL = 'https://md-x1y2z3w4v5u6.z1.blob.storage.azure.net/snapc0/abcd?sv=2018-03-28&sr=b&sp=r&sig=TOPSECRETSIG';
const SSRF_CASES: Case[] = [
  {
    surface: 'cli',
    description: 'backup: allowed account name on another loopback port (open)',
    input: (f) => cliBackup(f, elsewhere(f, f.sourceUrl, ssrfOpen.port)),
    expected: 2,
    message: refusedEndpoint('pagewise: the source disk URL', CLI_ENDPOINTS),
  },
  {
    surface: 'cli',
    description: 'backup: allowed account name on another loopback port (closed)',
    input: (f) => cliBackup(f, elsewhere(f, f.sourceUrl, 'closed')),
    expected: 2,
    message: refusedEndpoint('pagewise: the source disk URL', CLI_ENDPOINTS),
  },
  {
    surface: 'cli',
    description: 'backup: source on a foreign host',
    input: (f) => cliBackup(f, 'https://src.evil.example/disks/bi.vhd?sv=2024-01-01&sig=TOPSECRETSIG'),
    expected: 2,
    message: refusedEndpoint('pagewise: the source disk URL', CLI_ENDPOINTS),
  },
  {
    surface: 'cli',
    description: 'backup: a managed-disk host typed by the caller',
    input: (f) => cliBackup(f, MD_HOST_URL),
    expected: 2,
    message: refusedEndpoint('pagewise: the source disk URL', CLI_ENDPOINTS),
  },
  {
    surface: 'cli',
    description: 'backup: vault on another loopback port, no SAS (DefaultAzureCredential)',
    input: (f) => ({ cli: ['backup', f.sourceUrl, '--vault', elsewhere(f, f.vaultUrl, ssrfOpen.port).split('?')[0], '--key-file', f.keyFile] }),
    expected: 2,
    message: refusedEndpoint('pagewise: the vault URL', CLI_ENDPOINTS),
  },
  {
    surface: 'cli',
    description: 'restore: --to on another loopback port',
    input: (f) => cliRestore(f, f.backupId, elsewhere(f, f.env.targetUrl('ssrf.vhd'), ssrfOpen.port)),
    expected: 2,
    message: refusedEndpoint('pagewise: the restore target URL', CLI_ENDPOINTS),
    target: (f) => f.env.targetUrl('ssrf.vhd'),
  },
  {
    surface: 'cli',
    description: 'verify: --source on another loopback port',
    input: (f) => ({ cli: ['verify', f.backupId, '--vault', f.vaultUrl, '--key-file', f.keyFile, '--source', elsewhere(f, f.sourceUrl, ssrfOpen.port)] }),
    expected: 2,
    message: refusedEndpoint('pagewise: the source disk URL', CLI_ENDPOINTS),
  },
  {
    surface: 'cli',
    description: 'upload: page blob on another loopback port',
    input: (f) => ({ cli: ['upload', f.existingFile, elsewhere(f, f.env.targetUrl('ssrf-up.vhd'), ssrfOpen.port)] }),
    expected: 2,
    message: refusedEndpoint('pagewise: the page-blob URL', CLI_ENDPOINTS),
    target: (f) => f.env.targetUrl('ssrf-up.vhd'),
  },
  {
    surface: 'cli',
    description: 'list: URL on the emulator, connection string on another endpoint (not redirected)',
    input: (f) => ({ cli: ['list', '--vault', `${f.env.az.accounts.vault.endpoint}/vault`], env: { PAGEWISE_VAULT_CONNECTION_STRING: `DefaultEndpointsProtocol=http;AccountName=vault;AccountKey=${Buffer.alloc(64, 1).toString('base64')};BlobEndpoint=http://127.0.0.1:${ssrfOpen.port}/vault;` } }),
    expected: 2,
    message: /^pagewise: the vault URL is not on the blob endpoint of its connection string; Pagewise sends a request only to the URL's own endpoint, never to another$/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: allowed account name on another loopback port (open)',
    input: (f) => startBackup({ source: { url: elsewhere(f, f.sourceUrl, ssrfOpen.port) } }),
    expected: 403,
    title: 'AccessDenied',
    message: refusedEndpoint('AccessDenied: source.url', APP_ENDPOINTS),
  },
  {
    surface: 'http',
    description: 'POST /api/backups: allowed account name on another loopback port (closed)',
    input: (f) => startBackup({ source: { url: elsewhere(f, f.sourceUrl, 'closed') } }),
    expected: 403,
    title: 'AccessDenied',
    message: refusedEndpoint('AccessDenied: source.url', APP_ENDPOINTS),
  },
  {
    surface: 'http',
    description: 'POST /api/backups: a managed-disk host typed by the caller',
    input: () => startBackup({ source: { url: MD_HOST_URL } }),
    expected: 403,
    title: 'AccessDenied',
    message: refusedEndpoint('AccessDenied: source.url', APP_ENDPOINTS),
  },
  {
    surface: 'http',
    description: 'POST /api/restores: target on another loopback port',
    input: (f) => startRestore({ backupId: f.backupId, target: { url: elsewhere(f, f.env.targetUrl('h-ssrf.vhd'), ssrfOpen.port) } }),
    expected: 403,
    title: 'AccessDenied',
    message: refusedEndpoint('AccessDenied: target.url', APP_ENDPOINTS),
    target: (f) => f.env.targetUrl('h-ssrf.vhd'),
  },
  {
    surface: 'http',
    description: 'POST /api/verifications: source on another loopback port',
    input: (f) => ({ method: 'POST', path: '/api/verifications', body: { backupId: f.backupId, source: { url: elsewhere(f, f.sourceUrl, ssrfOpen.port) } }, fn: 'startVerification' }),
    expected: 403,
    title: 'AccessDenied',
    message: refusedEndpoint('AccessDenied: source.url', APP_ENDPOINTS),
  },
  {
    surface: 'eventgrid',
    description: 'BlobCreated whose data.url is an allowed account name on another loopback port',
    input: (f) => ({ event: blobCreated('src', elsewhere(f, `${f.env.az.accounts.src.endpoint}/disks/${DISK}`, ssrfOpen.port), {}, { api: 'CopyBlob' }) }),
    expected: 'rejected',
    message: refusedEndpoint('rejected: AccessDenied: the created blob', APP_ENDPOINTS, false),
  },
  {
    surface: 'eventgrid',
    description: 'snapshot write whose resource ID walks up the ARM path (..)',
    input: () => ({ event: { id: 'snap-dots', eventType: 'Microsoft.Resources.ResourceWriteSuccess', subject: `/subscriptions/${SUB}/resourceGroups/../providers/Microsoft.Compute/snapshots/s1`, data: { operationName: 'Microsoft.Compute/snapshots/write' }, topic: `/subscriptions/${SUB}` } }),
    expected: 'ignored',
    message: /ignored: resource write of \/subscriptions\/.*\/resourceGroups\/\.\.\/providers\/Microsoft\.Compute\/snapshots\/s1 is not a Microsoft\.Compute\/snapshots resource/,
  },
];
/** No bad input of any case reached the listener (not even a TCP connection). */
const ssrfConnections = () => ssrfOpen.connections;
// ---- end SSRF block ------------------------------------------------------------------------------------
// ---- Restore targets that must not be destroyed (issue #10, class 2) ----------------------------
// A FIFO, a device, a directory or a link is refused before the vault is read; a page-blob target
// inside the vault (any URL form) is refused before anything is written. The generic checks below add
// that the vault's blobs (names and ETags) and the target are unchanged and no temp file is left.
const fifoIn = (f: Fixture) => {
  const fifo = path.join(f.tmp, 'catalog.fifo');
  if (!existsSync(fifo)) execFileSync('mkfifo', [fifo]);
  return fifo;
};
const dirIn = (f: Fixture) => {
  const dir = path.join(f.tmp, 'catalog-dir');
  mkdirSync(dir, { recursive: true });
  return dir;
};
const linkIn = (f: Fixture) => {
  const link = path.join(f.tmp, 'catalog.link');
  if (!existsSync(link)) symlinkSync(f.existingFile, link);
  return link;
};
/** A blob in the vault container under the vault's own SAS; `container` is how the URL spells it. */
const inVault = (f: Fixture, blob: string, container = 'vault') => f.vaultUrl.replace('/vault/vault?', `/vault/${container}/${blob}?`);
const manifestOf = (f: Fixture) => `backups/${f.backupId}/manifest.json`;
const RESTORE_TARGET_CASES: Case[] = [
  {
    surface: 'cli',
    description: 'restore: --to a FIFO with --force',
    input: (f) => cliRestore(f, f.backupId, fifoIn(f), '--force'),
    expected: 2,
    message: /catalog\.fifo is a FIFO \(named pipe\); a file restore writes only a new or regular file/,
    target: fifoIn,
  },
  {
    surface: 'cli',
    description: 'restore: --to /dev/null with --force',
    input: (f) => cliRestore(f, f.backupId, '/dev/null', '--force'),
    expected: 2,
    message: /\/dev\/null is a character device/,
    target: () => '/dev/null',
  },
  {
    surface: 'cli',
    description: 'restore: --to a directory with --force',
    input: (f) => cliRestore(f, f.backupId, dirIn(f), '--force'),
    expected: 2,
    message: /catalog-dir is a directory/,
    target: dirIn,
  },
  {
    surface: 'cli',
    description: 'restore: --to a symbolic link with --force',
    input: (f) => cliRestore(f, f.backupId, linkIn(f), '--force'),
    expected: 2,
    message: /catalog\.link is a symbolic link/,
    target: (f) => f.existingFile,
  },
  {
    surface: 'cli',
    description: 'restore: --to-device a regular file',
    input: (f) => ({ cli: ['restore', f.backupId, '--vault', f.vaultUrl, '--key-file', f.keyFile, '--to-device', f.existingFile] }),
    expected: 2,
    message: /existing\.img is a regular file, not a block device/,
    target: (f) => f.existingFile,
  },
  {
    surface: 'cli',
    description: 'restore: --to a manifest in the vault with --force',
    input: (f) => cliRestore(f, f.backupId, inVault(f, manifestOf(f)), '--force'),
    expected: 2,
    message: /lies inside the vault \(container vault\/vault\): Pagewise never writes a disk there/,
  },
  {
    surface: 'cli',
    description: 'restore: --to the vault through a percent-encoded container name',
    input: (f) => cliRestore(f, f.backupId, inVault(f, 'disk.vhd', '%76ault'), '--force'),
    expected: 2,
    message: /lies inside the vault \(container vault\/vault\)/,
  },
  {
    surface: 'cli',
    description: 'upload --force over a manifest in the vault',
    input: (f) => ({ cli: ['upload', f.existingFile, inVault(f, manifestOf(f)), '--force'] }),
    expected: 2,
    message: /the page blob .* lies inside (the|a) vault \(container vault\/vault\)/,
  },
  {
    surface: 'http',
    description: 'POST /api/restores: target inside the vault, overwrite',
    input: (f) => startRestore({ backupId: f.backupId, target: { url: inVault(f, manifestOf(f)) }, overwrite: true }),
    expected: 400,
    title: 'BadInput',
    message: /target\.url lies inside the vault \(container vault\/vault\)/,
  },
  {
    surface: 'http',
    description: 'POST /api/restores: target in the vault through an upper-case account',
    input: (f) => startRestore({ backupId: f.backupId, target: { url: inVault(f, 'disk.vhd').replace('/vault/vault/', '/VAULT/vault/') } }),
    expected: 400,
    title: 'BadInput',
    message: /target\.url lies inside the vault \(container vault\/vault\)/,
  },
  {
    surface: 'http',
    description: 'POST /api/restores: target named like a vault segment',
    input: (f) => startRestore({ backupId: f.backupId, target: { url: f.env.targetUrl(`backups/${f.backupId}/segments/00000000.seg`) }, overwrite: true }),
    expected: 400,
    title: 'BadInput',
    message: /lies inside a vault \(container vault\/restores\)/,
    target: (f) => f.env.targetUrl(`backups/${f.backupId}/segments/00000000.seg`),
  },
];
// ---- end of restore targets ----------------------------------------------------------------------
// ---- smaller traps (#10 class 6): key-file fixtures, made when a case's input is built -------------
const trapKeyFile = (f: Fixture, name: string, mode: number) => {
  const file = newFile(f, name);
  if (!existsSync(file)) {
    copyFileSync(f.keyFile, file);
    chmodSync(file, mode);
  }
  return file;
};
const trapFifo = (f: Fixture) => {
  const file = newFile(f, 'key.fifo');
  if (!existsSync(file)) execFileSync('mkfifo', [file]);
  return file;
};
const trapBigFile = (f: Fixture) => {
  const file = newFile(f, 'big.key');
  if (!existsSync(file)) writeFileSync(file, Buffer.alloc(5000, 1), { mode: 0o600 });
  return file;
};
const trapDanglingLink = (f: Fixture) => {
  const link = newFile(f, 'planted.key');
  if (!existsSync(newFile(f, 'victim.key')) && !lstatExists(link)) symlinkSync(newFile(f, 'victim.key'), link);
  return link;
};
const lstatExists = (file: string) => {
  try {
    lstatSync(file);
    return true;
  } catch {
    return false;
  }
};
// ---- end of smaller traps fixtures --------------------------------------------------------------

const CASES: Case[] = [
  // ---- CLI -------------------------------------------------------------------------------------
  {
    surface: 'cli',
    description: 'backup: source is not a URL',
    input: (f) => cliBackup(f, 'not a url'),
    expected: 2,
    message: /the source disk URL is not a URL/,
  },
  {
    surface: 'cli',
    description: 'backup: source URL with ftp scheme',
    input: (f) => cliBackup(f, 'ftp://src.blob.core.windows.net/disks/x.vhd'),
    expected: 2,
    message: /must be an http\(s\) URL, got ftp:/,
  },
  {
    surface: 'cli',
    description: 'backup: source URL names a container, not a blob',
    input: (f) => cliBackup(f, f.env.az.sasUrl('src', 'disks')),
    expected: 2,
    message: /must name a blob/,
  },
  {
    surface: 'cli',
    description: 'backup: source is a block blob, not a page blob',
    input: (f) => cliBackup(f, f.env.az.sasUrl('src', 'disks', 'notes.txt', { permissions: 'r' })),
    expected: 2,
    message: /is a BlockBlob blob, not a page blob/,
  },
  {
    surface: 'cli',
    description: 'backup: source disk is in the vault container',
    input: (f) => cliBackup(f, f.env.az.sasUrl('vault', 'vault', 'in-vault.vhd', { permissions: 'r' })),
    expected: 2,
    message: /vault must not be the container of the source disk/,
  },
  {
    surface: 'cli',
    description: 'backup: page size 1000 (not a multiple of 512)',
    input: (f) => cliBackup(f, f.sourceUrl, '--page-size', '1000'),
    expected: 2,
    message: /page size 1000 is not a positive multiple of 512/,
  },
  {
    surface: 'cli',
    description: 'backup: page size 200 MiB (> 100 MiB)',
    input: (f) => cliBackup(f, f.sourceUrl, '--page-size', '200MiB', '--cache', '1GiB'),
    expected: 2,
    message: /exceeds the limit of 104857600 bytes \(100 MiB\)/,
  },
  {
    surface: 'cli',
    description: 'backup: --snapshot through a read-only SAS',
    input: (f) => cliBackup(f, f.sourceUrl, '--snapshot', '--backup-id', 'snapshot-refused'),
    expected: 2,
    message: /taking a snapshot needs write permission on the source/,
  },
  {
    surface: 'cli',
    description: 'backup: concurrency 100000',
    input: (f) => cliBackup(f, f.sourceUrl, '--concurrency', '100000'),
    expected: 2,
    message: /concurrency 100000 must be a whole number from 1 to 64/,
  },
  {
    surface: 'cli',
    description: 'backup: cache of 10,000 digits',
    input: (f) => cliBackup(f, f.sourceUrl, '--cache', '9'.repeat(10_000)),
    expected: 2,
    message: /--cache "9{16}…" \(10000 characters\) is not a valid value/,
  },
  {
    surface: 'cli',
    description: 'backup: cache 1e30 TiB (not a safe integer)',
    input: (f) => cliBackup(f, f.sourceUrl, '--cache', '1000000000000000000000000000000TiB'),
    expected: 2,
    message: /--cache "1000000000000000000000000000000TiB" is not a positive whole number of bytes/,
  },
  {
    surface: 'cli',
    description: 'backup: --backup-id with path traversal',
    input: (f) => cliBackup(f, f.sourceUrl, '--backup-id', '../../etc'),
    expected: 2,
    message: /"\.\.\/\.\.\/etc" is not a backup ID/,
  },
  {
    surface: 'cli',
    description: 'backup: expired source SAS',
    input: (f) => cliBackup(f, expiredSourceUrl(f)),
    expected: 2,
    message: /the SAS of .*bi\.vhd expired at/,
  },
  {
    surface: 'cli',
    description: 'backup: source SAS with only list permission',
    input: (f) => cliBackup(f, containerSasBlobUrl(f, 'l')),
    expected: 2,
    message: /access to the source disk .*bi\.vhd was denied/,
  },
  {
    surface: 'cli',
    description: 'backup: read-only vault SAS',
    input: (f) => ({ cli: ['backup', f.sourceUrl, '--vault', f.env.az.sasUrl('vault', 'vault', undefined, { permissions: 'rl' }), '--key-file', f.keyFile, '--page-size', '64KiB', '--cache', '256KiB', '--backup-id', 'read-only-vault'] }),
    expected: 2,
    message: /access to backups\/read-only-vault\/plan\.json in the vault .* was denied/,
  },
  {
    surface: 'cli',
    description: 'backup: vault URL is a blob URL',
    input: (f) => ({ cli: ['backup', f.sourceUrl, '--vault', f.env.az.sasUrl('vault', 'vault', 'x.json'), '--key-file', f.keyFile] }),
    expected: 2,
    message: /the vault URL must be a container URL, not a blob URL/,
  },
  {
    surface: 'cli',
    description: 'backup: key file missing',
    input: (f) => ({ cli: ['backup', f.sourceUrl, '--vault', f.vaultUrl, '--key-file', newFile(f, 'nope.key')] }),
    expected: 2,
    message: /cannot read the key file .*nope\.key \(ENOENT\)/,
  },
  {
    surface: 'cli',
    description: 'restore: unknown backup ID',
    input: (f) => cliRestore(f, 'pw-000000000000000000000000', newFile(f, 'unknown.img')),
    expected: 2,
    message: /backup pw-0{24} does not exist in the vault/,
    target: (f) => newFile(f, 'unknown.img'),
  },
  {
    surface: 'cli',
    description: 'restore: backup ID with path traversal',
    input: (f) => cliRestore(f, '../backups/x', newFile(f, 'trav.img')),
    expected: 2,
    message: /"\.\.\/backups\/x" is not a backup ID/,
    target: (f) => newFile(f, 'trav.img'),
  },
  {
    surface: 'cli',
    description: 'restore: wrong key file',
    input: (f) => ({ cli: ['restore', f.backupId, '--vault', f.vaultUrl, '--key-file', f.otherKeyFile, '--to', newFile(f, 'wrong.img')] }),
    expected: 2,
    message: /user key \(key ID [0-9a-f]+\) does not match backup/,
    target: (f) => newFile(f, 'wrong.img'),
  },
  {
    surface: 'cli',
    description: 'restore: incomplete backup (no manifest)',
    input: (f) => cliRestore(f, f.incompleteBackupId, newFile(f, 'half.img')),
    expected: 1,
    message: /is incomplete \(it has no manifest\)/,
    target: (f) => newFile(f, 'half.img'),
  },
  {
    surface: 'cli',
    description: 'restore: existing file without --force',
    input: (f) => cliRestore(f, f.backupId, f.existingFile),
    expected: 2,
    message: /already exists; pass --force to overwrite it/,
    target: (f) => f.existingFile,
  },
  {
    surface: 'cli',
    description: 'restore: existing page blob without --force',
    input: (f) => cliRestore(f, f.backupId, f.existingBlobUrl),
    expected: 2,
    message: /restore target .*existing\.vhd already exists; pass --force/,
    target: (f) => f.existingBlobUrl,
  },
  {
    surface: 'cli',
    description: 'restore: --to with ftp scheme',
    input: (f) => cliRestore(f, f.backupId, 'ftp://host/x.img'),
    expected: 2,
    message: /--to must be an http\(s\) page-blob URL or a file path/,
  },
  {
    surface: 'cli',
    description: 'restore: --concurrency 100000',
    input: (f) => cliRestore(f, f.backupId, newFile(f, 'conc.img'), '--concurrency', '100000'),
    expected: 2,
    message: /--concurrency 100000 must be a whole number from 1 to 64/,
    target: (f) => newFile(f, 'conc.img'),
  },
  {
    surface: 'cli',
    description: 'verify: expired vault SAS',
    input: (f) => ({ cli: ['verify', f.backupId, '--vault', expiredVaultUrl(f), '--key-file', f.keyFile] }),
    expected: 2,
    message: /the SAS of .*\/vault expired at/,
  },
  {
    surface: 'cli',
    description: 'verify: --concurrency 0',
    input: (f) => ({ cli: ['verify', f.backupId, '--vault', f.vaultUrl, '--key-file', f.keyFile, '--concurrency', '0'] }),
    expected: 2,
    message: /--concurrency 0 must be a whole number from 1 to 64/,
  },
  {
    surface: 'cli',
    description: 'list: vault container name invalid',
    input: (f) => ({ cli: ['list', '--vault', `${f.env.az.accounts.vault.endpoint}/Bad_Container`] }),
    expected: 2,
    message: /the vault URL has no valid container name/,
  },
  {
    surface: 'cli',
    description: 'list: connection string of another account',
    input: (f) => ({ cli: ['list', '--vault', `${f.env.az.accounts.vault.endpoint}/vault`], env: { PAGEWISE_VAULT_CONNECTION_STRING: f.env.az.accounts.src.connectionString } }),
    expected: 2,
    message: /the vault URL is not on the blob endpoint of its connection string/,
  },

  // ---- HTTP ------------------------------------------------------------------------------------
  {
    surface: 'http',
    description: 'POST /api/backups: malformed JSON',
    input: () => startBackup('{"source": {"url": '),
    expected: 400,
    title: 'BadInput',
    message: /the request body is not JSON/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: body > 64 KiB',
    input: (f) => startBackup(JSON.stringify({ source: { url: f.sourceUrl }, pad: 'x'.repeat(70 * 1024) })),
    expected: 413,
    title: 'PayloadTooLarge',
    message: /the request body is \d+ bytes; at most 65536 bytes are accepted/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: Content-Length > 64 KiB declared',
    input: (f) => startBackup({ source: { url: f.sourceUrl } }, { 'content-length': String(10 * MiB) }),
    expected: 413,
    title: 'PayloadTooLarge',
    message: /the request body is 10485760 bytes/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: unknown field',
    input: (f) => startBackup({ source: { url: f.sourceUrl }, compression: 'max' }),
    expected: 400,
    title: 'BadRequestBody',
    message: /does not match the schema: \(body\) has an unknown field "compression" \(allowed: source, pageSize/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: body is an array',
    input: () => startBackup([]),
    expected: 400,
    title: 'BadRequestBody',
    message: /must be object/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: source URL is not a URL',
    input: () => startBackup({ source: { url: 'http://not a host/disks/x.vhd' } }),
    expected: 400,
    title: 'BadUrl',
    message: /source\.url is not a URL/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: source is a block blob',
    input: (f) => startBackup({ source: { url: f.env.az.sasUrl('src', 'disks', 'notes.txt', { permissions: 'r' }) } }),
    expected: 422,
    title: 'NotPageBlob',
    message: /is a BlockBlob blob, not a page blob/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: source disk is in the vault container',
    input: (f) => startBackup({ source: { url: f.env.az.sasUrl('vault', 'vault', 'in-vault.vhd', { permissions: 'r' }) } }),
    expected: 400,
    title: 'BadInput',
    message: /the vault must not be the container of the source disk/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: pageSize 1000',
    input: (f) => startBackup({ source: { url: f.sourceUrl }, pageSize: 1000 }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\/pageSize must be multiple of 512/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: pageSize 200 MiB',
    input: (f) => startBackup({ source: { url: f.sourceUrl }, pageSize: 200 * MiB }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\/pageSize must be <= 104857600/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: concurrency 100000',
    input: (f) => startBackup({ source: { url: f.sourceUrl }, concurrency: 100000 }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\/concurrency must be <= 64/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: takeSnapshot "yes"',
    input: (f) => startBackup({ source: { url: f.sourceUrl }, takeSnapshot: 'yes' }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\/takeSnapshot must be boolean/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: cacheBytes 1e300',
    input: (f) => startBackup(`{"source":{"url":${JSON.stringify(f.sourceUrl)}},"cacheBytes":1e300}`),
    expected: 400,
    title: 'BadRequestBody',
    message: /\/cacheBytes must be <= 9007199254740991/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: cacheBytes a 10,000-digit string',
    input: (f) => startBackup({ source: { url: f.sourceUrl }, cacheBytes: '9'.repeat(10_000) }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\/cacheBytes must be integer/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: cache smaller than one page',
    input: (f) => startBackup({ source: { url: f.sourceUrl }, pageSize: MiB, cacheBytes: 512 }),
    expected: 400,
    title: 'BadCacheSize',
    message: /is smaller than one page/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: account not in PAGEWISE_ALLOWED_ACCOUNTS',
    input: () => startBackup({ source: { url: 'https://elsewhere.blob.core.windows.net/vhds/disk.vhd?sv=2024-01-01&sig=TOPSECRETSIG' } }),
    expected: 403,
    title: 'AccessDenied',
    message: refusedEndpoint('AccessDenied: source.url', 'PAGEWISE_ALLOWED_ACCOUNTS'),
  },
  {
    surface: 'http',
    description: 'POST /api/backups: instance metadata endpoint (SSRF)',
    input: () => startBackup({ source: { url: 'http://169.254.169.254/metadata/identity/oauth2' } }),
    expected: 403,
    title: 'AccessDenied',
    message: refusedEndpoint('AccessDenied: source.url', 'PAGEWISE_ALLOWED_ACCOUNTS'),
  },
  {
    surface: 'http',
    description: 'POST /api/backups: expired source SAS',
    input: (f) => startBackup({ source: { url: expiredSourceUrl(f) } }),
    expected: 403,
    title: 'AccessDenied',
    message: /the SAS of .*bi\.vhd expired at/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: source SAS with only list permission',
    input: (f) => startBackup({ source: { url: containerSasBlobUrl(f, 'l') } }),
    expected: 403,
    title: 'AccessDenied',
    message: /access to the source disk .*bi\.vhd was denied/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: source blob does not exist',
    input: (f) => startBackup({ source: { url: f.env.sourceUrl('missing.vhd') } }),
    expected: 404,
    title: 'SourceNotFound',
    message: /missing\.vhd was not found/,
  },
  {
    surface: 'http',
    description: 'GET /api/backups/{id}: path traversal',
    input: () => ({ method: 'GET', path: '/api/backups/x', params: { id: '../../etc/passwd' }, fn: 'getBackup' }),
    expected: 400,
    title: 'BadInput',
    message: /"\.\.\/\.\.\/etc\/passwd" is not a backup ID/,
  },
  {
    surface: 'http',
    description: 'GET /api/backups/{id}: unknown backup',
    input: () => ({ method: 'GET', path: '/api/backups/x', params: { id: 'pw-00000000000000000000dead' }, fn: 'getBackup' }),
    expected: 404,
    title: 'BackupNotFound',
    message: /no backup pw-00000000000000000000dead/,
  },
  {
    surface: 'http',
    description: 'GET /api/backups?disk=: account not allowed',
    input: () => ({ method: 'GET', path: `/api/backups?disk=${encodeURIComponent('https://elsewhere.blob.core.windows.net/vhds/d.vhd')}`, fn: 'listBackups' }),
    expected: 403,
    title: 'AccessDenied',
    message: refusedEndpoint('AccessDenied: the disk query parameter', 'PAGEWISE_ALLOWED_ACCOUNTS'),
  },
  {
    surface: 'http',
    description: 'POST /api/restores: unknown backup ID',
    input: (f) => startRestore({ backupId: 'pw-000000000000000000000000', target: { url: f.env.targetUrl('h-unknown.vhd') } }),
    expected: 404,
    title: 'BackupNotFound',
    message: /backup pw-0{24} does not exist in the vault/,
    target: (f) => f.env.targetUrl('h-unknown.vhd'),
  },
  {
    surface: 'http',
    description: 'POST /api/restores: backup ID with path traversal',
    input: (f) => startRestore({ backupId: '../backups/x', target: { url: f.env.targetUrl('h-trav.vhd') } }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\/backupId must match pattern/,
    target: (f) => f.env.targetUrl('h-trav.vhd'),
  },
  {
    surface: 'http',
    description: 'POST /api/restores: backup made with another key',
    input: (f) => startRestore({ backupId: f.otherKeyBackupId, target: { url: f.env.targetUrl('h-wrong.vhd') } }),
    expected: 409,
    title: 'WrongKey',
    message: /does not match backup other-key-backup/,
    target: (f) => f.env.targetUrl('h-wrong.vhd'),
  },
  {
    surface: 'http',
    description: 'POST /api/restores: incomplete backup',
    input: (f) => startRestore({ backupId: f.incompleteBackupId, target: { url: f.env.targetUrl('h-half.vhd') } }),
    expected: 409,
    title: 'BackupIncomplete',
    message: /is incomplete \(it has no manifest\)/,
    target: (f) => f.env.targetUrl('h-half.vhd'),
  },
  {
    surface: 'http',
    description: 'POST /api/restores: existing target without overwrite',
    input: (f) => startRestore({ backupId: f.backupId, target: { url: f.existingBlobUrl } }),
    expected: 409,
    title: 'TargetExists',
    message: /the restore target already exists; set "overwrite": true/,
    target: (f) => f.existingBlobUrl,
  },
  {
    surface: 'http',
    description: 'POST /api/restores: target on an account not allowed',
    input: (f) => startRestore({ backupId: f.backupId, target: { url: 'https://elsewhere.blob.core.windows.net/restores/x.vhd' } }),
    expected: 403,
    title: 'AccessDenied',
    message: refusedEndpoint('AccessDenied: target.url', 'PAGEWISE_ALLOWED_ACCOUNTS'),
  },
  {
    surface: 'http',
    description: 'POST /api/verifications: unknown backup ID',
    input: () => ({ method: 'POST', path: '/api/verifications', body: { backupId: 'pw-000000000000000000000000' }, fn: 'startVerification' }),
    expected: 404,
    title: 'BackupNotFound',
    message: /backup pw-0{24} does not exist/,
  },
  {
    surface: 'http',
    description: 'POST /api/verifications: unknown field',
    input: (f) => ({ method: 'POST', path: '/api/verifications', body: { backupId: f.backupId, deep: true }, fn: 'startVerification' }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\(body\) has an unknown field "deep"/,
  },
  // ---- Idempotency-Key (issue #10 class 4): validated before anything starts --------------------
  {
    surface: 'http',
    description: 'POST /api/restores: Idempotency-Key too short',
    input: (f) => ({ ...startRestore({ backupId: f.backupId, target: { url: f.env.targetUrl('h-key-short.vhd') } }), headers: { 'Idempotency-Key': 'abc' } }),
    expected: 400,
    title: 'BadIdempotencyKey',
    message: /^BadIdempotencyKey: the Idempotency-Key header must be 8 to 128 characters of/,
    target: (f) => f.env.targetUrl('h-key-short.vhd'),
  },
  {
    surface: 'http',
    description: 'POST /api/verifications: Idempotency-Key with a space and a quote',
    input: (f) => ({ method: 'POST', path: '/api/verifications', body: { backupId: f.backupId }, headers: { 'Idempotency-Key': 'key with "quote"' }, fn: 'startVerification' }),
    expected: 400,
    title: 'BadIdempotencyKey',
    message: /^BadIdempotencyKey: the Idempotency-Key header must be 8 to 128 characters of/,
  },
  {
    surface: 'http',
    description: 'GET /api/restores/{id}: unknown operation',
    input: () => ({ method: 'GET', path: '/api/restores/x', params: { id: 'restore-nothing' }, fn: 'getRestore' }),
    expected: 404,
    title: 'OperationNotFound',
    message: /no restore restore-nothing/,
  },

  ...RESTORE_TARGET_CASES,

  // ---- Event Grid --------------------------------------------------------------------------------
  {
    surface: 'eventgrid',
    description: 'event of an unexpected type (BlobDeleted)',
    input: (f) => ({ event: blobCreated('src', `${f.env.az.accounts.src.endpoint}/disks/${DISK}`, { eventType: 'Microsoft.Storage.BlobDeleted' }) }),
    expected: 'ignored',
    message: /ignored: event type Microsoft\.Storage\.BlobDeleted is not handled/,
  },
  {
    surface: 'eventgrid',
    description: 'CloudEvent of an unknown type',
    input: () => ({ event: { specversion: '1.0', type: 'Contoso.Items.ItemReceived', id: 'ce-x', source: '/x', data: {} } }),
    expected: 'ignored',
    message: /ignored: event type Contoso\.Items\.ItemReceived is not handled/,
  },
  {
    surface: 'eventgrid',
    description: 'not an event at all (a string)',
    input: () => ({ event: 'hello' }),
    expected: 'ignored',
    message: /event \(no id\) ignored: event type \(none\) is not handled/,
  },
  {
    surface: 'eventgrid',
    description: 'BlobCreated of a block blob',
    input: (f) => ({ event: blobCreated('src', `${f.env.az.accounts.src.endpoint}/disks/notes.txt`, {}, { blobType: 'BlockBlob' }) }),
    expected: 'ignored',
    message: /ignored: blob type BlockBlob is not PageBlob/,
  },
  {
    surface: 'eventgrid',
    description: 'BlobCreated in a container that is not watched',
    input: (f) => ({ event: blobCreated('src', `${f.env.az.accounts.src.endpoint}/other/${DISK}`) }),
    expected: 'ignored',
    message: /ignored: container src\/other is not watched/,
  },
  {
    surface: 'eventgrid',
    description: 'BlobCreated with a malformed URL',
    input: () => ({ event: blobCreated('src', 'http//not-a-url') }),
    expected: 'ignored',
    message: /ignored: the event carries no blob URL/,
  },
  {
    surface: 'eventgrid',
    description: 'BlobCreated on an account not in PAGEWISE_ALLOWED_ACCOUNTS (SSRF)',
    input: () => ({ event: blobCreated('elsewhere', `https://elsewhere.blob.core.windows.net/disks/${DISK}`) }),
    expected: 'rejected',
    message: refusedEndpoint('rejected: AccessDenied: the created blob', 'PAGEWISE_ALLOWED_ACCOUNTS', false),
  },
  {
    surface: 'eventgrid',
    description: 'resource write of a VM, not a snapshot',
    input: () => ({ event: { id: 'vm-write', eventType: 'Microsoft.Resources.ResourceWriteSuccess', subject: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1`, data: { operationName: 'Microsoft.Compute/virtualMachines/write' }, topic: `/subscriptions/${SUB}` } }),
    expected: 'ignored',
    message: /ignored: resource write of .*virtualMachines\/vm1 is not a Microsoft\.Compute\/snapshots resource/,
  },
  ...SSRF_CASES, // issue #10 class 1, see the SSRF block above

  // ---- serve (issue #10 class 3): over real HTTP, before any function runs ----------------------
  ...serveCases(),

  // ---- smaller traps (#10 class 6): key files, vault creation, backup IDs, schema messages ---------
  {
    surface: 'cli',
    description: 'backup: key file readable by group and others (0644)',
    input: (f) => cliBackup(f, f.sourceUrl, '--key-file', trapKeyFile(f, 'loose.key', 0o644)),
    expected: 2,
    message: /the key file .*loose\.key has mode 0644: group or others may access it; run chmod 600 .*loose\.key$/,
  },
  {
    surface: 'cli',
    description: 'backup: key file writable by group (0620)',
    input: (f) => cliBackup(f, f.sourceUrl, '--key-file', trapKeyFile(f, 'group-w.key', 0o620)),
    expected: 2,
    message: /has mode 0620: group or others may access it; run chmod 600/,
  },
  {
    surface: 'cli',
    description: 'backup: key file is a FIFO (refused without blocking on it)',
    input: (f) => cliBackup(f, f.sourceUrl, '--key-file', trapFifo(f)),
    expected: 2,
    message: /the key file .*key\.fifo is a FIFO, not a key file/,
  },
  {
    surface: 'cli',
    description: 'backup: key file is a directory',
    input: (f) => cliBackup(f, f.sourceUrl, '--key-file', f.tmp),
    expected: 2,
    message: /the key file .* is a directory, not a key file/,
  },
  {
    surface: 'cli',
    description: 'backup: key file is a device (/dev/zero)',
    input: (f) => cliBackup(f, f.sourceUrl, '--key-file', '/dev/zero'),
    expected: 2,
    message: /the key file \/dev\/zero is a device, not a key file/,
  },
  {
    surface: 'cli',
    description: 'backup: key file of 5000 bytes (read capped)',
    input: (f) => cliBackup(f, f.sourceUrl, '--key-file', trapBigFile(f)),
    expected: 2,
    message: /the key file .*big\.key is 5000 bytes; a Pagewise key file is under 4096 bytes/,
  },
  {
    surface: 'cli',
    description: 'keygen: over an existing key file',
    input: (f) => ({ cli: ['keygen', f.keyFile] }),
    expected: 2,
    message: /the key file .*user\.key already exists; refusing to overwrite a key/,
    target: (f) => f.keyFile,
  },
  {
    surface: 'cli',
    description: 'keygen: through a dangling symlink (its victim is not created)',
    input: (f) => ({ cli: ['keygen', trapDanglingLink(f)] }),
    expected: 2,
    message: /the key file .*planted\.key already exists; refusing to overwrite a key/,
    target: (f) => newFile(f, 'victim.key'),
  },
  {
    surface: 'cli',
    description: 'keygen: a stray extra argument',
    input: (f) => ({ cli: ['keygen', newFile(f, 'stray.key'), 'extra'] }),
    expected: 2,
    message: /too many arguments for 'keygen'\. Expected 1 argument but got 2/,
    target: (f) => newFile(f, 'stray.key'),
  },
  {
    surface: 'cli',
    description: 'backup: unknown option --cache-size',
    input: (f) => cliBackup(f, f.sourceUrl, '--cache-size', '1MiB'),
    expected: 2,
    message: /unknown option '--cache-size' \(Did you mean --page-size\?\)/,
  },
  {
    surface: 'cli',
    description: 'backup: vault container does not exist (a typo makes no new vault)',
    input: (f) => ({ cli: ['backup', f.sourceUrl, '--vault', f.env.az.sasUrl('vault', 'vualt'), '--key-file', f.keyFile, '--page-size', '64KiB', '--cache', '256KiB'] }),
    expected: 2,
    message: /the vault container .*\/vualt does not exist; nothing was written \(check the vault URL, or make the vault first\); make it with pagewise init --vault <url>, or pass --create-vault/,
  },
  {
    surface: 'cli',
    description: 'backup --create-vault: a missing source makes no vault',
    input: (f) => ({ cli: ['backup', f.env.sourceUrl('missing.vhd'), '--vault', f.env.az.sasUrl('vault', 'new-vault'), '--key-file', f.keyFile, '--create-vault'] }),
    expected: 2,
    message: /the source disk .*missing\.vhd was not found/,
  },
  {
    surface: 'cli',
    description: 'init: a container SAS may not create the container',
    input: (f) => ({ cli: ['init', '--vault', f.env.az.sasUrl('vault', 'sas-vault')] }),
    expected: 2,
    message: /the vault container .*\/sas-vault does not exist and these credentials may not create it \(a container SAS cannot\)/,
  },
  {
    surface: 'cli',
    description: 'backup: backup ID used at another page size',
    input: (f) => cliBackup(f, f.sourceUrl, '--page-size', '128KiB', '--cache', '512KiB', '--backup-id', f.backupId),
    expected: 2,
    message: /backup ID pw-[0-9a-f]{24} is already used by another backup: its page size is 64 KiB \(65536 bytes\), not 128 KiB; give page size 64KiB to resume it, or another backup ID for a new backup/,
  },
  {
    surface: 'cli',
    description: 'backup: backup ID used by another disk',
    input: (f) => cliBackup(f, f.sourceUrl, '--backup-id', f.incompleteBackupId),
    expected: 2,
    message: /backup ID half-done is already used by another backup: its source is .*\/disks\/other\.vhd, not .*\/disks\/bi\.vhd; give another backup ID, or none/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: unknown field inside source',
    input: (f) => startBackup({ source: { url: f.sourceUrl, sas: 'x' } }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\/source has an unknown field "sas" \(allowed: url\)/,
  },
  {
    surface: 'http',
    description: 'POST /api/restores: target missing',
    input: (f) => startRestore({ backupId: f.backupId }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\(body\) is missing the required field "target"/,
  },
  {
    surface: 'http',
    description: 'POST /api/verifications: readData "yes"',
    input: (f) => ({ method: 'POST', path: '/api/verifications', body: { backupId: f.backupId, readData: 'yes' }, fn: 'startVerification' }),
    expected: 400,
    title: 'BadRequestBody',
    message: /\/readData must be boolean, not string/,
  },
  {
    surface: 'http',
    description: 'GET /api/backups: mistyped filter ?disc= (would list every backup)',
    input: (f) => ({ method: 'GET', path: `/api/backups?disc=${encodeURIComponent(f.sourceUrl)}`, fn: 'listBackups' }),
    expected: 400,
    title: 'BadQuery',
    message: /unknown query parameter "disc" \(allowed: disk, groupBy, usage\)/,
  },
  {
    surface: 'http',
    description: 'GET /api/backups: ?groupBy= of something but disk',
    input: (f) => ({ method: 'GET', path: `/api/backups?groupBy=size&disk=${encodeURIComponent(f.sourceUrl)}`, fn: 'listBackups' }),
    expected: 400,
    title: 'BadQuery',
    message: /groupBy "size" is not supported \(allowed: disk\)/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: an option in the query (?pageSize=) instead of the body',
    input: (f) => ({ ...startBackup({ source: { url: f.sourceUrl } }), path: '/api/backups?pageSize=131072' }),
    expected: 400,
    title: 'BadQuery',
    message: /unknown query parameter "pageSize" \(allowed: none\)/,
  },
  {
    surface: 'cli',
    description: 'serve: PAGEWISE_PAGE_SIZE not a multiple of 512 (refused at start)',
    input: (f) => ({ cli: ['serve'], env: { PAGEWISE_VAULT_URL: f.vaultUrl, PAGEWISE_ALLOWED_ACCOUNTS: f.env.az.storageEndpoints, PAGEWISE_USER_KEY: generateKey().toString('base64'), PAGEWISE_PAGE_SIZE: '1000' } }),
    expected: 2,
    message: /app setting PAGEWISE_PAGE_SIZE: page size 1000 is not a positive multiple of 512 bytes/,
  },
  {
    surface: 'cli',
    description: 'serve: PAGEWISE_CONCURRENCY 0x40 (digits only)',
    input: (f) => ({ cli: ['serve'], env: { PAGEWISE_VAULT_URL: f.vaultUrl, PAGEWISE_ALLOWED_ACCOUNTS: f.env.az.storageEndpoints, PAGEWISE_USER_KEY: generateKey().toString('base64'), PAGEWISE_CONCURRENCY: '0x40' } }),
    expected: 2,
    message: /app setting PAGEWISE_CONCURRENCY must be a positive whole number, got "0x40"/,
  },
  // ---- end of smaller traps ------------------------------------------------------------------------
  // ---- Event Grid: events that name no whole disk (issue #10 class 7) ----------------------------
  {
    surface: 'eventgrid',
    description: 'snapshot written by CopyStart whose background copy failed',
    // Compute is a cloud API: the stand-in answers with the failed copy, checked as the production client checks it.
    input: () => {
      useSnapshotAccess({ grantRead: async (ref) => (assertSnapshotReadable(ref.snapshotName, { provisioningState: 'Succeeded', completionPercent: 12, copyCompletionError: { errorMessage: 'CopySourceNotFound' } }), 'unreachable') });
      const id = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/copy-failed`;
      return { event: { id: 'snap-copy-failed', eventType: 'Microsoft.Resources.ResourceWriteSuccess', subject: id, data: { resourceUri: id, operationName: 'Microsoft.Compute/snapshots/write' }, topic: `/subscriptions/${SUB}` } };
    },
    expected: 'rejected',
    message: /rejected: SourceNotFound: the background copy of snapshot copy-failed failed \(CopySourceNotFound\): there is nothing whole to back up/,
  },
  // ---- end class 7 ------------------------------------------------------------------------------
  // ---- red team: URLs (issue #10 round 2) ----
  // A %-encoded "/.." in a blob name resolved on the wire into another container (the vault's manifest);
  // a query parameter twice or in another case (the service may read the other one); http connection strings.
  {
    surface: 'cli',
    description: 'restore: --to smuggles "%2F.." into the vault (connection string, --force)',
    input: (f) => ({ ...cliRestore(f, f.backupId, `${f.env.az.accounts.vault.endpoint}/restores/x%2F..%2F..%2Fvault%2Fbackups%2F${f.backupId}%2Fmanifest.json`, '--force'), env: { PAGEWISE_TARGET_CONNECTION_STRING: f.env.az.accounts.vault.connectionString } }),
    expected: 2,
    message: /^pagewise: the restore target URL has a "\." or "\.\." path segment in its blob name: http:\/\/127\.0\.0\.1:\d+\/vault\/restores\/x%2F\.\.%2F/,
  },
  {
    surface: 'cli',
    description: 'backup: source path with a malformed %-escape',
    input: (f) => cliBackup(f, f.sourceUrl.replace('/bi.vhd?', '/%E0%A4%A.vhd?')),
    expected: 2,
    message: /^pagewise: the source disk URL has a malformed %-escape in its path: http:\/\/127\.0\.0\.1:\d+\/src\/disks\/%E0%A4%A\.vhd$/,
  },
  {
    surface: 'cli',
    description: 'backup: snapshot given twice',
    input: (f) => cliBackup(f, `${f.sourceUrl}&snapshot=2024-05-02T01:00:00Z&snapshot=2024-05-03T01:00:00Z`),
    expected: 2,
    message: /^pagewise: the source disk URL gives the query parameter "snapshot" more than once$/,
  },
  {
    surface: 'cli',
    description: 'backup: SNAPSHOT= in another case',
    input: (f) => cliBackup(f, `${f.sourceUrl}&SNAPSHOT=2024-05-02T01:00:00Z`),
    expected: 2,
    message: /^pagewise: the source disk URL spells the snapshot parameter "SNAPSHOT"; write it as snapshot=$/,
  },
  {
    surface: 'cli',
    description: 'list: vault connection string on plain http to an unconfigured loopback endpoint',
    input: () => ({ cli: ['list', '--vault', `http://127.0.0.1:${ssrfOpen.port}/vault/vault`], env: { PAGEWISE_VAULT_CONNECTION_STRING: `DefaultEndpointsProtocol=http;AccountName=vault;AccountKey=${Buffer.alloc(64, 7).toString('base64')};BlobEndpoint=http://127.0.0.1:${ssrfOpen.port}/vault;` } }),
    expected: 2,
    message: /^pagewise: the vault URL is on a plain http endpoint \(its connection string's\); Pagewise sends a key's requests over http only to an endpoint listed in PAGEWISE_STORAGE_ENDPOINTS, use https$/,
  },
  {
    surface: 'http',
    description: 'POST /api/restores: target smuggles "%2F.." into the vault',
    input: (f) => startRestore({ backupId: f.backupId, overwrite: true, target: { url: `${f.env.az.accounts.vault.endpoint}/restores/x%2F..%2F..%2Fvault%2Fbackups%2F${f.backupId}%2Fmanifest.json` } }),
    expected: 400,
    title: 'BadUrl',
    message: /^BadUrl: target\.url has a "\." or "\.\." path segment in its blob name/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: sig given twice',
    input: (f) => startBackup({ source: { url: `${f.sourceUrl}&sig=second` } }),
    expected: 400,
    title: 'BadUrl',
    message: /^BadUrl: source\.url gives the query parameter "sig" more than once$/,
  },
  {
    surface: 'http',
    description: 'GET /api/backups?disk=: snapshot that is not a snapshot time',
    input: (f) => ({ method: 'GET', path: `/api/backups?disk=${encodeURIComponent(`${f.sourceUrl}&snapshot=x%26sig%3Dsmuggled`)}`, fn: 'listBackups' }),
    expected: 400,
    title: 'BadUrl',
    message: /^BadUrl: the disk query parameter has a snapshot parameter that is not a snapshot time/,
  },
  {
    surface: 'cli',
    description: 'restore: --to SAS URL with comp=metadata riding along',
    input: (f) => cliRestore(f, f.backupId, `${f.env.targetUrl('q-comp.vhd')}&comp=metadata`),
    expected: 2,
    message: /^pagewise: the restore target URL has the query parameter "comp": a storage URL's query may hold only a SAS and snapshot=$/,
    target: (f) => f.env.targetUrl('q-comp.vhd'),
  },
  {
    surface: 'cli',
    description: 'restore: target connection string whose BlobEndpoint names the vault container (--force)',
    input: (f) => ({ ...cliRestore(f, f.backupId, `${f.env.az.accounts.vault.endpoint}/backups/${f.backupId}/manifest.json`, '--force'), env: { PAGEWISE_TARGET_CONNECTION_STRING: f.env.az.accounts.vault.connectionString.replace(/BlobEndpoint=([^;]+);/, 'BlobEndpoint=$1/vault;') } }),
    expected: 2,
    message: /^pagewise: the connection string's BlobEndpoint has a path beyond the account: it must be the account's endpoint, not a container$/,
  },
  // ---- end red team: URLs ----
  // ---- red team: HTTP (issue #10 round 2) ----
  {
    surface: 'http',
    description: 'POST /api/restores?overwrite=true (an option in the query is no option)',
    input: (f) => ({ ...startRestore({ backupId: f.backupId, target: { url: f.existingBlobUrl } }), path: '/api/restores?overwrite=true' }),
    expected: 400,
    title: 'BadQuery',
    message: /^BadQuery: unknown query parameter "overwrite" \(allowed: none\)$/,
    target: (f) => f.existingBlobUrl,
  },
  {
    surface: 'http',
    description: 'POST /api/verifications?readData=false',
    input: (f) => ({ method: 'POST', path: '/api/verifications?readData=false', body: { backupId: f.backupId }, fn: 'startVerification' }),
    expected: 400,
    title: 'BadQuery',
    message: /^BadQuery: unknown query parameter "readData" \(allowed: none\)$/,
  },
  {
    surface: 'http',
    description: 'GET /api/backups/{id}?verbose=1',
    input: (f) => ({ method: 'GET', path: `/api/backups/${f.backupId}?verbose=1`, params: { id: f.backupId }, fn: 'getBackup' }),
    expected: 400,
    title: 'BadQuery',
    message: /^BadQuery: unknown query parameter "verbose" \(allowed: none\)$/,
  },
  {
    surface: 'http',
    description: 'GET /api/restores/{id}: a 10 KB operation ID (was a 500)',
    input: () => ({ method: 'GET', path: '/api/restores/x', params: { id: `restore-${'a'.repeat(10 * KiB)}` }, fn: 'getRestore' }),
    expected: 404,
    title: 'OperationNotFound',
    message: /^OperationNotFound: no restore restore-a{72}…$/,
  },
  {
    surface: 'http',
    description: 'POST /api/backups: JSON nested 20,000 deep',
    input: () => startBackup(`{"source":${'['.repeat(20_000)}${']'.repeat(20_000)}}`),
    expected: 400,
    title: 'BadInput',
    message: /^BadInput: the request body nests deeper than 64 levels$/,
  },
  {
    surface: 'eventgrid',
    description: 'BlobCreated whose URL has malformed percent-encoding (was a 500)',
    input: (f) => ({ event: blobCreated('src', `${f.env.az.accounts.src.endpoint}/disks/%E0%A4%A.vhd`) }),
    expected: 'ignored',
    message: /ignored: the event carries no blob URL$/,
  },
  {
    surface: 'eventgrid',
    description: 'BlobCreated from one account naming a blob of another (watch-list bypass)',
    input: (f) => ({ event: blobCreated('src', `${f.env.az.accounts.vault.endpoint}/disks/${DISK}`) }),
    expected: 'ignored',
    message: /ignored: the blob URL is on account vault, not on account src that raised the event$/,
  },
  {
    surface: 'eventgrid',
    description: 'snapshot written, the topic another subscription (no grant asked)',
    input: () => {
      const id = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/foreign`;
      return { event: { id: 'snap-foreign', eventType: 'Microsoft.Resources.ResourceWriteSuccess', subject: id, data: { resourceUri: id, operationName: 'Microsoft.Compute/snapshots/write' }, topic: '/subscriptions/00000000-0000-4000-8000-00000000beef' } };
    },
    expected: 'ignored',
    message: /ignored: snapshot foreign is in subscription 5f8b2c1e-0000-4000-8000-000000000001, not in subscription 00000000-0000-4000-8000-00000000beef that raised the event$/,
  },
  {
    surface: 'eventgrid',
    description: 'event ID and type with line breaks (no forged log line)',
    input: () => ({ event: { id: 'x\r\nevent-y', eventType: 'Evil\nevent z ignored: fine', data: {} } }),
    expected: 'ignored',
    message: /^event x\\x0D\\x0Aevent-y ignored: event type Evil\\x0Aevent z ignored: fine is not handled$/,
  },
  ...[
    [
      'GET /api/restores/{id} with a 10 KB ID (was a 500)',
      404,
      'OperationNotFound',
      /^no restore restore-a{72}…$/,
      { method: 'GET', path: `/api/restores/restore-${'a'.repeat(10 * KiB)}`, key: 'function' },
    ],
    [
      'GET /api/verifications/{id}?x=1',
      400,
      'BadQuery',
      /^unknown query parameter "x" \(allowed: none\)$/,
      { method: 'GET', path: '/api/verifications/verify-x?x=1', key: 'function' },
    ],
    [
      'Event Grid webhook: JSON nested 20,000 deep',
      400,
      'BadRequestBody',
      /^the request body nests deeper than 64 levels$/,
      { method: 'POST', path: '/runtime/webhooks/eventgrid?functionName=diskEvents', key: 'eventgrid', headers: { 'content-type': 'application/json' }, body: `[${'['.repeat(20_000)}${']'.repeat(20_000)}]` },
    ],
    [
      'Event Grid webhook: 100,000 empty events in one delivery',
      400,
      'BadRequestBody',
      /^a delivery holds at most 5000 events \(Event Grid's largest batch\)$/,
      { method: 'POST', path: '/runtime/webhooks/eventgrid?functionName=diskEvents', key: 'eventgrid', headers: { 'content-type': 'application/json' }, body: `[${Array(100_000).fill('{}').join(',')}]` },
    ],
    [
      'admin endpoint: input nested 20,000 deep',
      400,
      'BadRequestBody',
      /^the request body nests deeper than 64 levels$/,
      { method: 'POST', path: '/admin/functions/diskEvents', key: 'master', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: `${'['.repeat(20_000)}${']'.repeat(20_000)}` }) },
    ],
  ].map(([description, expected, title, message, serve]) => ({ surface: 'serve' as const, description: description as string, expected: expected as number, title: title as string, message: message as RegExp, input: () => ({ serve: serve as Extract<Input, { serve: unknown }>['serve'] }) })),
  // ---- end red team: HTTP ----
  // ---- red team: CLI (issue #10 round 2) ----
  {
    surface: 'cli',
    description: 'backup: --concurrency 9007199254740993 (past 2^53, not rounded)',
    input: (f) => cliBackup(f, f.sourceUrl, '--concurrency', '9007199254740993'),
    expected: 2,
    message: /^pagewise: --concurrency "9007199254740993" is too large$/,
  },
  {
    surface: 'cli',
    description: 'backup: --page-size 1e3 (no exponents)',
    input: (f) => cliBackup(f, f.sourceUrl, '--page-size', '1e3'),
    expected: 2,
    message: /^pagewise: --page-size "1e3" is not a size \(examples: 512, 64KiB, 4MiB, 1GiB\)$/,
  },
  {
    surface: 'cli',
    description: 'backup: --cache 0x10 (no hex)',
    input: (f) => cliBackup(f, f.sourceUrl, '--cache', '0x10'),
    expected: 2,
    message: /^pagewise: --cache "0x10" is not a size/,
  },
  {
    surface: 'cli',
    description: 'backup: --scratch-dir writable by others without the sticky bit',
    input: (f) => cliBackup(f, f.sourceUrl, '--scratch-dir', sharedDirIn(f.tmp, 'rt-scratch')),
    expected: 2,
    message: /^pagewise: --scratch-dir .*\/rt-scratch has mode 0777: others may write it without the sticky bit and replace files in it; use a private directory \(or chmod o-w or \+t\)$/,
  },
  {
    surface: 'cli',
    description: 'upload: the image is a FIFO (refused at once, never waited on)',
    input: (f) => ({ cli: ['upload', hostileFifo(f.tmp, 'rt-image.fifo'), f.env.targetUrl('rt-fifo.vhd')] }),
    expected: 2,
    message: /^pagewise: \/.*\/rt-image\.fifo is not a file$/,
    target: (f) => f.env.targetUrl('rt-fifo.vhd'),
  },
  {
    surface: 'cli',
    description: 'upload: the image is /dev/zero',
    input: (f) => ({ cli: ['upload', '/dev/zero', f.env.targetUrl('rt-zero.vhd')] }),
    expected: 2,
    message: /^pagewise: \/dev\/zero is not a file$/,
    target: (f) => f.env.targetUrl('rt-zero.vhd'),
  },
  {
    surface: 'cli',
    description: 'upload: an image path with terminal escape sequences is echoed escaped',
    input: (f) => ({ cli: ['upload', path.join(f.tmp, TERMINAL_ESCAPES), f.env.targetUrl('rt-esc.vhd')] }),
    expected: 2,
    message: /^pagewise: cannot read the image \/.*\/x\\x1B\[2J\\x1B\]0;owned\\x07\\u202E y \(ENOENT\)$/,
    target: (f) => f.env.targetUrl('rt-esc.vhd'),
  },
  {
    surface: 'cli',
    description: 'restore: --to in a directory others may write without the sticky bit',
    input: (f) => cliRestore(f, f.backupId, path.join(sharedDirIn(f.tmp, 'rt-restore'), 'disk.img')),
    expected: 2,
    message: /^pagewise: the directory of the restore target .*\/rt-restore has mode 0777: others may write it without the sticky bit/,
    target: (f) => path.join(sharedDirIn(f.tmp, 'rt-restore'), 'disk.img'),
  },
  {
    surface: 'cli',
    description: 'keygen: into a directory others may write without the sticky bit',
    input: (f) => ({ cli: ['keygen', path.join(sharedDirIn(f.tmp, 'rt-keys'), 'new.key')] }),
    expected: 2,
    message: /^pagewise: cannot write the key file .*\/rt-keys\/new\.key there: the directory .*\/rt-keys has mode 0777/,
    target: (f) => path.join(sharedDirIn(f.tmp, 'rt-keys'), 'new.key'),
  },
  {
    surface: 'cli',
    description: 'restore: --to the key file itself with --force',
    input: (f) => cliRestore(f, f.backupId, f.keyFile, '--force'),
    expected: 2,
    message: /^pagewise: .* is the key file .*; a restore never overwrites the key \(every backup made with it would be lost\)$/,
    target: (f) => f.keyFile,
  },
  {
    surface: 'cli',
    description: 'restore: --to a name too long for its partial file',
    input: (f) => cliRestore(f, f.backupId, newFile(f, `${'n'.repeat(240)}.img`)),
    expected: 2,
    message: /^pagewise: the file name of .* is too long for a restore target \(at most 221 bytes/,
    target: (f) => newFile(f, `${'n'.repeat(240)}.img`),
  },
  // ---- end red team: CLI ----
];

function serveCases(): Case[] {
  const json = { 'content-type': 'application/json' };
  const backup = (f: Fixture) => JSON.stringify({ source: { url: f.sourceUrl } });
  const c = (description: string, expected: number, title: string, message: RegExp, input: (f: Fixture) => Extract<Input, { serve: unknown }>['serve']): Case => ({
    surface: 'serve', description, expected, title, message, input: (f) => ({ serve: input(f) }),
  });
  return [
    c(
      'POST /api/backups without a key',
      401,
      'Unauthorized',
      /^a valid key is required/,
      (f) => ({ method: 'POST', path: '/api/backups', key: 'none', headers: json, body: backup(f) }),
    ),
    c(
      'POST /api/backups with the durable system key',
      401,
      'Unauthorized',
      /^a valid key is required/,
      (f) => ({ method: 'POST', path: '/api/backups', key: 'durabletask', headers: json, body: backup(f) }),
    ),
    c(
      'GET durable webhook instances with the function key',
      401,
      'Unauthorized',
      /^a valid key is required/,
      () => ({ method: 'GET', path: '/runtime/webhooks/durabletask/instances', key: 'function' }),
    ),
    c(
      'POST durable webhook orchestrators without a key',
      401,
      'Unauthorized',
      /^a valid key is required/,
      (f) => ({ method: 'POST', path: '/runtime/webhooks/durabletask/orchestrators/backupDiskOrchestrator', key: 'none', headers: json, body: backup(f) }),
    ),
    c(
      'POST /admin/functions with the function key',
      401,
      'Unauthorized',
      /^a valid key is required/,
      () => ({ method: 'POST', path: '/admin/functions/scheduledBackups', key: 'function', headers: json, body: '{}' }),
    ),
    c(
      'POST /api/backups as text/plain (CSRF form)',
      415,
      'UnsupportedMediaType',
      /must be application\/json \(UTF-8\)/,
      (f) => ({ method: 'POST', path: '/api/backups', key: 'function', headers: { 'content-type': 'text/plain' }, body: backup(f) }),
    ),
    c(
      'POST /api/backups from another origin',
      403,
      'CrossOriginRefused',
      /requests from another origin are refused/,
      (f) => ({ method: 'POST', path: '/api/backups', key: 'function', headers: { ...json, origin: 'http://evil.example' }, body: backup(f) }),
    ),
    c(
      'POST /api/backups with a foreign Host (DNS rebinding)',
      421,
      'MisdirectedRequest',
      /the Host header does not name this server/,
      (f) => ({ method: 'POST', path: '/api/backups', key: 'function', headers: { ...json, host: 'rebind.example' }, body: backup(f) }),
    ),
    c(
      'POST /api/backups with a 70 KiB body',
      413,
      'PayloadTooLarge',
      /larger than 65536 bytes/,
      () => ({ method: 'POST', path: '/api/backups', key: 'function', headers: json, body: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }) }),
    ),
    c(
      'OPTIONS /api/backups',
      405,
      'MethodNotAllowed',
      /use GET or POST/,
      () => ({ method: 'OPTIONS', path: '/api/backups', key: 'function' }),
    ),
    c(
      'GET /api/backups/{id} with malformed percent-encoding',
      400,
      'BadRequestTarget',
      /malformed percent-encoding/,
      () => ({ method: 'GET', path: '/api/backups/%E0%A4%A', key: 'function' }),
    ),
    c(
      'Event Grid webhook: not JSON',
      400,
      'BadRequestBody',
      /the request body is not JSON/,
      () => ({ method: 'POST', path: '/runtime/webhooks/eventgrid?functionName=diskEvents', key: 'eventgrid', headers: json, body: 'not json' }),
    ),
    c(
      'Event Grid webhook: unknown functionName',
      404,
      'FunctionNotFound',
      /names no Event Grid function/,
      () => ({ method: 'POST', path: '/runtime/webhooks/eventgrid?functionName=startBackup', key: 'eventgrid', headers: json, body: '[]' }),
    ),
    c(
      'admin endpoint: not JSON',
      400,
      'BadRequestBody',
      /the request body is not JSON/,
      () => ({ method: 'POST', path: '/admin/functions/diskEvents', key: 'master', headers: json, body: '{"input": ' }),
    ),
  ];
}

/** serve (issue #10 class 3): sends a catalog request to the server with the key its level names. */
async function serveRequest(input: Extract<Input, { serve: unknown }>['serve']): Promise<{ status: number; contentType: string | null; text: string }> {
  const keys = server.keys;
  const key = { function: keys.functionKeys.default, durabletask: keys.systemKeys.durabletask_extension, eventgrid: keys.systemKeys.eventgrid_extension, master: keys.masterKey, none: undefined }[input.key];
  const response = await new Promise<import('node:http').IncomingMessage & { text?: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method: input.method, path: input.path, agent: false, headers: { host: `127.0.0.1:${server.port}`, ...(key ? { 'x-functions-key': key } : {}), ...(input.headers ?? {}) } });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(Object.assign(res, { text: Buffer.concat(chunks).toString('utf8') })));
    });
    req.on('error', reject);
    req.end(input.body);
  });
  return { status: response.statusCode ?? 0, contentType: response.headers['content-type'] ?? null, text: response.text ?? '' };
}

let f: Fixture;
let app: LocalApp;
let server: LocalServer; // serve (issue #10 class 3)
const logs: Array<{ level: LogLevel; message: string }> = [];
const rows: Array<{ surface: Surface; case: string; expected: string; got: string; message: string }> = [];

beforeAll(async () => {
  const env = await startEnv();
  await makeVaultV1(env.vault);
  const keyFile = path.join(env.tmp, 'user.key');
  const otherKeyFile = path.join(env.tmp, 'other.key');
  await writeNewKeyFile(keyFile);
  await writeNewKeyFile(otherKeyFile);
  const userKey = await loadUserKey(keyFile);
  const disk = await env.makeDisk(DISK, 2 * MiB, [
    { offset: 0, length: 128 * KiB, kind: 'text', seed: 1 },
    { offset: MiB, length: 64 * KiB, kind: 'random', seed: 2 },
  ]);
  await env.az.accounts.src.service.getContainerClient('disks').getBlockBlobClient('notes.txt').upload('hello', 5);
  await env.az.accounts.vault.service.getContainerClient('vault').getPageBlobClient('in-vault.vhd').create(MiB);
  const settings = { pageSize: 64 * KiB, cacheBytes: 256 * KiB };
  const done = await backupDisk({ source: disk.source, vault: env.vault, userKey, ...settings });
  const other = await env.makeDisk('other.vhd', MiB, [{ offset: 0, length: 64 * KiB, kind: 'text', seed: 3 }]);
  await backupDisk({ source: other.source, vault: env.vault, userKey: await loadUserKey(otherKeyFile), backupId: 'other-key-backup', ...settings });
  await planBackup({ source: other.source, vault: env.vault, userKey, backupId: 'half-done', ...settings });
  const existingFile = path.join(env.tmp, 'existing.img');
  await fs.writeFile(existingFile, 'already here');
  const existingBlobUrl = env.targetUrl('existing.vhd');
  await env.az.accounts.vault.service.getContainerClient('restores').getPageBlobClient('existing.vhd').create(4096);
  f = {
    env,
    sourceUrl: disk.source.url,
    vaultUrl: env.vault.url,
    keyFile,
    otherKeyFile,
    backupId: done.backupId,
    otherKeyBackupId: 'other-key-backup',
    incompleteBackupId: 'half-done',
    existingFile,
    existingBlobUrl,
    tmp: env.tmp,
  };
  // serve (issue #10 class 3): the app runs inside `pagewise serve`, so the catalog reaches it over HTTP too.
  server = await startLocalServer({
    keysDir: path.join(env.tmp, 'serve-keys'),
    timers: false,
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      PAGEWISE_VAULT_URL: env.vault.url,
      PAGEWISE_USER_KEY: userKey.toString('base64'),
      PAGEWISE_ALLOWED_ACCOUNTS: env.az.storageEndpoints,
      PAGEWISE_WATCHED_CONTAINERS: 'disks',
      PAGEWISE_PAGE_SIZE: String(64 * KiB),
      PAGEWISE_CACHE_BYTES: String(256 * KiB),
    },
    log: (level, message) => logs.push({ level, message }),
  });
  app = server.app;
});

afterAll(async () => {
  await server?.close();
  await f?.env.stop();
  recordSummary('bad-inputs', rows);
});

/** What must not change: the names and ETags of every blob in the vault, the containers, and the orchestration instances. */
async function snapshot(): Promise<{ vaultBlobs: string[]; manifests: number; instances: number; containers: string[] }> {
  const vaultBlobs: string[] = [];
  const vault = f.env.az.accounts.vault.service.getContainerClient('vault');
  for await (const b of vault.listBlobsFlat()) vaultBlobs.push(`${b.name} ${b.properties.etag}`);
  const containers: string[] = []; // no case may create a container (a mistyped vault must not become one)
  for (const account of [f.env.az.accounts.vault, f.env.az.accounts.src]) for await (const c of account.service.listContainers()) containers.push(`${account.name}/${c.name}`);
  return { vaultBlobs, manifests: (await manifestBlobs(vault)).length, instances: (await app.runtime.listInstances()).length, containers };
}

async function targetState(target: string): Promise<string | undefined> {
  if (/^https?:\/\//.test(target)) {
    const name = new URL(target).pathname.split('/').slice(3).map(decodeURIComponent).join('/'); // /vault/restores/<blob>
    const blob = f.env.az.accounts.vault.service.getContainerClient('restores').getPageBlobClient(name);
    if (!(await blob.exists())) return undefined;
    return createHash('sha256').update(await blob.downloadToBuffer()).digest('hex');
  }
  if (readdirSync(path.dirname(target)).some((n) => n.startsWith(`${path.basename(target)}.pagewise-partial`))) return 'partial file left behind';
  if (!existsSync(target)) return undefined;
  const stat = lstatSync(target);
  if (!stat.isFile()) return `not a regular file: mode ${stat.mode.toString(8)}, inode ${stat.ino}, device ${stat.rdev}`; // never read (a FIFO would block)
  return createHash('sha256').update(await fs.readFile(target)).digest('hex');
}

function httpRequest(input: Extract<Input, { method: string }>): HttpRequest {
  const url = new URL(input.path, 'http://127.0.0.1:7071');
  return new HttpRequest({
    method: input.method,
    url: url.href,
    headers: { 'content-type': 'application/json', ...(input.headers ?? {}) },
    query: Object.fromEntries(url.searchParams),
    params: input.params ?? {},
    ...(input.body !== undefined ? { body: { string: typeof input.body === 'string' ? input.body : JSON.stringify(input.body) } } : {}),
  });
}

test('the catalog has at least 25 distinct cases over all three surfaces', () => {
  expect(CASES.length).toBeGreaterThanOrEqual(25);
  expect(new Set(CASES.map((c) => `${c.surface}:${c.description}`)).size).toBe(CASES.length);
  for (const surface of ['cli', 'http', 'eventgrid'] as const) expect(CASES.some((c) => c.surface === surface)).toBe(true);
});

test.each(CASES.map((c) => [`${c.surface}: ${c.description}`, c] as const))('%s', async (_name, c) => {
  const before = await snapshot();
  const target = c.target?.(f);
  const targetBefore = target ? await targetState(target) : undefined;
  const input = c.input(f);
  let got: string;
  let message: string;

  if ('cli' in input) {
    const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: f.env.az.storageEndpoints, ...(input.env ?? {}) });
    const code = await run(input.cli, io);
    const lines = io.stderrText().split('\n').filter((l) => l.length > 0);
    got = String(code);
    message = lines.join(' | ');
    expect(code).not.toBe(0);
    expect({ code, lines: lines.length, stdout: io.stdoutText() }).toEqual({ code: c.expected, lines: 1, stdout: '' });
    expect(lines[0]).toMatch(/^pagewise: /);
    expect(lines[0]).toMatch(c.message);
    expect(lines[0].length).toBeLessThan(1000);
  } else if ('method' in input) {
    const response: HttpResponse = await app.host.invokeHttp(input.fn, httpRequest(input));
    const problem = (await response.json()) as { type: string; title: string; status: number; detail: string; errors?: string[] };
    got = String(response.status);
    message = `${problem.title}: ${problem.detail}${problem.errors ? ` [${problem.errors.join('; ')}]` : ''}`;
    expect(response.status).toBe(c.expected);
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(problem).toEqual(expect.objectContaining({ type: expect.stringMatching(/^https:\/\/pagewise\.dev\/problems\//), title: c.title, status: c.expected, detail: expect.any(String) }));
    expect(message).toMatch(c.message);
    expect(JSON.stringify(problem)).not.toMatch(/sig=(?!REDACTED)/);
  } else if ('serve' in input) {
    // serve (issue #10 class 3)
    const answer = await serveRequest(input.serve);
    const problem = JSON.parse(answer.text) as { type: string; title: string; status: number; detail: string };
    got = String(answer.status);
    message = `${problem.title}: ${problem.detail}`;
    expect({ status: answer.status, contentType: answer.contentType }).toEqual({ status: c.expected, contentType: 'application/problem+json' });
    expect(problem).toEqual({ type: expect.stringMatching(/^https:\/\/pagewise\.dev\/problems\//), title: c.title, status: c.expected, detail: expect.stringMatching(c.message) });
    const keys = [server.keys.masterKey, server.keys.functionKeys.default, ...Object.values(server.keys.systemKeys)];
    expect(keys.filter((k) => answer.text.includes(k))).toEqual([]);
    expect(answer.text).not.toMatch(/sig=(?!REDACTED)/);
  } else {
    logs.length = 0;
    await expect(app.host.invokeEventGrid('diskEvents', input.event)).resolves.toBeUndefined();
    const lines = logs.filter((l) => /^event (\(no id\)|\S+) (ignored|rejected):/.test(l.message));
    got = lines.length === 1 ? (/ rejected:/.test(lines[0].message) ? 'rejected' : 'ignored') : `${lines.length} log lines`;
    message = lines.map((l) => l.message).join(' | ');
    expect(got).toBe(c.expected);
    expect(lines[0].message).toMatch(c.message);
    expect(lines[0].level).toBe(c.expected === 'rejected' ? 'error' : 'information');
  }

  // Nothing half-written: no new or changed blob in the vault (so no manifest), no instance, target untouched.
  const after = await snapshot();
  expect(after.manifests).toBe(before.manifests);
  expect(after.vaultBlobs).toEqual(before.vaultBlobs);
  expect(after.instances).toBe(before.instances);
  expect(after.containers).toEqual(before.containers);
  if (target) expect(await targetState(target)).toBe(targetBefore);
  expect(ssrfConnections()).toBe(0);
  rows.push({ surface: c.surface, case: c.description, expected: String(c.expected), got, message });
});
