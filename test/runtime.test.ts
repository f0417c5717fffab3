/**
 * The local durable runtime on real Azurite: toy orchestrators and activities registered here run
 * through the real durable-functions replay code; instance state is checkpointed to blobs.
 */
import * as df from 'durable-functions';
import { ContainerClient } from '@azure/storage-blob';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { DurableRuntime } from '../runtime/durable/durableRuntime';
import { BlobInstanceStore } from '../runtime/durable/instanceStore';
import { LocalFunctionHost } from '../runtime/localHost';
import { HistoryEventType } from '../runtime/durable/history';

const calls: Record<string, number> = {};
const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
let flakyFailuresLeft = 0;
let gate: { open: Promise<void>; release: () => void } | undefined;

df.app.activity('rtSquare', { handler: async (n: unknown) => (count('rtSquare'), (n as number) ** 2) });
df.app.activity('rtFlaky', {
  handler: async (n: unknown) => {
    count('rtFlaky');
    if (flakyFailuresLeft-- > 0) throw new Error('transient failure reading https://src.blob.core.windows.net/disks/d.vhd?sv=2024&sig=SECRETSIG123');
    return n;
  },
});
df.app.activity('rtAlwaysFails', { handler: async () => (count('rtAlwaysFails'), Promise.reject(new Error('vault unreachable'))) });
df.app.activity('rtGated', {
  handler: async (n: unknown) => {
    count('rtGated');
    if ((n as number) >= 4) await gate?.open; // the second half waits until the test "kills" the runtime
    return n;
  },
});

let childFailuresLeft = 0;
df.app.activity('rtChildWork', {
  handler: async () => {
    count('rtChildWork');
    if (childFailuresLeft-- > 0) throw new Error('storage throttled');
    return 'ok';
  },
});
df.app.orchestration('rtFlakyChild', function* (context) {
  return yield context.df.callActivity('rtChildWork', null);
});
df.app.orchestration('rtParent', function* (context) {
  return yield context.df.callSubOrchestrator('rtFlakyChild', null, `${context.df.instanceId}:child`);
});

df.app.orchestration('rtFanOut', function* (context) {
  const items = context.df.getInput() as number[];
  const squares = (yield context.df.Task.all(items.map((n) => context.df.callActivity('rtSquare', n)))) as number[];
  const total = squares.reduce((a, b) => a + b, 0);
  context.df.setCustomStatus({ total });
  const child = (yield context.df.callSubOrchestrator('rtChild', total, `${context.df.instanceId}:child`)) as number;
  return { total, child };
});
df.app.orchestration('rtChild', function* (context) {
  return (yield context.df.callActivity('rtSquare', context.df.getInput())) as number;
});
df.app.orchestration('rtRetry', function* (context) {
  const retry = new df.RetryOptions(30, 4);
  retry.backoffCoefficient = 2;
  return yield context.df.callActivityWithRetry('rtFlaky', retry, 42);
});
df.app.orchestration('rtDoomed', function* (context) {
  yield context.df.callActivityWithRetry('rtAlwaysFails', new df.RetryOptions(20, 3), null);
  return 'unreachable';
});
df.app.orchestration('rtSequence', function* (context) {
  const out: number[] = [];
  for (let i = 0; i < 8; i++) out.push((yield context.df.callActivity('rtGated', i)) as number);
  return out;
});

let az: AzuriteInstance;
let container: ContainerClient;
let runtime: DurableRuntime;

beforeAll(async () => {
  az = await startAzurite({ accounts: ['hub'] });
  container = az.accounts.hub.service.getContainerClient('pagewise-taskhub');
});
afterAll(async () => az?.stop());
beforeEach(() => {
  runtime = new DurableRuntime({ store: new BlobInstanceStore(container), checkpointIntervalInMs: 50 });
});
afterEach(async () => runtime.stop());

