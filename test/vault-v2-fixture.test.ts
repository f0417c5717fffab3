/**
 * Version-2 vaults written before #15 (one chunk per page, lz4, only delta indexes) stay readable and usable:
 * the committed fixture (test/fixtures/vault-v2-pre15/, written by the revision named in its expected.json)
 * is uploaded byte for byte into a fresh Azurite container, then listed, verified and restored through the
 * public API and the CLI; a flipped byte makes verify name its page; a new backup of the same disk lands
 * beside the old ones. The fixture is never regenerated here.
 */
import * as path from 'node:path';
import { backupDisk, listBackups, restoreBackup, StorageLocation, verifyBackup } from '../core';
import { regionBytes } from '../testkit/sample-disk';
import { fileSha256, startEnv, TestEnv } from './harness/env';
import { expectCliLists, expectCliVerifiesAndRestores, expectRestoreFailsNaming, expectRestoresByteForByte, flipByte, openFixtureVault, privateKeyFile } from './harness/fixture-vault';

const FIXTURE = path.join(__dirname, 'fixtures', 'vault-v2-pre15');

type Region = Parameters<TestEnv['makeDisk']>[2][number];

interface ExpectedBackup {
  backupId: string;
  idGiven: boolean;
  disk: string;
  diskBytes: number;
  pageSize: number;
  sha256: string;
  regions: Region[];
  coverage: { kind: string; records: number };
  base?: string;
  changes?: Region[];
}

interface Expected {
  vaultFormatVersion: number;
  chunking: { scheme: string };
  keyFile: string;
  backups: ExpectedBackup[];
  damage: { backupId: string; blob: string; byteOffset: number; page: number; pageOffset: number };
  blobs: string[];
}

const fixture = openFixtureVault<Expected>(FIXTURE);
const { expected, keyText, userKey } = fixture;
const byId = (a: { backupId: string }, b: { backupId: string }) => a.backupId.localeCompare(b.backupId);

let env: TestEnv;
let keyFile: string;

const uploadFixture = (container: string, alter?: (name: string, bytes: Buffer) => Buffer) => fixture.upload(env, container, alter);

beforeAll(async () => {
  env = await startEnv();
  keyFile = await privateKeyFile(env, keyText);
});
afterAll(async () => env?.stop());

test('the fixture is whole: every blob expected.json names is committed, and nothing else', async () => {
  expect(await fixture.blobNames()).toEqual([...expected.blobs].sort());
  expect(expected).toMatchObject({ vaultFormatVersion: 2, chunking: { scheme: 'page' } });
  expect(expected.backups.map((b) => [b.idGiven, b.coverage.kind])).toEqual([
    [false, 'full'],
    [false, 'incremental'],
    [true, 'full'],
  ]);
  // Written before #15: deltas only, no compacted generation.
  expect(expected.blobs.filter((b) => b.startsWith('index/'))).toEqual(expected.blobs.filter((b) => b.startsWith('index/d/')));
});

describe('a pre-#15 version-2 vault through the public API', () => {
  let vault: StorageLocation;
  beforeAll(async () => {
    vault = await uploadFixture('fixture2-api');
  });

  test('list shows the three backups with their disk and page sizes', async () => {
    const listed = await listBackups(vault, { userKey });
    const facts = (b: { backupId: string; diskBytes?: number; pageSize?: number }) => ({ backupId: b.backupId, diskBytes: b.diskBytes, pageSize: b.pageSize });
    expect(listed.map(facts).sort(byId)).toEqual(expected.backups.map(facts).sort(byId));
  });

  test.each(expected.backups.map((b) => [b.backupId, b] as const))('%s: verify reads every block and passes', async (_id, b) => {
    const verified = await verifyBackup({ backupId: b.backupId, vault, userKey, readData: true });
    expect(verified.problems).toEqual([]);
    expect(verified).toMatchObject({ ok: true, formatVersion: 2, pagesChecked: b.coverage.records, blocksRelocated: 0 });
    // Scheme `page`: one block per page record.
    expect(verified.blocksChecked).toBe(b.coverage.records);
  });

  test.each(expected.backups.map((b) => [b.backupId, b] as const))('%s: restores to a file and to a page blob byte for byte', async (_id, b) => {
    await expectRestoresByteForByte(env, vault, userKey, b);
  });
});

describe('a pre-#15 version-2 vault through the CLI', () => {
  let vaultUrl: string;
  beforeAll(async () => {
    vaultUrl = (await uploadFixture('fixture2-cli')).url;
  });

  test('pagewise list shows the three backups', async () => {
    await expectCliLists(env, ['--vault', vaultUrl, '--key-file', keyFile], expected.backups.map((b) => b.backupId));
  });

  test.each(expected.backups.map((b) => [b.backupId, b] as const))('%s: pagewise verify --read-data passes, pagewise restore is byte-identical', async (_id, b) => {
    await expectCliVerifiesAndRestores(env, vaultUrl, keyFile, b);
  });
});

describe('a pre-#15 version-2 vault with one flipped byte in a pack', () => {
  const { damage } = expected;
  let vault: StorageLocation;
  beforeAll(async () => {
    vault = await uploadFixture('fixture2-damaged', flipByte(damage));
  });

  const named = new RegExp(`^page ${damage.page} \\(offset ${damage.pageOffset}\\)[,:] .*(damaged|authentication)`);

  test('verify names the damaged page, and only it', async () => {
    const verified = await verifyBackup({ backupId: damage.backupId, vault, userKey, readData: true });
    expect(verified.ok).toBe(false);
    expect(verified.problems).toEqual([expect.stringMatching(named)]);
  });

  test('a restore fails naming the page and leaves no file', async () => {
    await expectRestoreFailsNaming(env, vault, userKey, damage.backupId, 'damaged2.img', named);
  });
});

describe('a pre-#15 version-2 vault takes new backups', () => {
  let vault: StorageLocation;
  beforeAll(async () => {
    vault = await uploadFixture('fixture2-reused');
  });

  test('the same disk (same identity, as the incremental left it) gets a new full backup beside the old ones', async () => {
    const inc = expected.backups.find((b) => b.coverage.kind === 'incremental')!;
    // The disk again, under the name it had (its identity, §21.1, is blob:<account>/disks/<name>).
    await env.makeDisk(inc.disk, inc.diskBytes, inc.regions);
    for (const c of inc.changes!) await env.sourceClient(inc.disk).uploadPages(regionBytes(c, 0, c.length), c.offset, c.length);
    const result = await backupDisk({ source: { url: env.az.sasUrl('src', 'disks', inc.disk) }, vault, userKey, pageSize: inc.pageSize, cacheBytes: 4 * inc.pageSize, takeSnapshot: true });
    // The fixture's latest backup of this disk was cut by scheme `page`; this writer's default chunking (FastCDC,
    // clamped to the 1 MiB page) differs: a full, and it says why (checked before the base's snapshot).
    expect(result).toMatchObject({ formatVersion: 2, kind: 'full', reason: 'chunking-changed', base: null });
    expect((await listBackups(vault, { userKey })).map((b) => b.backupId).sort()).toEqual([...expected.backups.map((b) => b.backupId), result.backupId].sort());
    expect((await verifyBackup({ backupId: result.backupId, vault, userKey, readData: true })).problems).toEqual([]);
    const file = path.join(env.tmp, 'new-in-v2-vault.img');
    await restoreBackup({ backupId: result.backupId, vault, userKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(inc.sha256);
    // The old backups still read after the new one was written.
    for (const b of expected.backups) expect((await verifyBackup({ backupId: b.backupId, vault, userKey, readData: true })).problems).toEqual([]);
  });
});
