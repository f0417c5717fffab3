/** The version-2 chunker (docs/FORMAT.md §15.2): the bench's reference cuts, the keyed gear table, the page scheme, clamping and validation. */
import { createHmac } from 'node:crypto';
import { FastCdc, GEAR } from '../bench/lib/fastcdc';
import { checkChunking, chunkingForPage, chunkLengths, DEFAULT_CHUNKING, gearTable, sameChunking, spreadMask, type Chunking, type FastCdcChunking } from '../core/repo/v2/chunker';
import { Keyring } from '../core/repo/v2/keyring';
import { regionBytes, type RegionKind } from '../testkit/sample-disk';

const KiB = 1024;
const MiB = 1024 * KiB;
/** A fixed keyring: the pinned cut points below must never change (they are the format). */
const keyring = Keyring.fromMasters('0123456789abcdef0123456789abcdef', [Buffer.alloc(32, 1)]);
const gear = gearTable(keyring.key('name'));

const bytesOf = (kind: RegionKind, length: number, seed: number) => regionBytes({ offset: 0, length, kind, seed }, 0, length);
/** A page of text, random bytes, zeros and a repeated pattern, in pieces not aligned to anything. */
function mixedPage(length: number, seed: number): Buffer {
  const kinds: RegionKind[] = ['text', 'random', 'zero', 'repeat'];
  const parts: Buffer[] = [];
  let at = 0;
  for (let k = 0; at < length; k++) {
    const n = Math.min(length - at, 50_000 + ((seed * 7919 + k * 104_729) % 400_000));
    parts.push(bytesOf(kinds[(seed + k) % kinds.length], n, seed + k));
    at += n;
  }
  return Buffer.concat(parts);
}
const referenceOf = (c: FastCdcChunking, table: Uint32Array) => new FastCdc({ minSize: c.min, avgSize: c.avg, maxSize: c.max, normalization: c.nc, gear: table });

describe('chunkLengths (FastCDC 2016 of §15.2)', () => {
  const chunkings: FastCdcChunking[] = [
    DEFAULT_CHUNKING,
    { scheme: 'fastcdc-2016', min: 4 * KiB, avg: 16 * KiB, max: 64 * KiB, nc: 2 },
    { scheme: 'fastcdc-2016', min: 64, avg: 64, max: 64, nc: 2 },
    { scheme: 'fastcdc-2016', min: 64, avg: 512, max: 4 * KiB, nc: 2 },
  ];
  const pages = [mixedPage(4 * MiB, 1), mixedPage(4 * MiB, 2), bytesOf('text', 3 * MiB + 777, 5), bytesOf('random', 2 * MiB, 6), Buffer.alloc(MiB)];

  test.each(chunkings.map((c) => [`${c.min}/${c.avg}/${c.max}`, c] as const))('%s: the same cuts as bench/lib/fastcdc.ts with the bench gear table and with a keyed one', (_, c) => {
    for (const table of [GEAR, gear]) {
      const reference = referenceOf(c, table);
      // tiny chunkings on a slice: a few thousand chunks say as much as half a million
      for (const page of pages.map((p) => (c.max < 64 * KiB ? p.subarray(0, 256 * KiB + 333) : p))) {
        const lengths = chunkLengths(page, c, table);
        expect(lengths).toEqual(reference.lengths(page));
        expect(lengths.reduce((s, n) => s + n, 0)).toBe(page.length);
        expect(Math.max(...lengths)).toBeLessThanOrEqual(c.max);
        // every chunk but the page's last is at least the minimum
        expect(Math.min(...lengths.slice(0, -1))).toBeGreaterThanOrEqual(Math.min(c.min + 1, c.max));
      }
    }
  });

  test('cut points are pinned for a fixed key: a zero page goes to the maximum, text and random data cut near the average', () => {
    expect(chunkLengths(Buffer.alloc(4 * MiB), DEFAULT_CHUNKING, gear)).toEqual([MiB, MiB, MiB, MiB]);
    expect(chunkLengths(bytesOf('random', 4 * MiB, 3), DEFAULT_CHUNKING, gear)).toEqual([
      394224, 324339, 294465, 309751, 76926, 344819, 280953, 144812, 267534, 268076, 377073, 294836, 68312, 318291, 290227, 139666,
    ]);
    const text = chunkLengths(bytesOf('text', MiB, 3), { scheme: 'fastcdc-2016', min: 4 * KiB, avg: 16 * KiB, max: 64 * KiB, nc: 2 }, gear);
    expect(text.slice(0, 8)).toEqual([18520, 17005, 28522, 17136, 32599, 20539, 26403, 10517]);
    expect(text).toHaveLength(56);
  });

  test('an insertion moves cut points only near it (content-defined)', () => {
    const page = bytesOf('random', 4 * MiB, 9);
    const shifted = Buffer.concat([page.subarray(0, 100_000), Buffer.from('inserted!'), page.subarray(100_000, 4 * MiB - 9)]);
    const ends = (ls: number[]) => ls.map((_, i) => ls.slice(0, i + 1).reduce((s, n) => s + n, 0));
    const before = new Set(ends(chunkLengths(page, DEFAULT_CHUNKING, gear)).map((e) => e + 9));
    const after = ends(chunkLengths(shifted, DEFAULT_CHUNKING, gear));
    // all cuts after the first two chunks line up again, 9 bytes later
    expect(after.length).toBeGreaterThan(10);
    expect(after.slice(2, -1).every((e) => before.has(e))).toBe(true);
  });

  test('scheme page gives one chunk per page; an empty page has none; a wrong gear table is refused', () => {
    expect(chunkLengths(Buffer.alloc(4 * MiB, 1), { scheme: 'page' }, gear)).toEqual([4 * MiB]);
    expect(chunkLengths(Buffer.alloc(1000), { scheme: 'page' }, gear)).toEqual([1000]);
    expect(chunkLengths(Buffer.alloc(0), DEFAULT_CHUNKING, gear)).toEqual([]);
    expect(chunkLengths(Buffer.alloc(100), DEFAULT_CHUNKING, gear)).toEqual([100]);
    expect(() => chunkLengths(Buffer.alloc(MiB), DEFAULT_CHUNKING, new Uint32Array(255))).toThrow('a gear table has 256 entries, not 255');
  });

  test('spreadMask spreads bits from the top down, as the reference does', () => {
    expect(spreadMask(1)).toBe(0x8000_0000);
    expect(spreadMask(2)).toBe(0x8000_8000);
    expect(spreadMask(16)).toBe(0xaaaa_aaaa);
    expect(spreadMask(20).toString(2).split('1').length - 1).toBe(20);
    expect(() => spreadMask(32)).toThrow('a mask needs 1..31 bits, not 32');
  });
});

