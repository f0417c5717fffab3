/**
 * Restores (and uploads) that must not destroy what they should not: a file restore replaces only
 * nothing or a regular file, never follows a planted link, and refuses devices, FIFOs, sockets and
 * directories before it reads anything from the vault; a block device is written in place only with
 * --to-device; a page-blob target never lies inside a vault (any URL form), the task hub, or a disk
 * being backed up. Each case asserts the message, the exit code or status, and that nothing was
 * written, replaced or left behind (vault listing and ETags, the target, the directory).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, Stats } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { HttpRequest } from '@azure/functions';
import { captureIO, run } from '../cli/main';
import { assertDiskWriteTarget, backupDisk, loadUserKey, whileBackingUp, writeNewKeyFile } from '../core';
import { VAULT_MARKER } from '../core/repo/layout';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { FaultProxy, startFaultProxy } from './harness/fault-proxy';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';
import { manifestBlobs } from './harness/vault-blobs';
import { vaultV1Marker } from '../testkit/vault-v1';

let env: TestEnv;
let proxy: FaultProxy;
let keyFile: string;
let backupId: string;
/** The backup's manifest blob, in the layout of the vault's format. */
let manifestBlob: string;
let diskSha: string;
let sourceUrl: string;
/** The vault through the counting proxy: every request the restore makes to it is counted. */
let vaultViaProxy: string;
let app: LocalApp;
const DISK_BYTES = 2 * MiB;

beforeAll(async () => {
  env = await startEnv();
  keyFile = path.join(env.tmp, 'user.key');
  await writeNewKeyFile(keyFile);
  const userKey = await loadUserKey(keyFile);
  const disk = await env.makeDisk('sec.vhd', DISK_BYTES, [
    { offset: 0, length: 128 * KiB, kind: 'text', seed: 1 },
    { offset: MiB, length: 64 * KiB, kind: 'random', seed: 2 },
  ]);
  diskSha = disk.sha256;
  sourceUrl = disk.source.url;
  backupId = (await backupDisk({ source: disk.source, vault: env.vault, userKey, pageSize: 64 * KiB, cacheBytes: 256 * KiB })).backupId;
  [manifestBlob] = await manifestBlobs(env.az.accounts.vault.service.getContainerClient('vault'));
  proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: env.az.port }, seed: 1, rate: 0 });
  vaultViaProxy = proxy.via(env.vault.url);
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      PAGEWISE_VAULT_URL: env.vault.url,
      PAGEWISE_USER_KEY: userKey.toString('base64'),
      PAGEWISE_ALLOWED_ACCOUNTS: env.az.storageEndpoints,
    },
  });
});

afterAll(async () => {
  await app?.stop();
  await proxy?.stop();
  await env?.stop();
});

/** The CLI's environment: the emulator's endpoints, directly and through the counting proxy (SSRF guard). */
// Other spellings of the same endpoints (localhost, https) are allowed too, so the vault guard, not the
// endpoint rule, is what refuses those URL forms below.
const cliEnv = () => {
  const direct = env.az.storageEndpoints.split(',');
  const spellings = direct.flatMap((e) => [e, e.replace('//127.0.0.1:', '//localhost:'), e.replace('http://', 'https://'), proxy.via(e)]);
  return { PAGEWISE_STORAGE_ENDPOINTS: spellings.join(',') };
};

async function cli(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const io = captureIO(cliEnv());
  const code = await run(args, io);
  return { code, stderr: io.stderrText(), stdout: io.stdoutText() };
}

const restore = (...to: string[]) => cli(['restore', backupId, '--vault', vaultViaProxy, '--key-file', keyFile, ...to]);

/** Names, ETags and lengths of every blob in the vault container. */
async function vaultState(): Promise<string[]> {
  const out: string[] = [];
  for await (const b of env.az.accounts.vault.service.getContainerClient('vault').listBlobsFlat()) out.push(`${b.name} ${b.properties.etag} ${b.properties.contentLength}`);
  return out.sort();
}

async function leftovers(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((n) => n.includes('pagewise-partial'));
}

/** What a path is, without following it or reading from it (a FIFO would block a read). */
const kind = (s: Stats) =>
  s.isSymbolicLink() ? 'link' : s.isFIFO() ? 'fifo' : s.isCharacterDevice() ? 'char' : s.isBlockDevice() ? 'block' : s.isDirectory() ? 'dir' : s.isSocket() ? 'socket' : 'file';

