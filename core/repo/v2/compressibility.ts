/** The writer's compressibility pre-check (§16): skips zstd on a chunk that sampled byte counts and a repeat probe show to be random. */

/** Below this a chunk always goes to the codec: the sample would be most of it. */
export const PRECHECK_MIN_BYTES = 16 * 1024;
/** Sampled regions per chunk (the first and the last included: a chunk straddling two kinds of data shows it at an end). */
const REGIONS = 32;
const REGION_BYTES = 256;
/**
 * Pairs of equal bytes in a region of 256 uniformly random bytes: 256·255/2/256 = 127.5 on average (σ ≈ 11).
 * Twice that is > 10 σ off for random data and far below text (thousands) or zeros (32,640).
 */
const RANDOM_PAIRS_LIMIT = 255;
/** The repeat probe: 4-byte fingerprints at every STRIDE-th offset; PROBES windows of STRIDE offsets look them up. */
const STRIDE = 128;
const PROBES = 8;
/** A fingerprint match counts when this many bytes agree (random data never does by chance). */
const MATCH_BYTES = 32;

export interface PrecheckCounts {
  /** Chunks that went to the codec. */
  tried: number;
  /** Chunks stored without trying the codec. */
  skipped: number;
}

/** Per thread; bench and tests read it. */
export const precheckCounts: PrecheckCounts = { tried: 0, skipped: 0 };

/**
 * Whether zstd may make `chunk` smaller. False only when every sampled region has the byte counts of
 * random data AND no sampled offset repeats earlier bytes of the chunk (zstd finds matches as far back as
 * the chunk's start; lz4 and byte counts do not: random bytes repeated every 64 KiB look random to both).
 * Costs about 1/50 of zstd's time on a random chunk (it reads ~3 % of it); false positives only cost the try.
 */
export function mayCompress(chunk: Uint8Array): boolean {
  const yes = chunk.length < PRECHECK_MIN_BYTES || !looksRandom(chunk) || hasRepeats(chunk);
  if (yes) precheckCounts.tried++;
  else precheckCounts.skipped++;
  return yes;
}

const counts = new Uint16Array(256);

function looksRandom(chunk: Uint8Array): boolean {
  const step = (chunk.length - REGION_BYTES) / (REGIONS - 1);
  for (let r = 0; r < REGIONS; r++) {
    const from = Math.floor(r * step);
    counts.fill(0);
    let pairs = 0;
    // Each byte adds the pairs it makes with the earlier equal bytes of the region.
    for (let i = from; i < from + REGION_BYTES; i++) pairs += counts[chunk[i]]++;
    if (pairs > RANDOM_PAIRS_LIMIT) return false;
  }
  return true;
}

let table = new Int32Array(0);

const readU32 = (b: Uint8Array, at: number) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;

function sameBytes(chunk: Uint8Array, a: number, b: number): boolean {
  if (b + MATCH_BYTES > chunk.length) return false;
  for (let i = 0; i < MATCH_BYTES; i++) if (chunk[a + i] !== chunk[b + i]) return false;
  return true;
}

/**
 * A repeat of period P covering a probe window shows there: exactly one of the window's STRIDE offsets x
 * has x − P on the fingerprint grid. Open addressing over a reused Int32Array (positions + 1; 0 = empty).
 */
function hasRepeats(chunk: Uint8Array): boolean {
  const last = chunk.length - MATCH_BYTES;
  const entries = Math.floor(last / STRIDE) + 1;
  let bits = 10;
  while (1 << bits < entries * 2) bits++;
  const size = 1 << bits;
  if (table.length < size) table = new Int32Array(size);
  const mask = size - 1;
  table.fill(0, 0, size);
  const slot = (v: number) => Math.imul(v, 0x9e3779b1) >>> (32 - bits); // the product's high bits: its low bits see only v's
  for (let at = 0; at <= last; at += STRIDE) {
    const v = readU32(chunk, at);
    let s = slot(v);
    // keep the first offset of a value: a repeat is looked up from later offsets
    while (table[s] !== 0 && readU32(chunk, table[s] - 1) !== v) s = (s + 1) & mask;
    if (table[s] === 0) table[s] = at + 1;
  }
  for (let p = 1; p <= PROBES; p++) {
    const from = Math.min(last - STRIDE, Math.floor((p * chunk.length) / (PROBES + 1)));
    for (let x = from; x < from + STRIDE; x++) {
      const v = readU32(chunk, x);
      for (let s = slot(v); table[s] !== 0; s = (s + 1) & mask) {
        const q = table[s] - 1;
        if (q < x && readU32(chunk, q) === v && sameBytes(chunk, q, x)) return true;
      }
    }
  }
  return false;
}
