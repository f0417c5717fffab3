/** The backup reader (core/repo/backup-reader.ts): block runs bounded in stored and plain bytes. */
import { PageEntry } from '../core/repo/page-table';

const MiB = 1024 * 1024;

test('block runs stay within 16 MiB of stored bytes and of plaintext', () => {
  const { blockRuns } = require('../core/repo/backup-reader') as typeof import('../core/repo/backup-reader');
  const entry = (page: number, offset: number, storedLength: number, plainLength = 4 * MiB): PageEntry => ({
    page, ref: 0, codec: 1, segment: 0, offset, storedLength, plainLength, sha256: Buffer.alloc(32),
  });
  // 10 well-compressed pages of 4 MiB stored in 100 KiB each: runs of 4 pages (16 MiB of plaintext).
  const small = Array.from({ length: 10 }, (_, k) => entry(k, k * 100 * 1024, 100 * 1024));
  expect(blockRuns(small).map((r) => r.length)).toEqual([4, 4, 2]);
  // A gap (a block reused from earlier) breaks a run.
  const gap = [entry(0, 0, 1000), entry(1, 1000, 1000), entry(2, 0, 1000), entry(3, 2000, 1000)];
  expect(blockRuns(gap).map((r) => r.map((e) => e.page))).toEqual([[0, 1], [2], [3]]);
});
