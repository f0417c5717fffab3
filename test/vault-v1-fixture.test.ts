/**
 * Version-1 vaults stay readable: the committed fixture vault (test/fixtures/vault-v1/, written by the
 * revision named in its expected.json) is uploaded byte for byte into a fresh Azurite container, then
 * listed, verified and restored through the public API and the CLI. The fixture is never regenerated
 * here: a change that can no longer read those bytes fails this suite.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { backupDisk, initVault, listBackups, restoreBackup, StorageLocation, verifyBackup } from '../core';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';
import { expectCliLists, expectCliVerifiesAndRestores, expectRestoreFailsNaming, expectRestoresByteForByte, fixtureCli, flipByte, openFixtureVault, privateKeyFile } from './harness/fixture-vault';

const FIXTURE = path.join(__dirname, 'fixtures', 'vault-v1');

interface ExpectedBackup {
  backupId: string;
  idGiven: boolean;
  diskBytes: number;
  pageSize: number;
  sha256: string;
}

interface Expected {
  vaultFormatVersion: number;
  keyFile: string;
  keyId: string;
  backups: ExpectedBackup[];
  /** A byte inside one page's block: flipped, verify must name that page. */
  damage: { backupId: string; blob: string; byteOffset: number; page: number; pageOffset: number };
  blobs: string[];
}

const fixture = openFixtureVault<Expected>(FIXTURE);
const { expected, keyText, userKey } = fixture;

let env: TestEnv;
let keyFile: string;

const uploadFixture = (container: string, alter?: (name: string, bytes: Buffer) => Buffer) => fixture.upload(env, container, alter);
const cli = (args: string[]) => fixtureCli(env, args);

beforeAll(async () => {
  env = await startEnv();
  keyFile = await privateKeyFile(env, keyText);
});
afterAll(async () => env?.stop());

test('the fixture is whole: every blob expected.json names is committed, and nothing else', async () => {
  expect(await fixture.blobNames()).toEqual([...expected.blobs].sort());
  expect(expected.vaultFormatVersion).toBe(1);
  expect(expected.backups.map((b) => b.idGiven)).toEqual([false, true]);
});

describe('a version-1 vault through the public API', () => {
  let vault: StorageLocation;
  beforeAll(async () => {
    vault = await uploadFixture('fixture-api');
  });

  test('list shows both backups with their disk and page sizes', async () => {
    const listed = await listBackups(vault);
    expect(listed.map((b) => ({ backupId: b.backupId, diskBytes: b.diskBytes, pageSize: b.pageSize })).sort((a, b) => a.backupId.localeCompare(b.backupId))).toEqual(
      expected.backups.map((b) => ({ backupId: b.backupId, diskBytes: b.diskBytes, pageSize: b.pageSize })).sort((a, b) => a.backupId.localeCompare(b.backupId)),
    );
  });

  test.each(expected.backups.map((b) => [b.backupId, b] as const))('%s: verify reads every block and passes', async (_id, b) => {
    const verified = await verifyBackup({ backupId: b.backupId, vault, userKey, readData: true });
    expect(verified.problems).toEqual([]);
    expect(verified.ok).toBe(true);
    expect(verified.pagesChecked).toBeGreaterThan(0);
    expect(verified.blocksChecked).toBe(verified.pagesChecked);
  });

  test.each(expected.backups.map((b) => [b.backupId, b] as const))('%s: restores to a file and to a page blob byte for byte', async (_id, b) => {
    const file = await expectRestoresByteForByte(env, vault, userKey, b);
    expect((await fs.stat(file)).size).toBe(b.diskBytes);
  });
});

describe('a version-1 vault through the CLI', () => {
  let vaultUrl: string;
  beforeAll(async () => {
    vaultUrl = (await uploadFixture('fixture-cli')).url;
  });

  test('pagewise list shows both backups', async () => {
    await expectCliLists(env, ['--vault', vaultUrl], expected.backups.map((b) => b.backupId));
  });

  test.each(expected.backups.map((b) => [b.backupId, b] as const))('%s: pagewise verify --read-data passes, pagewise restore is byte-identical', async (_id, b) => {
    await expectCliVerifiesAndRestores(env, vaultUrl, keyFile, b);
  });
});

describe('a version-1 vault with one flipped byte in a segment', () => {
  const { damage } = expected;
  let vault: StorageLocation;
  beforeAll(async () => {
    vault = await uploadFixture('fixture-damaged', flipByte(damage));
  });

  // The page and its offset, then why (today: "the block fails authentication (damaged, truncated or swapped)").
  const named = new RegExp(`^page ${damage.page} \\(offset ${damage.pageOffset}\\): .*(damaged|authentication)`);

  test('verify names the damaged page, and only it', async () => {
    const verified = await verifyBackup({ backupId: damage.backupId, vault, userKey, readData: true });
    expect(verified.ok).toBe(false);
    expect(verified.problems).toEqual([expect.stringMatching(named)]);
  });

  test('pagewise verify --read-data fails naming the page', async () => {
    const verified = await cli(['verify', damage.backupId, '--vault', vault.url, '--key-file', keyFile, '--read-data']);
    expect(verified.code).toBe(1);
    const lines = verified.stderr.split('\n').filter(Boolean);
    expect(lines).toEqual([expect.stringMatching(/^pagewise: problem: /), `pagewise: backup ${damage.backupId} FAILED verification: 1 problem(s)`]);
    expect(lines[0].slice('pagewise: problem: '.length)).toMatch(named);
  });

  test('a restore fails naming the page and leaves no file', async () => {
    await expectRestoreFailsNaming(env, vault, userKey, damage.backupId, 'damaged.img', named);
  });
});

describe('a version-1 vault stays usable for new backups', () => {
  let vault: StorageLocation;
  beforeAll(async () => {
    vault = await uploadFixture('fixture-reused');
  });

  test('its marker is version 1, init leaves it, a new backup lands beside the old ones', async () => {
    const markerBlob = env.az.accounts.vault.service.getContainerClient('fixture-reused').getBlobClient('pagewise-vault.json');
    const marker = JSON.parse((await markerBlob.downloadToBuffer()).toString('utf8')) as Record<string, unknown>;
    expect(marker).toMatchObject({ format: 'pagewise-vault', version: 1 });
    expect(await initVault(vault)).toEqual({ containerCreated: false, markerWritten: false });

    const disk = await env.makeDisk('new-in-v1-vault.vhd', 2 * MiB, [
      { offset: 0, length: 64 * KiB, kind: 'text', seed: 31 },
      { offset: MiB, length: 128 * KiB, kind: 'random', seed: 32 },
    ]);
    const { backupId } = await backupDisk({ source: disk.source, vault, userKey, pageSize: 64 * KiB, cacheBytes: 256 * KiB });
    expect((await listBackups(vault)).map((b) => b.backupId).sort()).toEqual([...expected.backups.map((b) => b.backupId), backupId].sort());
    expect((await verifyBackup({ backupId, vault, userKey, readData: true })).problems).toEqual([]);
    const file = path.join(env.tmp, 'new-in-v1-vault.img');
    await restoreBackup({ backupId, vault, userKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(disk.sha256);
    // The marker is the one the old revision wrote, unchanged.
    expect(JSON.parse((await markerBlob.downloadToBuffer()).toString('utf8'))).toEqual(marker);
    // The old backups still read after the new one was written.
    expect((await verifyBackup({ backupId: expected.backups[0].backupId, vault, userKey, readData: true })).ok).toBe(true);
  });
});
