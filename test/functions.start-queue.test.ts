/**
 * Queue-fed backup starts (functions/backupStartQueue.ts) through the local runtime on Azurite: the
 * handler invoked as the queue trigger would be (pollers off, so each delivery is the test's), with a
 * budget of one: a start takes the slot, the next is deferred onto the real queue, the slot comes back
 * when the backup ends; failures are recorded with their reason and shown by GET /api/starts.
 */
import * as df from 'durable-functions';
import { LogLevel } from '@azure/functions';
import { deriveBackupId } from '../core';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { findFunction } from '../runtime/registry';
import { decodeMessageText } from '../runtime/queueTriggers';
import { appStartSlots, handleBackupStart } from '../functions/backupStartQueue';
import { BACKUP_STARTS_QUEUE, startRecordDays, startsContainer } from '../functions/startBudget';
import { encodeStartMessage, firedAtOf, firingOf, parseStartMessage, StartMessage, startIdFor } from '../functions/startMessages';
import { listStartRecords, writeStartRecord } from '../functions/startRecords';
import { runScheduledBackups } from '../functions/scheduledBackups';
import { appSettings } from '../functions/settings';
import { sealRef } from '../functions/sealedRefs';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let app: LocalApp;
const logs: string[] = [];
const firedAt = new Date();

/** A policy disk's start as the timer enqueues it: the URL's SAS sealed (functions/sealedRefs.ts). */
function diskMessage(name: string, url = env.sourceUrl(name)): StartMessage {
  const ref = sealRef({ url }, env.userKey);
  return {
    v: 1,
    kind: 'disk',
    startId: startIdFor(firedAt, 'disk', ref.url),
    firedAt: firedAtOf(firedAt),
    deferrals: 0,
    source: { url: ref.url, ...(ref.sealedSas ? { sealedSas: ref.sealedSas } : {}) },
  };
}

beforeAll(async () => {
  env = await startEnv();
  await env.makeDisk('q-a.vhd', 1 * MiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 71 }]);
  await env.makeDisk('q-b.vhd', 1 * MiB, [{ offset: 64 * KiB, length: 64 * KiB, kind: 'random', seed: 72 }]);
  await env.makeDisk('q-c.vhd', 1 * MiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 73 }]);
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: { ...env.appSettings(), PAGEWISE_MAX_RUNNING_BACKUPS: '1', PAGEWISE_START_DEFER_SECONDS: '1' },
    queueTriggers: false,
    log: (_level: LogLevel, message: string) => logs.push(message),
  });
  await env.az.accounts.vault.queueService.getQueueClient(BACKUP_STARTS_QUEUE).createIfNotExists();
}, 60_000);
afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

const client = () => df.getClient(app.host.contextFor(findFunction('backupStartQueue', 'storageQueueTrigger')));
const hubHolders = async () => [...(await appStartSlots(client()).holders({ kind: 'hub', name: 'hub' })).values()];

