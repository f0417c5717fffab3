/**
 * A `pagewise serve` killed (SIGKILL) during a backup and started again finishes that backup without
 * redoing recorded batches: the new serve waits for the killed one's task-hub lease to lapse, takes the
 * hub over, resumes the orchestration; no byte of a batch recorded before the kill is read from the
 * source again (every source read is seen by a loopback proxy), the records are untouched, the manifest
 * is written and the backup restores byte-identical. A serve whose lease is broken stops (exit 1, saying why).
 */
import type { ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import * as path from 'node:path';
import { restoreBackup } from '../core';
import { vaultContainerClient } from '../core/storage/clients';
import type { BackupOrchestrationOutput } from '../orchestrations/contracts';
import { DEFAULT_TASK_HUB_CONTAINER } from '../runtime/localApp';
import { TASK_HUB_LOCK_BLOB } from '../runtime/taskHubLease';
import { PagewiseExit, startPagewise } from '../testkit/pagewise-process';
import { FaultProxy, startFaultProxy } from './harness/fault-proxy';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';
import { recordSummary } from './harness/fault-summary';
import { BackupOf, backupOf, batchRecordBlobs, manifestBlobs } from './harness/vault-blobs';

const PAGE = 4 * KiB;
/** 16,384 pages of 4 KiB per batch (core/repo/backup-plan.ts pagesPerBatchFor). */
const BATCH_BYTES = 64 * MiB;
const BATCHES = 8;
/** Four separate 64 KiB regions per batch: four source reads, each held back by the proxy. */
const REGIONS_PER_BATCH = 4;
const REGION_BYTES = 64 * KiB;
const BATCH_DATA_BYTES = REGIONS_PER_BATCH * REGION_BYTES;

let env: TestEnv;
let proxy: FaultProxy;
/** Byte ranges of the source disk's data reads, as they reach the proxy. */
let reads: Array<{ start: number; end: number }> = [];

beforeAll(async () => {
  env = await startEnv();
  const isDataRead = (req: IncomingMessage) => req.method === 'GET' && /^\/src\/disks\/restart\.vhd(\?|$)/.test(req.url ?? '') && !/[?&]comp=/.test(req.url ?? '');
  proxy = await startFaultProxy({
    target: { host: '127.0.0.1', port: env.az.port },
    seed: 17,
    rate: 1,
    kinds: ['latency'],
    latencyInMs: 500,
    // Every data read of the disk is recorded and held back, so the backup is still running when it is killed.
    faultIf: (req) => {
      if (!isDataRead(req)) return false;
      const range = /bytes=(\d+)-(\d+)/.exec(String(req.headers['x-ms-range'] ?? req.headers.range ?? ''));
      if (range) reads.push({ start: Number(range[1]), end: Number(range[2]) + 1 });
      return true;
    },
  });
}, 60_000);
afterAll(async () => {
  await proxy?.stop();
  await env?.stop();
});

function serve(settings: Record<string, string>) {
  const run = startPagewise(['serve', '--json', '--keys-dir', path.join(env.tmp, 'serve-keys')], { env: settings });
  const listening = new Promise<{ url: string; keysFile: string }>((resolve, reject) => {
    let out = '';
    run.child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      // One JSON object, printed indented: complete once it parses.
      try {
        resolve(JSON.parse(out) as { url: string; keysFile: string });
      } catch {
        // more to come
      }
    });
    void run.done.then((exit: PagewiseExit) => reject(new Error(`serve ended before listening: ${JSON.stringify(exit)}`)));
  });
  running.push(run.child);
  return { ...run, listening };
}

/** Serve processes this test started: none outlives it, whatever fails. */
const running: ChildProcess[] = [];
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

async function keysOf(keysFile: string): Promise<{ functionKeys: { default: string }; systemKeys: { durabletask_extension: string } }> {
  return JSON.parse(await fs.readFile(keysFile, 'utf8'));
}

