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

test('the non-zero runs are the same at any offset in memory and for a short last sector', () => {
  const { nonZeroRuns } = require('../core/restore/restore') as typeof import('../core/restore/restore');
  // The reference: sector by sector, byte by byte.
  const reference = (data: Buffer) => {
    const runs: Array<{ start: number; end: number }> = [];
    for (let at = 0; at < data.length; at += 512) {
      const end = Math.min(data.length, at + 512);
      if (!data.subarray(at, end).some((b) => b !== 0)) continue;
      const last = runs[runs.length - 1];
      if (last && last.end === at) last.end = end;
      else runs.push({ start: at, end });
    }
    return runs;
  };
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let round = 0; round < 40; round++) {
    const length = 512 * (1 + (next() % 24)) - (round % 3 === 0 ? next() % 511 : 0);
    const offset = next() % 8; // a view into a larger buffer, aligned to 4 bytes or not
    const backing = Buffer.alloc(length + 8);
    const data = backing.subarray(offset, offset + length);
    for (let k = next() % 6; k > 0; k--) data[next() % length] = 1 + (next() % 255); // sparse bytes, anywhere in a sector
    if (round % 4 === 0) data.fill(9, 0, Math.min(length, 1500)); // a dense run at the start
    expect([...nonZeroRuns(data)]).toEqual(reference(data));
  }
});
