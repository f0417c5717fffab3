/** Engine settings with defaults applied and validated once, for every entry point. */
import { PagewiseError } from '../errors';
import { DEFAULT_CACHE_BYTES, DEFAULT_PAGE_SIZE, PAGE_CONCURRENCY, withinBounds } from '../limits';
import { validatePageSize } from '../source/page-grid';
import { EngineSettings } from '../types';

export interface ResolvedSettings {
  pageSize: number;
  cacheBytes: number;
  concurrency: number;
  scratchDir?: string;
}

export function resolveSettings(settings: EngineSettings): ResolvedSettings {
  const pageSize = validatePageSize(settings.pageSize ?? DEFAULT_PAGE_SIZE);
  const cacheBytes = settings.cacheBytes ?? DEFAULT_CACHE_BYTES;
  if (!Number.isSafeInteger(cacheBytes) || cacheBytes <= 0) {
    throw new PagewiseError('BadCacheSize', `cache size ${cacheBytes} is not a positive whole number of bytes`);
  }
  if (cacheBytes < pageSize) {
    throw new PagewiseError('BadCacheSize', `the cache (${cacheBytes} bytes) is smaller than one page (${pageSize} bytes); it must hold at least one page`);
  }
  const concurrency = settings.concurrency ?? PAGE_CONCURRENCY.default;
  if (!withinBounds(concurrency, PAGE_CONCURRENCY)) {
    throw new PagewiseError('BadInput', `concurrency ${concurrency} must be a whole number from ${PAGE_CONCURRENCY.min} to ${PAGE_CONCURRENCY.max}`);
  }
  return { pageSize, cacheBytes, concurrency, scratchDir: settings.scratchDir };
}

/**
 * Cache capacity actually used: whole slots, and always fewer pages than the disk has (the cache is
 * smaller than the disk, as the method requires), but at least one slot.
 */
export function effectiveCacheBytes(settings: ResolvedSettings, pageCount: number): number {
  const slots = Math.max(1, Math.min(Math.floor(settings.cacheBytes / settings.pageSize), pageCount - 1));
  return slots * settings.pageSize;
}
