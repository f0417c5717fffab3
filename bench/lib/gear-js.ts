/** The gear loop in JavaScript: the engine's before the WebAssembly build (f511664, verbatim; the test's reference) and an unrolled variant measured against it. */
import { spreadMask, type FastCdcChunking } from '../../core';

/** chunkLengths of core/repo/v2/chunker.ts as it was at f511664, for a FastCDC chunking. */
export function gearLengthsJs(page: Uint8Array, c: FastCdcChunking, gear: Uint32Array): number[] {
  if (page.length === 0) return [];
  const bits = Math.log2(c.avg);
  const maskS = spreadMask(bits + c.nc) | 0;
  const maskL = spreadMask(bits - c.nc) | 0;
  const out: number[] = [];
  for (let from = 0; from < page.length; ) {
    const n = cutLength(page, from, page.length - from, c, maskS, maskL, gear);
    out.push(n);
    from += n;
  }
  return out;
}

function cutLength(page: Uint8Array, from: number, left: number, c: FastCdcChunking, maskS: number, maskL: number, gear: Uint32Array): number {
  if (left <= c.min) return left;
  const n = left > c.max ? c.max : left;
  const normal = n < c.avg ? n : c.avg;
  let hash = 0;
  let i = c.min;
  for (; i < normal; i++) {
    hash = ((hash << 1) + gear[page[from + i]]) | 0;
    if ((hash & maskS) === 0) return i + 1;
  }
  for (; i < n; i++) {
    hash = ((hash << 1) + gear[page[from + i]]) | 0;
    if ((hash & maskL) === 0) return i + 1;
  }
  return n;
}

/** The same cuts with an int32 view of the table and the loop unrolled four times (a candidate, not used by the engine). */
export function gearLengthsUnrolled(page: Uint8Array, c: FastCdcChunking, gear: Uint32Array): number[] {
  const g = new Int32Array(gear.buffer, gear.byteOffset, 256);
  const bits = Math.log2(c.avg);
  const masks = [spreadMask(bits + c.nc) | 0, spreadMask(bits - c.nc) | 0];
  const out: number[] = [];
  for (let from = 0; from < page.length; ) {
    const left = page.length - from;
    let n = left > c.max ? c.max : left;
    if (left > c.min) {
      const stops = [from + (n < c.avg ? n : c.avg), from + n];
      let hash = 0;
      let i = from + c.min;
      let cut = -1;
      for (let phase = 0; phase < 2 && cut < 0; phase++) {
        const mask = masks[phase];
        const stop = stops[phase];
        for (; i + 4 <= stop; i += 4) {
          hash = ((hash << 1) + g[page[i]]) | 0;
          if ((hash & mask) === 0) {
            cut = i + 1;
            break;
          }
          hash = ((hash << 1) + g[page[i + 1]]) | 0;
          if ((hash & mask) === 0) {
            cut = i + 2;
            break;
          }
          hash = ((hash << 1) + g[page[i + 2]]) | 0;
          if ((hash & mask) === 0) {
            cut = i + 3;
            break;
          }
          hash = ((hash << 1) + g[page[i + 3]]) | 0;
          if ((hash & mask) === 0) {
            cut = i + 4;
            break;
          }
        }
        for (; cut < 0 && i < stop; i++) {
          hash = ((hash << 1) + g[page[i]]) | 0;
          if ((hash & mask) === 0) cut = i + 1;
        }
      }
      if (cut >= 0) n = cut - from;
    } else n = left;
    out.push(n);
    from += n;
  }
  return out;
}
