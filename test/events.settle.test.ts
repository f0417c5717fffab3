/**
 * Event-started backups of page blobs wait until the blob stops changing (issue #10, class 7). Real
 * sequences on Azurite through the local runtime: Put Blob creates an empty page blob, its BlobCreated
 * event is delivered as the trigger would, pages are written after it; the durable timers of the
 * quiet period are fired in order by ManualTimers, so nothing depends on the wall clock.
 *
 * Real events carry no SAS (in Azure the app reads with its managed identity); here the event's URL
 * carries the read SAS the app would otherwise not have against Azurite.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { LogLevel } from '@azure/functions';
import { PageBlobClient } from '@azure/storage-blob';
import { backupIdFor, listBackups, planBackup, restoreBackup, assertNotCopying } from '../core';
import { Orchestrators } from '../orchestrations/contracts';
import { settleInstanceId } from '../orchestrations/instanceIds';
import { MAX_SETTLE_ATTEMPTS } from '../orchestrations/settleBlob';
import { settleSettings } from '../functions/events/settleSettings';
import { assertSnapshotReadable, SnapshotAccess, SnapshotCompletion, SnapshotRef, useSnapshotAccess } from '../functions/compute';
import { snapshotBackupId } from '../functions/backupStarts';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { ManualTimers } from '../runtime/durable/manualTimers';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

const SUB = '5f8b2c1e-0000-4000-8000-000000000001';
const QUIET_SECONDS = 300;
const MAX_WAIT_SECONDS = 1800;

let env: TestEnv;
let app: LocalApp;
const timers = new ManualTimers();
const logs: string[] = [];
/** The app settings, resolved once when the app starts. */
let settings: Record<string, string | undefined>;
/** The activities' scratch directory (PAGEWISE_SCRATCH_DIR): a test may put a file in its place for a while. */
let scratchRoot: string;

beforeAll(async () => {
  env = await startEnv();
  scratchRoot = `${env.tmp}/scratch`;
  await fs.mkdir(scratchRoot, { mode: 0o700 });
  settings = {
    ...env.appSettings(),
    PAGEWISE_SCRATCH_DIR: scratchRoot,
    PAGEWISE_WATCHED_CONTAINERS: 'src/disks',
    PAGEWISE_EVENT_QUIET_SECONDS: String(QUIET_SECONDS),
    PAGEWISE_EVENT_MAX_WAIT_SECONDS: String(MAX_WAIT_SECONDS),
  };
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    durableTimers: timers,
    appSettings: settings,
    log: (_level: LogLevel, message: string) => logs.push(message),
  });
});
afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

