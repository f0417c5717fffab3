/**
 * Crash and resume: a backup process is killed (SIGKILL) while pages are being staged; starting it again
 * with the same identity resumes — batches already recorded are not redone — and the result restores
 * byte-identical. Batch records and manifests are found by name in either layout (the vault holds this one
 * backup): the test holds for the format a new vault gets.
 */
import * as path from 'node:path';
import { restoreBackup, listBackups } from '../core';
import { vaultContainerClient } from '../core/storage/clients';
import { fileSha256, MiB, startEnv, TestEnv } from './harness/env';
import { recordSummary } from './harness/fault-summary';
import { BackupOf, backupOf, batchRecordBlobs, manifestBlobs } from './harness/vault-blobs';
import { startPagewise } from '../testkit/pagewise-process';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

function backupProcess(args: string[]) {
  return startPagewise(['backup', ...args], { env: { PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints } });
}

test('a backup killed mid-way resumes without redoing recorded batches and restores identical', async () => {
  // 4 KiB pages: a batch is 16,384 pages = 64 MiB; data in each of four batches.
  const diskBytes = 256 * MiB;
  const regions = [0, 1, 2, 3].map((k) => ({ offset: k * 64 * MiB, length: 2 * MiB, kind: (k % 2 ? 'random' : 'text') as 'random' | 'text', seed: k + 40 }));
  const disk = await env.makeDisk('crash.vhd', diskBytes, regions);
  const keyFile = path.join(env.tmp, 'crash.key');
  const { writeNewKeyFile, loadUserKey } = await import('../core');
  await writeNewKeyFile(keyFile);
  const backupId = 'crash-test-1';
  const args = [disk.source.url, '--vault', env.vault.url, '--key-file', keyFile, '--page-size', '4KiB', '--cache', '64KiB', '--concurrency', '2', '--backup-id', backupId, '--json'];
  const container = vaultContainerClient(env.vault).client;
  let of: BackupOf = { backupId }; // a version-2 vault's nameTag once the vault exists (the first record is waited for below)
  const recorded = () => batchRecordBlobs(container, of);

  const first = backupProcess(args);
  const deadline = Date.now() + 90_000;
  while ((await recorded()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  first.child.kill('SIGKILL');
  const killed = await first.done;
  of = await backupOf(env.vault, await loadUserKey(keyFile), backupId);
  expect(killed.signal).toBe('SIGKILL');
  const before = await recorded();
  expect(before.length).toBeGreaterThanOrEqual(1);
  expect(before.length).toBeLessThan(4); // killed mid-way, not after the last batch
  expect(await manifestBlobs(container, of)).toEqual([]);
  // With the key: a version-2 vault lists an unfinished backup by its ID only to who holds it.
  const listed = await listBackups(env.vault, { userKey: await loadUserKey(keyFile) });
  expect(listed.filter((b) => b.status === 'complete').map((b) => b.backupId)).not.toContain(backupId);
  expect(listed.find((b) => b.backupId === backupId)?.status).toBe('incomplete');
  const etags = new Map<string, string | undefined>();
  for (const name of before) etags.set(name, (await vaultContainerClient(env.vault).client.getBlobClient(name).getProperties()).etag);

  const second = await backupProcess(args).done;
  expect(second.stderr).toBe('');
  expect(second.code).toBe(0);
  const result = JSON.parse(second.stdout);
  expect(result.backupId).toBe(backupId);
  expect(result.bytesRead).toBe(disk.allocatedBytes);
  // Batches recorded before the crash were not redone: their records are untouched.
  for (const [name, etag] of etags) expect((await vaultContainerClient(env.vault).client.getBlobClient(name).getProperties()).etag).toBe(etag);
  expect(await recorded()).toHaveLength(4);

  const file = path.join(env.tmp, 'crash.img');
  await restoreBackup({ backupId, vault: env.vault, userKey: await loadUserKey(keyFile), target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
  recordSummary('crash-resume', {
    killedAfterBatches: before.length,
    batchesTotal: 4,
    batchesRedone: 0, // their records' ETags were unchanged
    backupsCompleted: 1,
    pagesLost: 0,
    restoresIdentical: 1,
  });
}, 180_000);