describe('gearTable', () => {
  test('G[i] is the u32 LE of HMAC(K_name, "pagewise/v2/gear" ‖ byte i); another vault gets another table', () => {
    for (const i of [0, 1, 127, 255]) {
      const mac = createHmac('sha256', keyring.key('name')).update(Buffer.concat([Buffer.from('pagewise/v2/gear'), Buffer.of(i)])).digest();
      expect(gear[i]).toBe(mac.readUInt32LE(0));
    }
    expect(Array.from(gear.subarray(0, 4))).toEqual([996705024, 3058347178, 1569419959, 721543060]);
    const other = gearTable(Keyring.create().key('name'));
    expect(other).toHaveLength(256);
    expect(Array.from(other)).not.toEqual(Array.from(gear));
    expect(new Set(gear).size).toBeGreaterThan(250);
  });
});

describe('chunkingForPage', () => {
  test('clamps max to the page, avg to a power of two within it, min to avg; a page scheme stays', () => {
    expect(chunkingForPage(DEFAULT_CHUNKING, 4 * MiB)).toEqual(DEFAULT_CHUNKING);
    expect(chunkingForPage(DEFAULT_CHUNKING, 64 * KiB)).toEqual({ scheme: 'fastcdc-2016', min: 64 * KiB, avg: 64 * KiB, max: 64 * KiB, nc: 2 });
    expect(chunkingForPage(DEFAULT_CHUNKING, 512 * KiB)).toEqual({ scheme: 'fastcdc-2016', min: 64 * KiB, avg: 256 * KiB, max: 512 * KiB, nc: 2 });
    expect(chunkingForPage(DEFAULT_CHUNKING, 192 * KiB)).toEqual({ scheme: 'fastcdc-2016', min: 64 * KiB, avg: 128 * KiB, max: 192 * KiB, nc: 2 });
    expect(chunkingForPage(DEFAULT_CHUNKING, 4 * KiB)).toEqual({ scheme: 'fastcdc-2016', min: 4 * KiB, avg: 4 * KiB, max: 4 * KiB, nc: 2 });
    expect(chunkingForPage({ scheme: 'page' }, 4 * KiB)).toEqual({ scheme: 'page' });
  });

  test('every clamped default is valid for its page, and a 64 KiB page is one chunk', () => {
    for (const pageSize of [512, 4 * KiB, 64 * KiB, 192 * KiB, 1536 * KiB, 4 * MiB, 100 * MiB]) {
      const c = chunkingForPage(DEFAULT_CHUNKING, pageSize);
      expect(checkChunking(c, pageSize, 'test', 'BadInput')).toEqual(c);
    }
    expect(chunkLengths(bytesOf('random', 64 * KiB, 1), chunkingForPage(DEFAULT_CHUNKING, 64 * KiB), gear)).toEqual([64 * KiB]);
  });
});