async function identity(p: string): Promise<string> {
  const s = await fs.lstat(p);
  return `${kind(s)} ${s.dev}:${s.ino} ${s.rdev} ${s.isFile() ? await fileSha256(p) : ''}`;
}

/** Runs a refused restore and asserts: the exit code and message, nothing asked of the vault, the target as it was, no temp file. */
async function expectRefusedLocally(target: string, args: string[], code: number, message: RegExp): Promise<void> {
  const before = await identity(target);
  const requests = proxy.stats.requests;
  const out = await restore(...args);
  expect({ code: out.code, stdout: out.stdout }).toEqual({ code, stdout: '' });
  expect(out.stderr.trim().split('\n')).toHaveLength(1);
  expect(out.stderr).toMatch(/^pagewise: /);
  expect(out.stderr).toMatch(message);
  expect(proxy.stats.requests).toBe(requests); // not one request to the vault
  expect(await identity(target)).toBe(before);
  expect(await leftovers(path.dirname(target))).toEqual([]);
}

describe('file targets', () => {
  test('a FIFO given with --force is refused and stays a FIFO', async () => {
    const fifo = path.join(env.tmp, 'pipe');
    execFileSync('mkfifo', [fifo]);
    await expectRefusedLocally(fifo, ['--to', fifo, '--force'], 2, /pipe is a FIFO \(named pipe\); a file restore writes only a new or regular file/);
  });

  test('/dev/null given with --force is refused and stays the null device', async () => {
    await expectRefusedLocally('/dev/null', ['--to', '/dev/null', '--force'], 2, /\/dev\/null is a character device; a file restore writes only/);
    expect((await fs.lstat('/dev/null')).isCharacterDevice()).toBe(true);
  });

  test('a directory is refused before a single request reaches the vault', async () => {
    const dir = path.join(env.tmp, 'a-dir');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'keep.txt'), 'keep');
    await expectRefusedLocally(dir, ['--to', dir, '--force'], 2, /a-dir is a directory; a file restore writes only/);
    expect(await fs.readdir(dir)).toEqual(['keep.txt']);
  });

  test('a socket is refused', async () => {
    const sock = path.join(env.tmp, 's.sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      await expectRefusedLocally(sock, ['--to', sock, '--force'], 2, /s\.sock is a socket/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a symbolic link as the target is refused and its victim is unchanged', async () => {
    const victim = path.join(env.tmp, 'victim.txt');
    await fs.writeFile(victim, 'precious');
    const link = path.join(env.tmp, 'link.img');
    await fs.symlink(victim, link);
    await expectRefusedLocally(link, ['--to', link, '--force'], 2, /link\.img is a symbolic link/);
    expect(await fs.readFile(victim, 'utf8')).toBe('precious');
  });

  test('a link planted at the old temp name is never followed; the restore writes a new file', async () => {
    const dir = path.join(env.tmp, 'planted');
    await fs.mkdir(dir);
    const victim = path.join(env.tmp, 'victim2.txt');
    await fs.writeFile(victim, 'precious');
    const target = path.join(dir, 'disk.img');
    await fs.symlink(victim, `${target}.pagewise-partial`);
    const out = await restore('--to', target);
    expect(out).toEqual(expect.objectContaining({ code: 0, stderr: '' }));
    expect(await fileSha256(target)).toBe(diskSha);
    expect((await fs.lstat(target)).mode & 0o777).toBe(0o600);
    expect(await fs.readFile(victim, 'utf8')).toBe('precious');
    expect(await fs.readlink(`${target}.pagewise-partial`)).toBe(victim);
    expect((await fs.readdir(dir)).sort()).toEqual(['disk.img', 'disk.img.pagewise-partial']);
  });

  test('an existing regular file is replaced with --force, and nothing is left beside it', async () => {
    const target = path.join(env.tmp, 'replace.img');
    await fs.writeFile(target, 'old content');
    const out = await restore('--to', target, '--force');
    expect(out.code).toBe(0);
    expect(await fileSha256(target)).toBe(diskSha);
    expect(await leftovers(env.tmp)).toEqual([]);
  });

  test('a failed restore (a backup made with another key) removes its temp file and leaves the target alone', async () => {
    const other = path.join(env.tmp, 'other.key');
    await writeNewKeyFile(other);
    const target = path.join(env.tmp, 'wrong-key.img');
    await fs.writeFile(target, 'old content');
    const out = await cli(['restore', backupId, '--vault', env.vault.url, '--key-file', other, '--to', target, '--force']);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/does not match backup|this key \(key ID [0-9a-f]{16}\) has no slot in this vault/); // version 1 | version 2
    expect(await fs.readFile(target, 'utf8')).toBe('old content');
    expect(await leftovers(env.tmp)).toEqual([]);
  });

  test('an interrupted restore (Ctrl-C) exits 130 and leaves neither the file nor its temp file', async () => {
    const target = path.join(env.tmp, 'interrupted.img');
    const io = captureIO(cliEnv());
    const interrupt = new AbortController();
    interrupt.abort();
    io.interruptSignal = () => interrupt.signal;
    const code = await run(['restore', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--to', target], io);
    expect(code).toBe(130);
    expect(io.stderrText()).toMatch(/^pagewise: the restore was interrupted\n$/);
    await expect(fs.lstat(target)).rejects.toThrow(/ENOENT/);
    expect(await leftovers(env.tmp)).toEqual([]);
  });
});

describe('--to-device', () => {
  test('a regular file is refused as a device and left unchanged', async () => {
    const file = path.join(env.tmp, 'not-a-device.img');
    await fs.writeFile(file, 'content');
    await expectRefusedLocally(file, ['--to-device', file], 2, /not-a-device\.img is a regular file, not a block device; --to-device writes only a block device/);
  });

  test('a FIFO is refused as a device (never opened, so nothing blocks)', async () => {
    const fifo = path.join(env.tmp, 'pipe2');
    execFileSync('mkfifo', [fifo]);
    await expectRefusedLocally(fifo, ['--to-device', fifo], 2, /pipe2 is a FIFO \(named pipe\), not a block device/);
  });

  test('a missing device path is refused and never created', async () => {
    const missing = path.join(env.tmp, 'no-such-device');
    const requests = proxy.stats.requests;
    const out = await restore('--to-device', missing);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/the device .*no-such-device cannot be used \(ENOENT\)/);
    expect(proxy.stats.requests).toBe(requests);
    await expect(fs.lstat(missing)).rejects.toThrow(/ENOENT/);
  });

  test('--to and --to-device together, or neither, is a usage error', async () => {
    const both = await restore('--to', path.join(env.tmp, 'x.img'), '--to-device', '/dev/null');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^pagewise: --to and --to-device exclude each other/);
    const neither = await restore();
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/^pagewise: no target: give --to <page-blob-url\|file> or --to-device <block-device>/);
  });

  // A block device exists in the sandbox only through a loop device (root and losetup); elsewhere the
  // in-place writer is exercised by the refusal cases above and this test says it was skipped.
  const loop = (file: string): string | undefined => {
    try {
      return execFileSync('losetup', ['-f', '--show', file], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      return undefined;
    }
  };

  test('a block device is written in place: holes and zero runs as zeros, never truncated, too small refused', async () => {
    const backing = path.join(env.tmp, 'loop.img');
    const small = path.join(env.tmp, 'loop-small.img');
    await fs.writeFile(backing, Buffer.alloc(DISK_BYTES + MiB, 0xa5)); // old content everywhere, 1 MiB more than the disk
    await fs.writeFile(small, Buffer.alloc(DISK_BYTES / 2, 0x5a));
    const device = loop(backing);
    const smallDevice = device ? loop(small) : undefined;
    if (!device || !smallDevice) {
      if (device) execFileSync('losetup', ['-d', device]);
      console.warn('losetup is not available: the block-device write was not exercised');
      return;
    }
    try {
      const smallBefore = await fileSha256(small);
      const tooSmall = await restore('--to-device', smallDevice);
      expect(tooSmall.code).toBe(2);
      expect(tooSmall.stderr).toMatch(new RegExp(`the device ${smallDevice} is smaller than the disk \\(${DISK_BYTES} bytes\\)`));
      expect(await fileSha256(small)).toBe(smallBefore);

      const out = await restore('--to-device', device, '--json');
      expect(out.code).toBe(0);
      expect(JSON.parse(out.stdout)).toEqual(expect.objectContaining({ backupId, target: device, diskBytes: DISK_BYTES }));
    } finally {
      execFileSync('losetup', ['-d', device]);
      execFileSync('losetup', ['-d', smallDevice]);
    }
    const written = await fs.readFile(backing);
    expect(written.length).toBe(DISK_BYTES + MiB); // never truncated
    expect(createHash('sha256').update(written.subarray(0, DISK_BYTES)).digest('hex')).toBe(diskSha);
    expect(written.subarray(DISK_BYTES).every((b) => b === 0xa5)).toBe(true); // nothing past the disk touched
    expect((await fs.lstat(device)).isBlockDevice()).toBe(true); // still the device, never renamed over
  });
});

