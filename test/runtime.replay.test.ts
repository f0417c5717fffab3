/**
 * Pins the durable-functions replay protocol the local runtime implements: for a known history the
 * registered orchestration handler must return exactly these actions, and run twice over the same
 * history it must return the same ones. An upgrade of durable-functions that changes the protocol
 * (action shapes, task numbering, history fields read) fails here before it misleads the runtime.
 */
import * as df from 'durable-functions';
import { InvocationContext } from '@azure/functions';
import { findFunction } from '../runtime/registry';
import { events, HistoryEvent } from '../runtime/durable/history';
import { flattenActions } from '../runtime/durable/actions';

df.app.orchestration('pinnedOrchestrator', function* (context) {
  const a = yield context.df.callActivity('stepA', { n: 1 });
  const retry = new df.RetryOptions(1000, 2);
  retry.backoffCoefficient = 2;
  const [b, c] = (yield context.df.Task.all([
    context.df.callActivity('stepB', a),
    context.df.callActivityWithRetry('stepC', retry, a),
  ])) as unknown[];
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 60_000));
  const d = yield context.df.callSubOrchestrator('pinnedChild', { b, c }, 'child-1');
  context.df.setCustomStatus({ d });
  return d;
});

const t = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s));

async function run(history: HistoryEvent[]): Promise<{ state?: Record<string, unknown>; error?: string }> {
  const fn = findFunction('pinnedOrchestrator', 'orchestrationTrigger');
  const context = new InvocationContext({ functionName: 'pinnedOrchestrator', options: { trigger: fn.trigger, extraInputs: [], extraOutputs: [] } });
  const trigger = {
    history: history.map((e) => ({ ...e })),
    input: null,
    instanceId: 'pinned-1',
    isReplaying: false,
    parentInstanceId: undefined,
    upperSchemaVersion: 3,
    maximumShortTimerDuration: '6.00:00:00',
    longRunningTimerIntervalDuration: '3.00:00:00',
    defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
  };
  try {
    return { state: JSON.parse(JSON.stringify(await fn.handler(trigger, context))) as Record<string, unknown> };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

// A history as the runtime writes it, episode by episode, including one failed attempt of stepC.
const episode1 = [events.orchestratorStarted(t(0)), events.executionStarted(t(0), 'pinnedOrchestrator', null)];
const episode2 = [
  events.taskScheduled(t(0), 0, 'stepA', { n: 1 }),
  events.orchestratorCompleted(t(0)),
  events.orchestratorStarted(t(1)),
  events.taskCompleted(t(1), 0, 2),
];
const episode3 = [
  events.taskScheduled(t(1), 1, 'stepB', 2),
  events.taskScheduled(t(1), 2, 'stepC', 2),
  events.orchestratorCompleted(t(1)),
  events.orchestratorStarted(t(2)),
  events.taskCompleted(t(2), 1, 'b'),
];
const episode4 = [events.orchestratorCompleted(t(2)), events.orchestratorStarted(t(3)), events.taskFailed(t(3), 2, 'boom', 'stack')];
const episode5 = [
  events.timerCreated(t(3), 3, t(4)),
  events.orchestratorCompleted(t(3)),
  events.orchestratorStarted(t(4)),
  events.timerFired(t(4), 3, t(4)),
];
const episode6 = [
  events.taskScheduled(t(4), 4, 'stepC', 2),
  events.orchestratorCompleted(t(4)),
  events.orchestratorStarted(t(5)),
  events.taskCompleted(t(5), 4, 'c'),
];

const ACTION_A = { functionName: 'stepA', actionType: 0, input: { n: 1 } };
const ALL_BC = {
  actionType: 12,
  compoundActions: [
    { functionName: 'stepB', actionType: 0, input: 2 },
    {
      functionName: 'stepC',
      retryOptions: { firstRetryIntervalInMilliseconds: 1000, maxNumberOfAttempts: 2, backoffCoefficient: 2 },
      actionType: 1,
      input: 2,
    },
  ],
};
const TIMER = { fireAt: '2024-01-01T00:01:05.000Z', isCanceled: false, actionType: 5 };

test('durable-functions is the pinned 3.5.0 (the protocol below was read from it)', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  expect((require('durable-functions/package.json') as { version: string }).version).toBe('3.5.0');
});

test('a known history yields exactly the pinned actions, episode by episode', async () => {
  const h1 = episode1;
  expect((await run(h1)).state).toEqual({ isDone: false, actions: [[ACTION_A]], schemaVersion: 3 });

  const h2 = [...h1, ...episode2];
  expect((await run(h2)).state).toEqual({ isDone: false, actions: [[ACTION_A, ALL_BC]], schemaVersion: 3 });

  // stepB done, stepC still out: nothing new.
  const h3 = [...h2, ...episode3];
  expect((await run(h3)).state?.actions).toEqual([[ACTION_A, ALL_BC]]);

  // stepC failed once: the replay code numbers its retry timer 3 and waits; still nothing new to schedule.
  const h4 = [...h3, ...episode4];
  expect((await run(h4)).state?.actions).toEqual([[ACTION_A, ALL_BC]]);

  // Timer 3 fired, retry numbered 4 completes: the orchestrator moves on to its own timer (id 5).
  const h6 = [...h4, ...episode5, ...episode6];
  const after = await run(h6);
  expect(after.state?.actions).toEqual([[ACTION_A, ALL_BC, TIMER]]);
  expect(flattenActions((after.state as { actions: unknown }).actions).map((w) => w.kind)).toEqual(['activity', 'activity', 'activity', 'timer']);

  const h7 = [
    ...h6,
    events.timerCreated(t(5), 5, new Date('2024-01-01T00:01:05.000Z')),
    events.orchestratorCompleted(t(5)),
    events.orchestratorStarted(t(66)),
    events.timerFired(t(66), 5, new Date('2024-01-01T00:01:05.000Z')),
  ];
  expect((await run(h7)).state?.actions).toEqual([
    [ACTION_A, ALL_BC, TIMER, { functionName: 'pinnedChild', instanceId: 'child-1', actionType: 2, input: { b: 'b', c: 'c' } }],
  ]);

  const h8 = [
    ...h7,
    events.subOrchestrationCreated(t(66), 6, 'pinnedChild', 'child-1', { b: 'b', c: 'c' }),
    events.orchestratorCompleted(t(66)),
    events.orchestratorStarted(t(70)),
    events.subOrchestrationCompleted(t(70), 6, 'done'),
  ];
  const done = await run(h8);
  expect(done.state).toMatchObject({ isDone: true, output: 'done', customStatus: { d: 'done' } });
});

test('an orchestrator run twice over the same history schedules the same actions', async () => {
  const history = [...episode1, ...episode2, ...episode3];
  const first = await run(history);
  const second = await run(history);
  expect(second).toEqual(first);
  expect(first.state?.actions).toEqual([[ACTION_A, ALL_BC]]);
});

test('a failure the orchestrator does not catch comes back as the out-of-process failure state', async () => {
  // stepA fails and is not retried: the orchestration fails, and the state rides after $OutOfProcData$.
  const history = [
    ...episode1,
    events.taskScheduled(t(0), 0, 'stepA', { n: 1 }),
    events.orchestratorCompleted(t(0)),
    events.orchestratorStarted(t(1)),
    events.taskFailed(t(1), 0, 'disk unreachable', 'stack'),
  ];
  const { error } = await run(history);
  expect(error).toContain('$OutOfProcData$:');
  const state = JSON.parse(error!.slice(error!.indexOf('$OutOfProcData$:') + '$OutOfProcData$:'.length)) as { isDone: boolean; error: string };
  expect(state.isDone).toBe(false);
  expect(state.error).toContain('disk unreachable');
});
