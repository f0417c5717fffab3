/**
 * Results that must not be stale or wrong (issue #10, class 4), through the HTTP functions on the local
 * durable runtime with the real engine on Azurite: every restore and verification request is a new
 * operation (an Idempotency-Key dedupes), a backup's live progress, the durable result's capacity and
 * whole-run duration, and a repeated backup that says it already existed and read nothing.
 */
import { HttpRequest, HttpResponse } from '@azure/functions';
import { backupDisk, listBackups } from '../core';
import { registeredFunctions } from '../runtime/functionsCore';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { damageData } from './harness/vault-blobs';

let env: TestEnv;
let app: LocalApp;
let disk: Awaited<ReturnType<TestEnv['makeDisk']>>;
let backupId: string;
const ORIGIN = 'http://127.0.0.1:7071';
const PAGE = 64 * KiB;
const CACHE = 512 * KiB;

beforeAll(async () => {
  env = await startEnv();
  disk = await env.makeDisk('results.vhd', 16 * MiB, [
    { offset: 0, length: 256 * KiB, kind: 'text', seed: 4 },
    { offset: 8 * MiB, length: 128 * KiB, kind: 'random', seed: 5 },
  ]);
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      ...env.appSettings(),
      PAGEWISE_PAGE_SIZE: String(PAGE),
      PAGEWISE_CACHE_BYTES: String(CACHE),
      PAGEWISE_BATCHES_IN_FLIGHT: '1',
    },
  });
});
afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

function request(method: string, path: string, body?: unknown, options: { params?: Record<string, string>; headers?: Record<string, string> } = {}): HttpRequest {
  const url = new URL(path, ORIGIN);
  return new HttpRequest({
    method,
    url: url.href,
    headers: { 'content-type': 'application/json', ...options.headers },
    query: Object.fromEntries(url.searchParams),
    params: options.params ?? {},
    ...(body !== undefined ? { body: { string: JSON.stringify(body) } } : {}),
  });
}

async function json(response: HttpResponse): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

const post = (fn: 'startBackup' | 'startRestore' | 'startVerification', body: unknown, headers: Record<string, string> = {}) =>
  app.host.invokeHttp(fn, request('POST', `/api/${{ startBackup: 'backups', startRestore: 'restores', startVerification: 'verifications' }[fn]}`, body, { headers }));

/** The operations (root instances) whose IDs start with `prefix`: a fanned-out operation's range sub-orchestrations (`…:r<first>+<count>`) are its own. */
async function operationIds(prefix: string): Promise<string[]> {
  return (await app.runtime.listInstances({ prefix })).map((s) => s.instanceId).filter((id) => !id.includes(':')).sort();
}

async function backupThroughHttp(body: Record<string, unknown>): Promise<{ id: string; output: { result: Record<string, unknown> } }> {
  const started = await post('startBackup', body);
  expect(started.status).toBe(202);
  const id = (await json(started)).id as string;
  const done = await app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 60_000 });
  expect(done.runtimeStatus).toBe('Completed');
  return { id, output: done.output as { result: Record<string, unknown> } };
}

test('the durable result reports the configured cache capacity and the whole run as its duration', async () => {
  const { id, output } = await backupThroughHttp({ source: { url: disk.source.url } });
  backupId = id;
  const status = (await app.runtime.getStatus(`backup-${id}`))!;
  // 512 KiB of 64 KiB pages: 8 slots, fewer than the disk's 256 pages.
  expect(output.result).toMatchObject({ cacheCapacityBytes: CACHE, alreadyExisted: false, bytesRead: disk.allocatedBytes, bytesReadNow: disk.allocatedBytes, completedAt: expect.any(String) });
  expect(output.result.cacheHighWaterBytes as number).toBeGreaterThan(0);
  expect(output.result.cacheHighWaterBytes as number).toBeLessThanOrEqual(CACHE);
  // From the orchestration's start (plan) to the manifest: within the instance's lifetime, and more than
  // the finalize step, which alone was what the result used to report.
  const lifetime = Date.parse(status.lastUpdatedTime) - Date.parse(status.createdTime);
  expect(output.result.durationMs as number).toBeGreaterThan(0);
  expect(output.result.durationMs as number).toBeLessThanOrEqual(lifetime);
  const manifestWritten = Date.parse(output.result.completedAt as string);
  expect(Date.parse(status.createdTime) + (output.result.durationMs as number)).toBeGreaterThanOrEqual(manifestWritten - 1000);
});