test('a start takes the one slot, the next is deferred onto the queue, and starts once the first backup has released it', async () => {
  const a = diskMessage('q-a.vhd');
  const b = diskMessage('q-b.vhd');
  const idA = await deriveBackupId({ url: env.sourceUrl('q-a.vhd') }, 64 * KiB);
  const idB = await deriveBackupId({ url: env.sourceUrl('q-b.vhd') }, 64 * KiB);

  await app.host.invokeQueue('backupStartQueue', Buffer.from(encodeStartMessage(a), 'base64').toString());
  expect(await hubHolders()).toEqual([`backup-${idA}`]);
  const input = (await app.runtime.getStatus(`backup-${idA}`))?.input as { startSlots?: unknown[]; source: { url: string } };
  expect(input.startSlots).toHaveLength(2); // the account's and the hub's
  expect(JSON.stringify(input)).not.toMatch(/sig=/);

  await app.host.invokeQueue('backupStartQueue', b);
  expect(await app.runtime.getStatus(`backup-${idB}`)).toBeUndefined();
  const queue = env.az.accounts.vault.queueService.getQueueClient(BACKUP_STARTS_QUEUE);
  // Deferred: sent again with a visibility timeout of PAGEWISE_START_DEFER_SECONDS and one more deferral.
  let deferred: StartMessage | undefined;
  for (let i = 0; i < 50 && !deferred; i++) {
    const got = (await queue.receiveMessages({ numberOfMessages: 1, visibilityTimeout: 30 })).receivedMessageItems[0];
    if (got) {
      deferred = parseStartMessage(decodeMessageText(got.messageText, 'base64'));
      await queue.deleteMessage(got.messageId, got.popReceipt);
    } else await new Promise((r) => setTimeout(r, 200));
  }
  expect(deferred).toEqual({ ...b, deferrals: 1 });

  expect((await app.runtime.waitForCompletion(`backup-${idA}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  expect(await hubHolders()).toEqual([]);
  await app.host.invokeQueue('backupStartQueue', deferred);
  expect(await hubHolders()).toEqual([`backup-${idB}`]);
  expect((await app.runtime.waitForCompletion(`backup-${idB}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  expect(await hubHolders()).toEqual([]);

  // Delivered again after its backup completed: joins it, takes nothing.
  await app.host.invokeQueue('backupStartQueue', a, { dequeueCount: 2 });
  expect(await hubHolders()).toEqual([]);
  const records = await listStartRecords(startsContainer(), { states: ['started'] });
  expect(records.map((r) => [r.startId, r.instanceId]).sort()).toEqual([[a.startId, `backup-${idA}`], [b.startId, `backup-${idB}`]].sort());
  expect(JSON.stringify(records)).not.toMatch(/sig=|sv=/);

  // The retention run's wait: of this firing's starts, the two ended backups are settled; a third never recorded (still queued) is not.
  const settled = findFunction('backupsSettled', 'activityTrigger');
  const look = (starts: number) => settled.handler({ instanceIds: [], queuedRun: { run: firingOf(firedAt), starts } }, app.host.contextFor(settled));
  expect(await look(2)).toEqual({ running: 0 });
  expect(await look(3)).toEqual({ running: 1 });
});

test('a failing start records its reason, poisoned at the last attempt, and GET /api/starts shows it without secrets', async () => {
  const missing = diskMessage('q-missing.vhd');
  await expect(app.host.invokeQueue('backupStartQueue', missing, { dequeueCount: 1 })).rejects.toThrow(/was not found/);
  const elsewhere = diskMessage('x', 'https://elsewhere.blob.core.windows.net/vhds/x.vhd?sv=2024-01-01&sig=SECRETSIG');
  await expect(app.host.invokeQueue('backupStartQueue', elsewhere, { dequeueCount: 5 })).rejects.toThrow(/allowed/);
  await expect(app.host.invokeQueue('backupStartQueue', '{"kind":"disk","startId":"start-x","source":{"url":"https://a/b?sig=SECRET"}}', { dequeueCount: 5 })).rejects.toThrow(/invalid/);
  // No slot stays held by a start that failed.
  expect(await hubHolders()).toEqual([]);

  const response = await app.host.dispatchHttp({ method: 'GET', url: 'http://127.0.0.1:7071/api/starts' });
  expect(response.status).toBe(200);
  const text = await response.text();
  expect(text).not.toMatch(/SECRET|sig=/);
  const listed = JSON.parse(text) as { starts: Array<{ startId: string; state: string; reason: string; attempts: number; target: string }>; poisonQueue: { name: string } };
  const byId = new Map(listed.starts.map((s) => [s.startId, s]));
  expect(byId.get(missing.startId)).toMatchObject({ state: 'failing', attempts: 1, target: env.sourceUrl('q-missing.vhd').split('?')[0] });
  expect(byId.get(elsewhere.startId)).toMatchObject({ state: 'poisoned', attempts: 5, target: 'https://elsewhere.blob.core.windows.net/vhds/x.vhd' });
  expect(byId.get(elsewhere.startId)!.reason).toMatch(/allowed/);
  const invalid = listed.starts.find((s) => s.startId.startsWith('invalid-'))!;
  expect(invalid).toMatchObject({ state: 'poisoned', target: '(invalid message)' });
  expect(invalid.reason).toMatch(/backup-start message is invalid/);
  expect(listed.starts).toHaveLength(3);
  expect(listed.poisonQueue.name).toBe('pagewise-backup-starts-poison');
  expect((await app.host.dispatchHttp({ method: 'GET', url: 'http://127.0.0.1:7071/api/starts?state=lost' })).status).toBe(400);
});

test('a start whose orchestration cannot be started after it took its slots gives both slots back and records why', async () => {
  const c = diskMessage('q-c.vhd');
  const idC = await deriveBackupId({ url: env.sourceUrl('q-c.vhd') }, 64 * KiB);
  const account = new URL(env.sourceUrl('q-c.vhd')).hostname.split('.')[0].toLowerCase();
  const slots = appStartSlots(client());
  // The real durable client, but its start fails permanently (as when the task hub's storage refuses it): after the slots are taken.
  const refusing = new Proxy(client(), {
    get: (target, name) => (name === 'startNew' ? async () => Promise.reject(new Error('the task hub refused the start (injected)')) : Reflect.get(target, name)),
  });
  const fn = findFunction('backupStartQueue', 'storageQueueTrigger');
  const context = app.host.contextFor(fn, { dequeueCount: 5 } as never);
  await expect(handleBackupStart(c, refusing, context)).rejects.toThrow('the task hub refused the start (injected)');

  expect(await app.runtime.getStatus(`backup-${idC}`)).toBeUndefined();
  expect(await hubHolders()).toEqual([]);
  expect([...(await slots.holders({ kind: 'account', name: account })).values()]).toEqual([]);
  const [record] = await listStartRecords(startsContainer(), { prefix: c.startId });
  expect(record).toMatchObject({ startId: c.startId, state: 'poisoned', attempts: 5, reason: 'the task hub refused the start (injected)' });

  // The slots were free to take: the next delivery starts the backup.
  await app.host.invokeQueue('backupStartQueue', c, { dequeueCount: 1 });
  expect(await hubHolders()).toEqual([`backup-${idC}`]);
  expect((await app.runtime.waitForCompletion(`backup-${idC}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  expect(await hubHolders()).toEqual([]);
});

test('PAGEWISE_START_RECORD_DAYS: default 30, whole days from 1 to 3650, a clear error naming the setting otherwise', () => {
  expect([startRecordDays({}), startRecordDays({ PAGEWISE_START_RECORD_DAYS: ' 7 ' }), startRecordDays({ PAGEWISE_START_RECORD_DAYS: '3650' })]).toEqual([30, 7, 3650]);
  for (const bad of ['0', '3651', '1.5', '-1', 'month']) {
    expect(() => startRecordDays({ PAGEWISE_START_RECORD_DAYS: bad })).toThrow(/^app setting PAGEWISE_START_RECORD_DAYS must be a whole number from 1 to 3650, got "/);
  }
});

test('the timer run deletes the start records older than the retention, failed and poisoned alike, and keeps the younger', async () => {
  const container = startsContainer();
  const old = (n: number) => `start-200001010000-${String(n).repeat(24)}`;
  await writeStartRecord(container, { startId: old(1), kind: 'disk', target: 'https://a.blob.core.windows.net/c/old1.vhd', state: 'failing', reason: 'gone', attempts: 1 });
  await writeStartRecord(container, { startId: old(2), kind: 'vm', target: '/subscriptions/x/vm', state: 'poisoned', reason: 'gone', attempts: 5 });
  const before = await listStartRecords(container, { limit: 10_000 });
  // Last-Modified is to the second: the cut falls a whole second after the old records and before the young one.
  await new Promise((r) => setTimeout(r, 1100));
  const cut = new Date();
  await new Promise((r) => setTimeout(r, 1100));
  const young = 'start-209912312359-' + 'f'.repeat(24);
  await writeStartRecord(container, { startId: young, kind: 'disk', target: 'https://a.blob.core.windows.net/c/young.vhd', state: 'poisoned', reason: 'still shown', attempts: 5 });

  // A timer firing 30 days (the default) after the cut, with a policy of nothing due.
  const settings = appSettings() as Record<string, string | undefined>;
  const policy = settings.PAGEWISE_BACKUP_POLICY;
  settings.PAGEWISE_BACKUP_POLICY = '{"disks":[]}';
  try {
    const timer = findFunction('scheduledBackups', 'timerTrigger');
    const run = await runScheduledBackups(client(), app.host.contextFor(timer), new Date(cut.getTime() + 30 * 24 * 3600_000));
    expect(run.queued).toEqual([]);
    expect(run.startRecordsDeleted).toBe(before.length);
  } finally {
    settings.PAGEWISE_BACKUP_POLICY = policy;
  }
  expect(before.map((r) => r.startId)).toEqual(expect.arrayContaining([old(1), old(2)]));
  const after = await listStartRecords(container, { limit: 10_000 });
  expect(after.map((r) => [r.startId, r.state, r.reason])).toEqual([[young, 'poisoned', 'still shown']]);
});
