/**
 * `abortSignal` on restore and verify (as the Azure SDK's options bags): aborted mid-way, a restore ends
 * with Aborted and leaves no target (neither the file nor its partial file, nor a page blob), and a
 * verification ends with Aborted (no verdict) and leaves no scratch. The signal reaches the vault's
 * requests: an abort cancels the read in flight, and nothing retries it.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { captureIO, run } from '../cli/main';
import { backupDisk, configureStorageEndpoints, PagewiseError, restoreBackup, verifyBackup, writeNewKeyFile, loadUserKey } from '../core';
import type { OperationProgress } from '../core';
import { startFaultProxy } from './harness/fault-proxy';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let backupId: string;
let sourceUrl: string;
let keyFile: string;
/** The key in keyFile (the CLI reads the file). */
let userKey: Buffer;
const PAGE = 64 * KiB;
const DISK_BYTES = 2 * MiB;

beforeAll(async () => {
  env = await startEnv();
  keyFile = path.join(env.tmp, 'user.key');
  await writeNewKeyFile(keyFile);
  userKey = await loadUserKey(keyFile);
  const disk = await env.makeDisk('abort.vhd', DISK_BYTES, [{ offset: 0, length: DISK_BYTES, kind: 'random', seed: 11 }]);
  sourceUrl = disk.source.url;
  backupId = (await backupDisk({ source: disk.source, vault: env.vault, userKey, pageSize: PAGE, cacheBytes: 4 * PAGE })).backupId;
});

afterAll(async () => {
  await env?.stop();
});

/** Aborts `controller` once `after` pages were reported; records every report. */
function abortingAfter(controller: AbortController, after: number, seen: OperationProgress[], reason?: unknown): (p: OperationProgress) => void {
  return (p) => {
    seen.push(p);
    if (p.pagesDone === after) controller.abort(reason);
  };
}

async function freshDir(name: string): Promise<string> {
  const dir = path.join(env.tmp, name);
  await fs.mkdir(dir);
  return dir;
}

test('a file restore aborted mid-way ends with Aborted and leaves nothing in its directory', async () => {
  const dir = await freshDir('restore-file');
  const controller = new AbortController();
  const seen: OperationProgress[] = [];
  await expect(
    restoreBackup({ backupId, vault: env.vault, userKey, target: { url: path.join(dir, 'disk.img') }, concurrency: 1, abortSignal: controller.signal, onProgress: abortingAfter(controller, 2, seen) }),
  ).rejects.toMatchObject({ code: 'Aborted', message: 'the restore was interrupted' });
  expect(await fs.readdir(dir)).toEqual([]);
  // It stopped part way: the pages reported were written before the abort, not the whole disk.
  expect(seen.length).toBeGreaterThanOrEqual(2);
  expect(seen.at(-1)!.pagesDone).toBeLessThan(DISK_BYTES / PAGE);
});

test('a page-blob restore aborted mid-way ends with the signal\'s Aborted reason and leaves no page blob', async () => {
  const target = env.targetUrl('aborted.vhd');
  const controller = new AbortController();
  const seen: OperationProgress[] = [];
  await expect(
    restoreBackup({ backupId, vault: env.vault, userKey, target: { url: target }, concurrency: 1, abortSignal: controller.signal, onProgress: abortingAfter(controller, 3, seen, new PagewiseError('Aborted', 'terminated')) }),
  ).rejects.toMatchObject({ code: 'Aborted', message: 'terminated' });
  expect(await env.az.accounts.vault.service.getContainerClient('restores').getPageBlobClient('aborted.vhd').exists()).toBe(false);
  expect(seen.at(-1)!.pagesDone).toBeLessThan(DISK_BYTES / PAGE);
});

test('a verification aborted mid-way (comparing with its source) ends with Aborted, not a verdict, and leaves no scratch', async () => {
  const scratchDir = await freshDir('verify-scratch');
  const controller = new AbortController();
  const seen: OperationProgress[] = [];
  await expect(
    verifyBackup({ backupId, vault: env.vault, userKey, source: { url: sourceUrl }, scratchDir, readData: true, concurrency: 1, abortSignal: controller.signal, onProgress: abortingAfter(controller, 2, seen) }),
  ).rejects.toMatchObject({ code: 'Aborted', message: 'the verification was interrupted' });
  // The pages of a segment are read as one run and reported before its comparison with the source,
  // which the abort stopped: the scratch cache that comparison made is gone.
  expect(seen.at(-1)).toMatchObject({ phase: 'verifying', pagesTotal: DISK_BYTES / PAGE });
  expect(await fs.readdir(scratchDir)).toEqual([]);
});

