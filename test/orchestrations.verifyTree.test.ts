/**
 * The verify fan-out's tree (#17): a 32 TiB disk in 1 GiB windows plans into histories under the fixed
 * bound, and the real verify orchestrators run a simulated 1,050-window plan through the local durable
 * runtime, with sizing activities under the engine's names (counts only, no data), to observe every
 * window run once, the in-flight bound, the sums, the problem cap and the history sizes.
 */
import * as df from 'durable-functions';
import '../orchestrations';
import { GiB, MAX_PROBLEMS, RESTORE_WINDOW_BYTES, windowPagesFor } from '../core';
import type { VerifyResult } from '../core';
import { Activities, Orchestrators, RecordVerificationInput, VerifyPlanOutput, VerifyWindowInput, VerifyWindowSummary } from '../orchestrations/contracts';
import { BATCHES_PER_LEAF, childRanges, HISTORY_EVENT_BOUND, historyEventsBound } from '../orchestrations/backupTree';
import { rangeInstanceId } from '../orchestrations/instanceIds';
import { DurableRuntime } from '../runtime/durable/durableRuntime';
import { MemoryInstanceStore } from '../runtime/durable/instanceStore';
import { withLiveProgress } from '../orchestrations/progress';

const TiB = 1024 * GiB;
const PAGE = 4 * 1024 * 1024;

test('a 32 TiB disk in 1 GiB windows: 32,768 windows in 33 ranges, every history under the fixed bound', () => {
  const windowPages = windowPagesFor(RESTORE_WINDOW_BYTES.default, PAGE);
  expect(windowPages).toBe(256);
  const windowCount = Math.ceil(32 * TiB / PAGE / windowPages);
  expect(windowCount).toBe(32_768);
  const ranges = childRanges({ first: 0, count: windowCount })!;
  expect(ranges).toHaveLength(33);
  expect(ranges.reduce((sum, r) => sum + r.count, 0)).toBe(windowCount);
  for (const range of ranges) {
    expect(childRanges(range)).toBeUndefined(); // each a leaf of ≤ 1,000 window activities
    expect(historyEventsBound(range.count)).toBeLessThanOrEqual(HISTORY_EVENT_BOUND);
  }
  expect(historyEventsBound(3 + ranges.length)).toBeLessThanOrEqual(HISTORY_EVENT_BOUND); // root: planVerify + 33 ranges + recordVerification + reportOperation (the result is computed)
  // The window setting's bounds: one sector (a window is at least one page) to 16 GiB.
  expect([windowPagesFor(RESTORE_WINDOW_BYTES.min, PAGE), windowPagesFor(RESTORE_WINDOW_BYTES.max, PAGE)]).toEqual([1, 4096]);
});

test('a window size out of bounds is refused naming the setting, for restores and verifications alike', () => {
  for (const bad of [RESTORE_WINDOW_BYTES.min - 1, RESTORE_WINDOW_BYTES.max + 1, 4096.5]) {
    expect(() => windowPagesFor(bad, PAGE)).toThrow(
      `the window of a restore or verification (windowBytes, app setting PAGEWISE_RESTORE_WINDOW_BYTES) must be 512 to 17179869184 bytes, got ${bad}`,
    );
  }
});

