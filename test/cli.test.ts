/**
 * The `pagewise` CLI against a real Azurite: a few commands spawned through bin/pagewise.js (proves the
 * executable, exit codes and process output), the rest in-process through run() with a capturing IO.
 * Every stdout/stderr seen is scanned for secrets at the end.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { writeDisk, DiskRegion, SampleDisk } from '../testkit/sample-disk';
import { captureIO, run } from '../cli/main';
import { formatBytes, writeNewKeyFile } from '../core';
import { damageData } from './harness/vault-blobs';
import { startPagewise } from '../testkit/pagewise-process';
import { closedPort } from './harness/listeners';

const MiB = 1024 * 1024;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

const seen: Outcome[] = [];
let az: AzuriteInstance;
let tmp: string;
let keyFile: string;
let otherKeyFile: string;
let disk: SampleDisk;
let sourceUrl: string;
let vaultUrl: string;
let backupId: string;
/** The backup's non-zero chunk references (#15: 1 MiB pages cut into FastCDC chunks). */
let chunks: number;

/** A 16 MiB disk: text, explicit zeros, random data, the same pattern twice, holes in between. */
const LAYOUT: DiskRegion[] = [
  { offset: 0, length: 64 * 1024, kind: 'text', seed: 1 },
  { offset: 1 * MiB, length: 2 * MiB, kind: 'text', seed: 2 },
  { offset: 3 * MiB, length: 1 * MiB, kind: 'zero' },
  { offset: 5 * MiB, length: 2 * MiB, kind: 'random', seed: 3 },
  { offset: 8 * MiB, length: 1 * MiB, kind: 'repeat', seed: 4 },
  { offset: 11 * MiB, length: 1 * MiB, kind: 'repeat', seed: 4 },
  { offset: 13 * MiB + 4096, length: 1024, kind: 'random', seed: 5 },
  { offset: 16 * MiB - 64 * 1024, length: 64 * 1024, kind: 'random', seed: 6 },
];
const DISK_BYTES = 16 * MiB;

function env(extra: Record<string, string> = {}): Record<string, string | undefined> {
  return { PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints, ...extra };
}

/** In-process: the real command code, output captured. */
async function cli(args: string[], extraEnv: Record<string, string> = {}, interrupt?: AbortSignal): Promise<Outcome> {
  const io = captureIO(env(extraEnv));
  if (interrupt) io.interruptSignal = () => interrupt;
  const code = await run(args, io);
  const outcome = { code, stdout: io.stdoutText(), stderr: io.stderrText() };
  seen.push(outcome);
  return outcome;
}

/** Spawned: node bin/pagewise.js (ts-node when dist/ is absent). */
async function spawnCli(args: string[], extraEnv: Record<string, string> = {}): Promise<Outcome> {
  const { code, stdout, stderr } = await startPagewise(args, { env: { PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints, ...extraEnv }, cwd: tmp }).done;
  const outcome = { code: code ?? -1, stdout, stderr };
  seen.push(outcome);
  return outcome;
}

function stderrLines(o: Outcome): string[] {
  return o.stderr.split('\n').filter((l) => l.length > 0);
}

/** A failed command: non-zero exit, nothing on stdout, exactly one `pagewise: …` line naming the problem. */
function expectOneLineError(o: Outcome, pattern: RegExp, code?: number): void {
  const lines = stderrLines(o);
  expect({ lines, code: o.code }).toEqual({ lines: [expect.stringMatching(/^pagewise: /)], code: code ?? expect.any(Number) });
  expect(o.code).not.toBe(0);
  expect(lines[0]).toMatch(pattern);
  expect(o.stdout).toBe('');
}

async function fileSha256(file: string): Promise<string> {
  return createHash('sha256').update(await fs.readFile(file)).digest('hex');
}

