/**
 * `pagewise ls`, `extract` and `cat` in-process through run() with a capturing IO, against Azurite: an MBR
 * disk (p1 ext4 from mkfs.ext4 -d, p2 an unformatted swap partition) uploaded, backed up, then read back
 * file by file — the partition table, `ls -l`-like listings, --json, bytes to stdout, extraction with
 * modes and times, and the errors with their exit codes. Every output is scanned for secrets at the end.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { captureIO, run } from '../cli/main';
import { modeString, skippedLines, terminalControlAt } from '../cli/commands/files';
import { encodeKeyFile, formatBytes } from '../core';
import { fileBlocks, journalWrite, seededBytes } from '../testkit/fs-images';
import { startPagewise } from '../testkit/pagewise-process';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { backupExtTree, backupPartitionedTree, backupRandomDisk, FilesBackup } from './harness/files-backup';

let env: TestEnv;
let backup: FilesBackup;
let keyFile: string;
const seen: Outcome[] = [];

const BIG = seededBytes(2 * MiB + 777, 41);
const MTIME = new Date('2021-03-04T05:06:07Z');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  bytes: Buffer;
}

beforeAll(async () => {
  env = await startEnv();
  keyFile = path.join(env.tmp, 'user.key');
  await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
  backup = await backupPartitionedTree(env, 'cli-files', async (dir) => {
    await fs.mkdir(path.join(dir, 'etc'));
    await fs.writeFile(path.join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
    await fs.writeFile(path.join(dir, 'etc/shadow'), 'root:*:19000::::::\n');
    await fs.chmod(path.join(dir, 'etc/shadow'), 0o640);
    await fs.mkdir(path.join(dir, 'tmp'));
    await fs.chmod(path.join(dir, 'tmp'), 0o1777);
    await fs.writeFile(path.join(dir, 'tmp', '\x1b[2J\u202eevil'), 'x'); // a name that would clear the terminal and flip the text
    await fs.writeFile(path.join(dir, 'big.bin'), BIG);
    await fs.symlink('etc/hosts', path.join(dir, 'hosts-link'));
    for (const p of ['etc/hosts', 'etc/shadow', 'big.bin']) await fs.utimes(path.join(dir, p), MTIME, MTIME);
  });
});
afterAll(async () => {
  // Nothing the commands printed holds the vault's SAS signature or the key.
  const all = seen.map((o) => `${o.stdout}\n${o.stderr}`).join('\n');
  expect(all).not.toMatch(/sig=(?!REDACTED)[A-Za-z0-9%+/=]{8,}/i);
  expect(all).not.toContain(env.userKey.toString('base64'));
  await env?.stop();
});

async function cli(args: string[], options: { terminal?: boolean } = {}): Promise<Outcome> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
  if (options.terminal) io.stdoutIsTerminal = true;
  const code = await run(args, io);
  const outcome = { code, stdout: io.stdoutText(), stderr: io.stderrText(), bytes: io.stdoutBuffer() };
  seen.push(outcome);
  return outcome;
}

const vaultArgs = () => ['--vault', env.vault.url, '--key-file', keyFile];
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A failed command: its exit code, nothing on stdout, one `pagewise: …` line. */
function expectError(o: Outcome, code: number, message: RegExp): void {
  expect(o.code).toBe(code);
  expect(o.stdout).toBe('');
  const lines = o.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^pagewise: /);
  expect(lines[0]).toMatch(message);
}

