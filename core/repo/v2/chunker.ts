/** Chunking schemes of version 2 (docs/FORMAT.md §15.2): validation, the keyed gear table and FastCDC's cut points inside one page. */
import { createHmac } from 'node:crypto';
import { PagewiseError } from '../../errors';
import { gearCutLengths } from './gear-cut';

export interface FastCdcChunking {
  scheme: 'fastcdc-2016';
  min: number;
  avg: number;
  max: number;
  nc: 2;
}
export type Chunking = { scheme: 'page' } | FastCdcChunking;

const KiB = 1024;
const MiB = 1024 * KiB;

/** §24.5: FastCDC 64K/256K/1M inside (4 MiB) pages. */
export const DEFAULT_CHUNKING: FastCdcChunking = Object.freeze({ scheme: 'fastcdc-2016', min: 64 * KiB, avg: 256 * KiB, max: 1 * MiB, nc: 2 }) as FastCdcChunking;

/** §15.2's bounds: the smallest minimum, and log2 of the average (both masks then have 1 to 31 bits). */
const MIN_MIN = 64;
const MIN_AVG_BITS = 3;
const MAX_AVG_BITS = 29;
const FASTCDC_KEYS = ['scheme', 'min', 'avg', 'max', 'nc'];

const shown = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 40);

/**
 * Validates a chunking against §15.2 for `pageSize`. A chunking read from a manifest or plan gets `Corrupt`
 * naming `where`; one a user gave gets `BadInput`. Unknown fields are refused (a reader that ignored one
 * could cut differently from the writer that set it).
 */
export function checkChunking(c: unknown, pageSize: number, where: string, code: 'Corrupt' | 'BadInput'): Chunking {
  const bad = (why: string) => new PagewiseError(code, `${where}: ${why}`);
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw bad(`the chunking ${shown(c)} is not an object with a scheme`);
  const o = c as Record<string, unknown>;
  if (o.scheme === 'page') {
    if (Object.keys(o).length !== 1) throw bad(`the chunking scheme "page" takes no parameters, got ${shown(Object.keys(o).filter((k) => k !== 'scheme'))}`);
    return { scheme: 'page' };
  }
  if (o.scheme !== 'fastcdc-2016') throw bad(`the chunking scheme ${shown(o.scheme)} is not one this Pagewise knows ("page", "fastcdc-2016")`);
  const extra = Object.keys(o).filter((k) => !FASTCDC_KEYS.includes(k));
  if (extra.length > 0) throw bad(`the chunking "fastcdc-2016" has unknown fields ${shown(extra)}`);
  const { min, avg, max, nc } = o;
  for (const [name, v] of [['min', min], ['avg', avg], ['max', max]] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw bad(`the chunking's ${name} size ${shown(v)} is not a positive whole number of bytes`);
  }
  if (nc !== 2) throw bad(`the chunking's normalization level nc is ${shown(nc)}; §15.2 fixes it at 2`);
  const m = min as number;
  const a = avg as number;
  const x = max as number;
  const bits = Math.log2(a);
  if (!Number.isInteger(bits) || bits < MIN_AVG_BITS || bits > MAX_AVG_BITS) throw bad(`the chunking's average size ${a} is not a power of two from 8 bytes to 512 MiB`);
  if (!(MIN_MIN <= m && m <= a && a <= x && x <= pageSize)) throw bad(`the chunking needs 64 ≤ min ≤ avg ≤ max ≤ the page size (${pageSize}), got min ${m}, avg ${a}, max ${x}`);
  return { scheme: 'fastcdc-2016', min: m, avg: a, max: x, nc: 2 };
}

/**
 * `c` with max, avg and min clamped to `pageSize` (max to the page, avg to the largest power of two not
 * above it, min to avg), so the default chunking fits any page size: under a 64 KiB page it cuts one chunk
 * per page.
 */
export function chunkingForPage(c: Chunking, pageSize: number): Chunking {
  if (c.scheme === 'page') return { scheme: 'page' };
  const max = Math.min(c.max, pageSize);
  const avg = Math.min(c.avg, 2 ** Math.floor(Math.log2(max)));
  const min = Math.min(c.min, avg);
  return { scheme: 'fastcdc-2016', min, avg, max, nc: 2 };
}

/** Whether two chunkings cut every page the same (same scheme, same parameters, no other fields). */
export function sameChunking(a: Chunking | { scheme: string; [k: string]: unknown }, b: Chunking): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as unknown as Record<string, unknown>;
  return ka.every((k) => ra[k] === rb[k]);
}

/** G[i] = u32 LE of HMAC(K_name, "pagewise/v2/gear" ‖ byte i), i = 0…255 (§15.2). */
export function gearTable(nameKey: Buffer): Uint32Array {
  const table = new Uint32Array(256);
  const label = Buffer.from('pagewise/v2/gear', 'ascii');
  for (let i = 0; i < 256; i++) {
    table[i] = createHmac('sha256', nameKey).update(label).update(Buffer.of(i)).digest().readUInt32LE(0);
  }
  return table;
}

/** `spreadMask(b)` of §15.2: `b` one-bits spread over the u32 from its top down. */
export function spreadMask(bits: number): number {
  if (!Number.isInteger(bits) || bits < 1 || bits > 31) throw new RangeError(`a mask needs 1..31 bits, not ${bits}`);
  let mask = 0;
  for (let i = 0; i < bits; i++) mask |= 1 << (31 - Math.floor((i * 32) / bits));
  return mask >>> 0;
}

/**
 * Chunk lengths of `page` (their sum is `page.length`); scheme `page` gives `[page.length]`, an empty page
 * none. The gear loop runs in WebAssembly (gear-cut.wat: u32 arithmetic mod 2^32, §15.2's cuts exactly;
 * test/core.chunker-wasm.test.ts holds it against the JavaScript loop it replaced).
 */
export function chunkLengths(page: Uint8Array, c: Chunking, gear: Uint32Array): number[] {
  if (page.length === 0) return [];
  if (c.scheme === 'page') return [page.length];
  if (gear.length !== 256) throw new RangeError(`a gear table has 256 entries, not ${gear.length}`);
  const bits = Math.log2(c.avg);
  return gearCutLengths(page, { min: c.min, avg: c.avg, max: c.max, maskS: spreadMask(bits + c.nc) | 0, maskL: spreadMask(bits - c.nc) | 0 }, gear);
}