beforeAll(async () => {
  az = await startAzurite({ accounts: ['src', 'vault'] });
  await az.accounts.src.service.getContainerClient('disks').create();
  await az.accounts.vault.service.getContainerClient('restores').create();
  await az.accounts.vault.service.getContainerClient('vault').create(); // a container SAS cannot create its container
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-cli-test-'));
  disk = await writeDisk(az.accounts.src.service.getContainerClient('disks').getPageBlobClient('vm1.vhd'), DISK_BYTES, LAYOUT);
  await az.accounts.src.service.getContainerClient('disks').getBlockBlobClient('notes.txt').upload('hello', 5);
  sourceUrl = az.sasUrl('src', 'disks', 'vm1.vhd', { permissions: 'r' });
  vaultUrl = az.sasUrl('vault', 'vault');
  keyFile = path.join(tmp, 'user.key');
  otherKeyFile = path.join(tmp, 'other.key');
  await writeNewKeyFile(otherKeyFile);
});

afterAll(async () => {
  await az?.stop();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

describe('keygen', () => {
  test('writes a new key file and prints its key ID; refuses to overwrite it', async () => {
    const first = await spawnCli(['keygen', keyFile]);
    expect(first.code).toBe(0);
    expect(first.stderr).toBe('');
    const file = JSON.parse(readFileSync(keyFile, 'utf8')) as { keyId: string; key: string };
    expect(first.stdout).toContain(`key ID ${file.keyId}`);
    expect(first.stdout).not.toContain(file.key);
    expect((await fs.stat(keyFile)).mode & 0o777).toBe(0o600);

    const again = await spawnCli(['keygen', keyFile]);
    expectOneLineError(again, /already exists; refusing to overwrite/, 2);
    expect(JSON.parse(readFileSync(keyFile, 'utf8')).key).toBe(file.key);
  });
});

describe('backup, list, verify, restore', () => {
  test('backup --json (spawned) prints one consistent BackupResult', async () => {
    const o = await spawnCli(['backup', sourceUrl, '--vault', vaultUrl, '--key-file', keyFile, '--page-size', '1MiB', '--cache', '4MiB', '--concurrency', '2', '--scratch-dir', tmp, '--json']);
    expect(o.stderr).toBe('');
    expect(o.code).toBe(0);
    const r = JSON.parse(o.stdout);
    for (const field of ['backupId', 'diskBytes', 'allocatedBytes', 'bytesRead', 'bytesStored', 'pages', 'pageSize', 'cacheCapacityBytes', 'cacheHighWaterBytes', 'durationMs']) {
      expect(r).toHaveProperty(field);
    }
    expect(r.diskBytes).toBe(DISK_BYTES);
    expect(r.allocatedBytes).toBe(disk.allocatedBytes);
    expect(r.bytesRead).toBe(r.allocatedBytes);
    expect(r.bytesReadNow).toBe(r.allocatedBytes);
    expect(r.alreadyExisted).toBe(false);
    expect(r.pageSize).toBe(MiB);
    expect(r.cacheCapacityBytes).toBe(4 * MiB);
    expect(r.cacheHighWaterBytes).toBeGreaterThan(0);
    expect(r.cacheHighWaterBytes).toBeLessThanOrEqual(r.cacheCapacityBytes);
    expect(r.cacheCapacityBytes).toBeLessThan(r.diskBytes);
    expect(r.pages).toBe(10); // pages 0,1,2,3,5,6,8,11,13,15 hold allocated bytes
    expect(r.zeroPages).toBe(1);
    expect(r.dedupedPages).toBe(1);
    expect(r.bytesStored).toBeLessThan(r.bytesRead);
    expect(r.backupId).toMatch(/^pw-[0-9a-f]{24}$/);
    backupId = r.backupId;
    chunks = r.chunks;
    expect(chunks).toBeGreaterThan(9); // 9 pages with data, each several chunks
  });

  test('backup again says the backup already exists and that nothing was read (no read speed)', async () => {
    const [listed] = JSON.parse((await cli(['list', '--vault', vaultUrl, '--json'])).stdout).backups as Array<{ completedAt: string }>;
    const o = await cli(['backup', sourceUrl, '--vault', vaultUrl, '--key-file', keyFile, '--page-size', '1MiB', '--cache', '4MiB']);
    expect(o.code).toBe(0);
    expect(o.stderr).toBe('');
    expect(o.stdout.split('\n')[0]).toBe(`backup ${backupId} already exists (made ${listed.completedAt}), nothing read: ${az.accounts.src.endpoint}/disks/vm1.vhd → ${az.accounts.vault.endpoint}/vault`);
    expect(o.stdout).not.toMatch(/MiB\/s|^\s+read\s/m);
    const json = JSON.parse((await cli(['backup', sourceUrl, '--vault', vaultUrl, '--key-file', keyFile, '--page-size', '1MiB', '--cache', '4MiB', '--json'])).stdout);
    expect(json).toMatchObject({ backupId, alreadyExisted: true, bytesRead: 0, completedAt: listed.completedAt, pages: 10, cacheCapacityBytes: 4 * MiB });
  });

  test('list shows the backup (json and table), grouped by disk; without the key it is locked', async () => {
    const json = await cli(['list', '--vault', vaultUrl, '--key-file', keyFile, '--json']);
    expect(json.code).toBe(0);
    const listing = JSON.parse(json.stdout);
    expect(listing.backups.map((b: { backupId: string }) => b.backupId)).toEqual([backupId]);
    expect(listing.backups[0]).toMatchObject({ diskBytes: DISK_BYTES, pageSize: MiB, kind: 'full', base: null });
    expect(listing.disks).toEqual([{ disk: 'blob:src/disks/vm1.vhd', backups: listing.backups }]); // the disk identity (FORMAT.md §21.1)
    const table = await cli(['list', '--vault', vaultUrl, '--key-file', keyFile]);
    expect(table.code).toBe(0);
    // Grouped by disk: the disk, then its backups newest first.
    // With usage (the default): the disk's stored bytes, UNIQUE and SHARED per backup (one backup: all its own), the vault's totals.
    const stored = listing.backups[0].bytesStored as number;
    // Its only backup names each stored chunk once (the repeated MiB is one chunk, stored once): all its stored bytes are its own.
    expect(listing.usage.backups).toEqual([{ backupId, disk: 'blob:src/disks/vm1.vhd', formatVersion: 2, referencedBytes: stored, uniqueBytes: stored, sharedBytes: 0 }]);
    const own = formatBytes(stored).replace('.', '\\.');
    expect(table.stdout).toMatch(new RegExp(`^disk blob:src/disks/vm1\\.vhd \\(1 backup; stored ${own}: ${own} its own, 0 B shared with other disks\\)\\n  COMPLETED +KIND +BASE +LOGICAL +READ +NEW +STORED +UNIQUE +SHARED +BACKUP ID +VERIFIED +STATUS\\n`));
    expect(table.stdout).toMatch(new RegExp(`\\n  \\S+ +full +- +16\\.0 MiB +[0-9.]+ MiB +[0-9.]+ MiB +[0-9.]+ MiB +${own} +0 B +${backupId} +never +complete\\n`));
    expect(table.stdout).toMatch(/\nvault: [0-9.]+ [KM]iB in all — packs /);
    // --no-usage: the columns as before, no table read.
    const bare = await cli(['list', '--vault', vaultUrl, '--key-file', keyFile, '--no-usage']);
    expect(bare.stdout).toMatch(/^disk blob:src\/disks\/vm1\.vhd \(1 backup\)\n  COMPLETED +KIND +BASE +LOGICAL +READ +NEW +STORED +BACKUP ID +VERIFIED +STATUS\n/);
    expect(bare.stdout).toMatch(new RegExp(`\\n  \\S+ +full +- +16\\.0 MiB +[0-9.]+ MiB +[0-9.]+ MiB +[0-9.]+ MiB +${backupId} +never +complete\\n`));
    expect(bare.stdout).not.toMatch(/^vault:/m);
    // Without the key only the blob name of a version-2 backup is readable: listed, locked.
    const locked = JSON.parse((await cli(['list', '--vault', vaultUrl, '--json'])).stdout);
    expect(locked.backups).toEqual([expect.objectContaining({ status: 'complete', locked: true })]);
  });

  test('verify checks structure by default; --read-data reads every block', async () => {
    const full = await cli(['verify', backupId, '--vault', vaultUrl, '--key-file', keyFile, '--read-data', '--source', sourceUrl, '--json']);
    expect(full.stderr).toBe('');
    expect(full.code).toBe(0);
    const r = JSON.parse(full.stdout);
    // 10 pages, one of them zero (no block) and one a duplicate: 9 page-table entries with data blocks,
    // each page's chunks a block checked (#15).
    expect(r).toMatchObject({ backupId, ok: true, problems: [], readData: true, comparedWithSource: true, pagesChecked: 9, segmentsChecked: 1, blocksChecked: chunks, bytesChecked: 9 * MiB });
    const quick = await cli(['verify', backupId, '--vault', vaultUrl, '--key-file', keyFile, '--json']);
    expect(quick.code).toBe(0);
    expect(JSON.parse(quick.stdout)).toMatchObject({ ok: true, readData: false, comparedWithSource: false, pagesChecked: 9, segmentsChecked: 1, blocksChecked: 0, bytesChecked: 0 });
    // The human line says exactly what was checked, and that no data was read without --read-data.
    for (const extra of [[], ['--quick']]) {
      const structure = await cli(['verify', backupId, '--vault', vaultUrl, '--key-file', keyFile, ...extra]);
      expect(structure.code).toBe(0);
      expect(structure.stdout).toMatch(
        // A new vault is version 2: page tables and packs (version 1 said page-table entries and segments).
        new RegExp(`^backup ${backupId} is OK\n  structure checked: manifest, 1 page table\\(s\\), 9 page records, 1 pack\\(s\\) present and long enough; no data read \\(--read-data reads and hash-checks every block\\), in [0-9.]+ s\n$`),
      );
    }
    const thorough = await cli(['verify', backupId, '--vault', vaultUrl, '--key-file', keyFile, '--read-data']);
    expect(thorough.stdout).toMatch(
      new RegExp(`^backup ${backupId} is OK\n  structure checked: manifest, 1 page table\\(s\\), 9 page records, 1 pack\\(s\\) present and long enough; ${chunks} blocks \\(9\\.00 MiB\\) read, decrypted and hash-checked, in [0-9.]+ s\n$`),
    );
    expect(thorough.stdout).not.toContain('all data read');
  });

  test('restore to a file is byte-identical; an existing target needs --force', async () => {
    const target = path.join(tmp, 'restored.img');
    const o = await spawnCli(['restore', backupId, '--vault', vaultUrl, '--key-file', keyFile, '--to', target, '--json']);
    expect(o.stderr).toBe('');
    expect(o.code).toBe(0);
    expect(JSON.parse(o.stdout)).toMatchObject({ backupId, diskBytes: DISK_BYTES, target });
    expect(await fileSha256(target)).toBe(disk.sha256);

    const refused = await cli(['restore', backupId, '--vault', vaultUrl, '--key-file', keyFile, '--to', target]);
    expectOneLineError(refused, /already exists; pass --force/, 2);

    await fs.truncate(target, 0);
    const forced = await cli(['restore', backupId, '--vault', vaultUrl, '--key-file', keyFile, '--to', target, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain(`restored ${backupId} to ${target}`);
    expect(await fileSha256(target)).toBe(disk.sha256);
  });

  test('restore to a page blob with connection strings from the environment', async () => {
    const target = `${az.accounts.vault.endpoint}/restores/vm1-restored.vhd`;
    const vaultNoSas = `${az.accounts.vault.endpoint}/vault`;
    const o = await cli(['restore', backupId, '--vault', vaultNoSas, '--key-file', keyFile, '--to', target, '--json'], {
      PAGEWISE_VAULT_CONNECTION_STRING: az.accounts.vault.connectionString,
      PAGEWISE_TARGET_CONNECTION_STRING: az.accounts.vault.connectionString,
    });
    expect(o.stderr).toBe('');
    expect(o.code).toBe(0);
    const buf = await az.accounts.vault.service.getContainerClient('restores').getPageBlobClient('vm1-restored.vhd').downloadToBuffer();
    expect(createHash('sha256').update(buf).digest('hex')).toBe(disk.sha256);
  });

  test('verify of a damaged backup exits 1 and lists the problems on stderr', async () => {
    const b = await cli(['backup', sourceUrl, '--vault', vaultUrl, '--key-file', keyFile, '--page-size', '1MiB', '--cache', '2MiB', '--backup-id', 'damaged-copy', '--json']);
    expect(b.code).toBe(0);
    // Its data blobs in either layout (version 2's packs are shared: undone below, for the tests after this one).
    const damage = await damageData(az.accounts.vault.service.getContainerClient('vault'), { backupId: 'damaged-copy' });
    const v = await cli(['verify', 'damaged-copy', '--vault', vaultUrl, '--key-file', keyFile, '--read-data']).finally(damage.undo);
    expect(v.code).toBe(1);
    const lines = stderrLines(v);
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(line).toMatch(/^pagewise: /);
    expect(lines[lines.length - 1]).toMatch(/FAILED verification: \d+ problem/);
    expect(lines[0]).toMatch(/^pagewise: problem: page \d+/);
  });
});

describe('upload', () => {
  test('an image of odd size is uploaded sparsely, padded to 512, backed up and restored', async () => {
    const imageBytes = 3 * MiB + 1000; // not a multiple of 512
    const image = Buffer.alloc(imageBytes);
    randomFillSync(image, 1 * MiB, 256 * 1024); // data in the middle, zeros around it
    image.write('end of the image', imageBytes - 20);
    const file = path.join(tmp, 'odd.img');
    await fs.writeFile(file, image);
    const url = az.sasUrl('src', 'disks', 'uploaded-odd.vhd');
    const up = await cli(['upload', file, url, '--json']);
    expect(up.stderr).toBe('');
    const result = JSON.parse(up.stdout);
    expect(result).toMatchObject({ imageBytes, diskBytes: 3 * MiB + 1024, paddedBytes: 24 });
    expect(result.writtenBytes).toBeLessThan(imageBytes / 2); // zero regions stay unallocated
    expectOneLineError(await cli(['upload', file, url]), /already exists; pass --force/, 2);

    const b = await cli(['backup', az.sasUrl('src', 'disks', 'uploaded-odd.vhd', { permissions: 'r' }), '--vault', vaultUrl, '--key-file', keyFile, '--page-size', '64KiB', '--cache', '256KiB', '--json']);
    expect(b.code).toBe(0);
    const backup = JSON.parse(b.stdout);
    expect(backup.bytesRead).toBe(result.writtenBytes);
    const restored = path.join(tmp, 'odd-restored.img');
    expect((await cli(['restore', backup.backupId, '--vault', vaultUrl, '--key-file', keyFile, '--to', restored])).code).toBe(0);
    const padded = Buffer.concat([image, Buffer.alloc(24)]);
    expect(await fs.readFile(restored)).toEqual(padded);
  });

  test('a missing image is one clear line', async () => {
    expectOneLineError(await cli(['upload', path.join(tmp, 'nope.img'), az.sasUrl('src', 'disks', 'x.vhd')]), /cannot read the image .*nope\.img \(ENOENT\)/, 2);
  });
});

describe('engines', () => {
  test('an interrupted backup exits 130 and says how to resume', async () => {
    const controller = new AbortController();
    controller.abort();
    const o = await cli(['backup', sourceUrl, ...['--vault', vaultUrl, '--key-file', keyFile], '--page-size', '1MiB', '--cache', '2MiB', '--backup-id', 'interrupted'], {}, controller.signal);
    expectOneLineError(o, /cancelled; run the same command again to resume/, 130);
  });

  test('backup --engine local runs the durable orchestration on the local runtime', async () => {
    const o = await cli(
      ['backup', sourceUrl, '--vault', `${az.accounts.vault.endpoint}/vault`, '--key-file', keyFile, '--page-size', '1MiB', '--cache', '4MiB', '--backup-id', 'orchestrated', '--engine', 'local', '--json'],
      { PAGEWISE_VAULT_CONNECTION_STRING: az.accounts.vault.connectionString },
    );
    expect(o.stderr).toBe('');
    expect(o.code).toBe(0);
    const r = JSON.parse(o.stdout);
    expect(r).toMatchObject({ backupId: 'orchestrated', engine: 'local', diskBytes: DISK_BYTES, bytesRead: disk.allocatedBytes, pages: 10, alreadyExisted: false, bytesReadNow: disk.allocatedBytes, cacheCapacityBytes: 4 * MiB });
    expect(r.durationMs).toBeGreaterThan(0);
    expect(r.cacheHighWaterBytes).toBeGreaterThan(0);
    expect(r.cacheHighWaterBytes).toBeLessThanOrEqual(r.cacheCapacityBytes);
    expect(r.cacheCapacityBytes).toBeLessThan(r.diskBytes);
    const v = await cli(['verify', 'orchestrated', '--vault', vaultUrl, '--key-file', keyFile, '--read-data', '--json']);
    expect(JSON.parse(v.stdout).ok).toBe(true);
    // Again: the orchestration had completed, so nothing ran and nothing was read.
    const again = await cli(
      ['backup', sourceUrl, '--vault', `${az.accounts.vault.endpoint}/vault`, '--key-file', keyFile, '--page-size', '1MiB', '--cache', '4MiB', '--backup-id', 'orchestrated', '--engine', 'local', '--json'],
      { PAGEWISE_VAULT_CONNECTION_STRING: az.accounts.vault.connectionString },
    );
    expect(JSON.parse(again.stdout)).toMatchObject({ backupId: 'orchestrated', alreadyExisted: true, bytesRead: 0, bytesReadNow: 0, resumed: false, activityInvocations: 0 });
  });

  test('an unknown engine is a usage error', async () => {
    expectOneLineError(await cli(['backup', sourceUrl, '--vault', vaultUrl, '--key-file', keyFile, '--engine', 'cloud']), /--engine "cloud" is not one of inline, local/, 2);
  });
});

describe('bad input: one line on stderr naming the problem, non-zero exit', () => {
  const common = () => ['--vault', vaultUrl, '--key-file', keyFile];

  test('malformed source URL', async () => {
    expectOneLineError(await cli(['backup', 'not a url', ...common()]), /source disk URL is not a URL/, 2);
  });

  test('not a page blob (spawned)', async () => {
    const o = await spawnCli(['backup', az.sasUrl('src', 'disks', 'notes.txt', { permissions: 'r' }), ...common()]);
    expectOneLineError(o, /is a BlockBlob blob, not a page blob/, 2);
  });

  test('unreachable account (a configured endpoint on a closed loopback port)', async () => {
    const port = await closedPort();
    const url = sourceUrl.replace(`:${az.port}/`, `:${port}/`);
    const endpoints = `${az.storageEndpoints},${az.accounts.src.endpoint.replace(`:${az.port}/`, `:${port}/`)}`;
    expectOneLineError(await cli(['backup', url, ...common()], { PAGEWISE_STORAGE_ENDPOINTS: endpoints }), /could not be reached/, 1);
  }, 60_000);

  test('bad page size', async () => {
    expectOneLineError(await cli(['backup', sourceUrl, ...common(), '--page-size', '1000']), /page size 1000 is not a positive multiple of 512/, 2);
  });

  test('size that is not a size', async () => {
    expectOneLineError(await cli(['backup', sourceUrl, ...common(), '--cache', 'lots']), /--cache "lots" is not a size/, 2);
  });

  test('cache smaller than one page', async () => {
    expectOneLineError(await cli(['backup', sourceUrl, ...common(), '--page-size', '4MiB', '--cache', '1MiB']), /smaller than one page/, 2);
  });

  test('unknown backup ID', async () => {
    expectOneLineError(await cli(['restore', 'pw-000000000000000000000000', ...common(), '--to', path.join(tmp, 'x.img')]), /backup pw-0{24} does not exist in the vault/, 2);
  });

  test('invalid backup ID', async () => {
    expectOneLineError(await cli(['verify', 'Not_An_ID', ...common()]), /is not a backup ID/, 2);
  });

  test('wrong key on restore', async () => {
    const o = await cli(['restore', backupId, '--vault', vaultUrl, '--key-file', otherKeyFile, '--to', path.join(tmp, 'wrong.img')]);
    // Version 1: the backup's data key is not wrapped for it; version 2: the vault has no key slot for it.
    expectOneLineError(o, /user key \(key ID [0-9a-f]+\) does not match backup|this key \(key ID [0-9a-f]{16}\) has no slot in this vault/, 2);
    await expect(fs.stat(path.join(tmp, 'wrong.img'))).rejects.toThrow();
  });

  test('missing key file', async () => {
    expectOneLineError(await cli(['backup', sourceUrl, '--vault', vaultUrl, '--key-file', path.join(tmp, 'nope.key')]), /cannot read the key file .*nope\.key \(ENOENT\)/, 2);
  });

  test('missing --vault', async () => {
    expectOneLineError(await cli(['backup', sourceUrl, '--key-file', keyFile]), /required option '--vault <container-url>' not specified/, 2);
  });

  test('unknown command and unknown option (commander usage errors are one line)', async () => {
    expectOneLineError(await cli(['bakup']), /unknown command 'bakup'.*Did you mean backup/, 2);
    expectOneLineError(await cli(['list', '--vault', vaultUrl, '--colour']), /unknown option '--colour'/, 2);
    expectOneLineError(await cli([]), /missing command/, 2);
  });

  test('a connection string for another endpoint is refused, not followed', async () => {
    const o = await cli(['list', '--vault', `${az.accounts.vault.endpoint}/vault`], { PAGEWISE_VAULT_CONNECTION_STRING: az.accounts.src.connectionString });
    expectOneLineError(o, /^pagewise: the vault URL is not on the blob endpoint of its connection string; Pagewise sends a request only to the URL's own endpoint, never to another$/, 2);
  });
});

test('help goes to stdout with exit 0', async () => {
  const o = await cli(['backup', '--help']);
  expect(o.code).toBe(0);
  expect(o.stdout).toContain('--page-size <size>');
  expect(o.stderr).toBe('');
});

test('no output ever carries a SAS signature, an account key or a connection string', () => {
  expect(seen.length).toBeGreaterThan(20);
  const all = seen.map((o) => `${o.stdout}\n${o.stderr}`).join('\n');
  expect(all).not.toMatch(/sig=(?!REDACTED)[A-Za-z0-9%+/=]{8,}/i);
  for (const account of Object.values(az.accounts)) {
    expect(all).not.toContain(account.key);
    expect(all).not.toContain(encodeURIComponent(account.key));
  }
  expect(all).not.toMatch(/AccountKey=(?!REDACTED)/);
});
