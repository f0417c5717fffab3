/**
 * `pagewise rebuild-index` end to end on Azurite: human and --json output, --dry-run writes nothing, exit 0
 * when every chunk of every kept backup is in a pack and 1 when not, usage errors, and no SAS signature or
 * key in anything printed.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { writeDisk } from '../testkit/sample-disk';
import { captureIO, run } from '../cli/main';
import { writeNewKeyFile } from '../core';

const KiB = 1024;
const MiB = 1024 * KiB;

let az: AzuriteInstance;
let keyFile: string;
let vault: string;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints });
  const code = await run(args, io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

async function names(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const b of az.accounts.vault.service.getContainerClient('rebuild').listBlobsFlat({ prefix })) out.push(b.name);
  return out.sort();
}

/** Nothing printed carries the SAS signature or the key. */
async function expectNoSecrets(text: string): Promise<void> {
  const sig = new URL(vault).searchParams.get('sig')!;
  expect(text).not.toContain(sig);
  expect(text).not.toContain(encodeURIComponent(sig));
  expect(text).not.toContain((await fs.readFile(keyFile, 'utf8')).trim());
}

beforeAll(async () => {
  az = await startAzurite({ accounts: ['src', 'vault'] });
  await az.accounts.src.service.getContainerClient('disks').create();
  await az.accounts.vault.service.getContainerClient('rebuild').create();
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-cli-rebuild-'));
  keyFile = path.join(tmp, 'user.key');
  await writeNewKeyFile(keyFile);
  vault = az.sasUrl('vault', 'rebuild');
  expect((await cli(['init', '--vault', vault, '--key-file', keyFile])).code).toBe(0);
  const blob = az.accounts.src.service.getContainerClient('disks').getPageBlobClient('vm.vhd');
  await writeDisk(blob, MiB, [{ offset: 0, length: 256 * KiB, kind: 'random', seed: 7 }]);
  const source = az.sasUrl('src', 'disks', 'vm.vhd', { permissions: 'r' });
  const made = await cli(['backup', source, '--vault', vault, '--key-file', keyFile, '--page-size', '64KiB', '--cache', '256KiB', '--json']);
  expect(made.code).toBe(0);
}, 120_000);
afterAll(async () => az?.stop());

test('--dry-run --json reports the generation it would write and writes nothing; then a real run writes it', async () => {
  const deltas = await names('index/d/');
  expect(deltas.length).toBeGreaterThan(0);
  const dry = await cli(['rebuild-index', '--vault', vault, '--key-file', keyFile, '--dry-run', '--json']);
  expect(dry.code).toBe(0);
  const report = JSON.parse(dry.stdout);
  expect(report).toMatchObject({ dryRun: true, gen: 1, entries: 4, packsRead: 1, packsUnreadable: [], chunksUnplaced: 0, manifestsChecked: 1, deltasCovered: deltas.length, bytesWritten: 0 });
  expect(report.vault).not.toContain('sig=');
  await expectNoSecrets(dry.stdout + dry.stderr);
  expect(await names('index/c/')).toEqual([]);

  const human = await cli(['rebuild-index', '--vault', vault, '--key-file', keyFile]);
  expect(human.code).toBe(0);
  expect(report.shards).toBeGreaterThanOrEqual(1); // 4 random content IDs: 1 to 4 first bytes
  expect(human.stderr).toBe('');
  expect(human.stdout.split('\n')[0]).toBe('rebuild-index: generation 1');
  expect(human.stdout).toMatch(/packs read +1\n/);
  expect(human.stdout).toMatch(new RegExp(`entries +4 content IDs in ${report.shards} shards?\n`));
  expect(human.stdout).toMatch(/checked +1 kept backup: every chunk is in a pack\n/);
  await expectNoSecrets(human.stdout);
  expect(await names('index/c/00000001/')).toEqual(expect.arrayContaining(['index/c/00000001/covers.pwe', 'index/c/00000001/filter.pwf']));
});

test('a pack lost: exit 1, the unplaced chunks counted in both forms, the error line says what to do', async () => {
  const [pack] = await names('packs/');
  await az.accounts.vault.service.getContainerClient('rebuild').deleteBlob(pack);
  const json = await cli(['rebuild-index', '--vault', vault, '--key-file', keyFile, '--dry-run', '--json']);
  expect(json.code).toBe(1);
  expect(JSON.parse(json.stdout)).toMatchObject({ gen: 2, entries: 0, packsRead: 0, chunksUnplaced: 4 });
  const human = await cli(['rebuild-index', '--vault', vault, '--key-file', keyFile, '--dry-run']);
  expect(human.code).toBe(1);
  expect(human.stdout).toMatch(/checked +1 kept backup: 4 chunks in no pack\n/);
  expect(human.stderr).toContain('4 chunks of kept backups are in no pack: verify --read-data names the backups that lost data');
  await expectNoSecrets(human.stdout + human.stderr + json.stdout);
});

test('usage errors: a missing key file option, a wrong key, a stray argument', async () => {
  const missing = await cli(['rebuild-index', '--vault', vault]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain("required option '--key-file <file>' not specified");
  const other = path.join(path.dirname(keyFile), 'other.key');
  await writeNewKeyFile(other);
  const wrong = await cli(['rebuild-index', '--vault', vault, '--key-file', other]);
  expect(wrong.code).toBe(2);
  expect(wrong.stderr).toContain('has no slot in this vault');
  await expectNoSecrets(wrong.stderr);
  const stray = await cli(['rebuild-index', 'extra', '--vault', vault, '--key-file', keyFile]);
  expect(stray.code).toBe(2);
});