test('fan-out, custom status and a sub-orchestration complete; state is in the task-hub container', async () => {
  await runtime.startNew('rtFanOut', { instanceId: 'fan-1', input: [1, 2, 3, 4] });
  const status = await runtime.waitForCompletion('fan-1', { timeoutInMs: 30_000 });
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual({ total: 30, child: 900 });
  expect(status.customStatus).toEqual({ total: 30 });
  const child = await runtime.getStatus('fan-1:child');
  expect(child?.runtimeStatus).toBe('Completed');
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat({ prefix: 'instances/' })) names.push(blob.name);
  expect(names).toEqual(expect.arrayContaining(['instances/fan-1.json', `instances/${encodeURIComponent('fan-1:child')}.json`]));
});

test('a failing activity is retried with backoff timers and the orchestration completes', async () => {
  flakyFailuresLeft = 2;
  calls.rtFlaky = 0;
  await runtime.startNew('rtRetry', { instanceId: 'retry-1' });
  const status = await runtime.waitForCompletion('retry-1', { timeoutInMs: 30_000 });
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toBe(42);
  expect(calls.rtFlaky).toBe(3);
  const { history } = (await runtime.getStatus('retry-1', { showHistory: true }))!;
  const types = (history as Array<{ EventType: number }>).map((e) => e.EventType);
  expect(types.filter((t) => t === HistoryEventType.TaskFailed)).toHaveLength(2);
  expect(types.filter((t) => t === HistoryEventType.TimerCreated)).toHaveLength(2);
  expect(types.filter((t) => t === HistoryEventType.TimerFired)).toHaveLength(2);
  // Backoff: the second retry timer waits twice as long as the first.
  const created = (history as Array<{ EventType: number; Timestamp: string; FireAt: string }>).filter((e) => e.EventType === HistoryEventType.TimerCreated);
  const delays = created.map((e) => Date.parse(e.FireAt) - Date.parse(e.Timestamp));
  expect(delays).toEqual([30, 60]);
  // Failure reasons are redacted before they reach history.
  expect(JSON.stringify(history)).not.toContain('SECRETSIG123');
});

test('an activity that keeps failing ends the orchestration Failed after its attempts', async () => {
  calls.rtAlwaysFails = 0;
  await runtime.startNew('rtDoomed', { instanceId: 'doomed-1' });
  const status = await runtime.waitForCompletion('doomed-1', { timeoutInMs: 30_000 });
  expect(status.runtimeStatus).toBe('Failed');
  expect(String(status.output)).toContain('vault unreachable');
  expect(calls.rtAlwaysFails).toBe(3);
});

test('a duplicate start with the same instance ID makes one run', async () => {
  calls.rtSquare = 0;
  const starts = await Promise.all([1, 2, 3].map(() => runtime.startNew('rtChild', { instanceId: 'dup-1', input: 3 })));
  expect(starts.filter((s) => s.created)).toHaveLength(1);
  await runtime.waitForCompletion('dup-1', { timeoutInMs: 30_000 });
  // Also from a second runtime sharing the store (another process): still one run.
  const other = new DurableRuntime({ store: new BlobInstanceStore(container) });
  expect((await other.startNew('rtChild', { instanceId: 'dup-1', input: 3 })).created).toBe(false);
  await other.stop();
  expect(calls.rtSquare).toBe(1);
});

test('instances are listed from memory for this runtime and from their stored records for another, filtered by prefix and status', async () => {
  await runtime.startNew('rtChild', { instanceId: 'list-a', input: 2 });
  await runtime.startNew('rtChild', { instanceId: 'list-b', input: 3 });
  await runtime.waitForCompletion('list-a', { timeoutInMs: 30_000 });
  await runtime.waitForCompletion('list-b', { timeoutInMs: 30_000 });
  expect(runtime.localInstances({ prefix: 'list-' }).map((s) => [s.instanceId, s.runtimeStatus])).toEqual([['list-a', 'Completed'], ['list-b', 'Completed']]);
  expect((await runtime.listInstances({ prefix: 'list-' })).map((s) => s.instanceId)).toEqual(['list-a', 'list-b']);
  await runtime.stop(); // its final checkpoints are written
  const other = new DurableRuntime({ store: new BlobInstanceStore(container) });
  expect(other.localInstances()).toEqual([]);
  const stored = await other.listInstances({ prefix: 'list-' });
  expect(stored.map((s) => [s.instanceId, s.runtimeStatus, s.output])).toEqual([['list-a', 'Completed', 4], ['list-b', 'Completed', 9]]);
  expect(await other.listInstances({ prefix: 'list-', runtimeStatus: ['Running', 'Pending'] })).toEqual([]);
  expect(await other.listInstances({ prefix: 'list-x' })).toEqual([]);
  await other.stop();
});