test('ls without a path on a partitioned disk: the partition table, what each holds, whether it opens', async () => {
  const o = await cli(['ls', backup.backupId, ...vaultArgs()]);
  expect(o.code).toBe(0);
  const lines = o.stdout.trimEnd().split('\n');
  expect(lines[0]).toBe('MBR partition table, 2 volumes');
  expect(lines[1]).toMatch(/^NAME\s+START\s+SIZE\s+TYPE\s+HOLDS\s+OPENABLE$/);
  expect(lines[2]).toMatch(/^p1\s+1048576\s+12\.0 MiB\s+Linux\s.*ext4 file system.*\s+yes$/);
  expect(lines[3]).toMatch(/^p2\s+13631488\s+2\.00 MiB\s+Linux swap \/ Solaris\s+no data \(its first 64 KiB are zeros\)\s+no$/);
  expect(lines.slice(4)).toEqual(['', 'p2 holds no file system: its first 64 KiB are zeros']);

  const json = await cli(['ls', backup.backupId, ...vaultArgs(), '--json']);
  const body = JSON.parse(json.stdout) as { volumes: Array<Record<string, unknown>>; journalReplayed: string[]; stats: { bytesFetched: number; requests: number } };
  expect(body.volumes.map((v) => [v.name, v.kind, v.openable])).toEqual([
    ['p1', 'ext4', true],
    ['p2', 'empty', false],
  ]);
  expect(body.volumes[0]).toMatchObject({ offset: 1 * MiB, size: 12 * MiB, type: 'Linux' });
  expect(body.journalReplayed).toEqual([]);
  expect(body.stats.requests).toBeGreaterThan(0);
});

test('ls of a directory: mode string, size, mtime (UTC), name and link target; --limit/--after page it', async () => {
  const root = await cli(['ls', backup.backupId, 'p1:/', ...vaultArgs()]);
  expect(root.code).toBe(0);
  const rows = root.stdout.trimEnd().split('\n');
  expect(rows.map((r) => r.split(/\s+/).pop())).toEqual(['big.bin', 'etc', 'etc/hosts', 'lost+found', 'tmp']);
  expect(rows[0]).toMatch(new RegExp(`^-rw-r--r--\\s+${BIG.length}\\s+2021-03-04 05:06:07\\s+big\\.bin$`));
  expect(rows[1]).toMatch(/^drwxr-xr-x\s+4096\s+\S+ \S+\s+etc$/);
  expect(rows[2]).toMatch(/^lrwxrwxrwx\s+9\s+\S+ \S+\s+hosts-link -> etc\/hosts$/);
  expect(rows[4]).toMatch(/^drwxrwxrwt\s/);

  const etc = await cli(['ls', backup.backupId, 'p1:/etc', ...vaultArgs(), '--limit', '1']);
  expect(etc.stdout).toMatch(/^-rw-r--r--\s+20\s+2021-03-04 05:06:07\s+hosts\n$/);
  expect(etc.stderr).toMatch(/more entries follow: pagewise ls … --after 'hosts'/);
  const rest = await cli(['ls', backup.backupId, 'p1:/etc', ...vaultArgs(), '--after', 'hosts', '--json']);
  const listing = JSON.parse(rest.stdout) as { volume: string; path: string; entries: Array<{ name: string; mode: number; size: number; mtime: string }> };
  expect(listing).toMatchObject({ volume: 'p1', path: '/etc' });
  expect(listing.entries).toEqual([expect.objectContaining({ name: 'shadow', mode: 0o640, size: 19, mtime: MTIME.toISOString() })]);

  // Without a volume: the only one Pagewise can open (p2 holds no file system).
  const bare = await cli(['ls', backup.backupId, '/etc', ...vaultArgs()]);
  expect(bare.stdout.trimEnd().split('\n').map((r) => r.split(/\s+/).pop())).toEqual(['hosts', 'shadow']);

  // A file path lists that one entry, as ls does.
  const one = await cli(['ls', backup.backupId, 'p1:/etc/shadow', ...vaultArgs()]);
  expect(one.stdout).toMatch(/^-rw-r-----\s+19\s+2021-03-04 05:06:07\s+shadow\n$/);
});

