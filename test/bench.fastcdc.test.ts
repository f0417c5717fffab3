/** The format-2 bench's FastCDC chunker (bench/lib/fastcdc.ts): bounds, determinism, resync after an insertion. */
import { createHash } from 'node:crypto';
import { FastCdc, spreadMask } from '../bench/lib/fastcdc';
import { regionBytes } from '../testkit/sample-disk';

const KiB = 1024;
const options = { minSize: 2 * KiB, avgSize: 8 * KiB, maxSize: 32 * KiB };
const data = regionBytes({ offset: 0, length: 4096 * KiB, kind: 'random', seed: 3 }, 0, 4096 * KiB);

function chunkHashes(chunker: FastCdc, bytes: Buffer): string[] {
  let at = 0;
  return chunker.lengths(bytes).map((n) => createHash('sha256').update(bytes.subarray(at, (at += n))).digest('hex'));
}

describe('spreadMask', () => {
  it.each([
    [1, 0x8000_0000],
    [2, 0x8000_8000],
    [4, 0x8080_8080],
  ])('spreads %i bits from the top', (bits, mask) => {
    expect(spreadMask(bits)).toBe(mask);
  });

  it('sets exactly the number of bits asked for', () => {
    expect(spreadMask(20).toString(2).replace(/0/g, '')).toHaveLength(20);
  });

  it.each([0, 32])('refuses %i bits', (bits) => {
    expect(() => spreadMask(bits)).toThrow(`a mask needs 1..31 bits, not ${bits}`);
  });
});

describe('FastCdc', () => {
  it('refuses sizes out of order', () => {
    expect(() => new FastCdc({ minSize: 16 * KiB, avgSize: 8 * KiB, maxSize: 32 * KiB })).toThrow('need 0 < minSize ≤ avgSize ≤ maxSize');
  });

  it('covers the buffer with chunks between min and max (only the last may be shorter)', () => {
    const lengths = new FastCdc(options).lengths(data);
    expect(lengths.reduce((s, n) => s + n, 0)).toBe(data.length);
    for (const n of lengths.slice(0, -1)) {
      expect(n).toBeGreaterThan(options.minSize);
      expect(n).toBeLessThanOrEqual(options.maxSize);
    }
    // Normalized chunking keeps the mean near the average size (min + about avg on random data).
    const mean = data.length / lengths.length;
    expect(mean).toBeGreaterThan(options.avgSize);
    expect(mean).toBeLessThan(1.5 * options.avgSize);
  });

  it('cuts the same bytes the same way', () => {
    expect(new FastCdc(options).lengths(data)).toEqual(new FastCdc(options).lengths(Buffer.from(data)));
  });

  it('finds the same chunks again after bytes are inserted (only the chunks around the insertion change)', () => {
    const chunker = new FastCdc(options);
    const before = chunkHashes(chunker, data);
    const at = 1000 * KiB + 123;
    const shifted = Buffer.concat([data.subarray(0, at), Buffer.alloc(777, 0x5a), data.subarray(at)]);
    const after = new Set(chunkHashes(chunker, shifted));
    const lost = before.filter((h) => !after.has(h));
    expect(before.length).toBeGreaterThan(400);
    expect(lost.length).toBeGreaterThanOrEqual(1);
    expect(lost.length).toBeLessThanOrEqual(3);
  });

  it('never cuts an empty buffer', () => {
    expect(new FastCdc(options).lengths(Buffer.alloc(0))).toEqual([]);
  });
});
