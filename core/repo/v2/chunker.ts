/** INTERIM (writer15): part A's chunker per SPEC15 signatures; replaced by the `chunks` branch on merge. */
import { createHmac } from 'node:crypto';
import { PagewiseError } from '../../errors';
import { MiB } from '../../limits';

const KiB = 1024;

export interface FastCdcChunking { scheme: 'fastcdc-2016'; min: number; avg: number; max: number; nc: 2 }
export type Chunking = { scheme: 'page' } | FastCdcChunking;
export const DEFAULT_CHUNKING: FastCdcChunking = { scheme: 'fastcdc-2016', min: 64 * KiB, avg: 256 * KiB, max: 1 * MiB, nc: 2 };

export function checkChunking(c: unknown, pageSize: number, where: string, code: 'Corrupt' | 'BadInput'): Chunking {
  const o = c as Record<string, unknown> | null;
  if (o && o.scheme === 'page' && Object.keys(o).length === 1) return { scheme: 'page' };
  if (o && o.scheme === 'fastcdc-2016') {
    const { min, avg, max, nc } = o as unknown as FastCdcChunking;
    const ok = [min, avg, max].every((n) => Number.isSafeInteger(n)) && nc === 2 && 64 <= min && min <= avg && avg <= max && max <= pageSize && (avg & (avg - 1)) === 0 && avg >= 8 && avg <= 2 ** 29;
    if (ok) return { scheme: 'fastcdc-2016', min, avg, max, nc: 2 };
  }
  throw new PagewiseError(code, `${where}: not a chunking of §15.2 for ${pageSize}-byte pages`);
}

export function chunkingForPage(c: Chunking, pageSize: number): Chunking {
  if (c.scheme === 'page') return c;
  const max = Math.min(c.max, pageSize);
  let avg = Math.min(c.avg, max);
  avg = 2 ** Math.floor(Math.log2(avg));
  const min = Math.max(64, Math.min(c.min, avg));
  return { scheme: 'fastcdc-2016', min, avg, max, nc: 2 };
}

export function sameChunking(a: Chunking | { scheme: string; [k: string]: unknown }, b: Chunking): boolean {
  const x = a as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  return [...keys].every((k) => x[k] === y[k]);
}

export function gearTable(nameKey: Buffer): Uint32Array {
  const g = new Uint32Array(256);
  for (let i = 0; i < 256; i++) g[i] = createHmac('sha256', nameKey).update(Buffer.concat([Buffer.from('pagewise/v2/gear'), Buffer.from([i])])).digest().readUInt32LE(0);
  return g;
}

function spreadMask(bits: number): number {
  let mask = 0;
  for (let i = 0; i < bits; i++) mask |= 1 << (31 - Math.floor((i * 32) / bits));
  return mask >>> 0;
}

export function chunkLengths(page: Uint8Array, c: Chunking, gear: Uint32Array): number[] {
  if (c.scheme === 'page') return [page.length];
  const bits = Math.round(Math.log2(c.avg));
  const maskS = spreadMask(bits + 2);
  const maskL = spreadMask(bits - 2);
  const out: number[] = [];
  for (let from = 0; from < page.length; ) {
    let n = page.length - from;
    let len = n;
    if (n > c.min) {
      if (n > c.max) n = c.max;
      const normal = Math.min(n, c.avg);
      let h = 0;
      let i = c.min;
      len = n;
      for (; i < normal; i++) {
        h = ((h << 1) + gear[page[from + i]]) >>> 0;
        if ((h & maskS) === 0) break;
      }
      if (i < normal) len = i + 1;
      else {
        for (; i < n; i++) {
          h = ((h << 1) + gear[page[from + i]]) >>> 0;
          if ((h & maskL) === 0) break;
        }
        if (i < n) len = i + 1;
      }
    }
    out.push(len);
    from += len;
  }
  return out;
}
