/** Option values parsed the same way everywhere, with errors naming the option. */
import { assertUnsharedDirSync, Chunking, chunkingFromText, CodecSetting, PAGE_CONCURRENCY, parseBytes, PagewiseError, resolveSettings, withinBounds } from '../core';
import { statSync } from 'node:fs';

export type ResolvedSettings = ReturnType<typeof resolveSettings>;

/** Longest option value echoed back in an error: a huge value gets a short line, not itself. */
const MAX_ECHO = 64;

function tooLong(text: string, option: string): PagewiseError | undefined {
  return text.length > MAX_ECHO ? new PagewiseError('BadInput', `${option} "${text.slice(0, 16)}…" (${text.length} characters) is not a valid value`) : undefined;
}

export function parseSize(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const long = tooLong(text, option);
  if (long) throw long;
  return parseBytes(text, option);
}

export function parseCount(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const long = tooLong(text, option);
  if (long) throw long;
  if (!/^\s*\d+\s*$/.test(text)) throw new PagewiseError('BadInput', `${option} "${text}" is not a whole number`);
  const value = Number(text);
  // Past 2^53 the number read is not the number typed (9007199254740993 reads as …992): refused, not rounded.
  if (!Number.isSafeInteger(value)) throw new PagewiseError('BadInput', `${option} "${text.trim()}" is too large`);
  return value;
}

/** `--concurrency` of restore and verify: the same bound the backup's settings enforce (core PAGE_CONCURRENCY). */
export function parseConcurrency(text: string | undefined, option = '--concurrency'): number | undefined {
  const value = parseCount(text, option);
  if (value !== undefined && !withinBounds(value, PAGE_CONCURRENCY)) {
    throw new PagewiseError('BadInput', `${option} ${value} must be a whole number from ${PAGE_CONCURRENCY.min} to ${PAGE_CONCURRENCY.max}`);
  }
  return value;
}

const CODECS: readonly CodecSetting[] = ['zstd', 'lz4', 'stored'];

/** `--chunking page | fastcdc | fastcdc:<min>,<avg>,<max>` (sizes with units); checked against the page size by resolveSettings. */
export function parseChunking(text: string | undefined, option = '--chunking'): Chunking | undefined {
  if (text === undefined) return undefined;
  const long = tooLong(text, option);
  if (long) throw long;
  return chunkingFromText(text, option);
}

export function parseCodec(text: string | undefined, option = '--codec'): CodecSetting | undefined {
  if (text === undefined) return undefined;
  const long = tooLong(text, option);
  if (long) throw long;
  const codec = text.trim() as CodecSetting;
  if (!CODECS.includes(codec)) throw new PagewiseError('BadInput', `${option} "${codec}" is not one of ${CODECS.join(', ')}`);
  return codec;
}

/** Page size, cache, concurrency and (backup) chunking, codec and vault-wide dedupe, checked before any network call. */
export function engineSettings(opts: { pageSize?: string; cache?: string; concurrency?: string; scratchDir?: string; chunking?: string; codec?: string; vaultDedupe?: boolean }): ResolvedSettings {
  if (opts.scratchDir !== undefined) {
    let isDir = false;
    try {
      isDir = statSync(opts.scratchDir).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) throw new PagewiseError('BadInput', `--scratch-dir ${opts.scratchDir} is not an existing directory`);
    assertUnsharedDirSync(opts.scratchDir, '--scratch-dir');
  }
  return resolveSettings({
    pageSize: parseSize(opts.pageSize, '--page-size'),
    cacheBytes: parseSize(opts.cache, '--cache'),
    concurrency: parseCount(opts.concurrency, '--concurrency'),
    scratchDir: opts.scratchDir,
    chunking: parseChunking(opts.chunking),
    codec: parseCodec(opts.codec),
    vaultDedupe: opts.vaultDedupe,
  });
}
