/**
 * The local queue trigger host on Azurite's queue service: queue functions registered here (app.storageQueue,
 * df.app.client.storageQueue) receive real messages; failures are retried and end in `<queue>-poison`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { app, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { QueueClient } from '@azure/storage-queue';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { appQueueSettings, parseTimeSpan, readQueueSettings } from '../runtime/queueSettings';
import { decodeMessageText } from '../runtime/queueTriggers';
import { queueServiceFor } from '../runtime/queueConnection';
import { startLocalServer } from '../runtime/serve';

interface Delivery {
  body: unknown;
  metadata: Record<string, unknown>;
}
const deliveries: Record<string, Delivery[]> = {};
const record = (fn: string, body: unknown, context: InvocationContext) =>
  (deliveries[fn] ??= []).push({ body, metadata: { ...context.triggerMetadata } });
let gate: { entered: () => void; open: Promise<void> } | undefined;
const events: string[] = [];

app.storageQueue('qtEcho', { queueName: 'qt-echo', connection: 'AzureWebJobsStorage', handler: async (body, context) => record('qtEcho', body, context) });
app.storageQueue('qtFails', {
  queueName: 'qt-fails',
  connection: 'AzureWebJobsStorage',
  handler: async (body, context) => {
    record('qtFails', body, context);
    throw new Error('vault unreachable: https://v.blob.core.windows.net/c?sv=2024&sig=SECRETSIG123');
  },
});
app.storageQueue('qtGated', {
  queueName: 'qt-gated',
  connection: 'AzureWebJobsStorage',
  handler: async (body, context) => {
    gate?.entered();
    await gate?.open;
    record('qtGated', body, context);
    events.push('handler done');
  },
});
app.storageQueue('qtSlow', {
  queueName: 'qt-slow',
  connection: 'AzureWebJobsStorage',
  handler: async (body, context) => {
    await new Promise((r) => setTimeout(r, 4600)); // longer than two processing visibilities of 2 s
    record('qtSlow', body, context);
  },
});
app.storageQueue('qtNamed', { queueName: '%QT_QUEUE%', connection: 'AzureWebJobsStorage', handler: async (body, context) => record('qtNamed', body, context) });
app.storageQueue('qtUnset', { queueName: '%QT_NOT_SET%', connection: 'AzureWebJobsStorage', handler: async () => undefined });
app.storageQueue('qtOtherConnection', { queueName: 'qt-other', connection: 'QT_BLOB_ONLY', handler: async () => undefined });
df.app.activity('qtDouble', { handler: async (n: unknown) => (n as number) * 2 });
df.app.orchestration('qtOrchestration', function* (context) {
  return yield context.df.callActivity('qtDouble', context.df.getInput());
});
df.app.client.storageQueue('qtStarter', {
  queueName: 'qt-starts',
  connection: 'AzureWebJobsStorage',
  handler: async (body, client) => {
    const { id, n } = body as { id: string; n: number };
    await client.startNew('qtOrchestration', { instanceId: id, input: n });
  },
});

let az: AzuriteInstance;
let local: LocalApp;
const logs: string[] = [];

const queue = (name: string): QueueClient => az.accounts.hub.queueService.getQueueClient(name);
const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

async function send(name: string, text: string): Promise<string> {
  await queue(name).createIfNotExists();
  return (await queue(name).sendMessage(text)).messageId;
}

/** Polls a condition (no timing is asserted: the bound only ends a hung test). */
async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutInMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutInMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Messages in a queue, visible or not (Azurite keeps the count exact). */
async function count(name: string): Promise<number> {
  return (await queue(name).getProperties()).approximateMessagesCount ?? 0;
}

beforeAll(async () => {
  az = await startAzurite({ accounts: ['hub'] });
  local = await startLocalApp({
    taskHub: { connectionString: az.accounts.hub.connectionString },
    appSettings: { QT_QUEUE: 'qt-named', QT_BLOB_ONLY: az.accounts.hub.connectionString.replace(/QueueEndpoint=[^;]+;/, '') },
    log: (level, message, source) => logs.push(`${level} [${source}] ${message}`),
    // Retried at once, poisoned on the third failure, an empty queue polled at least every 200 ms.
    // Handlers hide their message for 1 s at a time (renewed every 0.5 s while they run).
    queueTriggers: { settings: { visibilityTimeoutInMs: 0, maxDequeueCount: 3, maxPollingIntervalInMs: 200 }, processingVisibilityInMs: 2000 },
  });
});
afterAll(async () => {
  await local?.stop();
  await az?.stop();
});