describe('the real verify orchestrators over a simulated 1,050-window plan', () => {
  const WINDOWS = 1050; // two ranges: r0+1000 and r1000+50
  const IN_FLIGHT = 4;
  let damagedFrom = WINDOWS; // windows from here on report a problem
  const calls = new Map<number, number>();
  let inFlight = 0;
  let maxInFlight = 0;
  // #18: every verification ends with its record (functions/verifyActivities.ts writes it to the vault); here its input is kept.
  const records: RecordVerificationInput[] = [];
  df.app.activity(Activities.recordVerification, {
    handler: async (input: unknown) => {
      records.push(input as RecordVerificationInput);
      return {};
    },
  });
  // #18 telemetry: the orchestration's end is reported (functions/operationReports.ts sends the event); a no-op here.
  df.app.activity(Activities.reportOperation, { handler: async () => undefined });
  df.app.activity(Activities.planVerify, {
    handler: async (input: unknown): Promise<VerifyPlanOutput> => ({
      backupId: (input as { backupId: string }).backupId,
      formatVersion: 2,
      readData: true,
      comparedWithSource: false,
      compare: false,
      diskBytes: WINDOWS * GiB,
      pageSize: PAGE,
      pageCount: WINDOWS * 256,
      windowPages: 256,
      windowCount: WINDOWS,
      pagesTotal: WINDOWS * 200,
      bytesTotal: WINDOWS * 200 * PAGE,
      manifestName: `manifests/${'a'.repeat(32)}/0000000000001-${'b'.repeat(32)}.pwm`,
      segmentsChecked: 0,
      problems: [],
      windowsInFlight: IN_FLIGHT,
    }),
  });
  df.app.activity(Activities.verifyWindow, {
    handler: async (input: unknown): Promise<VerifyWindowSummary> => {
      const { window } = input as VerifyWindowInput;
      calls.set(window, (calls.get(window) ?? 0) + 1);
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight -= 1;
      const problems = window >= damagedFrom ? [`page ${window * 256}: damaged`] : [];
      return { windows: 1, pagesChecked: 200, pageBytes: 200 * PAGE, blocksChecked: 400, bytesChecked: 200 * PAGE, tablesChecked: window % 4 === 0 ? 1 : 0, segmentsChecked: 3, packsChecked: 3, blocksRelocated: 0, problems };
    },
  });

  test('every window runs once, at most windowsInFlight at a time; the sums are the result; each history is within its bound', async () => {
    const runtime = new DurableRuntime({ store: new MemoryInstanceStore(), maxConcurrentActivities: 16, checkpointIntervalInMs: 1000 });
    try {
      await runtime.startNew(Orchestrators.verifyBackup, { instanceId: 'verify-big', input: { backupId: 'pw-5151515151515151515151ab', readData: true } });
      const status = await runtime.waitForCompletion('verify-big', { timeoutInMs: 60_000 });
      expect(status.runtimeStatus).toBe('Completed');
      expect([calls.size, Math.max(...calls.values())]).toEqual([WINDOWS, 1]);
      expect(maxInFlight).toBeLessThanOrEqual(IN_FLIGHT);
      expect(status.output).toMatchObject({ ok: true, pagesChecked: WINDOWS * 200, blocksChecked: WINDOWS * 400, tablesChecked: Math.ceil(WINDOWS / 4), packsChecked: WINDOWS * 3, problems: [] } satisfies Partial<VerifyResult>);
      expect(status.customStatus).toMatchObject({ phase: 'done', ok: true, windowsTotal: WINDOWS, windowsDone: WINDOWS, pagesDone: WINDOWS * 200 });
      expect(records.filter((r) => r.instanceId === 'verify-big')).toEqual([{ backupId: 'pw-5151515151515151515151ab', instanceId: 'verify-big', by: 'http', at: expect.stringMatching(/Z$/), ok: true, readData: true }]);

      const family = await runtime.listInstances({ prefix: 'verify-big' });
      const sizes = Object.fromEntries(family.map((s) => [s.instanceId, s.historyEvents]));
      const ranges = childRanges({ first: 0, count: WINDOWS })!;
      expect(Object.keys(sizes).sort()).toEqual(['verify-big', ...ranges.map((r) => rangeInstanceId('verify-big', r))].sort());
      expect(sizes['verify-big']).toBeLessThanOrEqual(historyEventsBound(3 + ranges.length));
      for (const r of ranges) expect(sizes[rangeInstanceId('verify-big', r)]).toBeLessThanOrEqual(historyEventsBound(Math.min(r.count, BATCHES_PER_LEAF)));
      console.info(`history events per verify orchestration (1050 windows): ${JSON.stringify(sizes)}`);
    } finally {
      await runtime.stop();
    }
  });

  test('problems are kept in window order up to the cap, and fail the verification naming the first', async () => {
    damagedFrom = 900; // 150 damaged windows: 100 in the first range, 50 in the second
    const runtime = new DurableRuntime({ store: new MemoryInstanceStore(), maxConcurrentActivities: 16, checkpointIntervalInMs: 1000 });
    try {
      await runtime.startNew(Orchestrators.verifyBackup, { instanceId: 'verify-bad', input: { backupId: 'pw-5151515151515151515151ab', readData: true } });
      const status = await runtime.waitForCompletion('verify-bad', { timeoutInMs: 60_000 });
      expect(status.runtimeStatus).toBe('Failed');
      expect(String(status.output)).toContain(`failed verification: page ${900 * 256}: damaged; page ${901 * 256}: damaged;`);
      expect(status.customStatus).toMatchObject({ phase: 'failed', ok: false, windowsDone: WINDOWS });
      // Each range's summary carries its first problems (windows 900–999, then 1000–1049); the root keeps the first 100.
      const problemsOf = async (first: number, count: number) => ((await runtime.getStatus(rangeInstanceId('verify-bad', { first, count })))?.output as VerifyWindowSummary).problems;
      const first = await problemsOf(0, 1000);
      expect([first.length, first[0], first[MAX_PROBLEMS - 1]]).toEqual([MAX_PROBLEMS, `page ${900 * 256}: damaged`, `page ${999 * 256}: damaged`]);
      expect(await problemsOf(1000, 50)).toHaveLength(50);
      expect(status.customStatus).toMatchObject({ pagesDone: WINDOWS * 200 });
      // The record keeps the first 10 problems (docs/FORMAT.md §28), in window order.
      const record = records.find((r) => r.instanceId === 'verify-bad')!;
      expect([record.ok, record.problems?.length, record.problems?.[0]]).toEqual([false, 10, `page ${900 * 256}: damaged`]);
    } finally {
      await runtime.stop();
    }
  });
});

test("a running verification's progress adds its running ranges' windows, as a backup's adds batches", async () => {
  const root = { phase: 'verifying', backupId: 'b', pagesTotal: 2000, bytesTotal: 2000 * PAGE, windowsTotal: 1050, windowsDone: 0, pagesDone: 0, bytesDone: 0, running: ['v:r0+1000'] };
  const range = { windowsTotal: 1000, windowsDone: 400, pagesDone: 700, bytesDone: 700 * PAGE };
  expect(await withLiveProgress(root, async (id) => (id === 'v:r0+1000' ? range : undefined))).toEqual({
    phase: 'verifying', backupId: 'b', pagesTotal: 2000, bytesTotal: 2000 * PAGE, windowsTotal: 1050, windowsDone: 400, pagesDone: 700, bytesDone: 700 * PAGE,
  });
  // A backup's batch range is not a verification's window range: not added.
  expect(await withLiveProgress(root, async () => ({ batchesTotal: 10, batchesDone: 5, pagesDone: 9, bytesDone: 9 }))).toMatchObject({ windowsDone: 0, pagesDone: 0 });
});