describe('checkChunking', () => {
  const P = 4 * MiB;
  test('accepts both schemes of §15.2 and returns a clean copy', () => {
    expect(checkChunking({ scheme: 'page' }, P, 'x', 'Corrupt')).toEqual({ scheme: 'page' });
    const c = checkChunking(JSON.parse(JSON.stringify(DEFAULT_CHUNKING)), P, 'x', 'Corrupt');
    expect(c).toEqual(DEFAULT_CHUNKING);
    expect(checkChunking({ scheme: 'fastcdc-2016', min: 64, avg: 64, max: P, nc: 2 }, P, 'x', 'BadInput')).toMatchObject({ min: 64, max: P });
  });

  test.each<[string, unknown, string]>([
    ['not an object', 'fastcdc', 'the chunking "fastcdc" is not an object with a scheme'],
    ['null', null, 'the chunking null is not an object with a scheme'],
    ['an unknown scheme', { scheme: 'rabin' }, 'the chunking scheme "rabin" is not one this Pagewise knows ("page", "fastcdc-2016")'],
    ['page with parameters', { scheme: 'page', max: 5 }, 'the chunking scheme "page" takes no parameters, got ["max"]'],
    ['an unknown field', { ...DEFAULT_CHUNKING, window: 48 }, 'the chunking "fastcdc-2016" has unknown fields ["window"]'],
    ['a fractional size', { ...DEFAULT_CHUNKING, min: 1.5 }, "the chunking's min size 1.5 is not a positive whole number of bytes"],
    ['a size as a string', { ...DEFAULT_CHUNKING, max: '1MiB' }, `the chunking's max size "1MiB" is not a positive whole number of bytes`],
    ['nc other than 2', { ...DEFAULT_CHUNKING, nc: 3 }, "the chunking's normalization level nc is 3; §15.2 fixes it at 2"],
    ['avg not a power of two', { ...DEFAULT_CHUNKING, avg: 300_000 }, "the chunking's average size 300000 is not a power of two from 8 bytes to 512 MiB"],
    ['min below 64', { ...DEFAULT_CHUNKING, min: 32 }, 'the chunking needs 64 ≤ min ≤ avg ≤ max ≤ the page size (4194304), got min 32, avg 262144, max 1048576'],
    ['min above avg', { ...DEFAULT_CHUNKING, min: 512 * KiB }, 'the chunking needs 64 ≤ min ≤ avg ≤ max ≤ the page size (4194304), got min 524288, avg 262144, max 1048576'],
    ['max above the page', { ...DEFAULT_CHUNKING, max: 8 * MiB }, 'the chunking needs 64 ≤ min ≤ avg ≤ max ≤ the page size (4194304), got min 65536, avg 262144, max 8388608'],
  ])('%s is refused, Corrupt from a manifest and BadInput from a user, naming where', (_, value, why) => {
    expect(() => checkChunking(value, P, 'the manifest m of backup b', 'Corrupt')).toThrow(expect.objectContaining({ code: 'Corrupt', message: `the manifest m of backup b: ${why}` }));
    expect(() => checkChunking(value, P, '--chunking', 'BadInput')).toThrow(expect.objectContaining({ code: 'BadInput', message: `--chunking: ${why}` }));
  });

  test('a huge hostile value is cut short in the message', () => {
    expect(() => checkChunking({ scheme: 'x'.repeat(10_000) }, P, 'm', 'Corrupt')).toThrow(expect.objectContaining({ message: expect.stringMatching(/^m: the chunking scheme "x{39} is not one/) }));
  });
});

describe('sameChunking', () => {
  test('same scheme and parameters only; an extra field or another size is another chunking', () => {
    const c: Chunking = { ...DEFAULT_CHUNKING };
    expect(sameChunking({ ...DEFAULT_CHUNKING }, c)).toBe(true);
    expect(sameChunking({ scheme: 'page' }, { scheme: 'page' })).toBe(true);
    expect(sameChunking({ scheme: 'page' }, c)).toBe(false);
    expect(sameChunking({ ...DEFAULT_CHUNKING, avg: 128 * KiB }, c)).toBe(false);
    expect(sameChunking({ ...DEFAULT_CHUNKING, extra: 1 }, c)).toBe(false);
    expect(sameChunking({ scheme: 'page', max: 1 }, { scheme: 'page' })).toBe(false);
  });
});
