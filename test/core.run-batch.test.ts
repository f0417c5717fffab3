/** Runs of pages in a batch (core/backup/run-batch.ts): run length and runs in flight fit the cache. */
const MiB = 1024 * 1024;

test('runs of consecutive pages fit the cache: run length × runs in flight never exceeds the slots', async () => {
  const { runsOf } = require('../core/source/page-grid') as typeof import('../core/source/page-grid');
  const { runShape } = require('../core/backup/run-batch') as typeof import('../core/backup/run-batch');
  const pages = [0, 1, 2, 3, 4, 7, 8, 20].map((page) => ({ page }));
  const runs: number[][] = [];
  for await (const r of runsOf(pages, 3)) runs.push(r.map((p) => p.page));
  expect(runs).toEqual([[0, 1, 2], [3, 4], [7, 8], [20]]);
  for (const [pageSize, slots, concurrency] of [[4 * MiB, 16, 4], [4 * MiB, 2, 4], [512, 16, 4], [MiB, 64, 8], [64 * MiB, 3, 4], [4 * MiB, 1, 1]]) {
    const { runPages, runsInFlight } = runShape(pageSize, slots, concurrency);
    expect(runPages).toBeGreaterThanOrEqual(1);
    expect(runPages * pageSize).toBeLessThanOrEqual(Math.max(pageSize, 16 * MiB));
    expect(runPages * runsInFlight).toBeLessThanOrEqual(slots);
  }
  expect(runShape(4 * MiB, 16, 4)).toEqual({ runPages: 4, runsInFlight: 4 });
});
