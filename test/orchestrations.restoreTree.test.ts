/**
 * The restore fan-out's orchestration tree (#17 R): a 32 TiB disk in 1 GiB windows keeps every history
 * under the fixed bound (pure), and the real restore orchestrators over a simulated 1,500-window plan —
 * sizing activities under the engine's activity names (counts only, no data) — run every window once,
 * each history within its computed bound.
 */
import * as df from 'durable-functions';
import '../orchestrations';
import { GiB, windowPagesFor } from '../core';
import type { RestorePlan, RestoreWindowSummary } from '../core';
import { Activities, Orchestrators, RestoreOrchestrationOutput, RestoreWindowInput } from '../orchestrations/contracts';
import { flattenTree, HISTORY_EVENT_BOUND, historyEventsBound, planOrchestration } from '../orchestrations/backupTree';
import { rangeInstanceId } from '../orchestrations/instanceIds';
import { withLiveProgress } from '../orchestrations/progress';
import { DurableRuntime } from '../runtime/durable/durableRuntime';
import { MemoryInstanceStore } from '../runtime/durable/instanceStore';

const TiB = 1024 * GiB;
const MiB = 1024 * 1024;
/** The restore root's own activities at most: plan, finalize — or abandon after a failed finalize — and reportOperation (#18 telemetry). */
const ROOT_ACTIVITIES = 4;

test('a 32 TiB restore in 1 GiB windows: 32,768 windows, every orchestration history under the fixed bound', () => {
  const pageSize = 4 * MiB;
  const windowCount = Math.ceil((32 * TiB) / pageSize / windowPagesFor(GiB, pageSize));
  expect(windowCount).toBe(32768);
  // The windows run in the backup tree's shape (orchestrations/windowFanOut.ts reuses backupTree's slicing).
  const tree = planOrchestration(windowCount);
  const nodes = flattenTree(tree).slice(1);
  expect(tree.children).toHaveLength(33);
  expect(nodes.filter((n) => n.children.length === 0).reduce((sum, n) => sum + n.activities, 0)).toBe(windowCount);
  for (const node of nodes) expect(node.maxHistoryEvents).toBeLessThanOrEqual(HISTORY_EVENT_BOUND);
  expect(historyEventsBound(ROOT_ACTIVITIES + tree.children.length)).toBeLessThanOrEqual(HISTORY_EVENT_BOUND);
  // One orchestration calling every window would hold ≥ 4 × 32,768 events.
  expect(historyEventsBound(windowCount)).toBeGreaterThan(30 * HISTORY_EVENT_BOUND);
});

describe('the real restore orchestrators over a simulated 1,500-window plan', () => {
  const WINDOWS = 1500;
  const plan: RestorePlan = {
    version: 1,
    operationId: 'restore-tree',
    backupId: 'pw-5151515151515151515151ab',
    kind: 'blob',
    display: 'https://dst.blob.core.windows.net/restores/big.vhd',
    overwrite: false,
    diskBytes: WINDOWS * GiB,
    pageSize: 4 * MiB,
    pageCount: WINDOWS * 256,
    windowPages: 256,
    windowCount: WINDOWS,
    entryCount: WINDOWS * 256,
    entryBytes: WINDOWS * GiB,
  };
  const calls = new Map<number, number>();
  const steps: string[] = [];
  // What GET /api/restores/{id} would show while window 1250 runs: the root's status, and with its running ranges' windows added.
  let runtime: DurableRuntime | undefined;
  let midway: { root: unknown; live: unknown } | undefined;
  df.app.activity(Activities.planRestore, { handler: async () => (steps.push('plan'), { plan, windowsInFlight: 2 }) });
  df.app.activity(Activities.restoreWindow, {
    handler: async (input: unknown): Promise<RestoreWindowSummary> => {
      const { window } = input as RestoreWindowInput;
      calls.set(window, (calls.get(window) ?? 0) + 1);
      if (window === 1250 && runtime && !midway) {
        const root = (await runtime.getStatus('restore-tree'))?.customStatus;
        midway = { root, live: await withLiveProgress(root, async (id) => (await runtime!.getStatus(id))?.customStatus) };
      }
      await new Promise((r) => setImmediate(r));
      return { windows: 1, pages: 256, bytes: GiB, bytesWritten: GiB / 2 };
    },
  });
  df.app.activity(Activities.finalizeRestore, { handler: async () => (steps.push('finalize'), { backupId: plan.backupId, target: plan.display, diskBytes: plan.diskBytes }) });
  df.app.activity(Activities.abandonRestore, { handler: async () => (steps.push('abandon'), { removed: true }) });
  df.app.activity(Activities.reportOperation, { handler: async () => void steps.push('report') });

  test('completes with every window run once; each history is within its computed bound', async () => {
    runtime = new DurableRuntime({ store: new MemoryInstanceStore(), maxConcurrentActivities: 16, checkpointIntervalInMs: 1000 });
    const instanceId = 'restore-tree';
    await runtime.startNew(Orchestrators.restoreDisk, { instanceId, input: { backupId: plan.backupId, target: { url: plan.display } } });
    const status = await runtime.waitForCompletion(instanceId, { timeoutInMs: 120_000 });
    expect(status.runtimeStatus).toBe('Completed');
    const output = status.output as RestoreOrchestrationOutput;
    expect(output).toMatchObject({ windows: WINDOWS, pagesWritten: WINDOWS * 256, bytesWritten: (WINDOWS * GiB) / 2, diskBytes: WINDOWS * GiB });
    expect(calls.size).toBe(WINDOWS);
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    expect(steps).toEqual(['plan', 'finalize', 'report']);
    expect(status.customStatus).toMatchObject({ phase: 'done', windowsTotal: WINDOWS, windowsDone: WINDOWS, pagesDone: WINDOWS * 256, bytesDone: WINDOWS * GiB });
    // Midway, the root counted the first range's 1,000 windows and named the second as running; a reader adds
    // the windows the second has done so far (in waves of 2: window 1250 runs, so 1248 or 1249 are done).
    expect(midway?.root).toMatchObject({ phase: 'restoring', windowsTotal: WINDOWS, windowsDone: 1000, running: [rangeInstanceId(instanceId, { first: 1000, count: 500 })] });
    const live = midway?.live as { windowsDone: number; pagesDone: number; running?: unknown };
    expect(live.windowsDone).toBeGreaterThanOrEqual(1248);
    expect(live.windowsDone).toBeLessThan(1251);
    expect(live.pagesDone).toBe(live.windowsDone * 256);
    expect(live).not.toHaveProperty('running');

    const sizes = Object.fromEntries((await runtime.listInstances({ prefix: instanceId })).map((s) => [s.instanceId, s.historyEvents]));
    const tree = planOrchestration(WINDOWS);
    expect(tree.children.map((c) => c.range)).toEqual([{ first: 0, count: 1000 }, { first: 1000, count: 500 }]);
    expect(sizes[instanceId]).toBeLessThanOrEqual(historyEventsBound(ROOT_ACTIVITIES + tree.children.length));
    for (const child of tree.children) expect(sizes[rangeInstanceId(instanceId, child.range)]).toBeLessThanOrEqual(child.maxHistoryEvents);
    for (const size of Object.values(sizes)) expect(size).toBeLessThanOrEqual(HISTORY_EVENT_BOUND);
    console.info(`history events per restore orchestration (1500 windows): ${JSON.stringify(sizes)}`);
    await runtime.stop();
  });
});
