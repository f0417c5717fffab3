/**
 * Plan positions and batch numbers are two things: a disk whose batches with data are 3, 7 and 12 is
 * planned as `batches: [3, 7, 12]`, and plan position 1 is batch 7. The inline engine, the batch
 * activity's entry point and the orchestration (whose ranges hold positions) must each copy batches
 * 3, 7 and 12 into the records of those numbers; an activity scheduled under the former input name
 * `batchIndex` still runs the batch at that position. The records are read as version 1 writes them (plan.json,
 * batches/<b>.json): the vault is a version-1 vault (makeVaultV1); version 2: security.vault-v2.test.ts.
 */
import * as path from 'node:path';
import { backupDisk, planBackup, restoreBackup, runBackupBatch } from '../core';
import { readBatchRecord } from '../core/repo/batch-record';
import { readPlan } from '../core/repo/backup-plan';
import { layout } from '../core/repo/layout';
import { Vault } from '../core/repo/vault';
import type { BackupOrchestrationOutput, BatchActivityInput } from '../orchestrations/contracts';
import { registeredFunctions } from '../runtime/functionsCore';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { fileSha256, KiB, makeVaultV1, MiB, startEnv, TestEnv } from './harness/env';

const PAGE = 512; // a batch is 16,384 pages of 512 B = 8 MiB
const BATCH_PAGES = 16_384;
const DATA_BATCHES = [3, 7, 12];
const DISK_BYTES = 13 * 8 * MiB;

let env: TestEnv;
let app: LocalApp;

beforeAll(async () => {
  env = await startEnv();
  await makeVaultV1(env.vault);
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: env.appSettings({ PAGEWISE_PAGE_SIZE: String(PAGE), PAGEWISE_CACHE_BYTES: String(64 * KiB), PAGEWISE_BATCHES_IN_FLIGHT: '1' }),
  });
});
afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

/** A disk with data in batches 3, 7 and 12 only (and holes in the rest). */
function sparseDisk(name: string, seed: number) {
  return env.makeDisk(
    name,
    DISK_BYTES,
    DATA_BATCHES.map((b, i) => ({ offset: b * 8 * MiB + (i + 1) * 4 * KiB, length: 64 * KiB, kind: i === 1 ? ('random' as const) : ('text' as const), seed: seed + i })),
  );
}

/** The batch records of a backup, by the number of their blob name, for batches 0 … 12. */
async function recordsOf(backupId: string) {
  const vault = Vault.open(env.vault);
  const found: Array<{ name: number; batchNumber: number; firstPage: number; pages: number }> = [];
  for (let b = 0; b < DISK_BYTES / (8 * MiB); b++) {
    const record = await readBatchRecord(vault, backupId, b);
    if (record) found.push({ name: b, batchNumber: record.batchNumber, firstPage: record.firstPage, pages: record.pages.length });
  }
  return found;
}

const expectedRecords = DATA_BATCHES.map((b) => ({ name: b, batchNumber: b, firstPage: b * BATCH_PAGES, pages: 128 }));

test('the inline engine and the batch entry point: plan position 1 is batch 7', async () => {
  const disk = await sparseDisk('positions-inline.vhd', 31);
  const req = { source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 64 * KiB };
  const plan = await planBackup(req);
  expect(plan.batchCount).toBe(3);
  expect((await readPlan(Vault.open(env.vault), plan.backupId)).batches).toEqual(DATA_BATCHES);

  const second = await runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 1 });
  expect({ batchNumber: second.batchNumber, resumed: second.resumed }).toEqual({ batchNumber: 7, resumed: false });
  expect(await recordsOf(plan.backupId)).toEqual([expectedRecords[1]]);
  // On the blob the batch number keeps its version-1 name (FORMAT.md §5).
  const stored = await Vault.open(env.vault).getJson<Record<string, unknown>>(layout.batch(plan.backupId, 7));
  expect({ batchIndex: stored.batchIndex, batchNumber: stored.batchNumber, firstPage: stored.firstPage }).toEqual({ batchIndex: 7, batchNumber: undefined, firstPage: 7 * BATCH_PAGES });
  await expect(runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 3 })).rejects.toMatchObject({
    code: 'BadInput',
    message: `backup ${plan.backupId} has no batch at plan position 3 (its plan lists 3 batches with data)`,
  });

  const result = await backupDisk(req); // resumes: batch 7 is not read again
  expect(result.backupId).toBe(plan.backupId);
  expect(result.bytesReadNow).toBe(disk.allocatedBytes - second.bytesRead);
  expect(await recordsOf(plan.backupId)).toEqual(expectedRecords);
  const file = path.join(env.tmp, 'positions-inline.img');
  await restoreBackup({ backupId: plan.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
});

test('the orchestration schedules plan positions 0, 1, 2 and records batches 3, 7, 12; the former input name still runs', async () => {
  const disk = await sparseDisk('positions-orch.vhd', 41);
  const activity = registeredFunctions().get('runBackupBatch')!;
  const original = activity.handler;
  const positions: number[] = [];
  // Position 1 is handed to the activity as an orchestration of an earlier version scheduled it.
  activity.handler = async (input: unknown, ...rest: unknown[]) => {
    const { planPosition, ...others } = input as BatchActivityInput;
    positions.push(planPosition);
    return original(planPosition === 1 ? { ...others, batchIndex: planPosition } : input, ...rest);
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { startDiskBackup } = require('../functions/backupStarts') as typeof import('../functions/backupStarts');
    const { backupId, instanceId } = await startDiskBackup(app.host.durableClient(), { url: disk.source.url });
    const done = await app.runtime.waitForCompletion(instanceId, { timeoutInMs: 120_000 });
    expect(done.runtimeStatus).toBe('Completed');
    const output = done.output as BackupOrchestrationOutput;
    expect({ batches: output.batches.batches, bytesRead: output.result.bytesRead }).toEqual({ batches: 3, bytesRead: disk.allocatedBytes });
    expect(positions.sort((a, b) => a - b)).toEqual([0, 1, 2]);
    expect(await recordsOf(backupId)).toEqual(expectedRecords);
    const file = path.join(env.tmp, 'positions-orch.img');
    await restoreBackup({ backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(disk.sha256);
  } finally {
    activity.handler = original;
  }
});
