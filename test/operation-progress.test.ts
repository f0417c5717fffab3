/**
 * One progress shape for backup, restore and verify ({ phase, pagesDone, pagesTotal, bytesDone,
 * bytesTotal }): each reports it page by page, never going back, and ends at its totals; the CLI's
 * bar detail reads it the same way for all three.
 */
import * as path from 'node:path';
import { backupDisk, restoreBackup, verifyBackup } from '../core';
import type { OperationProgress } from '../core';
import { progressDetail } from '../cli/output';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
const PAGE = 64 * KiB;

beforeAll(async () => {
  env = await startEnv();
});

afterAll(async () => {
  await env?.stop();
});

function expectSteady(seen: OperationProgress[], phase: OperationProgress['phase']): OperationProgress {
  expect(seen.length).toBeGreaterThan(0);
  for (const [k, p] of seen.entries()) {
    expect(Object.keys(p).sort()).toEqual(['bytesDone', 'bytesTotal', 'pagesDone', 'pagesTotal', 'phase']);
    expect(p.phase).toBe(phase);
    if (k > 0) {
      expect(p.pagesDone).toBeGreaterThanOrEqual(seen[k - 1].pagesDone);
      expect(p.bytesDone).toBeGreaterThanOrEqual(seen[k - 1].bytesDone);
    }
  }
  const last = seen.at(-1)!;
  expect(last.pagesDone).toBe(last.pagesTotal);
  expect(last.bytesDone).toBe(last.bytesTotal);
  return last;
}

test('backup, restore and verify report the same shape, ending at their totals', async () => {
  // 5 pages of data (one of them only partly written) in a 2 MiB disk of 32 pages.
  const disk = await env.makeDisk('progress.vhd', 2 * MiB, [
    { offset: 0, length: 2 * PAGE, kind: 'random', seed: 21 },
    { offset: MiB, length: 2 * PAGE + 4 * KiB, kind: 'text', seed: 22 },
  ]);
  const backups: OperationProgress[] = [];
  const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 4 * PAGE, onProgress: (p) => backups.push(p) });
  expect(expectSteady(backups, 'copying')).toEqual({ phase: 'copying', pagesDone: 5, pagesTotal: 5, bytesDone: result.bytesRead, bytesTotal: result.allocatedBytes });

  const restores: OperationProgress[] = [];
  await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: path.join(env.tmp, 'progress.img') }, onProgress: (p) => restores.push(p) });
  expect(expectSteady(restores, 'restoring')).toEqual({ phase: 'restoring', pagesDone: 5, pagesTotal: 5, bytesDone: 5 * PAGE, bytesTotal: 5 * PAGE });
  expect(restores).toHaveLength(5);

  for (const readData of [true, false]) {
    const verifies: OperationProgress[] = [];
    await verifyBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, readData, onProgress: (p) => verifies.push(p) });
    expect(expectSteady(verifies, 'verifying')).toEqual({ phase: 'verifying', pagesDone: 5, pagesTotal: 5, bytesDone: 5 * PAGE, bytesTotal: 5 * PAGE });
  }
});

test('restore and verify count a short last page by its real length, not as a whole page', async () => {
  // 2 pages and 8 KiB: the third page is 8 KiB long. Data in the first and the last page, a hole between.
  const DISK = 2 * PAGE + 8 * KiB;
  const disk = await env.makeDisk('short-tail.vhd', DISK, [
    { offset: 0, length: 4 * KiB, kind: 'random', seed: 31 },
    { offset: 2 * PAGE, length: 8 * KiB, kind: 'random', seed: 32 },
  ]);
  const { backupId } = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 4 * PAGE });
  const restores: OperationProgress[] = [];
  await restoreBackup({ backupId, vault: env.vault, userKey: env.userKey, target: { url: path.join(env.tmp, 'short-tail.img') }, onProgress: (p) => restores.push(p) });
  expect(expectSteady(restores, 'restoring')).toEqual({ phase: 'restoring', pagesDone: 2, pagesTotal: 2, bytesDone: PAGE + 8 * KiB, bytesTotal: PAGE + 8 * KiB });
  for (const readData of [true, false]) {
    const verifies: OperationProgress[] = [];
    await verifyBackup({ backupId, vault: env.vault, userKey: env.userKey, readData, onProgress: (p) => verifies.push(p) });
    expect(expectSteady(verifies, 'verifying')).toEqual({ phase: 'verifying', pagesDone: 2, pagesTotal: 2, bytesDone: PAGE + 8 * KiB, bytesTotal: PAGE + 8 * KiB });
  }
});

test('the CLI bar detail names the bytes each phase handles', () => {
  const at = (phase: OperationProgress['phase']) => progressDetail({ phase, pagesDone: 1, pagesTotal: 2, bytesDone: MiB, bytesTotal: 2 * MiB });
  expect([at('copying'), at('restoring'), at('verifying')]).toEqual(['1.00 MiB of 2.00 MiB read', '1.00 MiB of 2.00 MiB restored', '1.00 MiB of 2.00 MiB checked']);
});
