/**
 * The CLI's side of issue #12 against a real (patched) Azurite: `init --key-file` makes a version-2
 * vault, `backup --snapshot` is incremental by itself and says on which base and what it read, `--full`
 * forces a full backup and says why, `list` groups by disk (locked without the key), `upgrade` turns a
 * version-1 vault into version 2.
 */
import { randomBytes } from 'node:crypto';
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
let tmp: string;
let keyFile: string;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints });
  const code = await run(args, io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

async function blobNames(container: string): Promise<string[]> {
  const names: string[] = [];
  for await (const b of az.accounts.vault.service.getContainerClient(container).listBlobsFlat()) names.push(b.name);
  return names;
}

beforeAll(async () => {
  az = await startAzurite({ accounts: ['src', 'vault'] });
  await az.accounts.src.service.getContainerClient('disks').create();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-cli-incr-'));
  keyFile = path.join(tmp, 'user.key');
  await writeNewKeyFile(keyFile);
});

afterAll(async () => {
  await az?.stop();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

test('init without a key creates only the container and says so; with a key it writes the version-2 marker', async () => {
  await az.accounts.vault.service.getContainerClient('bare').create();
  const bare = await cli(['init', '--vault', az.sasUrl('vault', 'bare')]);
  expect(bare).toMatchObject({ code: 0, stderr: '' });
  expect(bare.stdout).toMatch(/^the container exists: .*\/bare; no --key-file, so no vault marker: the first backup \(or pagewise init --key-file\) makes it a version-2 vault\n$/);
  expect(await blobNames('bare')).toEqual([]);

  await az.accounts.vault.service.getContainerClient('keyed').create();
  const keyed = await cli(['init', '--vault', az.sasUrl('vault', 'keyed'), '--key-file', keyFile]);
  expect(keyed).toMatchObject({ code: 0, stderr: '' });
  expect(keyed.stdout).toMatch(/^marked the existing container .*\/keyed as a version-2 Pagewise vault for this key\n$/);
  // A new vault's marker is pagewise-vault.json with version 2 (§12), beside this key's slot.
  expect(await blobNames('keyed')).toEqual([expect.stringMatching(/^keys\/[0-9a-f]{16}\.0\.json$/), 'pagewise-vault.json']);
  const written = await az.accounts.vault.service.getContainerClient('keyed').getBlobClient('pagewise-vault.json').downloadToBuffer();
  expect(JSON.parse(written.toString())).toMatchObject({ format: 'pagewise-vault', version: 2, vaultId: expect.stringMatching(/^[0-9a-f]{32}$/) });
  const again = await cli(['init', '--vault', az.sasUrl('vault', 'keyed'), '--key-file', keyFile, '--json']);
  expect(JSON.parse(again.stdout)).toMatchObject({ containerCreated: false, markerWritten: false });
});

test('backup --snapshot is incremental by itself, --full forces a full one; list groups them by disk', async () => {
  await az.accounts.vault.service.getContainerClient('nightly').create();
  const vault = az.sasUrl('vault', 'nightly');
  expect((await cli(['init', '--vault', vault, '--key-file', keyFile])).code).toBe(0);
  const blob = az.accounts.src.service.getContainerClient('disks').getPageBlobClient('vm.vhd');
  await writeDisk(blob, 4 * MiB, [
    { offset: 0, length: 1 * MiB, kind: 'text', seed: 1 },
    { offset: 2 * MiB, length: 1 * MiB, kind: 'random', seed: 2 },
  ]);
  // Snapshots are taken (and older ones released): the SAS may create and delete.
  const source = az.sasUrl('src', 'disks', 'vm.vhd', { permissions: 'racwd' });
  const backup = (...extra: string[]) => cli(['backup', source, '--vault', vault, '--key-file', keyFile, '--page-size', '64KiB', '--cache', '256KiB', '--snapshot', ...extra]);

  const first = JSON.parse((await backup('--json')).stdout);
  expect(first).toMatchObject({ kind: 'full', base: null, reason: 'no-base', formatVersion: 2, bytesRead: 2 * MiB });

  // One 64 KiB page changed (page-aligned): the incremental reads that page alone.
  await blob.uploadPages(randomBytes(64 * KiB), 2 * MiB + 128 * KiB, 64 * KiB);
  const second = await backup();
  expect(second).toMatchObject({ code: 0, stderr: '' });
  const kindLine = second.stdout.split('\n').find((l) => l.trimStart().startsWith('kind'));
  expect(kindLine).toMatch(new RegExp(`^  kind +incremental on ${first.backupId}( \\(generation 1\\))?: read 64\\.0 KiB of 2\\.00 MiB allocated, changed 64\\.0 KiB, new (64\\.0|[0-9.]+) KiB$`));

  await blob.uploadPages(randomBytes(4 * KiB), 0, 4 * KiB);
  const forced = await backup('--full');
  expect(forced.stdout).toMatch(/\n {2}kind +full \(reason: forced: --full\)\n/);

  const listed = JSON.parse((await cli(['list', '--vault', vault, '--key-file', keyFile, '--json'])).stdout);
  expect(listed.disks).toHaveLength(1);
  const backups = listed.disks[0].backups as Array<{ kind: string; base: string | null; bytesRead: number; formatVersion: number }>;
  expect(backups.map((b) => [b.kind, b.base, b.bytesRead])).toEqual([
    ['full', null, 2 * MiB],
    ['incremental', first.backupId, 64 * KiB],
    ['full', null, 2 * MiB],
  ]);
  const table = await cli(['list', '--vault', vault, '--key-file', keyFile]);
  // One disk: everything it stores is its own (no other disk names it).
  expect(table.stdout.split('\n')[0]).toMatch(/^disk .* \(3 backups; stored ([0-9.]+ [KM]iB): \1 its own, 0 B shared with other disks\)$/);
  expect(table.stdout).toMatch(new RegExp(`incremental( #1)? +${first.backupId} +4\\.00 MiB +64\\.0 KiB`));

  // Without the key: the same three, locked, still grouped by the disk tag their names carry.
  const locked = JSON.parse((await cli(['list', '--vault', vault, '--json'])).stdout);
  expect(locked.disks).toHaveLength(1);
  expect(locked.disks[0].backups.map((b: { locked?: boolean; status: string }) => [b.status, b.locked])).toEqual([
    ['complete', true],
    ['complete', true],
    ['complete', true],
  ]);
  expect((await cli(['list', '--vault', vault])).stdout).toMatch(/locked: a version-2 backup listed without --key-file/);
});

test('upgrade makes a version-1 vault version 2; run again it changes nothing', async () => {
  const container = az.accounts.vault.service.getContainerClient('old');
  await container.create();
  const marker = JSON.stringify({ format: 'pagewise-vault', version: 1, createdAt: new Date().toISOString() });
  await container.getBlockBlobClient('pagewise-vault.json').upload(marker, marker.length);
  const vault = az.sasUrl('vault', 'old');
  const upgraded = await cli(['upgrade', '--vault', vault, '--key-file', keyFile]);
  expect(upgraded).toMatchObject({ code: 0, stderr: '' });
  expect(upgraded.stdout).toMatch(/^upgraded .*\/old to version 2: its next backups are incremental; earlier backups stay restorable\n$/);
  expect(await blobNames('old')).toEqual(expect.arrayContaining(['pagewise-vault.json', 'pagewise-vault-v2.json']));
  const again = await cli(['upgrade', '--vault', vault, '--key-file', keyFile, '--json']);
  expect(JSON.parse(again.stdout)).toMatchObject({ upgraded: false, formatVersion: 2 });
});
