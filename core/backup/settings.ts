/** Engine settings with defaults applied and validated once, for every entry point. */
import { PagewiseError } from '../errors';
import { parseBytes } from '../units';
import { DEFAULT_CACHE_BYTES, DEFAULT_PAGE_SIZE, PAGE_CONCURRENCY, withinBounds } from '../limits';
import { CodecSetting, DEFAULT_CODEC } from '../processor/chunk-pool';
import { checkChunking, Chunking, chunkingForPage, DEFAULT_CHUNKING } from '../repo/v2/chunker';
import { validatePageSize } from '../source/page-grid';
import { EngineSettings } from '../types';

export interface ResolvedSettings {
  pageSize: number;
  cacheBytes: number;
  concurrency: number;
  scratchDir?: string;
  /** #15: the chunking for this page size (§15.2), the codec, and whether to dedupe against the vault's index. */
  chunking: Chunking;
  codec: CodecSetting;
  vaultDedupe: boolean;
}

const CODECS: readonly CodecSetting[] = ['zstd', 'lz4', 'stored'];

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
  const codec = settings.codec ?? DEFAULT_CODEC;
  if (!CODECS.includes(codec)) throw new PagewiseError('BadInput', `codec ${JSON.stringify(String(codec)).slice(0, 40)} is not one of ${CODECS.join(', ')}`);
  const vaultDedupe = settings.vaultDedupe ?? true;
  if (typeof vaultDedupe !== 'boolean') throw new PagewiseError('BadInput', 'vaultDedupe must be true or false');
  return { pageSize, cacheBytes, concurrency, scratchDir: settings.scratchDir, chunking: chunkingFor(settings.chunking, pageSize), codec, vaultDedupe };
}

/** The chunking for `pageSize`: the given one (checked, then sizes above the page clamped) or the default clamped. */
function chunkingFor(given: Chunking | undefined, pageSize: number): Chunking {
  if (given === undefined) return chunkingForPage(DEFAULT_CHUNKING, pageSize);
  const checked = checkChunking(given, Math.max(pageSize, maxOf(given)), 'the chunking setting', 'BadInput');
  return checkChunking(chunkingForPage(checked, pageSize), pageSize, `the chunking setting for ${pageSize}-byte pages`, 'BadInput');
}

function maxOf(c: Chunking): number {
  return c.scheme === 'fastcdc-2016' && Number.isSafeInteger(c.max) ? c.max : 0;
}

/**
 * Cache capacity actually used: whole slots, and always fewer pages than the disk has (the cache is
 * smaller than the disk, as the method requires), but at least one slot.
 */
export function effectiveCacheBytes(settings: ResolvedSettings, pageCount: number): number {
  const slots = Math.max(1, Math.min(Math.floor(settings.cacheBytes / settings.pageSize), pageCount - 1));
  return slots * settings.pageSize;
}

/** A chunking written as text (CLI `--chunking`, an HTTP or policy override): `page`, `fastcdc` (the default sizes) or `fastcdc:<min>,<avg>,<max>` with units. */
export function chunkingFromText(text: string, setting: string): Chunking {
  const t = text.trim();
  if (t === 'page') return { scheme: 'page' };
  if (t === 'fastcdc') return { ...DEFAULT_CHUNKING };
  const m = /^fastcdc:([^,]+),([^,]+),([^,]+)$/.exec(t);
  if (!m) throw new PagewiseError('BadInput', `${setting} "${t.slice(0, 64)}" is not page, fastcdc or fastcdc:<min>,<avg>,<max> (e.g. fastcdc:64KiB,256KiB,1MiB)`);
  return { scheme: 'fastcdc-2016', min: parseBytes(m[1].trim(), `${setting} min`), avg: parseBytes(m[2].trim(), `${setting} avg`), max: parseBytes(m[3].trim(), `${setting} max`), nc: 2 };
}

/** The text form chunkingFromText reads back (for an override that travels as text). */
export function chunkingToText(c: Chunking): string {
  return c.scheme === 'page' ? 'page' : `fastcdc:${c.min},${c.avg},${c.max}`;
}
