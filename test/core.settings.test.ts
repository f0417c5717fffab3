/** Backup settings (core/backup/settings.ts): the cache holds whole pages, batch sizes per page size. */
import { effectiveCacheBytes, resolveSettings } from '../core/backup/settings';
import { pagesPerBatchFor } from '../core/repo/backup-plan';

const MiB = 1024 * 1024;

test('settings: the cache holds whole pages and is always smaller than the disk', () => {
  const s = resolveSettings({ pageSize: MiB, cacheBytes: 10 * MiB + 5 });
  expect(effectiveCacheBytes(s, 100)).toBe(10 * MiB);
  expect(effectiveCacheBytes(s, 4)).toBe(3 * MiB); // a 4-page disk gets a 3-page cache
  expect(effectiveCacheBytes(s, 1)).toBe(MiB);
  expect(() => resolveSettings({ pageSize: 4 * MiB, cacheBytes: MiB })).toThrow(/smaller than one page/);
  expect(() => resolveSettings({ concurrency: 0 })).toThrow(/concurrency/);
  expect(pagesPerBatchFor(4 * MiB, 16384)).toBe(256);
  expect(pagesPerBatchFor(512, 16384)).toBe(16384);
  expect(pagesPerBatchFor(3 * 512, 16384)).toBe(16384);
  expect(pagesPerBatchFor(100 * MiB, 16384)).toBe(8);
});