test('a name with terminal escapes is shown escaped, in the listing and in --json', async () => {
  const o = await cli(['ls', backup.backupId, 'p1:/tmp', ...vaultArgs()]);
  expect(o.stdout).toMatch(/^-rw-r--r--\s+1\s+\S+ \S+\s+\\x1B\[2J\\u202Eevil\n$/);
  expect(o.stdout).not.toMatch(/[\x1b\u202e]/);
  const json = await cli(['ls', backup.backupId, 'p1:/tmp', ...vaultArgs(), '--json']);
  expect(json.stdout).not.toMatch(/[\x1b\u202e]/);
  expect((JSON.parse(json.stdout) as { entries: Array<{ name: string }> }).entries[0].name).toBe('\x1b[2J\u202eevil');
});

test('cat: the file\'s bytes on stdout as bytes, and nothing else', async () => {
  const o = await cli(['cat', backup.backupId, 'p1:/big.bin', ...vaultArgs()]);
  expect(o.code).toBe(0);
  expect(o.stdout).toBe('');
  expect(o.bytes.length).toBe(BIG.length);
  expect(sha(o.bytes)).toBe(sha(BIG));
  const hosts = await cli(['cat', backup.backupId, 'p1:/etc/hosts', ...vaultArgs()]);
  expect(hosts.bytes.toString()).toBe('127.0.0.1 localhost\n');
});

test('cat to a terminal stops before the first byte that would act on it; text passes; --raw writes all', async () => {
  const first = terminalControlAt(BIG, -1);
  expect(first).toBeGreaterThanOrEqual(0);
  const o = await cli(['cat', backup.backupId, 'p1:/big.bin', ...vaultArgs()], { terminal: true });
  expect(o.code).toBe(2);
  expect(o.stdout).toBe('');
  expect(o.bytes).toEqual(BIG.subarray(0, first));
  expect(o.stderr).toContain(`p1:/big.bin holds a byte that would act on the terminal (at byte ${first}): stopped there`);
  const hosts = await cli(['cat', backup.backupId, 'p1:/etc/hosts', ...vaultArgs()], { terminal: true });
  expect({ code: hosts.code, text: hosts.bytes.toString() }).toEqual({ code: 0, text: '127.0.0.1 localhost\n' });
  const raw = await cli(['cat', backup.backupId, 'p1:/big.bin', '--raw', ...vaultArgs()], { terminal: true });
  expect(raw.code).toBe(0);
  expect(sha(raw.bytes)).toBe(sha(BIG));
});

test('the bytes a terminal acts on: C0 but tab/LF/CR, DEL, UTF-8 C1 (also split across chunks); UTF-8 text passes', () => {
  expect(terminalControlAt(Buffer.from('plain\ttext\r\n', 'utf8'), -1)).toBe(-1);
  expect(terminalControlAt(Buffer.from('héllo ě 日本', 'utf8'), -1)).toBe(-1); // ě is C4 9B: a continuation byte, not CSI
  expect(terminalControlAt(Buffer.from('ab\x1b[2J', 'latin1'), -1)).toBe(2);
  expect(terminalControlAt(Buffer.from('ab\x7f', 'latin1'), -1)).toBe(2);
  expect(terminalControlAt(Buffer.from([0x61, 0xc2, 0x9b, 0x32, 0x4a]), -1)).toBe(1);
  expect(terminalControlAt(Buffer.from([0x9b, 0x32, 0x4a]), 0xc2)).toBe(0);
  expect(terminalControlAt(Buffer.from([0x9b]), 0xc4)).toBe(-1);
});

test('cat as a real process: the bytes through a pipe are the file\'s, exit 0, stderr empty', async () => {
  const { child, done } = startPagewise(['cat', backup.backupId, 'p1:/big.bin', ...vaultArgs()], { env: { PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints } });
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => chunks.push(d));
  const exit = await done;
  expect({ code: exit.code, stderr: exit.stderr }).toEqual({ code: 0, stderr: '' });
  expect(sha(Buffer.concat(chunks))).toBe(sha(BIG));
});

