/**
 * The CLI attacked from the local machine (issue #10, round 2): a hostile input file, a hostile path,
 * a directory another user can rearrange, a device in use. Each case asserts the exit code, the exact
 * message, and that nothing was sent, written or left behind.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { PageBlobClient, AnonymousCredential } from '@azure/storage-blob';
import { captureIO, run } from '../cli/main';
import { backupDisk, loadUserKey, PagewiseError, writeNewKeyFile } from '../core';
import { createScratchDir, sweepStaleScratchDirs } from '../core/cache/scratch-dir';
import { startLocalApp } from '../runtime/localApp';
import { TS_NODE_CACHE } from '../testkit/pagewise-process';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let proxy: HookProxy;
let keyFile: string;
let backupId: string;

/** A loopback proxy in front of the emulator that counts requests and lets a test act on the first Put Page. */
interface HookProxy {
  requests: number;
  onPutPage?: () => void | Promise<void>;
  via(url: string): string;
  stop(): Promise<void>;
}

async function startHookProxy(targetPort: number): Promise<HookProxy> {
  const state: HookProxy = { requests: 0, via: (u) => u, stop: async () => undefined };
  const server = http.createServer((req, res) => {
    state.requests++;
    const isPutPage = req.method === 'PUT' && /[?&]comp=page(&|$)/.test(req.url ?? '');
    const hook = isPutPage ? state.onPutPage : undefined;
    if (hook) state.onPutPage = undefined; // once
    void Promise.resolve(hook?.()).then(() => {
      const upstream = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  state.via = (url) => url.replace(`//127.0.0.1:${targetPort}/`, `//127.0.0.1:${port}/`);
  state.stop = () => new Promise((resolve) => server.close(() => resolve()));
  return state;
}

beforeAll(async () => {
  env = await startEnv();
  proxy = await startHookProxy(env.az.port);
  keyFile = path.join(env.tmp, 'user.key');
  await writeNewKeyFile(keyFile);
  const disk = await env.makeDisk('cli.vhd', 256 * KiB, [{ offset: 0, length: 64 * KiB, kind: 'text', seed: 3 }]);
  backupId = (await backupDisk({ source: disk.source, vault: env.vault, userKey: await loadUserKey(keyFile), pageSize: 64 * KiB, cacheBytes: 256 * KiB })).backupId;
});

afterAll(async () => {
  await proxy?.stop();
  await env?.stop();
});

const cliEnv = () => {
  const direct = env.az.storageEndpoints.split(',');
  return { PAGEWISE_STORAGE_ENDPOINTS: [...direct, ...direct.map((e) => proxy.via(e))].join(',') };
};

async function cli(args: string[], io = captureIO(cliEnv())): Promise<{ code: number; stderr: string; stdout: string }> {
  const code = await run(args, io);
  return { code, stderr: io.stderrText(), stdout: io.stdoutText() };
}

/** A refused command: the exit code, exactly one line on stderr equal to `message`, nothing on stdout, no request sent. */
async function expectRefused(args: string[], code: number, message: string): Promise<void> {
  const requests = proxy.requests;
  const out = await cli(args);
  expect(out).toEqual({ code, stdout: '', stderr: `pagewise: ${message}\n` });
  expect(proxy.requests).toBe(requests);
}

const blobExists = (url: string) => new PageBlobClient(url, new AnonymousCredential()).exists();
const vaultUrl = () => proxy.via(env.vault.url);
const targetUrl = (name: string) => proxy.via(env.targetUrl(name));
const restoreArgs = (...rest: string[]) => ['restore', backupId, '--vault', vaultUrl(), '--key-file', keyFile, ...rest];

async function newDir(name: string, mode: number): Promise<string> {
  const dir = path.join(env.tmp, name);
  await fs.mkdir(dir);
  await fs.chmod(dir, mode);
  return dir;
}

describe('terminal injection: what echoes user input shows control characters escaped', () => {
  // ESC[2J clears the screen, OSC 0 sets the window title, U+202E reverses the text that follows.
  const hostile = 'evil\u001b[2J\u001b]0;owned\u0007\u202egpj.exe\nline2';
  const shown = 'evil\\x1B[2J\\x1B]0;owned\\x07\\u202Egpj.exe line2';

  test('an error message (upload of a missing image) is one line with no raw control character', async () => {
    const image = path.join(env.tmp, hostile);
    await expectRefused(['upload', image, targetUrl('inj.vhd')], 2, `cannot read the image ${path.join(env.tmp, shown)} (ENOENT)`);
    expect(await blobExists(env.targetUrl('inj.vhd'))).toBe(false);
  });

  test("serve's terminal log: an Event Grid event whose id carries escapes is logged escaped", async () => {
    const app = await startLocalApp({ taskHub: { connectionString: env.az.accounts.vault.connectionString }, appSettings: env.appSettings({ PAGEWISE_WATCHED_CONTAINERS: 'disks' }) });
    const warned: string[] = [];
    const spy = jest.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void warned.push(args.map(String).join(' ')));
    try {
      await app.host.invokeEventGrid('diskEvents', {
        id: hostile,
        topic: '/subscriptions/5f8b2c1e-0000-4000-8000-000000000001/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/src',
        subject: '/blobServices/default/containers/disks/blobs/x.vhd',
        eventType: 'Microsoft.Storage.BlobCreated',
        data: { api: 'CopyBlob', eTag: '0x8DC00000000AAAA', blobType: 'PageBlob', url: 'http://127.0.0.1:1/src/disks/x.vhd', contentLength: 0 },
        dataVersion: '',
        metadataVersion: '1',
        eventTime: '2024-05-02T01:00:00Z',
      });
    } finally {
      spy.mockRestore();
      await app.stop();
    }
    const line = warned.find((w) => w.includes('rejected'));
    expect(line).toMatch(/^\[diskEvents\] event evil\\x1B\[2J\\x1B\]0;owned\\x07\\u202Egpj\.exe\\x0Aline2 rejected: AccessDenied: /);
    expect(warned.join('\n')).not.toMatch(/[\u001b\u0007\u202e]/);
  });

  test('human output (keygen) escapes them; --json keeps them as JSON escapes', async () => {
    const dir = await newDir('inj-keys', 0o700);
    const out = await cli(['keygen', path.join(dir, 'k\u001b[31mred')]);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`wrote key file ${path.join(dir, 'k\\x1B[31mred')}\n`);
    expect(out.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    const json = await cli(['keygen', path.join(dir, 'j\u001b[31m'), '--json']);
    expect(json.code).toBe(0);
    expect(json.stdout).toContain('"keyFile": "' + path.join(dir, 'j\\u001b[31m') + '"');
    expect(json.stdout).not.toContain('\u001b');
    // C1 (0x9B is CSI) and U+202E, which JSON.stringify leaves raw: escaped, and the JSON still says the same name.
    const c1 = path.join(dir, 'c1\u009b31m\u202egpj');
    const c1json = await cli(['keygen', c1, '--json']);
    expect(c1json.code).toBe(0);
    expect(c1json.stdout).not.toMatch(/[\u0080-\u009f\u202e]/);
    expect((JSON.parse(c1json.stdout) as { keyFile: string }).keyFile).toBe(c1);
  });
});

describe('upload: only a regular file is read, and what is checked is what is read', () => {
  const refusedImage = async (image: string, blob: string, message: string) => {
    await expectRefused(['upload', image, targetUrl(blob)], 2, message);
    expect(await blobExists(env.targetUrl(blob))).toBe(false);
  };

  test('a FIFO without a writer is refused at once (never waited on)', async () => {
    const fifo = path.join(env.tmp, 'image.fifo');
    execFileSync('mkfifo', [fifo]);
    await refusedImage(fifo, 'fifo.vhd', `${fifo} is not a file`);
  });

  test('a link to a FIFO, /dev/zero and a directory are refused', async () => {
    const fifo = path.join(env.tmp, 'image2.fifo');
    execFileSync('mkfifo', [fifo]);
    const link = path.join(env.tmp, 'image.link');
    await fs.symlink(fifo, link);
    await refusedImage(link, 'link.vhd', `${link} is not a file`);
    await refusedImage('/dev/zero', 'zero.vhd', '/dev/zero is not a file');
    await refusedImage(env.tmp, 'dir.vhd', `${env.tmp} is not a file`);
  });

  test('a sparse file larger than a page blob may hold is refused before any request', async () => {
    const huge = path.join(env.tmp, 'huge.img');
    const handle = await fs.open(huge, 'w');
    await handle.truncate(8 * 1024 ** 4 + 1); // 8 TiB + 1 byte, no block allocated
    await handle.close();
    await refusedImage(huge, 'huge.vhd', 'the image is 8796093022209 bytes, more than a page blob may hold (8 TiB)');
  });

  const image = async (name: string, bytes: number) => {
    const file = path.join(env.tmp, name);
    await fs.writeFile(file, Buffer.alloc(bytes, 0x5a));
    return file;
  };

  test('an image that shrinks while it is read fails and leaves no page blob', async () => {
    const file = await image('shrinks.img', 10 * MiB);
    proxy.onPutPage = () => fs.truncate(file, 5 * MiB); // after the first 4 MiB were read
    const out = await cli(['upload', file, targetUrl('shrinks.vhd')]);
    expect(out).toEqual({
      code: 1,
      stdout: '',
      stderr: `pagewise: the image ${file} changed size while it was read (it was ${10 * MiB} bytes); the partial page blob was removed — upload it again when nothing writes it\n`,
    });
    expect(await blobExists(env.targetUrl('shrinks.vhd'))).toBe(false);
  });

  test('an image that grows while it is read fails and leaves no page blob', async () => {
    const file = await image('grows.img', 6 * MiB);
    proxy.onPutPage = () => fs.appendFile(file, Buffer.alloc(MiB, 1));
    const out = await cli(['upload', file, targetUrl('grows.vhd')]);
    expect(out.code).toBe(1);
    expect(out.stderr).toBe(`pagewise: the image ${file} changed size while it was read (it was ${6 * MiB} bytes); the partial page blob was removed — upload it again when nothing writes it\n`);
    expect(await blobExists(env.targetUrl('grows.vhd'))).toBe(false);
  });

  test('interrupted mid-upload (Ctrl-C): exit 130, "interrupted", the partial page blob removed', async () => {
    const file = await image('interrupted.img', 10 * MiB);
    const io = captureIO(cliEnv());
    const interrupt = new AbortController();
    io.interruptSignal = () => interrupt.signal;
    io.interruption = () => (interrupt.signal.aborted ? interrupt.signal.reason : undefined);
    proxy.onPutPage = () => interrupt.abort(new PagewiseError('Aborted', 'interrupted'));
    const out = await cli(['upload', file, targetUrl('interrupted.vhd')], io);
    expect(out).toEqual({ code: 130, stdout: '', stderr: 'pagewise: interrupted\n' });
    expect(await blobExists(env.targetUrl('interrupted.vhd'))).toBe(false);
  });
});

describe('signals and the demo, spawned as a user runs them', () => {
  const root = path.join(__dirname, '..');

  test('SIGTERM mid-upload (a real process): exit 143, "terminated", the partial page blob removed', async () => {
    const file = path.join(env.tmp, 'sigterm.img');
    await fs.writeFile(file, Buffer.alloc(10 * MiB, 0x33));
    const child = spawn(process.execPath, ['-r', TS_NODE_CACHE, path.join(root, 'bin', 'pagewise.js'), 'upload', file, targetUrl('sigterm.vhd')], {
      cwd: root,
      env: { ...process.env, ...cliEnv() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proxy.onPutPage = () => void child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect({ code, stdout, stderr }).toEqual({ code: 143, stdout: '', stderr: 'pagewise: terminated\n' });
    expect(await blobExists(env.targetUrl('sigterm.vhd'))).toBe(false);
  }, 60_000);

  test('demo --image without a file is refused (it never runs the sample disk instead)', () => {
    const r = spawnSync(process.execPath, ['-r', TS_NODE_CACHE, '-r', 'ts-node/register/transpile-only', path.join(root, 'demo', 'run-demo.ts'), '--image'], {
      cwd: root,
      env: { ...process.env, TS_NODE_PROJECT: path.join(root, 'tsconfig.json') },
    });
    expect({ status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() }).toEqual({
      status: 2,
      stdout: '',
      stderr: 'demo: --image needs the path of a raw disk image (npm run demo -- --image <file>)\n',
    });
  }, 60_000);
});

describe('directories another user can rearrange are refused for private files', () => {
  const sharedMessage = (what: string, dir: string) =>
    `${what} ${dir} has mode 0777: others may write it without the sticky bit and replace files in it; use a private directory (or chmod o-w or +t)`;

  test('--scratch-dir writable by others without the sticky bit: refused, nothing created in it', async () => {
    const dir = await newDir('scratch-shared', 0o777);
    const source = env.sourceUrl('cli.vhd');
    await expectRefused(['backup', proxy.via(source), '--vault', vaultUrl(), '--key-file', keyFile, '--scratch-dir', dir, '--backup-id', 'shared-scratch'], 2, sharedMessage('--scratch-dir', dir));
    expect(await fs.readdir(dir)).toEqual([]);
  });

  test('--scratch-dir owned by another user: refused', async () => {
    if (process.getuid?.() !== 0) return console.warn('not root: a directory of another user cannot be made here');
    const dir = await newDir('scratch-theirs', 0o755);
    await fs.chown(dir, 4242, 4242);
    const source = env.sourceUrl('cli.vhd');
    await expectRefused(['backup', proxy.via(source), '--vault', vaultUrl(), '--key-file', keyFile, '--scratch-dir', dir, '--backup-id', 'theirs-scratch'], 2,
      `--scratch-dir ${dir} belongs to another user (uid 4242), who could replace files in it; use a directory of your own`);
    expect(await fs.readdir(dir)).toEqual([]);
  });

  test('the engine refuses a shared scratch parent too (serve, the Functions app); a sticky one like /tmp is fine', async () => {
    const shared = await newDir('engine-shared', 0o777);
    await expect(createScratchDir(shared)).rejects.toThrow(sharedMessage('the scratch directory', shared));
    expect(await fs.readdir(shared)).toEqual([]);
    const sticky = await newDir('engine-sticky', 0o1777);
    const scratch = await createScratchDir(sticky);
    expect((await fs.stat(scratch.path)).mode & 0o777).toBe(0o700);
    await scratch.remove();
    expect(await fs.readdir(sticky)).toEqual([]);
  });

  test("the stale sweep removes only this user's directories of dead processes: not another user's, a FIFO or a file so named", async () => {
    const parent = await newDir('sweep', 0o1777); // a /tmp-like parent others share
    const dead = spawnSync('true').pid; // a pid that has exited
    const name = (tag: string) => path.join(parent, `pagewise-scratch-${dead}-${tag}`);
    await fs.mkdir(name('MiNeAa'));
    await fs.writeFile(path.join(name('MiNeAa'), 'slots'), 'plaintext');
    const planted = [name('ThEiRs'), name('FiFoOo'), name('FiLeEe')];
    await fs.mkdir(planted[0]);
    await fs.writeFile(path.join(planted[0], 'data'), 'theirs');
    execFileSync('mkfifo', [planted[1]]);
    await fs.writeFile(planted[2], 'a file');
    if (process.getuid?.() === 0) await fs.chown(planted[0], 4242, 4242);
    expect(await sweepStaleScratchDirs(parent)).toEqual(process.getuid?.() === 0 ? [path.basename(name('MiNeAa'))] : expect.arrayContaining([path.basename(name('MiNeAa'))]));
    expect((await fs.readdir(parent)).sort()).toEqual((process.getuid?.() === 0 ? planted : planted.slice(1)).map((p) => path.basename(p)).sort());
    if (process.getuid?.() === 0) expect(await fs.readFile(path.join(planted[0], 'data'), 'utf8')).toBe('theirs');
    expect((await fs.lstat(planted[1])).isFIFO()).toBe(true);
  });

  test('restore --to into a directory others may write without the sticky bit: refused before the vault is read', async () => {
    const dir = await newDir('restore-shared', 0o777);
    await expectRefused(restoreArgs('--to', path.join(dir, 'disk.img')), 2, sharedMessage('the directory of the restore target', dir));
    expect(await fs.readdir(dir)).toEqual([]);
  });

  test('restore --to through a parent that is a link: written at the real path, the link not followed later', async () => {
    const real = await newDir('restore-real', 0o700);
    const link = path.join(env.tmp, 'restore-link');
    await fs.symlink(real, link);
    const out = await cli(restoreArgs('--to', path.join(link, 'disk.img')));
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`to ${path.join(real, 'disk.img')}\n`);
    expect(await fs.readdir(real)).toEqual(['disk.img']);
  });

  test('a key file in a directory others may write without the sticky bit is refused (it could be swapped)', async () => {
    const dir = await newDir('keys-shared', 0o700);
    const key = path.join(dir, 'user.key');
    await fs.copyFile(keyFile, key);
    await fs.chmod(key, 0o600);
    await fs.chmod(dir, 0o777);
    const target = path.join(env.tmp, 'never.img');
    await expectRefused(['restore', backupId, '--vault', vaultUrl(), '--key-file', key, '--to', target], 2,
      `the key file ${key} is unsafe: ${sharedMessage('the directory', dir)}`);
    await expect(fs.lstat(target)).rejects.toThrow(/ENOENT/);
  });

  test('keygen into a directory others may write without the sticky bit: refused, no key written', async () => {
    const dir = await newDir('keygen-shared', 0o777);
    const key = path.join(dir, 'new.key');
    await expectRefused(['keygen', key], 2, `cannot write the key file ${key} there: ${sharedMessage('the directory', dir)}`);
    expect(await fs.readdir(dir)).toEqual([]);
  });
});

describe('restore --to never destroys the key or fails late', () => {
  test('the key file itself, or a hard link to it, with --force: refused before the vault is read, the key unchanged', async () => {
    const before = await fileSha256(keyFile);
    const link = path.join(env.tmp, 'key-hardlink.img');
    await fs.link(keyFile, link);
    for (const to of [keyFile, link]) {
      await expectRefused(restoreArgs('--to', to, '--force'), 2,
        `${to} is the key file ${keyFile}; a restore never overwrites the key (every backup made with it would be lost)`);
    }
    expect(await fileSha256(keyFile)).toBe(before);
    expect((await fs.readdir(env.tmp)).filter((n) => n.includes('pagewise-partial'))).toEqual([]);
  });

  test('a file name too long for the partial file beside it: refused before the vault is read', async () => {
    const dir = await newDir('long-name', 0o700);
    const to = path.join(dir, `${'d'.repeat(230)}.img`);
    await expectRefused(restoreArgs('--to', to), 2,
      `the file name of ${to} is too long for a restore target (at most 221 bytes: the partial file beside it adds 34)`);
    expect(await fs.readdir(dir)).toEqual([]);
  });
});

describe('--to-device on a device in use', () => {
  const sh = (cmd: string, args: string[]): string | undefined => {
    try {
      return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      return undefined;
    }
  };

  test('a mounted block device is refused before the vault is read and left as it was', async () => {
    const backing = path.join(env.tmp, 'mounted.img');
    const mnt = await newDir('mnt', 0o700);
    await fs.writeFile(backing, Buffer.alloc(4 * MiB));
    const device = sh('mkfs.ext2', ['-q', '-F', backing]) !== undefined ? sh('losetup', ['-f', '--show', backing]) : undefined;
    if (!device) return console.warn('losetup/mkfs.ext2 not available: the mounted-device refusal was not exercised');
    try {
      if (sh('mount', [device, mnt]) === undefined) return console.warn('mount not permitted: the mounted-device refusal was not exercised');
      try {
        const before = await fileSha256(backing);
        await expectRefused(restoreArgs('--to-device', device), 2,
          `the device ${device} is in use (mounted, or a partition of it is, or held as swap, LVM or RAID); unmount it first: a restore never writes a device in use`);
        expect(await fileSha256(backing)).toBe(before);
      } finally {
        sh('umount', [mnt]);
      }
    } finally {
      sh('losetup', ['-d', device]);
    }
  });
});
