/** The WebAssembly gear loop (core/repo/v2/gear-cut.wat) cuts exactly where the JavaScript loop it replaced (bench/lib/gear-js.ts, verbatim) cut (§15.2): cut points are the format. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { gearLengthsJs as referenceLengths, gearLengthsUnrolled } from '../bench/lib/gear-js';
import { chunkLengths, DEFAULT_CHUNKING, gearTable, type FastCdcChunking } from '../core/repo/v2/chunker';
import { GEAR_CUT_WASM } from '../core/repo/v2/gear-cut-wasm';
import { gearCutModuleText } from '../tools/build-gear-wasm';

const KiB = 1024;
const MiB = 1024 * KiB;

const keyedGear = gearTable(Buffer.alloc(32, 3));

/** Pages of random bytes, zeros, runs of one byte and a repeated short pattern, in pieces of random lengths. */
const pageArb = fc
  .array(fc.record({ kind: fc.constantFrom('random', 'zero', 'run', 'pattern'), length: fc.integer({ min: 1, max: 120_000 }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 })
  .map((parts) =>
    Buffer.concat(
      parts.map(({ kind, length, byte }) => {
        if (kind === 'random') return randomBytes(length);
        if (kind === 'zero') return Buffer.alloc(length);
        if (kind === 'run') return Buffer.alloc(length, byte);
        return Buffer.from(Array.from({ length }, (_, i) => (byte + (i % 7)) & 0xff));
      }),
    ),
  );

/** A valid §15.2 chunking for small chunks: 64 ≤ min ≤ avg (a power of two, 8 to 64 KiB) ≤ max. */
const chunkingArb = fc
  .record({ avgBits: fc.integer({ min: 7, max: 16 }), minPart: fc.integer({ min: 0, max: 100 }), maxFactor: fc.integer({ min: 1, max: 8 }) })
  .map(({ avgBits, minPart, maxFactor }): FastCdcChunking => {
    const avg = 2 ** avgBits;
    const min = Math.max(64, Math.floor((avg * minPart) / 100));
    return { scheme: 'fastcdc-2016', min, avg, max: avg * maxFactor, nc: 2 };
  });

/** Any 256 u32 values (half of them at or above 2^31, where the hash's int32 wraps). */
const gearArb = fc.uint32Array({ minLength: 256, maxLength: 256, min: 0, max: 0xffff_ffff });

describe('chunkLengths in WebAssembly', () => {
  test('cuts every page exactly where the JavaScript loop did, for any chunking and any gear table (property)', () => {
    fc.assert(
      fc.property(pageArb, chunkingArb, gearArb, (page, c, gear) => {
        const reference = referenceLengths(page, c, gear);
        expect(chunkLengths(page, c, gear)).toEqual(reference);
        expect(gearLengthsUnrolled(page, c, gear)).toEqual(reference); // the bench's JavaScript candidate too
      }),
      { numRuns: 100, seed: 15 },
    );
  });

  test('pages past its 4 MiB window cut the same, with the default chunking, small chunks, and a maximum above the window', () => {
    const page = Buffer.concat([randomBytes(5 * MiB + 123), Buffer.alloc(700 * KiB), randomBytes(3 * MiB + 5)]);
    const chunkings: FastCdcChunking[] = [
      DEFAULT_CHUNKING,
      { scheme: 'fastcdc-2016', min: 2 * KiB, avg: 8 * KiB, max: 64 * KiB, nc: 2 },
      { scheme: 'fastcdc-2016', min: 1 * MiB, avg: 4 * MiB, max: 6 * MiB, nc: 2 },
    ];
    for (const c of chunkings) {
      const lengths = chunkLengths(page, c, keyedGear);
      expect(lengths).toEqual(referenceLengths(page, c, keyedGear));
      expect(lengths.reduce((s, n) => s + n, 0)).toBe(page.length);
    }
    // the big chunking's maximum is above the window: the zero run hits it
    expect(chunkLengths(Buffer.alloc(13 * MiB), chunkings[2], keyedGear)).toEqual([6 * MiB, 6 * MiB, 1 * MiB]);
  });

  test('a page shorter than the minimum, one byte past it, and one page after a larger one (memory reused) cut as before', () => {
    const c: FastCdcChunking = { scheme: 'fastcdc-2016', min: 64, avg: 256, max: 1024, nc: 2 };
    for (const length of [1, 64, 65, 1023, 1024, 1025]) {
      const page = randomBytes(length);
      expect(chunkLengths(page, c, keyedGear)).toEqual(referenceLengths(page, c, keyedGear));
    }
    const big = randomBytes(6 * MiB);
    const small = randomBytes(300 * KiB);
    expect(chunkLengths(big, DEFAULT_CHUNKING, keyedGear)).toEqual(referenceLengths(big, DEFAULT_CHUNKING, keyedGear));
    expect(chunkLengths(small, DEFAULT_CHUNKING, keyedGear)).toEqual(referenceLengths(small, DEFAULT_CHUNKING, keyedGear));
  });

  test('the committed module is the build of the committed gear-cut.wat', async () => {
    const committed = readFileSync(path.resolve(__dirname, '..', 'core', 'repo', 'v2', 'gear-cut-wasm.ts'), 'utf8');
    expect(await gearCutModuleText()).toBe(committed);
    expect(Buffer.from(GEAR_CUT_WASM, 'base64').subarray(0, 4)).toEqual(Buffer.from('\0asm', 'binary'));
  });
});