test('a second verification after a block was damaged reports the damage (a new operation, not the first "ok")', async () => {
  const first = await post('startVerification', { backupId, readData: true });
  expect(first.status).toBe(202);
  const firstId = (await json(first)).id as string;
  expect((await app.runtime.waitForCompletion(firstId, { timeoutInMs: 30_000 })).runtimeStatus).toBe('Completed');

  // Flip byte 10 of each data blob (a segment, or every pack): the first stored block of each; the blobs keep
  // their lengths, so only reading the data shows it.
  const damage = await damageData(env.az.accounts.vault.service.getContainerClient('vault'), { backupId }, 10, Number.MAX_SAFE_INTEGER);

  const second = await post('startVerification', { backupId, readData: true });
  expect(second.status).toBe(202);
  const secondBody = await json(second);
  expect(secondBody).toMatchObject({ duplicate: false, runtimeStatus: 'Pending' });
  const secondId = secondBody.id as string;
  expect(secondId).not.toBe(firstId);
  const failed = await app.runtime.waitForCompletion(secondId, { timeoutInMs: 30_000 });
  expect(failed.runtimeStatus).toBe('Failed');
  expect(String(failed.output)).toMatch(new RegExp(`backup ${backupId} failed verification: page \\d+ `));
  const view = await json(await app.host.invokeHttp('getVerification', request('GET', `/api/verifications/${secondId}`, undefined, { params: { id: secondId } })));
  expect(view).toMatchObject({ runtimeStatus: 'Failed', backupId, customStatus: { phase: 'failed', ok: false }, error: expect.stringMatching(/failed verification: page \d+ /) });

  await damage.undo(); // repaired for the tests below
});

test('the HTTP verification result says what was checked: structure only, or every block read', async () => {
  const quick = await post('startVerification', { backupId, readData: false });
  const quickDone = await app.runtime.waitForCompletion((await json(quick)).id as string, { timeoutInMs: 30_000 });
  expect(quickDone.output).toEqual({
    backupId,
    formatVersion: 2, // a new vault is version 2: one pack (packsChecked, segmentsChecked) and one page table
    ok: true,
    readData: false,
    comparedWithSource: false,
    pagesChecked: 6,
    segmentsChecked: 1,
    packsChecked: 1,
    tablesChecked: 1,
    blocksRelocated: 0,
    blocksChecked: 0,
    bytesChecked: 0,
    problems: [],
    durationMs: expect.any(Number),
  });
  const thorough = await post('startVerification', { backupId, readData: true, source: { url: disk.source.url } });
  const thoroughDone = await app.runtime.waitForCompletion((await json(thorough)).id as string, { timeoutInMs: 30_000 });
  // 256 KiB of text (4 pages) and 128 KiB of random data (2 pages): 6 blocks of 64 KiB read.
  expect(thoroughDone.output).toMatchObject({ formatVersion: 2, ok: true, readData: true, comparedWithSource: true, pagesChecked: 6, packsChecked: 1, tablesChecked: 1, blocksChecked: 6, bytesChecked: 6 * PAGE });
});

test('a second restore after the target was deleted writes it again, and the bytes match', async () => {
  const target = env.targetUrl('results-restored.vhd');
  const first = await post('startRestore', { backupId, target: { url: target } });
  const firstId = (await json(first)).id as string;
  expect((await app.runtime.waitForCompletion(firstId, { timeoutInMs: 30_000 })).runtimeStatus).toBe('Completed');
  expect(await env.blobSha256(target)).toBe(disk.sha256);

  const restores = env.az.accounts.vault.service.getContainerClient('restores');
  await restores.getPageBlobClient('results-restored.vhd').delete();
  const second = await post('startRestore', { backupId, target: { url: target } });
  expect(second.status).toBe(202);
  const secondId = (await json(second)).id as string;
  expect(secondId).not.toBe(firstId);
  const done = await app.runtime.waitForCompletion(secondId, { timeoutInMs: 30_000 });
  expect(done.runtimeStatus).toBe('Completed');
  expect(done.output).toMatchObject({ backupId, diskBytes: 16 * MiB, pagesWritten: 6, bytesWritten: 6 * PAGE });
  expect(await restores.getPageBlobClient('results-restored.vhd').exists()).toBe(true);
  expect(await env.blobSha256(target)).toBe(disk.sha256);
});