test('cat whose reader goes away (| head): stops quietly, exit 0', async () => {
  const { child, done } = startPagewise(['cat', backup.backupId, 'p1:/big.bin', ...vaultArgs()], { env: { PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints } });
  let got = 0;
  child.stdout!.once('data', (d: Buffer) => {
    got = d.length;
    child.stdout!.destroy();
  });
  const exit = await done;
  expect(got).toBeGreaterThan(0);
  expect({ code: exit.code, signal: exit.signal, stderr: exit.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
});

test('extract: files and trees land under --to with modes and times; an existing file needs --force', async () => {
  const to = path.join(env.tmp, 'out');
  const o = await cli(['extract', backup.backupId, 'p1:/etc', 'p1:/big.bin', 'p1:/hosts-link', '--to', to, ...vaultArgs()]);
  expect(o.code).toBe(0);
  const lines = o.stdout.trimEnd().split('\n');
  expect(lines[0]).toBe(`extracted 3 files, 1 directory, 1 symlink (${formatBytes(BIG.length + 20 + 19)}) to ${await fs.realpath(to)}`);
  expect(lines[1]).toMatch(/^ {2}\S+ (KiB|MiB) fetched from the vault in \d+ requests$/);
  expect(sha(await fs.readFile(path.join(to, 'big.bin')))).toBe(sha(BIG));
  expect(await fs.readFile(path.join(to, 'etc/hosts'), 'utf8')).toBe('127.0.0.1 localhost\n');
  expect((await fs.stat(path.join(to, 'etc/shadow'))).mode & 0o7777).toBe(0o640);
  expect((await fs.stat(path.join(to, 'big.bin'))).mtime.toISOString()).toBe(MTIME.toISOString());
  expect(await fs.readlink(path.join(to, 'hosts-link'))).toBe('etc/hosts');

  expectError(await cli(['extract', backup.backupId, 'p1:/big.bin', '--to', to, ...vaultArgs()]), 2, /big\.bin/);
  const forced = await cli(['extract', backup.backupId, 'p1:/big.bin', '--to', to, '--force', '--json', ...vaultArgs()]);
  expect(forced.code).toBe(0);
  const result = JSON.parse(forced.stdout) as { files: number; bytes: number; skipped: unknown[]; stats: { bytesFetched: number } };
  expect(result).toMatchObject({ files: 1, bytes: BIG.length, skipped: [] });
  expect(result.stats.bytesFetched).toBeGreaterThanOrEqual(BIG.length);
  // Only the file's pieces and the metadata on the way: at most the file + the two 256 KiB pages at its ends + one
  // page of metadata (measured: 2,150,541 bytes for this 2,097,929-byte file, 18 requests).
  expect(result.stats.bytesFetched).toBeLessThanOrEqual(BIG.length + 3 * 256 * KiB);
});

test('a change only in the journal: replayed in memory, seen by cat, and said on stderr', async () => {
  const journaled = await backupExtTree(env, 'cli-journal', async (dir) => {
    await fs.writeFile(path.join(dir, 'motd'), 'old message\n');
  }, {
    prepare: async (image) => {
      const [block] = fileBlocks(image, '/motd');
      const data = Buffer.alloc(4096);
      data.write('new message\n'); // same length: the inode's size stays 12
      await journalWrite(image, [{ block, data }]);
    },
  });
  const o = await cli(['cat', journaled.backupId, '/motd', ...vaultArgs()]);
  expect(o.code).toBe(0);
  expect(o.bytes.toString()).toBe('new message\n');
  expect(o.stderr).toBe('disk: replayed 1 journal transaction (1 block): files are as the VM last wrote them\n');
  const json = JSON.parse((await cli(['ls', journaled.backupId, '/', ...vaultArgs(), '--json'])).stdout) as { journalReplayed: string[]; stats: { journalsReplayed: number } };
  expect(json.journalReplayed).toEqual(['disk']);
  expect(json.stats.journalsReplayed).toBe(1);
});

test('mode strings as ls shows them; skipped entries capped at 20 lines', () => {
  expect(modeString('directory', 0o755)).toBe('drwxr-xr-x');
  expect(modeString('directory', 0o1777)).toBe('drwxrwxrwt');
  expect(modeString('directory', 0o1776)).toBe('drwxrwxrwT');
  expect(modeString('file', 0o4755)).toBe('-rwsr-xr-x');
  expect(modeString('file', 0o2644)).toBe('-rw-r-Sr--');
  expect(modeString('symlink', 0o777)).toBe('lrwxrwxrwx');
  expect(modeString('char-device', 0o620)).toBe('crw--w----');
  expect(modeString('block-device', 0o660)).toBe('brw-rw----');
  expect(modeString('fifo', 0o644)).toBe('prw-r--r--');
  expect(modeString('socket', 0o755)).toBe('srwxr-xr-x');
  expect(modeString('unknown', 0)).toBe('?---------');
  const skipped = Array.from({ length: 23 }, (_, i) => ({ path: `p1:/dev/d${i}`, reason: 'a device' }));
  const lines = skippedLines(skipped);
  expect(lines).toHaveLength(22);
  expect(lines[0]).toBe('23 entries skipped:');
  expect(lines[1]).toBe('  skipped p1:/dev/d0: a device');
  expect(lines[21]).toBe('  and 3 more');
  expect(skippedLines(skipped.slice(0, 1))).toEqual(['1 entry skipped:', '  skipped p1:/dev/d0: a device']);
  expect(skippedLines([])).toEqual([]);
  // More skipped than the result keeps: the total is said, and the rest counted from it.
  const kept = skippedLines(skipped, 5000);
  expect(kept[0]).toBe('5000 entries skipped:');
  expect(kept[kept.length - 1]).toBe('  and 4980 more');
});

test('a disk Pagewise cannot read: ls shows what it is and why; a path in it is refused with that sentence', async () => {
  const randomId = await backupRandomDisk(env, 'cli-random');
  const o = await cli(['ls', randomId, ...vaultArgs()]);
  expect(o.code).toBe(0);
  const lines = o.stdout.trimEnd().split('\n');
  expect(lines[0]).toBe('no partition table, 1 volume');
  expect(lines[2]).toMatch(/^disk\s+0\s+4\.00 MiB\s+-\s+.*\s+no$/);
  expect(lines[4]).toMatch(/no partition table and no file system Pagewise knows/);
  expectError(await cli(['ls', randomId, 'disk:/', ...vaultArgs()]), 2, /no partition table and no file system Pagewise knows/);
});

test('errors: each one line with its exit code, nothing on stdout', async () => {
  expectError(await cli(['ls', backup.backupId, 'p1:/nope', ...vaultArgs()]), 2, /nope/);
  expectError(await cli(['cat', backup.backupId, 'p1:/etc', ...vaultArgs()]), 2, /p1:\/etc is a directory, not a regular file/);
  expectError(await cli(['ls', backup.backupId, 'p2:/', ...vaultArgs()]), 2, /p2/);
  expectError(await cli(['ls', backup.backupId, 'p1:/../etc', ...vaultArgs()]), 2, /\.\./);
  expectError(await cli(['ls', backup.backupId, 'p1:/', '--limit', '0', ...vaultArgs()]), 2, /--limit 0 must be from 1 to 10000/);
  expectError(await cli(['ls', backup.backupId, '--limit', '5', ...vaultArgs()]), 2, /give a path/);
  expectError(await cli(['ls', backup.backupId, ...vaultArgs(), '--cache', '1KiB']), 2, /cache/i);
  expectError(await cli(['ls', 'pw-000000000000000000000000', ...vaultArgs()]), 2, /pw-000000000000000000000000/);
});
