import * as df from 'durable-functions';
import { DurableRuntime } from '../runtime/durableRuntime';
import { MemoryInstanceStore } from '../runtime/instanceStore';

let failuresLeft = 2;
df.app.activity('toyDouble', { handler: async (n: unknown) => (n as number) * 2 });
df.app.activity('toyFlaky', { handler: async (n: unknown) => { if (failuresLeft-- > 0) throw new Error('flaky'); return n; } });
df.app.orchestration('toyOrch', function* (context) {
  const a = yield context.df.callActivity('toyDouble', 1);
  const all = yield context.df.Task.all([1, 2, 3].map((n) => context.df.callActivity('toyDouble', n)));
  const retry = new df.RetryOptions(20, 5);
  const f = yield context.df.callActivityWithRetry('toyFlaky', retry, 7);
  context.df.setCustomStatus({ a });
  const sub = yield context.df.callSubOrchestrator('toySub', 5);
  return { a, all, f, sub };
});
df.app.orchestration('toySub', function* (context) {
  const x = yield context.df.callActivity('toyDouble', context.df.getInput());
  return x;
});

test('toy', async () => {
  const rt = new DurableRuntime({ store: new MemoryInstanceStore() });
  const r = await rt.startNew('toyOrch', { instanceId: 'x1' });
  const st = await rt.waitForCompletion(r.instanceId, { timeoutInMs: 5000 });
  const full = await rt.getStatus('x1', { showHistory: true });
  console.log(JSON.stringify(st), full!.history!.map((e: any) => `${e.EventType}:${e.EventId}:${e.TaskScheduledId ?? e.TimerId ?? ''}`).join(' '));
  expect(st.runtimeStatus).toBe('Completed');
  await rt.stop();
});
