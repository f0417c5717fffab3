/** Restore (core/restore/restore.ts): only the non-zero sectors of a page are written. */
test('restore writes only the non-zero 512-byte runs of a page', () => {
  const { nonZeroRuns } = require('../core/restore/restore') as typeof import('../core/restore/restore');
  const page = Buffer.alloc(8 * 512);
  page[10] = 1; // sector 0
  page[512 + 3] = 1; // sector 1 (coalesced with 0)
  page[5 * 512] = 1; // sector 5
  page[8 * 512 - 1] = 1; // sector 7, the last
  expect([...nonZeroRuns(page)]).toEqual([
    { start: 0, end: 1024 },
    { start: 2560, end: 3072 },
    { start: 3584, end: 4096 },
  ]);
  expect([...nonZeroRuns(Buffer.alloc(4096))]).toEqual([]);
});