/** BlobCreated as Storage sends it for a Put Blob of a page blob (Event Grid schema; ETag unquoted). */
function blobCreated(url: string, eTag: string, api = 'PutBlob') {
  const name = new URL(url).pathname.split('/').pop();
  return {
    topic: `/subscriptions/${SUB}/resourceGroups/storage-rg/providers/Microsoft.Storage/storageAccounts/src`,
    subject: `/blobServices/default/containers/disks/blobs/${name}`,
    eventType: 'Microsoft.Storage.BlobCreated',
    id: `eg-${name}-${eTag}`,
    data: { api, eTag: eTag.replace(/"/g, ''), contentType: 'application/octet-stream', contentLength: MiB, blobType: 'PageBlob', url, sequencer: '0000000000000000000000000000a1b2' },
    dataVersion: '',
    metadataVersion: '1',
    eventTime: '2026-01-01T00:00:00Z',
  };
}

const blobClient = (name: string) => env.sourceClient(name);
const etagOf = async (name: string) => (await blobClient(name).getProperties()).etag!;
const idOf = (name: string, etag: string) => backupIdFor({ account: 'src', container: 'disks', blob: name, snapshot: '', etag }, 64 * KiB);
const plainUrl = (name: string) => `${env.az.accounts.src.endpoint}/disks/${name}`;

/** Writes `length` bytes of a seeded pattern at `offset` (a Put Page: no event). */
async function writePages(name: string, offset: number, length: number, seed: number): Promise<void> {
  const data = Buffer.alloc(length);
  for (let i = 0; i < length; i++) data[i] = (i * 31 + seed * 17 + (i >> 9)) & 0xff;
  await blobClient(name).uploadPages(data, offset, length);
}

async function sha256Of(client: PageBlobClient): Promise<string> {
  return createHash('sha256').update(await client.downloadToBuffer()).digest('hex');
}

/**
 * Runs the orchestration to its end: whenever it waits on a durable timer, `beforeEachFire` runs (the
 * writes "during" the quiet period) and the timer fires. Returns how many timers fired.
 */
async function drive(instanceId: string, beforeEachFire: (fired: number) => Promise<void> = async () => {}): Promise<number> {
  let fired = 0;
  for (;;) {
    const status = await app.runtime.getStatus(instanceId);
    if (status && ['Completed', 'Failed', 'Terminated'].includes(status.runtimeStatus)) return fired;
    if (timers.waiting > 0) {
      await beforeEachFire(fired);
      timers.fireNext();
      fired++;
      continue;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function restoredSha(backupId: string, target: string): Promise<string> {
  await restoreBackup({ backupId, vault: env.vault, userKey: env.userKey, target: { url: env.targetUrl(target) } });
  return env.blobSha256(env.targetUrl(target));
}

test('create, event, then writes: the backup is of the written disk, never of the empty one', async () => {
  const name = 'fresh.vhd';
  await blobClient(name).create(MiB);
  const created = await etagOf(name);
  const emptySha = await sha256Of(blobClient(name));

  await app.host.invokeEventGrid('diskEvents', blobCreated(`${plainUrl(name)}?${new URL(env.sourceUrl(name)).search.slice(1)}`, created));
  const settle = settleInstanceId(plainUrl(name), created);
  await timers.untilWaiting(); // the first look saw the empty blob; the quiet period has begun
  await writePages(name, 0, 128 * KiB, 1);
  await writePages(name, 512 * KiB, 64 * KiB, 2);
  const written = await etagOf(name);
  expect(written).not.toBe(created);

  const fired = await drive(settle);
  const result = await app.runtime.getStatus(settle);
  expect(result?.runtimeStatus).toBe('Completed');
  expect(result?.output).toEqual({ outcome: 'started', etag: written, backupId: idOf(name, written), probes: 3 });
  expect(fired).toBe(2); // changed after the first look, unchanged after the second

  const backup = await app.runtime.waitForCompletion(`backup-${idOf(name, written)}`, { timeoutInMs: 60_000 });
  expect(backup.runtimeStatus).toBe('Completed');
  expect(backup.input).toMatchObject({ expectedEtag: written });
  const sha = await restoredSha(idOf(name, written), 'fresh-restored.vhd');
  expect(sha).toBe(await sha256Of(blobClient(name)));
  expect(sha).not.toBe(emptySha);
  // No backup, and no backup instance, of the empty state the event named.
  expect((await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete').map((b) => b.backupId)).not.toContain(idOf(name, created));
  expect(await app.runtime.getStatus(`backup-${idOf(name, created)}`)).toBeUndefined();

  // A duplicate delivery of the same event joins the finished settle run: nothing new starts.
  const before = (await app.runtime.listInstances()).length;
  await app.host.invokeEventGrid('diskEvents', blobCreated(`${plainUrl(name)}?${new URL(env.sourceUrl(name)).search.slice(1)}`, created));
  expect((await app.runtime.listInstances()).length).toBe(before);
  expect(logs.some((l) => l.includes(`already Completed (${settle})`))).toBe(true);
});

test('an event whose ETag is stale is followed to the blob\'s settled state, not backed up as if current', async () => {
  const name = 'stale.vhd';
  await blobClient(name).create(MiB);
  const created = await etagOf(name);
  await writePages(name, 64 * KiB, 192 * KiB, 3); // written before the event is delivered
  const written = await etagOf(name);

  await app.host.invokeEventGrid('diskEvents', blobCreated(`${plainUrl(name)}?${new URL(env.sourceUrl(name)).search.slice(1)}`, created));
  const settle = settleInstanceId(plainUrl(name), created);
  await drive(settle);
  const result = await app.runtime.getStatus(settle);
  expect(result?.output).toEqual({ outcome: 'started', etag: written, backupId: idOf(name, written), supersededEtag: created, probes: 2 });
  expect((await app.runtime.waitForCompletion(`backup-${idOf(name, written)}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  expect(await restoredSha(idOf(name, written), 'stale-restored.vhd')).toBe(await sha256Of(blobClient(name)));
  expect(await app.runtime.getStatus(`backup-${idOf(name, created)}`)).toBeUndefined();
});

test('an old event for a blob whose settled state is already backed up joins that backup: nothing is backed up twice', async () => {
  const name = 'fresh.vhd'; // backed up by the first test
  const current = await etagOf(name);
  const backups = (await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete').length;
  await app.host.invokeEventGrid('diskEvents', blobCreated(`${plainUrl(name)}?${new URL(env.sourceUrl(name)).search.slice(1)}`, '"0x8DC0000000000001"'));
  const settle = settleInstanceId(plainUrl(name), '"0x8DC0000000000001"');
  await drive(settle);
  expect((await app.runtime.getStatus(settle))?.output).toEqual({
    outcome: 'started',
    etag: current,
    backupId: idOf(name, current),
    joined: 'Completed',
    supersededEtag: '"0x8DC0000000000001"',
    probes: 2,
  });
  expect((await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete').length).toBe(backups);
});

test('an upload that keeps changing past the maximum wait fails with a clear reason and leaves no backup', async () => {
  const name = 'busy.vhd';
  await blobClient(name).create(MiB);
  const created = await etagOf(name);
  const vaultBefore = await vaultBlobs();
  await app.host.invokeEventGrid('diskEvents', blobCreated(`${plainUrl(name)}?${new URL(env.sourceUrl(name)).search.slice(1)}`, created));
  const settle = settleInstanceId(plainUrl(name), created);
  const fired = await drive(settle, (n) => writePages(name, (n % 8) * 64 * KiB, 64 * KiB, 10 + n));

  const result = await app.runtime.getStatus(settle);
  expect(result?.runtimeStatus).toBe('Failed');
  expect(String(result?.output)).toMatch(
    new RegExp(`SourceChanged: the blob ${plainUrl(name).replace(/\./g, '\\.')} kept changing \\(ETag .* at the last of 7 looks\\) and did not stay unchanged for ${QUIET_SECONDS} s within ${MAX_WAIT_SECONDS} s; no backup was made`),
  );
  expect(fired).toBe(MAX_WAIT_SECONDS / QUIET_SECONDS);
  expect(String(result?.output)).not.toContain('sig=');
  // Nothing started, nothing written to the vault.
  expect((await app.runtime.listInstances({ prefix: 'backup-' })).filter((s) => JSON.stringify(s.input).includes(name))).toEqual([]);
  expect(await vaultBlobs()).toEqual(vaultBefore);
});

test('a change under an event-started backup fails that backup (no manifest) and the blob is backed up once it settles again', async () => {
  const name = 'moving.vhd';
  await blobClient(name).create(MiB);
  await writePages(name, 0, 64 * KiB, 4);
  const settledAt = await etagOf(name);
  // The settle round saw `settledAt`; the disk is written again before the backup's plan reads it.
  await writePages(name, 256 * KiB, 64 * KiB, 5);
  const later = await etagOf(name);
  const source = { url: `${plainUrl(name)}?${new URL(env.sourceUrl(name)).search.slice(1)}` };
  const first = `backup-${idOf(name, settledAt)}`;
  await app.runtime.startNew(Orchestrators.backupDisk, {
    instanceId: first,
    input: { backupId: idOf(name, settledAt), source, expectedEtag: settledAt, settle: { ...settleSettings({ PAGEWISE_EVENT_QUIET_SECONDS: String(QUIET_SECONDS), PAGEWISE_EVENT_MAX_WAIT_SECONDS: String(MAX_WAIT_SECONDS) }) } },
  });
  const failed = await app.runtime.waitForCompletion(first, { timeoutInMs: 60_000 });
  const resettle = settleInstanceId(plainUrl(name), `changed-under:${idOf(name, settledAt)}`);
  expect(failed.runtimeStatus).toBe('Failed');
  expect(String(failed.output)).toContain(`SourceChanged: the source disk ${plainUrl(name)} changed since its backup was started (ETag ${settledAt} → ${later})`);
  expect(String(failed.output)).toContain(`it is watched again until it settles (${resettle})`);
  expect((await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete').map((b) => b.backupId)).not.toContain(idOf(name, settledAt));

  await drive(resettle);
  const again = await app.runtime.getStatus(resettle);
  expect(again?.input).toMatchObject({ settle: { attempt: 2 } });
  expect(again?.output).toMatchObject({ outcome: 'started', etag: later, backupId: idOf(name, later) });
  expect((await app.runtime.waitForCompletion(`backup-${idOf(name, later)}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  expect(await restoredSha(idOf(name, later), 'moving-restored.vhd')).toBe(await sha256Of(blobClient(name)));
});

test('a page written while a batch of an event-started backup runs fails it at that batch (no manifest) and starts the next settle round', async () => {
  const name = 'midway.vhd';
  await blobClient(name).create(MiB);
  await writePages(name, 0, 64 * KiB, 8);
  const planned = await etagOf(name);
  const source = { url: `${plainUrl(name)}?${new URL(env.sourceUrl(name)).search.slice(1)}` };
  const instanceId = `backup-${idOf(name, planned)}`;
  // The first batch attempt cannot make its scratch cache (a file where the directory should be): a
  // transient failure, so the batch waits on its retry timer — and the disk is written meanwhile.
  await fs.rm(scratchRoot, { recursive: true });
  await fs.writeFile(scratchRoot, 'not a directory');
  await app.runtime.startNew(Orchestrators.backupDisk, {
    instanceId,
    input: {
      backupId: idOf(name, planned),
      source,
      expectedEtag: planned,
      settle: { quietPeriodMs: QUIET_SECONDS * 1000, maxWaitMs: MAX_WAIT_SECONDS * 1000, attempt: 1 },
      retry: { firstRetryIntervalInMs: 5_000, maxAttempts: 2 },
    },
  });
  await timers.untilWaiting();
  await fs.rm(scratchRoot);
  await fs.mkdir(scratchRoot, { mode: 0o700 });
  await writePages(name, 512 * KiB, 64 * KiB, 9);
  const later = await etagOf(name);
  timers.fireNext();

  const failed = await app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
  const resettle = settleInstanceId(plainUrl(name), `changed-under:${idOf(name, planned)}`);
  expect(failed.runtimeStatus).toBe('Failed');
  expect(String(failed.output)).toMatch(/SourceChanged: the source disk .*midway\.vhd changed since the backup was planned/);
  expect(String(failed.output)).toContain(`it is watched again until it settles (${resettle})`);
  expect((await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete').map((b) => b.backupId)).not.toContain(idOf(name, planned));

  await drive(resettle);
  expect((await app.runtime.getStatus(resettle))?.output).toMatchObject({ outcome: 'started', etag: later });
  expect((await app.runtime.waitForCompletion(`backup-${idOf(name, later)}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  expect(await restoredSha(idOf(name, later), 'midway-restored.vhd')).toBe(await sha256Of(blobClient(name)));
});

test(`after ${MAX_SETTLE_ATTEMPTS} backups that met a change, the blob is not watched again and the failure says what to do`, async () => {
  const name = 'restless.vhd';
  await blobClient(name).create(MiB);
  const settledAt = await etagOf(name);
  await writePages(name, 0, 64 * KiB, 6);
  const source = { url: `${plainUrl(name)}?${new URL(env.sourceUrl(name)).search.slice(1)}` };
  const instanceId = `backup-${idOf(name, settledAt)}`;
  const before = (await app.runtime.listInstances({ prefix: 'settle-' })).length;
  await app.runtime.startNew(Orchestrators.backupDisk, {
    instanceId,
    input: { backupId: idOf(name, settledAt), source, expectedEtag: settledAt, settle: { quietPeriodMs: QUIET_SECONDS * 1000, maxWaitMs: MAX_WAIT_SECONDS * 1000, attempt: MAX_SETTLE_ATTEMPTS } },
  });
  const failed = await app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
  expect(failed.runtimeStatus).toBe('Failed');
  expect(String(failed.output)).toContain(`the blob changed under ${MAX_SETTLE_ATTEMPTS} backups started from its event; it is not watched again (back it up from a snapshot, takeSnapshot)`);
  expect((await app.runtime.listInstances({ prefix: 'settle-' })).length).toBe(before);
});

test('an event for a blob deleted before it settles is dropped with the reason; nothing is backed up', async () => {
  const name = 'gone.vhd';
  await blobClient(name).create(MiB);
  const created = await etagOf(name);
  await app.host.invokeEventGrid('diskEvents', blobCreated(`${plainUrl(name)}?${new URL(env.sourceUrl(name)).search.slice(1)}`, created));
  const settle = settleInstanceId(plainUrl(name), created);
  await drive(settle, async () => {
    await blobClient(name).delete();
  });
  expect((await app.runtime.getStatus(settle))?.output).toEqual({ outcome: 'dropped', reason: 'the blob was deleted before it settled', probes: 2 });
  expect(await app.runtime.getStatus(`backup-${idOf(name, created)}`)).toBeUndefined();
});

test('a start pinned to an ETag the disk has left refuses to plan it: no plan is written under the old state\'s ID', async () => {
  const name = 'pinned.vhd';
  await blobClient(name).create(MiB);
  const then = await etagOf(name);
  await writePages(name, 0, 64 * KiB, 7);
  const now = await etagOf(name);
  const before = await vaultBlobs();
  await expect(
    planBackup({ source: { url: env.sourceUrl(name) }, vault: env.vault, userKey: env.userKey, pageSize: 64 * KiB, backupId: idOf(name, then), expectedEtag: then }),
  ).rejects.toMatchObject({ code: 'SourceChanged', message: `the source disk ${plainUrl(name)} changed since its backup was started (ETag ${then} → ${now}); this backup names the earlier state` });
  expect(await vaultBlobs()).toEqual(before);
  // A Copy Blob still filling a blob is refused by every start (its ETag need not change meanwhile).
  expect(() => assertNotCopying(env.sourceUrl(name), 'pending')).toThrow(`the source disk ${plainUrl(name)} is still being copied into (copy status pending); back it up once the copy has finished`);
  expect(() => assertNotCopying(env.sourceUrl(name), 'success')).not.toThrow();
});

test('an HTTP start pins the backup to the state it derived the ID from', async () => {
  const name = 'http.vhd';
  await blobClient(name).create(MiB);
  await writePages(name, 0, 64 * KiB, 11);
  const etag = await etagOf(name);
  const response = await app.host.dispatchHttp({ method: 'POST', url: 'http://127.0.0.1:7071/api/backups', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: { url: env.sourceUrl(name) } }) });
  expect(response.status).toBe(202);
  const status = await app.runtime.waitForCompletion(`backup-${idOf(name, etag)}`, { timeoutInMs: 60_000 });
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.input).toMatchObject({ backupId: idOf(name, etag), expectedEtag: etag });
  expect(status.input).not.toHaveProperty('settle'); // an explicit start is not watched again: a change fails it with SourceChanged
});

test('quiet period and maximum wait settings are checked', () => {
  expect(settleSettings({})).toEqual({ quietPeriodMs: 300_000, maxWaitMs: 86_400_000, attempt: 1 });
  expect(() => settleSettings({ PAGEWISE_EVENT_QUIET_SECONDS: '0' })).toThrow('app setting PAGEWISE_EVENT_QUIET_SECONDS must be a whole number of seconds from 1 to 518400, got "0"');
  expect(() => settleSettings({ PAGEWISE_EVENT_QUIET_SECONDS: '60', PAGEWISE_EVENT_MAX_WAIT_SECONDS: '86400' })).toThrow(
    'app settings PAGEWISE_EVENT_MAX_WAIT_SECONDS / PAGEWISE_EVENT_QUIET_SECONDS allow 1440 looks at a blob; at most 480 (each adds to the orchestration\'s history)',
  );
  expect(() => settleSettings({ PAGEWISE_EVENT_QUIET_SECONDS: '600', PAGEWISE_EVENT_MAX_WAIT_SECONDS: '60' })).toThrow(
    'app setting PAGEWISE_EVENT_MAX_WAIT_SECONDS (60) must be at least PAGEWISE_EVENT_QUIET_SECONDS (600)',
  );
});

test('a snapshot whose CopyStart copy is unfinished is not granted or backed up: the event fails so Event Grid delivers it again', async () => {
  const snapshotId = `/subscriptions/${SUB}/resourceGroups/vm-rg/providers/Microsoft.Compute/snapshots/vm1-copy-west`;
  const event = {
    subject: snapshotId,
    eventType: 'Microsoft.Resources.ResourceWriteSuccess',
    eventTime: '2026-01-01T01:00:00Z',
    id: 'snap-copy-1',
    data: { resourceProvider: 'Microsoft.Compute', resourceUri: snapshotId, operationName: 'Microsoft.Compute/snapshots/write', status: 'Succeeded', subscriptionId: SUB },
    dataVersion: '2',
    metadataVersion: '1',
    topic: `/subscriptions/${SUB}`,
  };
  // Compute is a cloud API: this stand-in reports the snapshot's copy state and applies the same check
  // the production client applies before it asks for a SAS.
  const compute = new (class implements SnapshotAccess {
    state: SnapshotCompletion = { provisioningState: 'Succeeded', completionPercent: 40 };
    grants = 0;
    async grantRead(ref: SnapshotRef): Promise<string> {
      assertSnapshotReadable(ref.snapshotName, this.state);
      this.grants++;
      return env.sourceUrl('fresh.vhd');
    }
  })();
  useSnapshotAccess(compute);
  const instanceId = `backup-${snapshotBackupId(snapshotId)}`;
  await expect(app.host.invokeEventGrid('diskEvents', event)).rejects.toThrow('snapshot vm1-copy-west is still being copied (40% done); the event will be delivered again');
  expect(compute.grants).toBe(0);
  expect(await app.runtime.getStatus(instanceId)).toBeUndefined();

  compute.state = { provisioningState: 'Succeeded', completionPercent: 100 };
  await app.host.invokeEventGrid('diskEvents', event);
  expect(compute.grants).toBe(1);
  expect((await app.runtime.getStatus(instanceId))?.input).toMatchObject({ source: { grantedBy: 'compute' } });
  await app.runtime.terminate(instanceId, 'test done');

  // A copy that failed will never be whole: rejected with the reason and acknowledged (no redelivery).
  expect(() => assertSnapshotReadable('s1', { provisioningState: 'Succeeded', completionPercent: 10, copyCompletionError: { errorMessage: 'CopySourceNotFound' } })).toThrow(
    'the background copy of snapshot s1 failed (CopySourceNotFound): there is nothing whole to back up',
  );
  expect(() => assertSnapshotReadable('s2', { provisioningState: 'Creating' })).toThrow('snapshot s2 is not ready (provisioning state Creating); the event will be delivered again');
  expect(() => assertSnapshotReadable('s3', { provisioningState: 'Succeeded' })).not.toThrow(); // a snapshot of a disk: readable at once
});

async function vaultBlobs(): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of env.az.accounts.vault.service.getContainerClient('vault').listBlobsFlat()) names.push(blob.name);
  return names.sort();
}
