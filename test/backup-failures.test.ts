/**
 * What goes wrong: bad inputs get specific errors, a wrong key is named as such, damage in the vault is
 * found and names the page, an interrupted backup is never listed and resumes, Azure's limits hold.
 */
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { PageBlobClient, AnonymousCredential } from '@azure/storage-blob';
import {
  backupDisk, configureStorageEndpoints, restoreBackup, verifyBackup, listBackups, planBackup, runBackupBatch, finalizeBackup, generateKey, PagewiseError, StorageLocation,
} from '../core';
import { freePort } from '../testkit/azurite';
import { putPages } from '../core/restore/restore';
import { Vault } from '../core/repo/vault';
import { vaultContainerClient } from '../core/storage/clients';
import { layout } from '../core/repo/layout';
import { fileSha256, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let good: { backupId: string; source: { url: string }; sha256: string };

beforeAll(async () => {
  env = await startEnv();
  const disk = await env.makeDisk('good.vhd', 16 * MiB, [
    { offset: 0, length: 3 * MiB, kind: 'text', seed: 1 },
    { offset: 8 * MiB, length: 2 * MiB, kind: 'random', seed: 2 },
  ]);
  const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 1 * MiB, cacheBytes: 2 * MiB });
  good = { backupId: result.backupId, source: disk.source, sha256: disk.sha256 };
});
afterAll(async () => env?.stop());

async function failureOf(promise: Promise<unknown>): Promise<PagewiseError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PagewiseError);
    expect((err as Error).message).not.toMatch(/sig=[A-Za-z0-9%]{8,}/);
    return err as PagewiseError;
  }
  throw new Error('expected a failure');
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  return (await failureOf(promise)).code;
}

describe('bad inputs get a specific error', () => {
  const base = () => ({ vault: env.vault, userKey: env.userKey, pageSize: 1 * MiB, cacheBytes: 2 * MiB });

  test('not a page blob', async () => {
    const blob = env.az.accounts.src.service.getContainerClient('disks').getBlockBlobClient('notes.txt');
    await blob.upload('hello', 5);
    const err = backupDisk({ ...base(), source: { url: env.sourceUrl('notes.txt') } });
    await expect(err).rejects.toThrow(/not a page blob/);
    expect(await codeOf(backupDisk({ ...base(), source: { url: env.sourceUrl('notes.txt') } }))).toBe('NotPageBlob');
  });

  test('a source that does not exist', async () => {
    expect(await codeOf(backupDisk({ ...base(), source: { url: env.sourceUrl('nope.vhd') } }))).toBe('SourceNotFound');
  });

  test('an unreachable account (a configured endpoint nothing listens on)', async () => {
    const port = await freePort();
    const fakeSignature = 'abcdefghijklmnop'.concat('qrstuvwxyz0123456789'); // built, so no scanner mistakes it for a real one
    const url = `http://127.0.0.1:${port}/src/disks/x.vhd?sv=2024-01-01&sig=${fakeSignature}`;
    configureStorageEndpoints([...env.az.storageEndpoints.split(','), `http://127.0.0.1:${port}/src`], 'PAGEWISE_STORAGE_ENDPOINTS');
    try {
      const err = await failureOf(backupDisk({ ...base(), source: { url } }));
      expect(err.code).toBe('SourceUnreachable');
      expect(err.message).not.toContain('abcdefghijklmnop');
    } finally {
      configureStorageEndpoints(env.az.storageEndpoints.split(','), 'PAGEWISE_STORAGE_ENDPOINTS');
    }
  }, 60_000);

  test('a page size that is not a multiple of 512, or too large', async () => {
    expect(await codeOf(backupDisk({ ...base(), source: good.source, pageSize: 1000 }))).toBe('BadPageSize');
    expect(await codeOf(backupDisk({ ...base(), source: good.source, pageSize: 100 * MiB + 512 }))).toBe('BadPageSize');
  });

  test('a cache smaller than one page', async () => {
    const err = await failureOf(backupDisk({ ...base(), source: good.source, pageSize: 4 * MiB, cacheBytes: 1 * MiB }));
    expect(err.code).toBe('BadCacheSize');
    expect(err.message).toMatch(/smaller than one page/);
  });

  test('malformed URLs', async () => {
    for (const url of ['not a url', 'ftp://127.0.0.1/x/y/z', 'http://127.0.0.1:1/src', 'http://127.0.0.1:1/src/disks']) {
      expect(await codeOf(backupDisk({ ...base(), source: { url } }))).toBe('BadUrl');
    }
    expect(await codeOf(backupDisk({ ...base(), source: good.source, vault: { url: env.sourceUrl('good.vhd') } }))).toBe('BadUrl');
  });

  test('the vault may not be the source container', async () => {
    const err = await failureOf(backupDisk({ ...base(), source: good.source, vault: { url: env.az.sasUrl('src', 'disks') } }));
    expect(err.code).toBe('BadInput');
    expect(err.message).toMatch(/separate storage/);
  });

  test('an unknown backup ID, and a malformed one', async () => {
    const target = { url: path.join(env.tmp, 'unknown.img') };
    expect(await codeOf(restoreBackup({ backupId: 'pw-000000000000000000000000', vault: env.vault, userKey: env.userKey, target }))).toBe('BackupNotFound');
    expect(await codeOf(verifyBackup({ backupId: '../../etc', vault: env.vault, userKey: env.userKey }))).toBe('BadInput');
    await expect(fs.stat(target.url)).rejects.toThrow();
  });

  test('an expired SAS is reported as such', async () => {
    const url = env.az.sasUrl('src', 'disks', 'good.vhd', { permissions: 'r', expiresOn: new Date(Date.now() - 60_000), startsOn: new Date(Date.now() - 3600_000) });
    const err = await failureOf(backupDisk({ ...base(), source: { url } }));
    expect(err.code).toBe('AccessDenied');
  });
});

