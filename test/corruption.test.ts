/**
 * Corruption the block's own authentication cannot catch: two equal-length blocks of one segment
 * swapped. Each still decrypts (same data key, same backup), so only the page table's hash shows the
 * swap: verify must name both pages, and a restore must fail naming a page and write nothing. A version-1
 * segment is the subject, so the vault is a version-1 vault (makeVaultV1). In version 2 a block's content ID
 * is in its AAD, so a swap fails authentication: security.vault-v2.test.ts.
 */
import * as path from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { backupDisk, restoreBackup, verifyBackup } from '../core';
import { BackupReader } from '../core/repo/backup-reader';
import { PageEntry } from '../core/repo/page-table';
import { KiB, makeVaultV1, MiB, startEnv, TestEnv } from './harness/env';
import { recordSummary } from './harness/fault-summary';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
  await makeVaultV1(env.vault);
});
afterAll(async () => env?.stop());

test('two swapped equal-length blocks: verify names both pages, restore fails naming a page and writes nothing', async () => {
  const pageSize = MiB;
  // Pages 2 and 5 hold different random (incompressible) data: both blocks are stored (codec 0), equal length.
  const disk = await env.makeDisk('swap.vhd', 8 * MiB, [
    { offset: 0, length: 64 * KiB, kind: 'text', seed: 1 },
    { offset: 2 * MiB, length: MiB, kind: 'random', seed: 21 },
    { offset: 5 * MiB, length: MiB, kind: 'random', seed: 22 },
  ]);
  const { backupId } = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize, cacheBytes: 2 * MiB });
  expect((await verifyBackup({ backupId, vault: env.vault, userKey: env.userKey })).ok).toBe(true);

  // The page table says where each block lies in the segment.
  const reader = await BackupReader.open(env.vault, backupId, env.userKey);
  const entries: PageEntry[] = [];
  for await (const { entries: chunk } of reader.segments()) entries.push(...chunk);
  const a = entries.find((e) => e.page === 2)!;
  const b = entries.find((e) => e.page === 5)!;
  expect(a.segment).toBe(b.segment);
  expect(a.storedLength).toBe(b.storedLength);
  expect(a.offset).not.toBe(b.offset);
  const segmentBlob = reader.manifest.segments.find((s) => s.index === a.segment)!.blob;

  const blob = env.az.accounts.vault.service.getContainerClient('vault').getBlockBlobClient(segmentBlob);
  const bytes = await blob.downloadToBuffer();
  const blockA = Buffer.from(bytes.subarray(a.offset, a.offset + a.storedLength));
  const blockB = Buffer.from(bytes.subarray(b.offset, b.offset + b.storedLength));
  expect(blockA.equals(blockB)).toBe(false);
  blockB.copy(bytes, a.offset);
  blockA.copy(bytes, b.offset);
  await blob.uploadData(bytes); // same length: the segment's size still matches the manifest

  const verified = await verifyBackup({ backupId, vault: env.vault, userKey: env.userKey });
  expect(verified.ok).toBe(false);
  const swapped = (page: number) => `page ${page} (offset ${page * pageSize}): its content does not match its hash (damaged or swapped block)`;
  expect(verified.problems).toEqual(expect.arrayContaining([swapped(2), swapped(5)]));
  expect(verified.problems).toHaveLength(2);

  const file = path.join(env.tmp, 'swap.img');
  await expect(restoreBackup({ backupId, vault: env.vault, userKey: env.userKey, target: { url: file } })).rejects.toMatchObject({
    code: 'Corrupt',
    message: expect.stringMatching(/^page (2|5) \(offset \d+\): its content does not match its hash \(damaged or swapped block\)$/),
  });
  expect(existsSync(file)).toBe(false);
  expect(readdirSync(env.tmp).filter((n) => n.startsWith('swap.img.pagewise-partial'))).toEqual([]); // no temp file left

  const target = env.targetUrl('swap-restored.vhd');
  await expect(restoreBackup({ backupId, vault: env.vault, userKey: env.userKey, target: { url: target } })).rejects.toMatchObject({
    code: 'Corrupt',
    message: expect.stringMatching(/^page (2|5) .*damaged or swapped block/),
  });
  expect(await env.az.accounts.vault.service.getContainerClient('restores').getPageBlobClient('swap-restored.vhd').exists()).toBe(false);

  recordSummary('corruption', {
    case: 'two equal-length blocks swapped in a segment',
    pagesSwapped: [2, 5],
    verifyProblems: verified.problems,
    restoreToFile: 'failed (Corrupt), nothing written',
    restoreToBlob: 'failed (Corrupt), nothing written',
  });
});