test('an Idempotency-Key dedupes the same request, refuses another request under it, and must be well formed', async () => {
  const key = { 'Idempotency-Key': 'results-test-2f6b1c9e' };
  const body = { backupId, readData: false };
  const before = await operationIds('verify-');
  const first = await post('startVerification', body, key);
  expect(first.status).toBe(202);
  const firstBody = await json(first);
  expect(firstBody).toMatchObject({ duplicate: false, id: expect.stringMatching(/^verify-k[0-9a-f]{32}$/) });
  // The same request again (fields in another order): the same operation, started once.
  const again = await post('startVerification', { readData: false, backupId }, key);
  expect([200, 202]).toContain(again.status);
  expect(await json(again)).toMatchObject({ id: firstBody.id, duplicate: true });
  await app.runtime.waitForCompletion(firstBody.id as string, { timeoutInMs: 30_000 });
  const late = await post('startVerification', body, key);
  expect(late.status).toBe(200);
  expect(await json(late)).toMatchObject({ id: firstBody.id, duplicate: true, runtimeStatus: 'Completed', output: { ok: true, readData: false } });
  expect(await operationIds('verify-')).toEqual([...before, firstBody.id].sort());

  // The same key with another body: 422, nothing started.
  const reused = await post('startVerification', { backupId, readData: true }, key);
  expect(reused.status).toBe(422);
  expect(reused.headers.get('content-type')).toBe('application/problem+json');
  expect(await json(reused)).toMatchObject({
    status: 422,
    title: 'IdempotencyKeyReused',
    detail: 'this Idempotency-Key was already used for a different verification request; send a new key for a new request',
  });
  const restoreIds = await operationIds('restore-');
  for (const bad of ['short', 'x'.repeat(129), 'has space in it', 'semi;colon-key', 'ünïcode-key-1234']) {
    const refused = await post('startRestore', { backupId, target: { url: env.targetUrl('never-written.vhd') } }, { 'Idempotency-Key': bad });
    expect(refused.status).toBe(400);
    expect(await json(refused)).toMatchObject({
      title: 'BadIdempotencyKey',
      detail: "the Idempotency-Key header must be 8 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-' (a UUID fits)",
    });
  }
  expect(await operationIds('restore-')).toEqual(restoreIds);
  expect(await operationIds('verify-')).toEqual([...before, firstBody.id].sort());
  expect(await env.az.accounts.vault.service.getContainerClient('restores').getPageBlobClient('never-written.vhd').exists()).toBe(false);
});

test('a repeated backup of a state that was already backed up says so and reads nothing', async () => {
  const other = await env.makeDisk('results-again.vhd', 8 * MiB, [{ offset: 0, length: 192 * KiB, kind: 'random', seed: 6 }]);
  // Made outside the function app (the CLI's engine): the function app has no instance of it yet.
  const made = await backupDisk({ source: other.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: CACHE });
  expect(made.alreadyExisted).toBe(false);
  const again = await backupDisk({ source: other.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: CACHE });
  expect(again).toMatchObject({ backupId: made.backupId, alreadyExisted: true, bytesRead: 0, bytesReadNow: 0, completedAt: made.completedAt, cacheCapacityBytes: CACHE });

  const { id, output } = await backupThroughHttp({ source: { url: other.source.url } });
  expect(id).toBe(made.backupId);
  expect(output.result).toMatchObject({ alreadyExisted: true, bytesRead: 0, bytesReadNow: 0, completedAt: made.completedAt, pages: made.pages, bytesStored: made.bytesStored });
  const duplicate = await post('startBackup', { source: { url: other.source.url } });
  expect(duplicate.status).toBe(200);
  expect(await json(duplicate)).toMatchObject({ id, duplicate: true, alreadyExisted: true, runtimeStatus: 'Completed' });
  expect((await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.backupId === id)).toHaveLength(1);
});

