/**
 * The backup orchestration tree: pure planning (slicing, waves, the tree for a 32 TiB disk) and the
 * real orchestrators run through the local runtime over a large simulated plan, with sizing
 * activities registered under the engine's activity names (they return counts, move no data), to
 * observe history sizes against the computed bounds.
 */
import * as df from 'durable-functions';
import '../orchestrations';
import { Activities, BatchActivityInput, Orchestrators } from '../orchestrations/contracts';
import {
  BATCHES_IN_FLIGHT,
  BATCHES_PER_LEAF,
  childRanges,
  flattenTree,
  HISTORY_EVENT_BOUND,
  historyEventsBound,
  planOrchestration,
  sliceRange,
  waves,
} from '../orchestrations/backupTree';
import { backupInstanceId, rangeInstanceId } from '../orchestrations/instanceIds';
import { DurableRuntime } from '../runtime/durable/durableRuntime';
import { MemoryInstanceStore } from '../runtime/durable/instanceStore';

const TiB = 1024 ** 4;
const GiB = 1024 ** 3;

describe('planning (pure)', () => {
  test('ranges are sliced without gaps or overlaps', () => {
    expect(sliceRange({ first: 10, count: 25 }, 10)).toEqual([
      { first: 10, count: 10 },
      { first: 20, count: 10 },
      { first: 30, count: 5 },
    ]);
    expect(sliceRange({ first: 0, count: 0 }, 10)).toEqual([]);
    expect(() => sliceRange({ first: 0, count: 5 }, 0)).toThrow(RangeError);
  });

  test('waves bound what is in flight', () => {
    expect(waves([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(() => waves([1], 0)).toThrow(RangeError);
  });

  test('a range of at most one leaf is not split; larger ranges split into ≤ 1000 children', () => {
    expect(childRanges({ first: 0, count: BATCHES_PER_LEAF })).toBeUndefined();
    expect(childRanges({ first: 0, count: BATCHES_PER_LEAF + 1 })).toEqual([
      { first: 0, count: 1000 },
      { first: 1000, count: 1 },
    ]);
    // A million-and-one batches need a middle level: children of 1,000,000 batches each.
    expect(childRanges({ first: 0, count: 1_000_001 })).toEqual([
      { first: 0, count: 1_000_000 },
      { first: 1_000_000, count: 1 },
    ]);
  });

  test('a 32 TiB disk in 1 GiB batches: every orchestration history stays under the fixed bound', () => {
    const batchCount = (32 * TiB) / GiB;
    expect(batchCount).toBe(32768);
    const tree = planOrchestration(batchCount);
    const nodes = flattenTree(tree);
    const leaves = nodes.filter((n) => n.children.length === 0 && n.orchestrator === 'backupBatchRange');
    expect(tree.children).toHaveLength(33);
    expect(leaves.reduce((sum, n) => sum + n.activities, 0)).toBe(batchCount);
    expect(Math.max(...nodes.map((n) => n.activities + n.children.length))).toBeLessThanOrEqual(1000);
    for (const node of nodes) expect(node.maxHistoryEvents).toBeLessThanOrEqual(HISTORY_EVENT_BOUND);
    expect(tree.maxHistoryEvents).toBe(historyEventsBound(37)); // plan + 33 ranges + finalize + releaseStartSlots + reportOperation
    expect(HISTORY_EVENT_BOUND).toBe(4020);
    // Without sub-orchestrations one history would have held ≥ 4 × 32768 events.
    expect(historyEventsBound(batchCount)).toBeGreaterThan(30 * HISTORY_EVENT_BOUND);
  });

  test('instance IDs are deterministic', () => {
    expect(backupInstanceId('pw-0123456789abcdef01234567')).toBe('backup-pw-0123456789abcdef01234567');
    expect(rangeInstanceId('backup-x', { first: 1000, count: 1000 })).toBe('backup-x:r1000+1000');
  });
});

describe('the real orchestrators over a simulated 1,500-batch plan', () => {
  const BATCHES = 1500;
  let batchCalls = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  df.app.activity(Activities.planBackup, {
    handler: async (input: unknown) => ({
      backupId: (input as { backupId: string }).backupId,
      batchCount: BATCHES,
      diskBytes: BATCHES * GiB,
      allocatedBytes: BATCHES * GiB,
      pageSize: 4 * 1024 * 1024,
      pagesPerBatch: 256,
      alreadyComplete: false,
    }),
  });
  df.app.activity(Activities.runBackupBatch, {
    handler: async (input: unknown) => {
      batchCalls += 1;
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight -= 1;
      const { backupId, planPosition } = input as BatchActivityInput;
      return { backupId, batchNumber: planPosition, pages: 256, holePages: 0, zeroPages: 1, dedupedPages: 2, bytesRead: GiB, bytesStaged: GiB / 2, cacheHighWaterBytes: 8 * 1024 * 1024, resumed: false };
    },
  });
  df.app.activity(Activities.finalizeBackup, { handler: async (input: unknown) => ({ backupId: (input as { backupId: string }).backupId, pages: BATCHES * 256 }) });
  df.app.activity(Activities.reportOperation, { handler: async () => undefined });

  test('completes with every batch run once; each history is within its computed bound', async () => {
    const runtime = new DurableRuntime({ store: new MemoryInstanceStore(), maxConcurrentActivities: 16, checkpointIntervalInMs: 1000 });
    const instanceId = backupInstanceId('pw-5151515151515151515151ab');
    await runtime.startNew(Orchestrators.backupDisk, {
      instanceId,
      input: { backupId: 'pw-5151515151515151515151ab', source: { url: 'https://src.blob.core.windows.net/disks/big.vhd' } },
    });
    const status = await runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
    expect(status.runtimeStatus).toBe('Completed');
    const output = status.output as { batches: { batches: number; pages: number; bytesRead: number }; rangeOrchestrations: number };
    expect(output.batches.batches).toBe(BATCHES);
    expect(output.batches.bytesRead).toBe(BATCHES * GiB);
    expect(output.rangeOrchestrations).toBe(2);
    expect(batchCalls).toBe(BATCHES);
    // One disk never has more batch activities in flight than BATCHES_IN_FLIGHT, though the runtime would run 16.
    expect(maxInFlight).toBeLessThanOrEqual(BATCHES_IN_FLIGHT);
    expect(status.customStatus).toMatchObject({ phase: 'done', batchesTotal: BATCHES, batchesDone: BATCHES });

    const family = await runtime.listInstances({ prefix: instanceId });
    const sizes = Object.fromEntries(family.map((s) => [s.instanceId, s.historyEvents]));
    const tree = planOrchestration(BATCHES);
    expect(sizes[instanceId]).toBeLessThanOrEqual(tree.maxHistoryEvents);
    for (const child of tree.children) {
      expect(sizes[rangeInstanceId(instanceId, child.range)]).toBeLessThanOrEqual(child.maxHistoryEvents);
    }
    for (const size of Object.values(sizes)) expect(size).toBeLessThanOrEqual(HISTORY_EVENT_BOUND);
    console.info(`history events per orchestration (1500 batches): ${JSON.stringify(sizes)}`);
    await runtime.stop();
  });
});

test('live progress adds the running sub-orchestrations (nested) to the parent, capped at the total', async () => {
  const { withLiveProgress } = await import('../orchestrations/progress');
  // A root of 2,500 batches: range r0+1000 done, r1000+1500 running; inside it, leaf r1000+1000 running.
  const statuses: Record<string, unknown> = {
    'b:r1000+1500': { batchesTotal: 1500, batchesDone: 0, pagesDone: 0, bytesDone: 0, running: ['b:r1000+1500:r1000+1000'] },
    'b:r1000+1500:r1000+1000': { batchesTotal: 1000, batchesDone: 250, pagesDone: 64_000, bytesDone: 250 * 1024 },
  };
  const lookups: string[] = [];
  const customStatusOf = async (id: string) => {
    lookups.push(id);
    return statuses[id];
  };
  const root = {
    phase: 'copying',
    backupId: 'b',
    pagesTotal: 640_000,
    bytesTotal: 2500 * 1024,
    batchesTotal: 2500,
    batchesDone: 1000,
    pagesDone: 256_000,
    bytesDone: 1000 * 1024,
    running: ['b:r1000+1500'],
  };
  expect(await withLiveProgress(root, customStatusOf)).toEqual({
    phase: 'copying',
    backupId: 'b',
    pagesTotal: 640_000,
    bytesTotal: 2500 * 1024,
    batchesTotal: 2500,
    batchesDone: 1250,
    pagesDone: 320_000,
    bytesDone: 1250 * 1024,
  });
  expect(lookups).toEqual(['b:r1000+1500', 'b:r1000+1500:r1000+1000']);
  // A child that finished between the two reads is counted once at most: never more than the total.
  const whole = { batchesTotal: 3, batchesDone: 3, pagesTotal: 30, pagesDone: 30, bytesTotal: 300, bytesDone: 300 };
  expect(await withLiveProgress({ ...whole, running: ['x'] }, async () => whole)).toEqual(whole);
  // Anything that is not progress (a restore's status, null) is returned as it is, without lookups.
  expect(await withLiveProgress({ phase: 'restoring', backupId: 'b' }, customStatusOf)).toEqual({ phase: 'restoring', backupId: 'b' });
  expect(await withLiveProgress(null, customStatusOf)).toBeNull();
  expect(lookups).toHaveLength(2);
});