test('a wrong key on restore is named, and nothing is written', async () => {
  const target = path.join(env.tmp, 'wrong-key.img');
  const err = await failureOf(restoreBackup({ backupId: good.backupId, vault: env.vault, userKey: generateKey(), target: { url: target } }));
  expect(err.code).toBe('WrongKey');
  // Version 1: the backup's data key is not wrapped for it; version 2: the vault has no key slot for it.
  expect(err.message).toMatch(/user key \(key ID [0-9a-f]+\) does not match backup|this key \(key ID [0-9a-f]{16}\) has no slot in this vault/);
  await expect(fs.stat(target)).rejects.toThrow();
});

test('restore refuses to overwrite an existing file or blob unless told to', async () => {
  const file = path.join(env.tmp, 'exists.img');
  await fs.writeFile(file, 'keep me');
  expect(await codeOf(restoreBackup({ backupId: good.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } }))).toBe('TargetExists');
  expect(await fs.readFile(file, 'utf8')).toBe('keep me');
  await restoreBackup({ backupId: good.backupId, vault: env.vault, userKey: env.userKey, target: { url: file }, overwrite: true });
  expect(await fileSha256(file)).toBe(good.sha256);
  const blob = env.targetUrl('exists.vhd');
  await restoreBackup({ backupId: good.backupId, vault: env.vault, userKey: env.userKey, target: { url: blob } });
  expect(await codeOf(restoreBackup({ backupId: good.backupId, vault: env.vault, userKey: env.userKey, target: { url: blob } }))).toBe('TargetExists');
});