test('a serve killed mid-backup and started again finishes it without reading recorded batches again; the backup restores identical', async () => {
  const regions = Array.from({ length: BATCHES * REGIONS_PER_BATCH }, (_, i) => ({
    offset: Math.floor(i / REGIONS_PER_BATCH) * BATCH_BYTES + (i % REGIONS_PER_BATCH) * 4 * MiB,
    length: REGION_BYTES,
    kind: (i % 2 ? 'random' : 'text') as 'random' | 'text',
    seed: 700 + i,
  }));
  const disk = await env.makeDisk('restart.vhd', BATCHES * BATCH_BYTES, regions);
  expect(disk.allocatedBytes).toBe(BATCHES * BATCH_DATA_BYTES);
  const settings = {
    PAGEWISE_TASKHUB_CONNECTION_STRING: env.az.accounts.vault.connectionString,
    PAGEWISE_VAULT_URL: env.vault.url,
    PAGEWISE_USER_KEY: env.userKey.toString('base64'),
    PAGEWISE_STORAGE_ENDPOINTS: [env.az.storageEndpoints, ...env.az.storageEndpoints.split(',').map((e) => proxy.via(e))].join(','),
    PAGEWISE_ALLOWED_ACCOUNTS: [env.az.storageEndpoints, ...env.az.storageEndpoints.split(',').map((e) => proxy.via(e))].join(','),
    PAGEWISE_PAGE_SIZE: String(PAGE),
    PAGEWISE_CACHE_BYTES: String(256 * KiB),
    // One batch at a time, one read at a time: batches are recorded one by one, seconds apart.
    PAGEWISE_CONCURRENCY: '1',
    PAGEWISE_BATCHES_IN_FLIGHT: '1',
    PAGEWISE_SCRATCH_DIR: env.tmp,
  };

  const first = serve(settings);
  const { url, keysFile } = await first.listening;
  const keys = await keysOf(keysFile);
  const started = await fetch(`${url}/api/backups`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-functions-key': keys.functionKeys.default },
    body: JSON.stringify({ source: { url: proxy.via(disk.source.url) } }),
  });
  expect(started.status).toBe(202);
  const backupId = ((await started.json()) as { id: string }).id;
  const container = vaultContainerClient(env.vault).client;
  // The vault holds this backup alone: until its keyed name tag can be read, every batch record is its.
  let of: BackupOf = { backupId };
  const recorded = () => batchRecordBlobs(container, of);
  while ((await recorded()).length < 2) {
    if (first.child.exitCode !== null) throw new Error(`serve ended: ${JSON.stringify(await first.done)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  first.child.kill('SIGKILL');
  expect((await first.done).signal).toBe('SIGKILL');
  of = await backupOf(env.vault, env.userKey, backupId);

  // What the killed serve left: some batches recorded, no manifest.
  const before = await recorded();
  expect(before.length).toBeGreaterThanOrEqual(2);
  expect(before.length).toBeLessThan(BATCHES);
  expect(await manifestBlobs(container, of)).toEqual([]);
  const batchOf = (name: string) => Number(/(\d{8})\.\w+$/.exec(name)![1]);
  const recordedBatches = new Set(before.map(batchOf));
  const etags = new Map<string, string | undefined>();
  for (const name of before) etags.set(name, (await container.getBlobClient(name).getProperties()).etag);
  reads = [];

  const second = serve(settings);
  const again = await second.listening;
  const systemKey = (await keysOf(again.keysFile)).systemKeys.durabletask_extension;
  let status: { runtimeStatus: string; output: BackupOrchestrationOutput };
  for (;;) {
    const answer = await fetch(`${again.url}/runtime/webhooks/durabletask/instances/backup-${backupId}?code=${systemKey}`);
    status = (await answer.json()) as typeof status;
    if (!['Pending', 'Running'].includes(status.runtimeStatus)) break;
    if (second.child.exitCode !== null) throw new Error(`serve ended: ${JSON.stringify(await second.done)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // An operator breaks its lease (another runtime may be about to take the hub): it stops, saying why.
  await env.az.accounts.vault.service.getContainerClient(DEFAULT_TASK_HUB_CONTAINER).getBlobClient(TASK_HUB_LOCK_BLOB).getBlobLeaseClient().breakLease(0);
  const stopped = await second.done;
  expect(stopped.code).toBe(1);
  expect(stopped.stderr).toMatch(/^pagewise: this runtime stopped: its lease on task hub vault\/pagewise-taskhub was lost \(409 \w+\); it writes nothing more/m);
  // It took the hub over from the killed serve once that one's lease had lapsed.
  expect(stopped.stderr).toContain(`its last runtime (pagewise serve at ${url}, pid ${first.child.pid} on host `);

  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output.batches.batches).toBe(BATCHES);
  expect(status.output.result.bytesRead).toBe(disk.allocatedBytes);
  // Resumed batches (found recorded when their activity ran again) read nothing now.
  expect(status.output.result.bytesReadNow).toBe(disk.allocatedBytes - status.output.batches.resumedBatches * BATCH_DATA_BYTES);

  // The restarted serve read exactly the batches not recorded before the kill, each once, and nothing of the others.
  const batchesReadAgain = new Set(reads.map((r) => Math.floor(r.start / BATCH_BYTES)));
  for (const r of reads) expect(Math.floor((r.end - 1) / BATCH_BYTES)).toBe(Math.floor(r.start / BATCH_BYTES));
  expect([...batchesReadAgain].filter((b) => recordedBatches.has(b))).toEqual([]);
  expect([...batchesReadAgain].sort((a, b) => a - b)).toEqual([...Array(BATCHES).keys()].filter((b) => !recordedBatches.has(b)));
  expect(reads.reduce((sum, r) => sum + r.end - r.start, 0)).toBe((BATCHES - recordedBatches.size) * BATCH_DATA_BYTES);

  // The records of the batches done before the kill are untouched; all batches recorded; one manifest.
  for (const [name, etag] of etags) expect((await container.getBlobClient(name).getProperties()).etag).toBe(etag);
  expect(await recorded()).toHaveLength(BATCHES);
  expect(await manifestBlobs(container, of)).toHaveLength(1);

  const file = path.join(env.tmp, 'restart.img');
  await restoreBackup({ backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
  const figures = {
    batchesTotal: BATCHES,
    recordedBeforeKill: recordedBatches.size,
    resumedBatches: status.output.batches.resumedBatches,
    bytesReadAfterRestart: reads.reduce((sum, r) => sum + r.end - r.start, 0),
    bytesOfRecordedBatchesReadAgain: reads.filter((r) => recordedBatches.has(Math.floor(r.start / BATCH_BYTES))).reduce((sum, r) => sum + r.end - r.start, 0),
    restoresIdentical: 1,
  };
  recordSummary('serve-restart', figures);
  console.info(`serve restart: ${JSON.stringify(figures)}`);
}, 180_000);