test('Azurite serves queues beside blobs: the connection string names both endpoints', async () => {
  const hub = az.accounts.hub;
  expect(hub.connectionString).toContain(`QueueEndpoint=http://127.0.0.1:${az.queuePort}/hub;`);
  expect(hub.connectionString).toContain(`BlobEndpoint=http://127.0.0.1:${az.port}/hub;`);
  const q = queueServiceFor('AzureWebJobsStorage', { AzureWebJobsStorage: hub.connectionString }).getQueueClient('qt-conn');
  await q.create();
  await q.sendMessage('hello');
  expect((await q.peekMessages()).peekedMessageItems.map((m) => m.messageText)).toEqual(['hello']);
  await q.delete();
});

test('every registered queue function is polled; one whose queue or connection does not resolve is named with why', () => {
  const byName = Object.fromEntries(local.queues!.triggers.map((t) => [t.name, t]));
  expect(byName.qtEcho).toEqual({ name: 'qtEcho', queueName: 'qt-echo' });
  expect(byName.qtNamed).toEqual({ name: 'qtNamed', queueName: 'qt-named' });
  expect(byName.qtStarter).toEqual({ name: 'qtStarter', queueName: 'qt-starts' });
  expect(byName.qtUnset.problem).toBe('not polled: app setting QT_NOT_SET is not set');
  expect(byName.qtOtherConnection.problem).toBe('not polled: the connection string in app setting QT_BLOB_ONLY names no queue service: add QueueEndpoint=');
  expect(logs.join('\n')).not.toMatch(/AccountKey=(?!REDACTED)/);
});

test('a JSON body arrives parsed, a text body as the string, with the trigger metadata; both are deleted', async () => {
  const jsonId = await send('qt-echo', base64(JSON.stringify({ version: 1, disk: 'd1' })));
  const textId = await send('qt-echo', base64('plain text, not JSON'));
  await until('both deliveries', () => (deliveries.qtEcho ?? []).length === 2);
  const byId = Object.fromEntries(deliveries.qtEcho.map((d) => [d.metadata.id, d]));
  expect(byId[jsonId].body).toEqual({ version: 1, disk: 'd1' });
  expect(byId[textId].body).toBe('plain text, not JSON');
  expect(byId[textId].metadata).toEqual({
    id: textId,
    dequeueCount: 1,
    insertionTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/),
    expirationTime: expect.stringMatching(/Z$/),
    nextVisibleTime: expect.stringMatching(/Z$/),
    popReceipt: expect.any(String),
    queueTrigger: 'plain text, not JSON',
  });
  await until('the queue is empty', async () => (await count('qt-echo')) === 0);
});

test('a %SETTING% queue name resolves from the app settings', async () => {
  const id = await send('qt-named', base64('"a JSON string"'));
  await until('the delivery', () => (deliveries.qtNamed ?? []).length === 1);
  expect(deliveries.qtNamed[0]).toMatchObject({ body: 'a JSON string', metadata: { id } });
});

test('a throwing handler is retried; at maxDequeueCount its message moves to <queue>-poison with the original text', async () => {
  const original = base64(JSON.stringify({ version: 1, startId: 's-1' }));
  const id = await send('qt-fails', original);
  await until('the poison queue', async () => (await queue('qt-fails-poison').exists()) && (await count('qt-fails-poison')) === 1);
  expect(deliveries.qtFails.map((d) => d.metadata.dequeueCount)).toEqual([1, 2, 3]);
  expect(deliveries.qtFails.every((d) => d.metadata.id === id)).toBe(true);
  expect(deliveries.qtFails[0].body).toEqual({ version: 1, startId: 's-1' });
  expect((await queue('qt-fails-poison').peekMessages()).peekedMessageItems.map((m) => m.messageText)).toEqual([original]);
  expect(await count('qt-fails')).toBe(0);
  const lines = logs.filter((l) => l.includes('qtFails'));
  expect(lines.filter((l) => l.includes(' failed (dequeue '))).toHaveLength(3);
  expect(lines).toContain(`error [queues] queue trigger qtFails: message ${id} moved to qt-fails-poison: it failed 3 times`);
  expect(lines.join('\n')).not.toContain('SECRETSIG123');
});