test('a backup whose orchestration failed and that was completed since is shown complete, not as the old failure', async () => {
  const id = 'results-failed-then-made';
  // The orchestration fails at plan (no such disk), then the backup is made outside the app under that ID.
  await app.runtime.startNew('backupDiskOrchestrator', { instanceId: `backup-${id}`, input: { backupId: id, source: { url: env.sourceUrl('missing.vhd') }, retry: { firstRetryIntervalInMs: 10, maxAttempts: 1 } } });
  expect((await app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 30_000 })).runtimeStatus).toBe('Failed');
  const get = () => app.host.invokeHttp('getBackup', request('GET', `/api/backups/${id}`, undefined, { params: { id } })).then(json);
  expect(await get()).toMatchObject({ runtimeStatus: 'Failed', customStatus: { phase: 'failed' }, error: expect.stringMatching(/SourceNotFound/) });

  const made = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, backupId: id, pageSize: PAGE, cacheBytes: CACHE });
  expect(await get()).toMatchObject({ id, runtimeStatus: 'Completed', catalog: { backupId: id, completedAt: made.completedAt } });
  const listed = (await json(await app.host.invokeHttp('listBackups', request('GET', '/api/backups')))).backups as Array<{ id: string; runtimeStatus: string }>;
  expect(listed.filter((b) => b.id === id)).toEqual([expect.objectContaining({ runtimeStatus: 'Completed', catalog: expect.objectContaining({ backupId: id }) })]);
});

test('a running backup shows its batches as they complete (0 < done < total), not 0 until the end', async () => {
  // 192 MiB with data in each 64 MiB window: three batches at 4 KiB pages; one batch in flight at a time.
  const big = await env.makeDisk('results-progress.vhd', 192 * MiB, [
    { offset: 0, length: 256 * KiB, kind: 'text', seed: 1 },
    { offset: 64 * MiB, length: 256 * KiB, kind: 'random', seed: 2 },
    { offset: 130 * MiB, length: 128 * KiB, kind: 'text', seed: 3 },
  ]);
  // Hold the last batch activity until the test has read the status: the observation does not depend on timing.
  const activity = registeredFunctions().get('runBackupBatch')!;
  const original = activity.handler;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  activity.handler = async (input: unknown, ...rest: unknown[]) => {
    if ((input as { planPosition: number }).planPosition === 2) await held;
    return original(input, ...rest);
  };
  try {
    const started = await post('startBackup', { source: { url: big.source.url }, pageSize: 4 * KiB, cacheBytes: 64 * KiB });
    expect(started.status).toBe(202);
    const id = (await json(started)).id as string;
    const statusOf = async () =>
      (await json(await app.host.invokeHttp('getBackup', request('GET', `/api/backups/${id}`, undefined, { params: { id } })))).customStatus as Record<string, unknown>;
    let seen = await statusOf();
    for (const deadline = Date.now() + 60_000; seen?.batchesDone !== 2 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
      seen = await statusOf();
    }
    expect(seen).toEqual({
      phase: 'copying',
      backupId: id,
      kind: 'full',
      base: null,
      reason: 'no-base',
      batchesTotal: 3,
      batchesDone: 2,
      pagesDone: 128, // 64 + 64 pages of 4 KiB in the first two batches
      pagesTotal: 160, // 640 KiB allocated, in 4 KiB pages
      bytesDone: 512 * KiB,
      bytesTotal: big.allocatedBytes,
    });
    // The root alone still knows nothing of its running range: the view added the range's own progress.
    expect((await app.runtime.getStatus(`backup-${id}`))!.customStatus).toMatchObject({ batchesDone: 0, running: [`backup-${id}:r0+3`] });

    release();
    const done = await app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 60_000 });
    expect(done.runtimeStatus).toBe('Completed');
    expect(await statusOf()).toEqual({ phase: 'done', backupId: id, kind: 'full', base: null, reason: 'no-base', batchesTotal: 3, batchesDone: 3, pagesDone: 160, pagesTotal: 160, bytesDone: big.allocatedBytes, bytesTotal: big.allocatedBytes });
  } finally {
    release();
    activity.handler = original;
  }
});