test('a failed instance started again runs afresh, its failed sub-orchestration included', async () => {
  childFailuresLeft = 1;
  calls.rtChildWork = 0;
  await runtime.startNew('rtParent', { instanceId: 'restart-1' });
  const failed = await runtime.waitForCompletion('restart-1', { timeoutInMs: 30_000 });
  expect(failed.runtimeStatus).toBe('Failed');
  expect(String(failed.output)).toContain('storage throttled');
  expect((await runtime.startNew('rtParent', { instanceId: 'restart-1' })).created).toBe(true);
  const done = await runtime.waitForCompletion('restart-1', { timeoutInMs: 30_000 });
  expect(done.runtimeStatus).toBe('Completed');
  expect(done.output).toBe('ok');
  expect(calls.rtChildWork).toBe(2);
});

test('a killed run resumes in a new runtime from its checkpoint without redoing finished work', async () => {
  calls.rtGated = 0;
  let release!: () => void;
  gate = { open: new Promise<void>((r) => (release = r)), release: () => release() };
  await runtime.startNew('rtSequence', { instanceId: 'resume-1' });
  // Steps 0-3 finish; step 4 hangs. Wait for the checkpoint that records step 4 scheduled.
  const store = new BlobInstanceStore(container);
  try {
    await waitFor(async () => ((await store.load('resume-1'))?.tasks.length ?? 0) === 5);
    runtime.halt(); // the process dies: nothing more is written
  } finally {
    gate.release();
  }

  runtime = new DurableRuntime({ store: new BlobInstanceStore(container), checkpointIntervalInMs: 50 });
  expect(await runtime.resumeAll()).toContain('resume-1');
  const status = await runtime.waitForCompletion('resume-1', { timeoutInMs: 30_000 });
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  // Steps 0-3 ran once; step 4 ran twice (in flight when the first runtime died); 5-7 once.
  expect(calls.rtGated).toBe(9);
  gate = undefined;
});

test('the real DurableClient talks to the runtime over loopback: start, status, list with paging, terminate', async () => {
  const host = new LocalFunctionHost({ runtime });
  await host.start();
  try {
    // getClient() builds the DurableClient from the binding data the host supplies.
    df.app.client.generic('rtClientProbe', { trigger: { type: 'httpTrigger', name: 'req' } as never, handler: async () => undefined });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { findFunction } = require('../runtime/registry') as typeof import('../runtime/registry');
    const client = df.getClient(host.contextFor(findFunction('rtClientProbe', 'httpTrigger')));
    const id = await client.startNew('rtChild', { instanceId: 'client-1', input: 5 });
    expect(id).toBe('client-1');
    await runtime.waitForCompletion('client-1', { timeoutInMs: 30_000 });
    const status = await client.getStatus('client-1');
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toBe(25);
    await expect(client.startNew('rtChild', { instanceId: 'client-1', input: 5 })).rejects.toThrow(/409/);
    await expect(client.getStatus('nope')).rejects.toThrow(/HTTP 404/);

    for (let i = 0; i < 105; i++) await runtime.startNew('rtChild', { instanceId: `page-${String(i).padStart(3, '0')}`, input: i });
    const all = await client.getStatusBy({});
    expect(all.filter((s) => s.instanceId.startsWith('page-'))).toHaveLength(105);

    let release!: () => void;
    gate = { open: new Promise<void>((r) => (release = r)), release: () => release() };
    await client.startNew('rtSequence', { instanceId: 'term-1' });
    await waitFor(async () => (await runtime.getStatus('term-1'))?.runtimeStatus === 'Running');
    await client.terminate('term-1', 'operator');
    expect((await client.getStatus('term-1')).runtimeStatus).toBe('Terminated');
    gate.release();
    gate = undefined;
  } finally {
    await host.stop();
  }
});

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
async function waitFor(check: () => Promise<boolean>, timeoutInMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutInMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}