test('a message that is not base64 goes to the poison queue without reaching the handler', async () => {
  const before = (deliveries.qtEcho ?? []).length;
  await send('qt-echo', '{"not":"base64"}');
  await until('the poison queue', async () => (await queue('qt-echo-poison').exists()) && (await count('qt-echo-poison')) === 1);
  expect((await queue('qt-echo-poison').peekMessages()).peekedMessageItems.map((m) => m.messageText)).toEqual(['{"not":"base64"}']);
  expect((deliveries.qtEcho ?? []).length).toBe(before);
  expect(await count('qt-echo')).toBe(0);
});

test('a queue-triggered durable client starts an orchestration that completes', async () => {
  await send('qt-starts', base64(JSON.stringify({ id: 'qt-start-1', n: 21 })));
  await until('the instance', async () => (await local.runtime.getStatus('qt-start-1')) !== undefined);
  const status = await local.runtime.waitForCompletion('qt-start-1', { timeoutInMs: 30_000 });
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toBe(42);
  await until('the queue is empty', async () => (await count('qt-starts')) === 0);
});

test('a handler running longer than the processing visibility keeps its message hidden: one delivery, then deleted', async () => {
  const id = await send('qt-slow', base64('slow'));
  await until('the delivery', () => (deliveries.qtSlow ?? []).length === 1);
  await until('the queue is empty', async () => (await count('qt-slow')) === 0);
  expect(deliveries.qtSlow.map((d) => [d.metadata.id, d.metadata.dequeueCount])).toEqual([[id, 1]]);
  expect(logs.filter((l) => l.includes('qtSlow'))).toEqual([]);
});

test('host.invokeQueue delivers a body directly, with default metadata', async () => {
  const before = (deliveries.qtEcho ?? []).length;
  await local.host.invokeQueue('qtEcho', { version: 1, direct: true }, { dequeueCount: 2 });
  const d = deliveries.qtEcho[before];
  expect(d.body).toEqual({ version: 1, direct: true });
  expect(d.metadata).toMatchObject({ dequeueCount: 2, queueTrigger: '{"version":1,"direct":true}' });
  await expect(local.host.invokeQueue('qtDouble', 'x')).rejects.toThrow('function qtDouble is a activityTrigger, not a queueTrigger');
});

test('stop waits for a running handler, then leaves no poller: a later message stays in the queue', async () => {
  let entered!: () => void;
  const inHandler = new Promise<void>((r) => (entered = r));
  let release!: () => void;
  gate = { entered, open: new Promise<void>((r) => (release = r)) };
  await send('qt-gated', base64('first'));
  await inHandler;
  expect(local.queues!.running).toBe(1);
  const stopped = local.stop().then(() => events.push('app stopped'));
  release();
  await stopped;
  expect(events).toEqual(['handler done', 'app stopped']);
  expect(local.queues!.running).toBe(0);
  expect(await count('qt-gated')).toBe(0); // deleted by the finished handler
  // Nothing polls now: a new message is not taken (several polling intervals pass).
  await send('qt-gated', base64('second'));
  await new Promise((r) => setTimeout(r, 1000));
  expect((await queue('qt-gated').peekMessages()).peekedMessageItems.map((m) => [m.messageText, m.dequeueCount])).toEqual([[base64('second'), 0]]);
  expect(deliveries.qtGated.map((d) => d.body)).toEqual(['first']);
});