describe('page-blob targets never inside a vault', () => {
  const port = () => env.az.port;
  const vaultSas = () => new URL(env.vault.url).search;
  /** The same vault container reached through other forms of its URL (the SAS is the vault's own). */
  const FORMS: Record<string, (blob: string) => string> = {
    'the vault URL itself': (blob) => `http://127.0.0.1:${port()}/vault/vault/${blob}${vaultSas()}`,
    'localhost for 127.0.0.1': (blob) => `http://localhost:${port()}/vault/vault/${blob}${vaultSas()}`,
    'an upper-case account': (blob) => `http://127.0.0.1:${port()}/VAULT/vault/${blob}${vaultSas()}`,
    'a percent-encoded container': (blob) => `http://127.0.0.1:${port()}/vault/%76ault/${blob}${vaultSas()}`,
    'double slashes': (blob) => `http://127.0.0.1:${port()}//vault//vault/${blob}${vaultSas()}`,
    'https for http': (blob) => `https://127.0.0.1:${port()}/vault/vault/${blob}${vaultSas()}`,
  };

  test.each(Object.keys(FORMS))('CLI restore --force over a manifest through %s is refused; the vault is unchanged', async (form) => {
    const url = FORMS[form](manifestBlob);
    const before = await vaultState();
    const out = await restore('--to', url, '--force');
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/^pagewise: the restore target .* lies inside the vault \(container vault\/vault\): Pagewise never writes a disk there, it would destroy backups/);
    expect(out.stderr).not.toMatch(/sig=(?!REDACTED)/);
    expect(await vaultState()).toEqual(before);
  });

  // Text only: each is refused from the URLs alone, before any request (the marker is asked last).
  test.each([
    [
      'a trailing slash, http for https',
      'https://acct.blob.core.windows.net/vault/',
      'http://acct.blob.core.windows.net/vault/x.vhd',
    ],
    [
      '$root, upper-case host',
      'https://acct.blob.core.windows.net/$root',
      'https://ACCT.blob.core.windows.net/$root/x.vhd',
    ],
    [
      'a private-link host',
      'https://acct.blob.core.windows.net/vault',
      'https://acct.privatelink.blob.core.windows.net/vault/x.vhd',
    ],
    [
      'path-style for host-style',
      'https://acct.blob.core.windows.net/vault',
      'http://127.0.0.1:9/acct/vault/x.vhd',
    ],
    [
      'a percent-encoded blob name of the layout, in another container',
      'https://acct.blob.core.windows.net/vault',
      'https://acct.blob.core.windows.net/other/backups%2Fpw-1%2Fmanifest.json',
    ],
  ])('the guard knows the vault through %s', async (_name, vault, target) => {
    await expect(assertDiskWriteTarget({ url: target }, 'the target', [{ url: vault }])).rejects.toMatchObject({
      code: 'BadInput',
      message: expect.stringMatching(/^the target lies inside (the|a) vault \(container acct\/(vault|\$root|other)\): Pagewise never writes a disk there/),
    });
  });

  test('a new blob in the vault container is refused too', async () => {
    const before = await vaultState();
    const out = await restore('--to', env.az.sasUrl('vault', 'vault', 'disk.vhd'));
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/lies inside the vault \(container vault\/vault\)/);
    expect(await vaultState()).toEqual(before);
  });

  // A version-2 vault's marker has the same name, and the guard asks only whether it exists.
  const MARKERS: Array<[string, string, string]> = [
    ['version 1', 'othervault', vaultV1Marker()],
    ['version 2', 'othervault2', JSON.stringify({ format: 'pagewise-vault', version: 2, vaultId: '0'.repeat(32), createdAt: new Date().toISOString(), keyCheck: '0'.repeat(32) })],
  ];
  test.each(MARKERS)('a vault this process never opened is known by its %s marker: upload --force into it is refused', async (_version, name, marker) => {
    const other = env.az.accounts.vault.service.getContainerClient(name);
    await other.create();
    await other.getBlockBlobClient(VAULT_MARKER).upload(marker, marker.length);
    await other.getBlockBlobClient(`backups/${backupId}/manifest.json`).upload('{}', 2);
    const listing = async () => {
      const out: string[] = [];
      for await (const b of other.listBlobsFlat()) out.push(`${b.name} ${b.properties.etag}`);
      return out;
    };
    const before = await listing();
    const image = path.join(env.tmp, 'image.raw');
    await fs.writeFile(image, Buffer.alloc(4096, 7));
    const out = await cli(['upload', image, env.az.sasUrl('vault', name, `backups/${backupId}/manifest.json`), '--force']);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(new RegExp(`^pagewise: the page blob .* lies inside a vault \\(container vault/${name}\\)`));
    // A container SAS can read the marker (a SAS for the one blob cannot: then only the other checks stand).
    const containerSas = env.az.sasUrl('vault', name).replace(`/${name}?`, `/${name}/disk.vhd?`);
    const plain = await cli(['upload', image, containerSas]);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(new RegExp(`lies inside a vault \\(container vault/${name}\\)`));
    expect(await listing()).toEqual(before);
  });

  test('a blob name of the vault layout is refused in any container', async () => {
    const url = env.targetUrl(`backups/${backupId}/segments/00000000.seg`);
    const out = await restore('--to', url, '--force');
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/lies inside a vault \(container vault\/restores\)/);
    expect(await env.az.accounts.vault.service.getContainerClient('restores').getBlobClient(`backups/${backupId}/segments/00000000.seg`).exists()).toBe(false);
  });

  test('the durable task hub container is refused as a target', async () => {
    const out = await restore('--to', env.az.sasUrl('vault', 'pagewise-taskhub', 'x.vhd'), '--force');
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/lies inside the durable task hub \(container vault\/pagewise-taskhub\)/);
    expect(await env.az.accounts.vault.service.getContainerClient('pagewise-taskhub').getBlobClient('x.vhd').exists()).toBe(false);
  });

  test('a restore onto a disk being backed up is refused, and the disk is unchanged', async () => {
    const source = env.az.accounts.src.service.getContainerClient('disks').getPageBlobClient('sec.vhd');
    const etag = (await source.getProperties()).etag;
    const target = env.az.sasUrl('src', 'disks', 'sec.vhd');
    const out = await whileBackingUp({ url: sourceUrl }, () => restore('--to', target, '--force'));
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/^pagewise: the restore target .*sec\.vhd is a disk that is being backed up right now/);
    expect((await source.getProperties()).etag).toBe(etag);
  });

  test('a backup whose source is in the vault through another URL form is refused before any request', async () => {
    const before = await vaultState();
    const requests = proxy.stats.requests;
    const source = `http://localhost:${port()}/vault/vault/in-vault.vhd${vaultSas()}`;
    const out = await cli(['backup', source, '--vault', vaultViaProxy, '--key-file', keyFile, '--snapshot']);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/^pagewise: the vault must not be the container of the source disk/);
    expect(proxy.stats.requests).toBe(requests);
    expect(await vaultState()).toEqual(before);
  });

  test('HTTP: a restore target inside the vault (another URL form, overwrite) is 400 and starts nothing', async () => {
    const before = await vaultState();
    const instances = (await app.runtime.listInstances()).length;
    const url = FORMS['a percent-encoded container'](manifestBlob);
    const request = new HttpRequest({
      method: 'POST',
      url: 'http://127.0.0.1:7071/api/restores',
      headers: { 'content-type': 'application/json' },
      body: { string: JSON.stringify({ backupId, target: { url }, overwrite: true }) },
    });
    const response = await app.host.invokeHttp('startRestore', request);
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    const problem = (await response.json()) as { title: string; detail: string };
    expect(problem.title).toBe('BadInput');
    expect(problem.detail).toMatch(/^target\.url lies inside the vault \(container vault\/vault\): Pagewise never writes a disk there/);
    expect((await app.runtime.listInstances()).length).toBe(instances);
    expect(await vaultState()).toEqual(before);
  });
});
