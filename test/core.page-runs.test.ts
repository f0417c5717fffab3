/** PageRuns: a plan's changed pages as coalesced runs — membership, overlap with a window, batches, validation. */
import { PageRuns } from '../core/backup/v2/page-runs';

test('coalesced runs answer membership, overlap with a window and the batches they touch', () => {
  const runs = PageRuns.coalesce([[0, 2], [2, 3], [10, 1], [11, 1], [40, 5], [42, 1]]);
  expect(runs).toEqual([[0, 5], [10, 2], [40, 5]]);
  const set = PageRuns.of(runs, 100, 'test');
  expect([0, 4, 5, 9, 10, 11, 12, 39, 40, 44, 45].map((p) => set.has(p))).toEqual([true, true, false, false, true, true, false, false, true, true, false]);
  expect(set.touches(5, 5)).toBe(false); // pages 5…9
  expect(set.touches(5, 6)).toBe(true); // … and 10
  expect(set.touches(12, 28)).toBe(false);
  expect(set.touches(44, 100)).toBe(true);
  expect(set.touches(45, 55)).toBe(false);
  expect(set.batches(8)).toEqual([0, 1, 5]);
  expect(set.batches(64)).toEqual([0]);
});

test('runs from a plan must be ascending, disjoint, non-empty and inside the disk (Corrupt otherwise)', () => {
  for (const bad of [[[5, 2], [6, 1]], [[0, 0]], [[98, 3]], [[-1, 2]], [[1.5, 1]], [[1]], 'x', [[3, 1], [1, 1]]]) {
    expect(() => PageRuns.of(bad, 100, 'the plan of backup t')).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringContaining('the plan of backup t') }));
  }
  expect(PageRuns.of([], 100, 'x').batches(4)).toEqual([]);
});