// Version-1 objects (segments, the clear manifest) are damaged here: in a version-1 vault (makeVaultV1).
// Version 2's packs, tables and manifests: security.vault-v2.test.ts.
describe('damage in the vault', () => {
  let backupId: string;
  let segmentBlob: string;
  let v1: StorageLocation;
  const vault = () => Vault.open(v1);

  beforeAll(async () => {
    v1 = await env.makeVault('vault-v1', { version: 1 });
  });

  beforeEach(async () => {
    const disk = await env.makeDisk(`damage-${Date.now()}.vhd`, 8 * MiB, [{ offset: 0, length: 4 * MiB, kind: 'random', seed: 11 }]);
    const result = await backupDisk({ source: disk.source, vault: v1, userKey: env.userKey, pageSize: 1 * MiB, cacheBytes: 2 * MiB });
    backupId = result.backupId;
    segmentBlob = layout.segment(backupId, 0);
  });

  test('a flipped byte: verify and restore fail naming the page', async () => {
    const bytes = await vault().getBytes(segmentBlob);
    const blockBytes = bytes.length / 4; // four random 1 MiB pages, stored incompressible, equal sizes
    bytes[Math.floor(2 * blockBytes + blockBytes / 2)] ^= 0x01; // inside page 2's block
    await vault().putBytes(segmentBlob, bytes);
    const verified = await verifyBackup({ backupId, vault: v1, userKey: env.userKey });
    expect(verified.ok).toBe(false);
    expect(verified.problems).toHaveLength(1);
    expect(verified.problems[0]).toMatch(/^page 2 .*fails authentication/);
    const err = await failureOf(restoreBackup({ backupId, vault: v1, userKey: env.userKey, target: { url: path.join(env.tmp, 'flipped.img') } }));
    expect(err.code).toBe('Corrupt');
    expect(err.message).toMatch(/page 2/);
    await expect(fs.stat(path.join(env.tmp, 'flipped.img'))).rejects.toThrow();
    expect((await fs.readdir(env.tmp)).filter((n) => n.startsWith('flipped.img.pagewise-partial'))).toEqual([]); // no temp file left
  });

  test('a missing block (segment cut short): verify names the pages', async () => {
    const bytes = await vault().getBytes(segmentBlob);
    await vault().putBytes(segmentBlob, bytes.subarray(0, Math.floor((bytes.length * 3) / 4)));
    const verified = await verifyBackup({ backupId, vault: v1, userKey: env.userKey });
    expect(verified.ok).toBe(false);
    expect(verified.problems.join('\n')).toMatch(/segment 0: .*truncated/);
    expect(verified.problems.join('\n')).toMatch(/page 3/);
  });

  test('a missing segment blob: verify says so and restore fails', async () => {
    await vaultContainerClient(v1).client.deleteBlob(segmentBlob);
    const verified = await verifyBackup({ backupId, vault: v1, userKey: env.userKey, readData: false });
    expect(verified.problems[0]).toMatch(/segment 0: .* is missing/);
    expect(await codeOf(restoreBackup({ backupId, vault: v1, userKey: env.userKey, target: { url: path.join(env.tmp, 'gone.img') } }))).toBe('Corrupt');
  });

  test('a tampered manifest fails authentication', async () => {
    const name = layout.manifest(backupId);
    const envelope = await vault().getJson<{ body: { diskBytes: number } }>(name);
    envelope.body.diskBytes += 512;
    await vault().putJson(name, envelope);
    expect(await codeOf(verifyBackup({ backupId, vault: v1, userKey: env.userKey }))).toBe('Corrupt');
  });
});

test('a backup interrupted before finalize is not listed, cannot be restored, and resumes without redoing batches', async () => {
  const diskBytes = 24 * MiB; // at 512 B pages a batch is 16,384 pages = 8 MiB: three batches, two with data
  const disk = await env.makeDisk('interrupted.vhd', diskBytes, [
    { offset: 0, length: 64 * 1024, kind: 'text', seed: 21 },
    { offset: 16 * MiB, length: 64 * 1024, kind: 'random', seed: 22 },
  ]);
  const req = { source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 512, cacheBytes: 8 * 1024 };
  const plan = await planBackup(req);
  expect(plan.batchCount).toBe(2);
  const first = await runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0 });
  expect(first.resumed).toBe(false);
  // "Crash" here: no finalize.
  expect((await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete').map((b) => b.backupId)).not.toContain(plan.backupId);
  expect((await listBackups(env.vault, { userKey: env.userKey })).find((b) => b.backupId === plan.backupId)).toMatchObject({ status: 'incomplete', diskBytes, pageSize: 512 });
  expect(await codeOf(restoreBackup({ backupId: plan.backupId, vault: env.vault, userKey: env.userKey, target: { url: path.join(env.tmp, 'partial.img') } }))).toBe('BackupIncomplete');

  const resumed = await backupDisk(req);
  expect(resumed.backupId).toBe(plan.backupId);
  expect(resumed.bytesRead).toBe(disk.allocatedBytes); // counted once: batch 0 was not read again
  expect(resumed.bytesReadNow).toBe(disk.allocatedBytes - first.bytesRead); // this run read batch 1 only: its speed is not inflated
  expect(first.bytesRead).toBeGreaterThan(0);
  expect((await runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0 })).resumed).toBe(true);
  expect((await listBackups(env.vault, { userKey: env.userKey })).map((b) => b.backupId)).toContain(plan.backupId);
  const file = path.join(env.tmp, 'interrupted.img');
  await restoreBackup({ backupId: plan.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
});

describe("Azure's limits, which Azurite does not enforce", () => {
  test('Put Page requests never exceed 4 MiB', async () => {
    const client = new PageBlobClient(env.targetUrl('limits.vhd'), new AnonymousCredential());
    await client.create(16 * MiB);
    const sizes: number[] = [];
    const original = client.uploadPages.bind(client);
    client.uploadPages = ((body: Buffer, offset: number, count: number) => {
      sizes.push(count);
      return original(body, offset, count);
    }) as typeof client.uploadPages;
    await putPages(client, 0, Buffer.alloc(10 * MiB, 7), 'the test blob');
    expect(sizes).toEqual([4 * MiB, 4 * MiB, 2 * MiB]);
  });

  test('a segment may not be committed with more than 50,000 blocks', async () => {
    const ids = Array.from({ length: 50_001 }, (_, i) => Buffer.from(`pw1-${String(i).padStart(16, '0')}`).toString('base64'));
    const err = await failureOf(Vault.open(env.vault).commitBlocks('backups/limit-test/segments/00000000.seg', ids));
    expect(err.code).toBe('LimitExceeded');
  });
});

