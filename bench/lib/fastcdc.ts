/**
 * FastCDC content-defined chunking (Xia et al., USENIX ATC 2016): a gear rolling hash, cut-point skipping
 * below the minimum size and normalized chunking (a harder mask before the average size, an easier one
 * after), over a 32-bit hash as the ronomon/`fastcdc` v2016 implementations do. Used by the format-2 bench.
 */
import { prng } from '../../testkit/prng';

export interface ChunkerOptions {
  minSize: number;
  avgSize: number;
  maxSize: number;
  /** Normalization level (the paper's NC): mask bits added before avgSize and removed after. */
  normalization?: number;
  /** Another gear table (256 entries), e.g. a vault's keyed one (FORMAT.md §15.2); default the fixed GEAR. */
  gear?: Uint32Array;
}

/** 256 fixed pseudo-random 32-bit gear values (seeded, so chunk boundaries repeat from run to run). */
export const GEAR: Uint32Array = (() => {
  const rand = prng(0x6a09e667);
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) table[i] = Math.floor(rand() * 0x1_0000_0000) >>> 0;
  return table;
})();

/**
 * A mask with `bits` one-bits spread over the 32-bit hash from its top down: the high bits of a gear hash
 * depend on the last 32 bytes, the low ones on the last few, so spreading widens the effective window.
 */
export function spreadMask(bits: number): number {
  if (bits < 1 || bits > 31) throw new Error(`a mask needs 1..31 bits, not ${bits}`);
  let mask = 0;
  for (let i = 0; i < bits; i++) mask |= 1 << (31 - Math.floor((i * 32) / bits));
  return mask >>> 0;
}

export class FastCdc {
  private readonly maskS: number;
  private readonly maskL: number;
  private readonly gear: Uint32Array;

  constructor(private readonly options: ChunkerOptions) {
    const { minSize, avgSize, maxSize } = options;
    if (!(minSize > 0 && minSize <= avgSize && avgSize <= maxSize)) throw new Error('need 0 < minSize ≤ avgSize ≤ maxSize');
    const bits = Math.round(Math.log2(avgSize));
    const nc = options.normalization ?? 2;
    this.maskS = spreadMask(bits + nc);
    this.maskL = spreadMask(bits - nc);
    this.gear = options.gear ?? GEAR;
  }

  /** Length of the chunk that starts at `from` (at most `end - from`). */
  cut(data: Uint8Array, from: number, end: number): number {
    const { minSize, avgSize, maxSize } = this.options;
    let n = end - from;
    if (n <= minSize) return n;
    if (n > maxSize) n = maxSize;
    const normal = Math.min(n, avgSize);
    const maskS = this.maskS;
    const maskL = this.maskL;
    const GEAR = this.gear;
    let hash = 0;
    let i = minSize;
    for (; i < normal; i++) {
      hash = ((hash << 1) + GEAR[data[from + i]]) >>> 0;
      if ((hash & maskS) === 0) return i + 1;
    }
    for (; i < n; i++) {
      hash = ((hash << 1) + GEAR[data[from + i]]) >>> 0;
      if ((hash & maskL) === 0) return i + 1;
    }
    return n;
  }

  /** Chunk lengths covering `data` exactly (chunks never straddle the buffer's end: one page at a time). */
  lengths(data: Uint8Array): number[] {
    const out: number[] = [];
    for (let at = 0; at < data.length; ) {
      const n = this.cut(data, at, data.length);
      out.push(n);
      at += n;
    }
    return out;
  }
}