test('an operation whose signal is already aborted reports no progress and leaves nothing', async () => {
  const dir = await freshDir('restore-pre-aborted');
  const seen: OperationProgress[] = [];
  await expect(
    restoreBackup({ backupId, vault: env.vault, userKey, target: { url: path.join(dir, 'disk.img') }, abortSignal: AbortSignal.abort(), onProgress: (p) => seen.push(p) }),
  ).rejects.toMatchObject({ code: 'Aborted' });
  await expect(verifyBackup({ backupId, vault: env.vault, userKey, abortSignal: AbortSignal.abort(), onProgress: (p) => seen.push(p) })).rejects.toMatchObject({ code: 'Aborted' });
  expect(seen).toEqual([]);
  expect(await fs.readdir(dir)).toEqual([]);
});

test('pagewise verify stops on Ctrl-C: exit 130, "interrupted", no verdict', async () => {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
  const interrupt = new AbortController();
  interrupt.abort(new PagewiseError('Aborted', 'interrupted'));
  io.interruptSignal = () => interrupt.signal;
  const code = await run(['verify', backupId, '--vault', env.vault.url, '--key-file', keyFile, '--read-data'], io);
  expect({ code, stdout: io.stdoutText(), stderr: io.stderrText() }).toEqual({ code: 130, stdout: '', stderr: 'pagewise: interrupted\n' });
});

/** An operation that reads blocks from the vault, run against `vaultUrl`, with its files (target, scratch) in `dir`. */
type HeldReadCase = { operation: string; message: string; run: (vaultUrl: string, dir: string, abortSignal: AbortSignal) => Promise<unknown> };
const heldReadCases: HeldReadCase[] = [
  {
    operation: 'a restore',
    message: 'the restore was interrupted',
    run: (vaultUrl, dir, abortSignal) => restoreBackup({ backupId, vault: { url: vaultUrl }, userKey, target: { url: path.join(dir, 'disk.img') }, concurrency: 1, abortSignal }),
  },
  {
    operation: 'a verification',
    message: 'the verification was interrupted',
    run: (vaultUrl, dir, abortSignal) => verifyBackup({ backupId, vault: { url: vaultUrl }, userKey, readData: true, scratchDir: dir, concurrency: 1, abortSignal }),
  },
];

test.each(heldReadCases)('an abort cancels the vault read in flight: $operation ends with Aborted and no vault request starts after it', async ({ operation, message, run: start }) => {
  // Block reads (ranged GETs) are held at the proxy longer than the test may run; the manifest and the
  // page tables (whole-blob reads) pass at once. Only a cancelled request lets the operation end at all.
  const proxy = await startFaultProxy({
    target: { host: '127.0.0.1', port: env.az.port },
    seed: 1,
    rate: 1,
    kinds: ['latency'],
    latencyInMs: 10 * 60_000,
    faultIf: (req) => req.headers['x-ms-range'] !== undefined,
  });
  const direct = env.az.storageEndpoints.split(',');
  configureStorageEndpoints([...direct, ...direct.map((e) => proxy.via(e))], 'PAGEWISE_STORAGE_ENDPOINTS');
  try {
    const dir = await freshDir(`held-read-${operation.split(' ')[1]}`); // held-read-restore, held-read-verification
    const controller = new AbortController();
    let settled = false;
    const outcome = start(proxy.via(env.vault.url), dir, controller.signal)
      .then(() => 'finished', (err: unknown) => err)
      .finally(() => (settled = true));
    while (proxy.stats.faults.latency === 0 && !settled) await sleep(5); // until a block read is held
    const requestsAtAbort = proxy.stats.requests;
    controller.abort();
    expect(await outcome).toMatchObject({ code: 'Aborted', message });
    expect({ heldReads: proxy.stats.faults.latency, requestsAfterAbort: proxy.stats.requests - requestsAtAbort }).toEqual({ heldReads: 1, requestsAfterAbort: 0 });
    expect(await fs.readdir(dir)).toEqual([]);
  } finally {
    configureStorageEndpoints(direct, 'PAGEWISE_STORAGE_ENDPOINTS');
    await proxy.stop();
  }
});