test('pagewise serve polls the queue triggers (AzureWebJobsStorage from the task hub) and names them', async () => {
  // Left by a host that died in its handler 6 times (more than host.json's maxDequeueCount 5): poisoned unseen.
  const dead = base64('{"died":"every time"}');
  const deadId = await send('qt-echo', dead);
  for (let i = 0; i < 6; i++) {
    const [m] = (await queue('qt-echo').receiveMessages({ visibilityTimeout: 30 })).receivedMessageItems;
    await queue('qt-echo').updateMessage(m.messageId, m.popReceipt, m.messageText, 0); // visible again at once
  }
  const keysDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'pagewise-qt-')), 'keys');
  const server = await startLocalServer({
    taskHub: { connectionString: az.accounts.hub.connectionString },
    appSettings: { QT_QUEUE: 'qt-named' },
    keysDir,
    timers: false,
    log: (level, message, source) => logs.push(`${level} [${source}] ${message}`),
  });
  try {
    expect(server.queues.find((q) => q.name === 'qtEcho')).toEqual({ name: 'qtEcho', queueName: 'qt-echo' });
    const before = (deliveries.qtEcho ?? []).length;
    const id = await send('qt-echo', base64('{"via":"serve"}'));
    await until('the delivery', () => (deliveries.qtEcho ?? []).length === before + 1);
    expect(deliveries.qtEcho[before]).toMatchObject({ body: { via: 'serve' }, metadata: { id, dequeueCount: 1 } });
    await until('the dead message in the poison queue', async () => (await count('qt-echo-poison')) === 2);
    expect((await queue('qt-echo-poison').peekMessages({ numberOfMessages: 2 })).peekedMessageItems.map((m) => m.messageText)).toEqual(['{"not":"base64"}', dead]);
    expect(deliveries.qtEcho.some((d) => d.metadata.id === deadId)).toBe(false);
    expect(logs).toContain(`error [queues] queue trigger qtEcho: message ${deadId} moved to qt-echo-poison: dequeued more often than maxDequeueCount`);
  } finally {
    await server.close();
    rmSync(path.dirname(keysDir), { recursive: true, force: true });
  }
});

describe('queue settings (host.json extensions.queues)', () => {
  test("host.json's values: one source for Azure and the local host", () => {
    expect(appQueueSettings()).toEqual({
      maxDequeueCount: 5,
      visibilityTimeoutInMs: 30_000,
      batchSize: 16,
      newBatchThreshold: 8,
      maxPollingIntervalInMs: 2_000,
      messageEncoding: 'base64',
    });
  });

  test('time spans parse as .NET writes them; bad values are refused naming the setting', () => {
    expect(parseTimeSpan('00:00:30', 'x')).toBe(30_000);
    expect(parseTimeSpan('1.02:03:04.5', 'x')).toBe(((24 + 2) * 3600 + 3 * 60 + 4) * 1000 + 500);
    expect(() => parseTimeSpan('30s', 'host.json extensions.queues.visibilityTimeout')).toThrow('host.json extensions.queues.visibilityTimeout must be a time span like "00:00:30" (hh:mm:ss), got "30s"');
    expect(() => readQueueSettings({ batchSize: 64 })).toThrow('host.json extensions.queues.batchSize must be a whole number from 1 to 32, got 64');
    expect(() => readQueueSettings({ maxDequeueCount: 0 })).toThrow('host.json extensions.queues.maxDequeueCount must be a whole number from 1 to 1000, got 0');
    expect(() => readQueueSettings({ messageEncoding: 'utf8' })).toThrow('host.json extensions.queues.messageEncoding must be "base64" or "none"');
    expect(readQueueSettings(undefined)).toMatchObject({ maxDequeueCount: 5, visibilityTimeoutInMs: 0, maxPollingIntervalInMs: 60_000 });
  });

  test('base64 decoding is strict: text that is not base64 is refused, not guessed', () => {
    expect(decodeMessageText(base64('{"a":1}'), 'base64')).toBe('{"a":1}');
    expect(decodeMessageText('{"a":1}', 'base64')).toBeUndefined();
    expect(decodeMessageText('abc', 'base64')).toBeUndefined();
    expect(decodeMessageText('{"a":1}', 'none')).toBe('{"a":1}');
  });

  test('a connection that names no queue service is refused without showing its value', () => {
    const key = Buffer.alloc(64, 3).toString('base64');
    const blobOnly = `DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=${key};BlobEndpoint=http://127.0.0.1:1/acct;`;
    expect(() => queueServiceFor('AzureWebJobsStorage', { AzureWebJobsStorage: blobOnly })).toThrow(/^the connection string in app setting AzureWebJobsStorage names no queue service: add QueueEndpoint=$/);
    expect(() => queueServiceFor('Missing', {})).toThrow('connection Missing is not configured: set app setting Missing (a connection string) or Missing__queueServiceUri');
    expect(queueServiceFor('Conn', { AzureWebJobsConn: `DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=${key};QueueEndpoint=http://127.0.0.1:1/acct;` }).url).toBe('http://127.0.0.1:1/acct');
  });
});