describe('a disk in use', () => {
  // Azurite refuses SAS reads of snapshots, so these sources use the account's connection string.
  const live = async (name: string) => {
    const disk = await env.makeDisk(name, 8 * MiB, [
      { offset: 0, length: 2 * MiB, kind: 'text', seed: 61 },
      { offset: 4 * MiB, length: 2 * MiB, kind: 'random', seed: 62 },
    ]);
    const source = { url: `${env.az.accounts.src.endpoint}/disks/${name}`, connectionString: env.az.accounts.src.connectionString };
    const blob = env.sourceClient(name);
    return { disk, source, blob };
  };
  // The steps of a durable backup, with the VM writing to the disk after it was planned.
  const backUpWhileWritten = async (req: Parameters<typeof planBackup>[0], write: () => Promise<unknown>) => {
    const plan = await planBackup(req);
    await write();
    expect(await planBackup(req)).toMatchObject({ backupId: plan.backupId }); // a repeated plan step resumes
    for (let planPosition = 0; planPosition < plan.batchCount; planPosition++) await runBackupBatch({ ...req, backupId: plan.backupId, planPosition });
    return finalizeBackup({ ...req, backupId: plan.backupId });
  };

  // Version 1 deletes its snapshot after the manifest; version 2 keeps it as the base of the disk's next backup (#12).
  test.each([
    ['a version-1 vault: deleted afterwards', 1],
    ['a version-2 vault: kept as the next base', 2],
  ] as const)('is backed up from a snapshot Pagewise takes (%s); it restores to the state at the start', async (_label, version) => {
    const name = `in-use-v${version}.vhd`;
    const { disk, source, blob } = await live(name);
    const vault = await env.makeVault(`in-use-v${version}`, version === 1 ? { version: 1 } : {});
    const req = { source, vault, userKey: env.userKey, pageSize: MiB, cacheBytes: 2 * MiB, takeSnapshot: true, backupId: 'in-use-1' };
    const result = await backUpWhileWritten(req, () => blob.uploadPages(Buffer.alloc(MiB, 0xee), 5 * MiB, MiB));
    expect(result).toMatchObject({ formatVersion: version, kind: 'full', sourceSnapshot: { deleted: version === 1, snapshot: expect.any(String) } });
    const snapshots: string[] = [];
    for await (const item of env.az.accounts.src.service.getContainerClient('disks').listBlobsFlat({ includeSnapshots: true, prefix: name })) {
      if (item.snapshot) snapshots.push(item.snapshot);
    }
    // Version 1: Pagewise's snapshot is gone. Version 2: it is the one snapshot left. The live blob is there.
    expect(snapshots).toEqual(version === 1 ? [] : [result.sourceSnapshot!.snapshot]);
    expect((await blob.getProperties()).contentLength).toBe(8 * MiB);
    const file = path.join(env.tmp, `in-use-v${version}.img`);
    await restoreBackup({ backupId: result.backupId, vault, userKey: env.userKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(disk.sha256); // the disk as it was when the backup started
  });

  test('without a snapshot the same write fails the backup with SourceChanged, and nothing is listed', async () => {
    const { source, blob } = await live('in-use-2.vhd');
    const req = { source, vault: env.vault, userKey: env.userKey, pageSize: MiB, cacheBytes: 2 * MiB, backupId: 'in-use-2' };
    const plan = await planBackup(req);
    await blob.uploadPages(Buffer.alloc(MiB, 0xee), 5 * MiB, MiB);
    await expect(runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0 })).rejects.toMatchObject({ code: 'SourceChanged' });
    expect((await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete').map((b) => b.backupId)).not.toContain('in-use-2');
  });

  test('taking a snapshot through a read-only SAS is refused, naming the permission', async () => {
    const { disk } = await live('in-use-3.vhd');
    await expect(backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: MiB, cacheBytes: 2 * MiB, takeSnapshot: true })).rejects.toMatchObject({
      code: 'AccessDenied',
      message: expect.stringMatching(/taking a snapshot needs write permission on the source/),
    });
  });
});
