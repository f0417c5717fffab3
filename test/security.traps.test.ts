/**
 * The smaller traps of issue #10 (class 6), each at its root: key files taken as ssh takes a private
 * key, no vault made by accident, backup IDs that know the page size, schema and settings errors that
 * say what is wrong, and no MaxListeners warning at the highest concurrency. Every refusal is checked
 * for its message and for what it must not have done (no file, no container, no blob, no instance).
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { HttpRequest } from '@azure/functions';
import { captureIO, run } from '../cli/main';
import { keyId, loadUserKey, writeNewKeyFile } from '../core';
import { startPagewise } from '../testkit/pagewise-process';
import { parsePolicy } from '../functions/policy';
import { readSettings } from '../functions/settings';
import { startLocalApp } from '../runtime/localApp';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let keyFile: string;

beforeAll(async () => {
  env = await startEnv();
  keyFile = path.join(env.tmp, 'user.key');
  await writeNewKeyFile(keyFile);
});
afterAll(async () => {
  await env?.stop();
});

async function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, ...extraEnv });
  const code = await run(args, io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

async function containers(account: 'src' | 'vault'): Promise<string[]> {
  const names: string[] = [];
  for await (const c of env.az.accounts[account].service.listContainers()) names.push(c.name);
  return names;
}

async function blobs(container: string): Promise<string[]> {
  const names: string[] = [];
  for await (const b of env.az.accounts.vault.service.getContainerClient(container).listBlobsFlat()) names.push(b.name);
  return names;
}

describe('key files', () => {
  const file = (name: string) => path.join(env.tmp, name);

  test('a key file group or others may access is refused with its mode and the chmod that fixes it', async () => {
    for (const mode of [0o640, 0o604, 0o660, 0o644, 0o700]) {
      const loose = file(`loose-${mode.toString(8)}.key`);
      await fs.copyFile(keyFile, loose);
      await fs.chmod(loose, mode);
      const expected = (mode & 0o077) !== 0;
      if (expected) await expect(loadUserKey(loose)).rejects.toThrow(`the key file ${loose} has mode 0${mode.toString(8)}: group or others may access it; run chmod 600 ${loose}`);
      else await expect(loadUserKey(loose)).resolves.toEqual(await loadUserKey(keyFile)); // 0700: still the owner's alone
    }
  });

  test('a symlink is followed and its target checked (secret mounts use links); a FIFO, a directory or an oversized file is refused without reading it whole', async () => {
    const link = file('linked.key');
    await fs.symlink(keyFile, link);
    expect((await loadUserKey(link)).equals(await loadUserKey(keyFile))).toBe(true);
    const looseTarget = file('loose-target.key');
    await fs.copyFile(keyFile, looseTarget);
    await fs.chmod(looseTarget, 0o644);
    const looseLink = file('loose-link.key');
    await fs.symlink(looseTarget, looseLink);
    await expect(loadUserKey(looseLink)).rejects.toThrow(/has mode 0644: group or others may access it/);

    const fifo = file('key.fifo');
    execFileSync('mkfifo', [fifo]);
    // Opening a FIFO for reading without a writer would block; the refusal comes at once instead.
    await expect(loadUserKey(fifo)).rejects.toThrow(`the key file ${fifo} is a FIFO, not a key file`);
    await expect(loadUserKey(env.tmp)).rejects.toThrow(`the key file ${env.tmp} is a directory, not a key file`);
    await expect(loadUserKey('/dev/urandom')).rejects.toThrow('the key file /dev/urandom is a device, not a key file');
    const big = file('big.key');
    await fs.writeFile(big, Buffer.alloc(1024 * 1024, 7), { mode: 0o600 });
    await expect(loadUserKey(big)).rejects.toThrow(`the key file ${big} is 1048576 bytes; a Pagewise key file is under 4096 bytes`);
  });

  test('keygen creates its file exclusively with mode 0600 whatever the umask, and never writes through a planted link', async () => {
    const previous = process.umask(0);
    const created = file('fresh.key');
    try {
      await writeNewKeyFile(created);
    } finally {
      process.umask(previous);
    }
    expect((await fs.stat(created)).mode & 0o777).toBe(0o600);
    const before = await fs.readFile(created);
    await expect(writeNewKeyFile(created)).rejects.toThrow(`the key file ${created} already exists; refusing to overwrite a key`);
    expect((await fs.readFile(created)).equals(before)).toBe(true);

    const victim = file('victim-of-link.txt');
    const planted = file('planted-link.key');
    await fs.symlink(victim, planted); // dangling: O_EXCL refuses it rather than creating the victim
    await expect(writeNewKeyFile(planted)).rejects.toThrow(/already exists; refusing to overwrite a key/);
    await expect(fs.stat(victim)).rejects.toThrow(/ENOENT/);
  });
});

describe('a vault is made only on request', () => {
  const vaultCs = () => ({ PAGEWISE_VAULT_CONNECTION_STRING: env.az.accounts.vault.connectionString });
  const vaultUrl = (name: string) => `${env.az.accounts.vault.endpoint}/${name}`;
  let sourceUrl: string;

  beforeAll(async () => {
    sourceUrl = (await env.makeDisk('vault-trap.vhd', 2 * MiB, [{ offset: 0, length: 256 * KiB, kind: 'text', seed: 9 }])).source.url;
  });
  const backup = (vault: string, ...extra: string[]) =>
    cli(['backup', sourceUrl, '--vault', vault, '--key-file', keyFile, '--page-size', '64KiB', '--cache', '256KiB', '--json', ...extra], vaultCs());

  // Since #12 a container without a marker becomes a version-2 vault at its first backup, or at init --key-file;
  // init without a key makes only the container (docs/FORMAT.md §12).
  test('backup into a missing container fails naming the vault and the fix, creating nothing; init makes it; init again changes nothing', async () => {
    const before = await containers('vault');
    const refused = await backup(vaultUrl('fresh-vault'));
    expect(refused).toMatchObject({ code: 2, stdout: '' });
    expect(refused.stderr.trim()).toBe(
      `pagewise: the vault container ${vaultUrl('fresh-vault')} does not exist; nothing was written (check the vault URL, or make the vault first); make it with pagewise init --vault <url>, or pass --create-vault`,
    );
    expect(await containers('vault')).toEqual(before);

    const init = await cli(['init', '--vault', vaultUrl('fresh-vault')], vaultCs());
    expect(init).toMatchObject({ code: 0, stderr: '' });
    expect(init.stdout.trim()).toBe(`created the container ${vaultUrl('fresh-vault')}; no --key-file, so no vault marker: the first backup (or pagewise init --key-file) makes it a version-2 vault`);
    expect(await blobs('fresh-vault')).toEqual([]);

    const keyed = await cli(['init', '--vault', vaultUrl('fresh-vault'), '--key-file', keyFile], vaultCs());
    expect(keyed).toMatchObject({ code: 0, stderr: '' });
    expect(keyed.stdout.trim()).toBe(`marked the existing container ${vaultUrl('fresh-vault')} as a version-2 Pagewise vault for this key`);
    const marker = env.az.accounts.vault.service.getContainerClient('fresh-vault').getBlobClient('pagewise-vault.json');
    expect(JSON.parse((await marker.downloadToBuffer()).toString())).toEqual({ format: 'pagewise-vault', version: 2, vaultId: expect.stringMatching(/^[0-9a-f]{32}$/), createdAt: expect.any(String), keyCheck: expect.stringMatching(/^[0-9a-f]{32}$/), firstSlot: expect.objectContaining({ format: 'pagewise-key-slot', epoch: 0 }) });
    expect(await blobs('fresh-vault')).toEqual([`keys/${keyId(await loadUserKey(keyFile))}.0.json`, 'pagewise-vault.json']);
    const etag = (await marker.getProperties()).etag;

    for (const withKey of [false, true]) {
      const again = await cli(['init', '--vault', vaultUrl('fresh-vault'), ...(withKey ? ['--key-file', keyFile] : []), '--json'], vaultCs());
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ vault: vaultUrl('fresh-vault'), containerCreated: false, markerWritten: false });
    }
    expect((await marker.getProperties()).etag).toBe(etag);

    const done = await backup(vaultUrl('fresh-vault'));
    expect(done.code).toBe(0);
    expect((await blobs('fresh-vault')).some((n) => /^manifests\/[0-9a-f]{32}\/\d{13}-[0-9a-f]{32}\.pwm$/.test(n))).toBe(true);
    expect((await blobs('fresh-vault')).some((n) => n.startsWith('backups/'))).toBe(false);
  });

  test('init --key-file marks an existing container; backup --create-vault makes a missing one', async () => {
    await env.az.accounts.vault.service.getContainerClient('bare-container').create();
    const marked = await cli(['init', '--vault', vaultUrl('bare-container'), '--key-file', keyFile], vaultCs());
    expect(marked).toMatchObject({ code: 0, stdout: `marked the existing container ${vaultUrl('bare-container')} as a version-2 Pagewise vault for this key\n` });
    expect(await blobs('bare-container')).toEqual([`keys/${keyId(await loadUserKey(keyFile))}.0.json`, 'pagewise-vault.json']);

    expect(await containers('vault')).not.toContain('auto-vault');
    const created = await backup(vaultUrl('auto-vault'), '--create-vault');
    expect(created.code).toBe(0);
    expect(await blobs('auto-vault')).toContain('pagewise-vault.json');
    const listed = await cli(['list', '--vault', vaultUrl('auto-vault'), '--key-file', keyFile, '--json'], vaultCs());
    expect(JSON.parse(listed.stdout).backups.map((b: { backupId: string }) => b.backupId)).toEqual([JSON.parse(created.stdout).backupId]);
  });

  test('a vault marker of a later version is refused before anything is written', async () => {
    const container = env.az.accounts.vault.service.getContainerClient('future-vault');
    await container.create();
    const marker = JSON.stringify({ format: 'pagewise-vault', version: 3 });
    await container.getBlockBlobClient('pagewise-vault.json').upload(marker, marker.length);
    const refused = await backup(vaultUrl('future-vault'));
    expect(refused).toMatchObject({ code: 2, stdout: '' });
    expect(refused.stderr.trim()).toMatch(/^pagewise: .*future-vault holds a pagewise-vault\.json of version 3: written by a newer Pagewise \(this one reads vault versions 1 and 2\)$/);
    expect(await blobs('future-vault')).toEqual(['pagewise-vault.json']);
  });

  test('the Functions app treats a missing vault container as a configuration error and creates nothing', async () => {
    const app = await startLocalApp({
      taskHub: { connectionString: env.az.accounts.src.connectionString }, // the task hub's containers stay off the vault account
      appSettings: {
        PAGEWISE_VAULT_URL: env.az.sasUrl('vault', 'no-such-vault'),
        PAGEWISE_USER_KEY: (await loadUserKey(keyFile)).toString('base64'),
        PAGEWISE_ALLOWED_ACCOUNTS: env.az.storageEndpoints,
        PAGEWISE_PAGE_SIZE: String(64 * KiB),
        PAGEWISE_CACHE_BYTES: String(256 * KiB),
      },
    });
    try {
      const before = await containers('vault');
      const post = (p: string, fn: string, body: unknown) =>
        app.host.invokeHttp(fn, new HttpRequest({ method: 'POST', url: `http://127.0.0.1:7071${p}`, headers: { 'content-type': 'application/json' }, body: { string: JSON.stringify(body) } }));
      for (const [p, fn, body] of [
        ['/api/backups', 'startBackup', { source: { url: sourceUrl } }],
        ['/api/verifications', 'startVerification', { backupId: 'pw-000000000000000000000000' }],
      ] as const) {
        const response = await post(p, fn, body);
        expect(response.status).toBe(500);
        expect(response.headers.get('content-type')).toBe('application/problem+json');
        const problem = (await response.json()) as { title: string; detail: string };
        expect(problem.title).toBe('VaultNotFound');
        expect(problem.detail).toMatch(/^configuration error: PAGEWISE_VAULT_URL names the container .*\/no-such-vault, which does not exist; the app does not create its vault/);
        expect(problem.detail).not.toMatch(/sig=(?!REDACTED)/);
      }
      expect(await containers('vault')).toEqual(before);
      expect(await app.runtime.listInstances()).toEqual([]);
    } finally {
      await app.stop();
    }
  });
});

test('the same disk state at two page sizes makes two backups (the page size is part of the derived ID)', async () => {
  const disk = await env.makeDisk('two-sizes.vhd', 2 * MiB, [{ offset: 0, length: 512 * KiB, kind: 'random', seed: 11 }]);
  const at = (size: string) =>
    cli(['backup', disk.source.url, '--vault', env.vault.url, '--key-file', keyFile, '--page-size', size, '--cache', '512KiB', '--json']);
  const small = await at('64KiB');
  const large = await at('128KiB');
  expect([small.code, large.code]).toEqual([0, 0]);
  const [a, b] = [JSON.parse(small.stdout), JSON.parse(large.stdout)];
  expect([a.pageSize, b.pageSize]).toEqual([64 * KiB, 128 * KiB]);
  expect(a.backupId).not.toBe(b.backupId);
  const again = await at('128KiB'); // the same state at the same page size is the same backup
  expect(JSON.parse(again.stdout).backupId).toBe(b.backupId);
});

test('--concurrency 64 emits no MaxListeners (or any other) warning: backup, restore, verify', async () => {
  // A real process: its warnings go to its stderr, which is what a user would see. 128 pages of
  // random data, 64 in flight: every download used to add a listener to one shared abort signal.
  const disk = await env.makeDisk('wide.vhd', 16 * MiB, [{ offset: 0, length: 16 * MiB, kind: 'random', seed: 12 }]);
  const { done } = startPagewise(['backup', disk.source.url, '--vault', env.vault.url, '--key-file', keyFile, '--page-size', '128KiB', '--cache', '8MiB', '--concurrency', '64', '--json'], { env: { PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints } });
  const exit = await done;
  expect(exit.stderr).not.toMatch(/Warning/i);
  expect(exit.stderr).toBe('');
  expect(exit.code).toBe(0);
  expect(JSON.parse(exit.stdout).pages).toBe(128);
  // Restoring and verifying it as wide: every Put Page and every vault read used to add a listener to the
  // operation's one signal too (the fan-out restore's windows share the runtime's).
  const { backupId } = JSON.parse(exit.stdout) as { backupId: string };
  const common = ['--vault', env.vault.url, '--key-file', keyFile, '--concurrency', '64', '--json'];
  const restored = await startPagewise(['restore', backupId, '--to', env.targetUrl('wide-restored.vhd'), ...common], { env: { PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints } }).done;
  expect(restored.stderr).toBe('');
  expect(restored.code).toBe(0);
  const verified = await startPagewise(['verify', backupId, '--read-data', ...common], { env: { PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints } }).done;
  expect(verified.stderr).toBe('');
  expect(verified.code).toBe(0);
  expect(JSON.parse(verified.stdout).ok).toBe(true);
});

describe('settings and schema messages say what is wrong', () => {
  const base = { PAGEWISE_VAULT_URL: 'https://vaultacct.blob.core.windows.net/vault', PAGEWISE_ALLOWED_ACCOUNTS: 'vaultacct' };

  test('engine app settings are checked as the engine will use them, naming the setting', () => {
    const cases: Array<[Record<string, string>, string]> = [
      [
        { PAGEWISE_PAGE_SIZE: '1000' },
        'app setting PAGEWISE_PAGE_SIZE: page size 1000 is not a positive multiple of 512 bytes',
      ],
      [
        { PAGEWISE_PAGE_SIZE: '0x10000' },
        'app setting PAGEWISE_PAGE_SIZE must be a positive whole number, got "0x10000"',
      ],
      [
        { PAGEWISE_CONCURRENCY: '65' },
        'app setting PAGEWISE_CONCURRENCY: concurrency 65 must be a whole number from 1 to 64',
      ],
      [
        { PAGEWISE_CACHE_BYTES: '1e6' },
        'app setting PAGEWISE_CACHE_BYTES must be a positive whole number, got "1e6"',
      ],
      [
        { PAGEWISE_CACHE_BYTES: '4096' },
        'app setting PAGEWISE_CACHE_BYTES (with PAGEWISE_PAGE_SIZE): the cache (4096 bytes) is smaller than one page (4194304 bytes)',
      ],
    ];
    for (const [bad, message] of cases) expect(() => readSettings({ ...base, ...bad })).toThrow(message);
    expect(readSettings({ ...base, PAGEWISE_PAGE_SIZE: '65536', PAGEWISE_CACHE_BYTES: '262144', PAGEWISE_CONCURRENCY: '64' }).engine).toEqual({ pageSize: 65536, cacheBytes: 262144, concurrency: 64 });
  });

  test('the policy names an unknown field and the allowed values', () => {
    expect(() => parsePolicy(JSON.stringify({ disks: [{ url: 'https://a.blob.core.windows.net/v/d.vhd', days: ['Monday'], cache: 1 }] }))).toThrow(
      'the backup policy is invalid: /disks/0 has an unknown field "cache" (allowed: url, days, pageSize, cacheBytes, concurrency, takeSnapshot, full, chunking, codec, vaultDedupe, fullOn); /disks/0/days/0 must be one of "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"',
    );
  });
});
