/** Compacted index generations `index/c/<gen>/` (docs/FORMAT.md §18.4, §18.5): shards, Bloom filter, covers; written, listed, read frame by frame. */
import { PagewiseError, throwIfAborted } from '../../errors';
import { BlobAlreadyExistsError, BlobNotFoundError, GetOptions } from '../store/blob-store';
import type { Vault } from '../vault';
import { MAX_ENVELOPE_BYTES, openJson, sealJson } from './envelope';
import type { Keyring } from './keyring';
import { DELTA_NAME_RE } from './names';
import { encodeIndexBlobPlain, FRAME_ENTRIES, FRAME_OVERHEAD, INDEX_ENTRY_BYTES, INDEX_HEADER_BYTES, indexBlobHeader, indexEntryAt, openIndexFrame, writeIndexEntry } from './pack-writer';
import type { IndexEntry } from './records';
import { seal, sealedHeader, unseal, SEALED_HEADER_BYTES, SEALED_TAG_BYTES } from './sealed-object';

export type { IndexEntry };

export interface ShardInfo {
  shard: string;
  name: string;
  entries: number;
  frames: number;
  bytes: number;
  /** hex of the first content ID of each frame */
  fences: string[];
  /** the key epoch the shard was written under (§18.4); the frames' AAD needs it without reading the header */
  epoch: number;
}

export interface IndexCovers {
  format: 'pagewise-index-covers';
  version: 2;
  gen: number;
  createdAt: string;
  deltas: string[];
  entries: number;
  shards: ShardInfo[];
  filter: { name: string; bits: number; hashes: number; bytes: number } | null;
  /** the key epoch of every shard and the filter */
  epoch: number;
}

export interface Generation {
  gen: number;
  covers: IndexCovers;
  coversCreatedMs: number;
  /** bytes of its blobs (shards, filter, covers) when this process wrote it; undefined when read */
  bytesWritten?: number;
}

/** Blob names of generations (§13). */
export const generationNames = {
  prefix: 'index/c/',
  dir: (gen: number) => `index/c/${String(gen).padStart(8, '0')}/`,
  shard: (gen: number, shard: number) => `index/c/${String(gen).padStart(8, '0')}/${shard.toString(16).padStart(2, '0')}.pwx`,
  filter: (gen: number) => `index/c/${String(gen).padStart(8, '0')}/filter.pwf`,
  covers: (gen: number) => `index/c/${String(gen).padStart(8, '0')}/covers.pwe`,
};
const GEN_BLOB_RE = /^index\/c\/(\d{8})\/(.+)$/;
const MAX_GEN = 99_999_999;

/** Bits per entry a filter is sized for (§18.5) and its hash count. */
export const FILTER_BITS_PER_ENTRY = 10;
export const FILTER_HASHES = 7;
const FILTER_MIN_BITS = 64;
const FILTER_MAX_BITS = 2 ** 31;
/** Bits a writer that was not told the count starts with (16 MiB; folded down at the end). */
const FILTER_DEFAULT_START_BITS = 2 ** 27;

/** Shard Puts a generation writer keeps in flight. */
const SHARD_PUTS_AT_ONCE = 2;

/** Bytes of a frame of `n` entries as stored. */
const frameBytes = (n: number) => FRAME_OVERHEAD + n * INDEX_ENTRY_BYTES;
const FULL_FRAME_BYTES = frameBytes(FRAME_ENTRIES);

/** The least power of two ≥ 10 bits per entry, within the format's bounds (§18.5). */
export function filterBitsFor(entries: number): number {
  let m = FILTER_MIN_BITS;
  while (m < entries * FILTER_BITS_PER_ENTRY && m < FILTER_MAX_BITS) m *= 2;
  return m;
}

/** A Bloom filter over content IDs (§18.5): positions are the IDs' own bytes, `m` a power of two. */
export class BloomFilter {
  constructor(
    readonly bits: number,
    readonly hashes: number,
    /** ⌈bits/8⌉ bytes */
    readonly bytes: Buffer,
  ) {}

  static empty(bits: number, hashes = FILTER_HASHES): BloomFilter {
    return new BloomFilter(bits, hashes, Buffer.alloc(bits / 8));
  }

  add(id: Buffer): void {
    for (let j = 0; j < this.hashes; j++) {
      const i = id.readUInt32LE(4 * j) % this.bits;
      this.bytes[i >>> 3] |= 1 << (i & 7);
    }
  }

  /** false: certainly not in the generation; true: maybe. */
  mayContain(id: Buffer): boolean {
    for (let j = 0; j < this.hashes; j++) {
      const i = id.readUInt32LE(4 * j) % this.bits;
      if ((this.bytes[i >>> 3] & (1 << (i & 7))) === 0) return false;
    }
    return true;
  }

  /** The same filter at `bits` (a smaller power of two): the halves OR-ed, as if built at that size. */
  fold(bits: number): BloomFilter {
    let bytes = this.bytes;
    while (bytes.length * 8 > bits) {
      const half = bytes.length / 2;
      const next = Buffer.from(bytes.subarray(0, half));
      for (let i = 0; i < half; i++) next[i] |= bytes[half + i];
      bytes = next;
    }
    return new BloomFilter(bits, this.hashes, bytes);
  }
}

// ---- writing

/**
 * Writes generation `gen` from `entries` ascending by content ID, one per ID: each shard when its last entry
 * has passed (one shard's entries in memory at a time, 64 bytes each), the filter, then covers last.
 * `expectedEntries` (an upper bound, e.g. a spill's record count) sizes the filter, folded to the real count
 * at the end; without it the filter starts at 2²⁷ bits. Fails TargetExists when the generation's names are
 * taken (another compaction of the same number): nothing is overwritten.
 */
export async function writeGeneration(vault: Vault, keyring: Keyring, gen: number, entries: AsyncIterable<IndexEntry>, coveredDeltas: string[], options: { expectedEntries?: number; abortSignal?: AbortSignal } = {}): Promise<Generation> {
  if (!Number.isInteger(gen) || gen < 1 || gen > MAX_GEN) throw new RangeError(`a generation is 1 to ${MAX_GEN}, not ${gen}`);
  for (const d of coveredDeltas) if (!DELTA_NAME_RE.test(d)) throw new RangeError(`not an index delta name: ${d.slice(0, 80)}`);
  let filter = BloomFilter.empty(options.expectedEntries !== undefined ? filterBitsFor(options.expectedEntries) : FILTER_DEFAULT_START_BITS);
  const shards: ShardInfo[] = [];
  let bytesWritten = 0;
  let total = 0;
  let shard = -1;
  let frames: Buffer[] = [];
  let fill = 0; // entries in the last frame buffer
  let last: Buffer | undefined;
  const inFlight: Promise<void>[] = [];

  const put = async (name: string, bytes: Buffer) => {
    try {
      await vault.putNew(name, bytes);
    } catch (err) {
      if (err instanceof BlobAlreadyExistsError) throw new PagewiseError('TargetExists', `${name} already exists: another compaction is writing index generation ${gen}; nothing was overwritten`, { cause: err });
      throw err;
    }
    bytesWritten += bytes.length;
  };
  const flushShard = async () => {
    if (shard < 0) return;
    const count = (frames.length - 1) * FRAME_ENTRIES + fill;
    const fences = frames.map((f) => f.toString('hex', 0, 32));
    const frameCount = frames.length;
    const plain = Buffer.concat(frames.map((f, k) => (k === frames.length - 1 ? f.subarray(0, fill * INDEX_ENTRY_BYTES) : f)));
    frames = []; // the joined copy is all that is needed now
    fill = 0;
    const name = generationNames.shard(gen, shard);
    const blob = encodeIndexBlobPlain(keyring, name, 1, plain);
    throwIfAborted(options.abortSignal, 'the index compaction was cancelled');
    // Two shard Puts in flight (the next shard is encoded meanwhile): memory is two sealed shards.
    const written = put(name, blob);
    written.catch(() => undefined); // awaited below
    inFlight.push(written);
    shards.push({ shard: shard.toString(16).padStart(2, '0'), name, entries: count, frames: frameCount, bytes: blob.length, fences, epoch: keyring.epoch });
    if (inFlight.length >= SHARD_PUTS_AT_ONCE) await inFlight.shift();
  };

  for await (const e of entries) {
    if (e.contentId.length !== 32) throw new RangeError('a content ID is 32 bytes');
    if (last && Buffer.compare(last, e.contentId) >= 0) throw new RangeError('generation entries must ascend strictly by content ID (one entry per ID)');
    last = e.contentId;
    if (e.contentId[0] !== shard) {
      await flushShard();
      shard = e.contentId[0];
    }
    if (frames.length === 0 || fill === FRAME_ENTRIES) {
      frames.push(Buffer.alloc(FRAME_ENTRIES * INDEX_ENTRY_BYTES));
      fill = 0;
    }
    writeIndexEntry(frames[frames.length - 1], fill * INDEX_ENTRY_BYTES, e);
    fill++;
    filter.add(e.contentId);
    total++;
  }
  await flushShard();
  for (const written of inFlight) await written;

  let filterInfo: IndexCovers['filter'] = null;
  if (total > 0) {
    const bits = filterBitsFor(total);
    if (bits < filter.bits) filter = filter.fold(bits);
    const name = generationNames.filter(gen);
    const blob = encodeFilter(keyring, name, filter);
    await put(name, blob);
    filterInfo = { name, bits: filter.bits, hashes: filter.hashes, bytes: blob.length };
  }
  const covers: IndexCovers = { format: 'pagewise-index-covers', version: 2, gen, createdAt: new Date().toISOString(), deltas: [...coveredDeltas].sort(), entries: total, shards, filter: filterInfo, epoch: keyring.epoch };
  const coversName = generationNames.covers(gen);
  throwIfAborted(options.abortSignal, 'the index compaction was cancelled');
  await put(coversName, sealJson(keyring, 5, coversName, covers));
  const createdOn = (await vault.properties(coversName)).createdOn;
  return { gen, covers, coversCreatedMs: createdOn?.getTime() ?? Date.now(), bytesWritten };
}

const FILTER_MAGIC = Buffer.from('PWF2');
const FILTER_PLAIN_HEADER = 8;

function encodeFilter(keyring: Keyring, name: string, f: BloomFilter): Buffer {
  const plain = Buffer.alloc(FILTER_PLAIN_HEADER + f.bytes.length);
  plain.writeUInt32LE(f.bits, 0);
  plain[4] = f.hashes;
  f.bytes.copy(plain, FILTER_PLAIN_HEADER);
  const header = sealedHeader(FILTER_MAGIC, keyring.epoch);
  return seal(keyring.key('index'), header, Buffer.concat([header, Buffer.from(name, 'utf8')]), plain);
}

/** Stored bytes of a filter of `bits` bits. */
const filterStoredBytes = (bits: number) => SEALED_HEADER_BYTES + FILTER_PLAIN_HEADER + bits / 8 + SEALED_TAG_BYTES;

// ---- listing and reading

/** Every generation number present (complete or not) with its blob names — prune deletes old/incomplete ones. */
export async function listGenerations(vault: Vault): Promise<{ gen: number; complete: boolean; blobs: string[] }[]> {
  const byGen = new Map<number, string[]>();
  for await (const name of vault.list(generationNames.prefix)) {
    const m = GEN_BLOB_RE.exec(name);
    if (!m) continue; // not under a generation directory: no generation's blob
    const gen = Number(m[1]);
    if (!byGen.has(gen)) byGen.set(gen, []);
    byGen.get(gen)!.push(name);
  }
  return [...byGen.entries()].sort((a, b) => a[0] - b[0]).map(([gen, blobs]) => ({ gen, complete: blobs.includes(generationNames.covers(gen)), blobs }));
}

/**
 * The newest complete generation (§18.3): the highest number whose covers exists; a covers that exists
 * but fails authentication or its checks is Corrupt (damage is not silently replaced by an older
 * generation). Undefined when no generation is complete.
 */
export async function newestGeneration(vault: Vault, keyring: Keyring): Promise<Generation | undefined> {
  return readNewestGeneration(vault, keyring, await completeGenerations(vault));
}

/** Generation numbers whose covers is listed, with its Creation-Time (one listing of index/c/). */
export async function completeGenerations(vault: Vault): Promise<Map<number, number>> {
  const covers = new Map<number, number>();
  for await (const b of vault.listDetailed(generationNames.prefix)) {
    const m = GEN_BLOB_RE.exec(b.name);
    if (m && b.name === generationNames.covers(Number(m[1]))) covers.set(Number(m[1]), b.createdOn.getTime());
  }
  return covers;
}

/** newestGeneration from a listing already taken (completeGenerations). */
export async function readNewestGeneration(vault: Vault, keyring: Keyring, covers: Map<number, number>): Promise<Generation | undefined> {
  for (const gen of [...covers.keys()].sort((a, b) => b - a)) {
    const name = generationNames.covers(gen);
    let stored: Buffer;
    try {
      stored = await vault.getBytes(name, 0, undefined, { maxBytes: MAX_ENVELOPE_BYTES });
    } catch (err) {
      if (err instanceof BlobNotFoundError) continue; // deleted since the listing (prune of an older generation)
      throw err;
    }
    const body = openJson<IndexCovers>(keyring, 5, name, stored);
    checkCovers(body, gen, name);
    keyring.requireEpoch(body.epoch, `the index generation ${generationNames.dir(gen)}`);
    return { gen, covers: body, coversCreatedMs: covers.get(gen)! };
  }
  return undefined;
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const HEX64_RE = /^[0-9a-f]{64}$/;

/** Every relation §18.4 states between a covers' fields, so nothing read later can be out of bounds. */
function checkCovers(c: IndexCovers, gen: number, name: string): void {
  const bad = (why: string) => new PagewiseError('Corrupt', `the index covers ${name} ${why}; run pagewise rebuild-index to write a new generation`);
  if (typeof c !== 'object' || c === null || c.format !== 'pagewise-index-covers' || c.version !== 2) throw bad('is not a version-2 Pagewise index covers');
  if (c.gen !== gen) throw bad(`names generation ${String(c.gen).slice(0, 20)}`);
  if (!isCount(c.entries) || !isCount(c.epoch) || c.epoch > 255 || typeof c.createdAt !== 'string') throw bad('lacks its entry count, epoch or time');
  if (!Array.isArray(c.deltas) || c.deltas.some((d) => typeof d !== 'string' || !DELTA_NAME_RE.test(d))) throw bad('lists something that is not an index delta name');
  if (!Array.isArray(c.shards) || c.shards.length > 256) throw bad('has no valid shard list');
  let sum = 0;
  let prev = -1;
  for (const s of c.shards) {
    const n = typeof s?.shard === 'string' && /^[0-9a-f]{2}$/.test(s.shard) ? parseInt(s.shard, 16) : -1;
    if (n <= prev) throw bad('has shards out of order or misnamed');
    prev = n;
    const what = `shard ${s.shard}`;
    if (s.name !== generationNames.shard(gen, n)) throw bad(`names ${what} ${String(s.name).slice(0, 80)}`);
    if (!isCount(s.entries) || s.entries < 1 || s.frames !== Math.ceil(s.entries / FRAME_ENTRIES) || s.bytes !== INDEX_HEADER_BYTES + s.frames * FRAME_OVERHEAD + s.entries * INDEX_ENTRY_BYTES) throw bad(`states impossible sizes for ${what}`);
    if (s.epoch !== c.epoch) throw bad(`gives ${what} another epoch`);
    if (!Array.isArray(s.fences) || s.fences.length !== s.frames) throw bad(`has ${Array.isArray(s.fences) ? s.fences.length : 0} fences for the ${s.frames} frames of ${what}`);
    for (let k = 0; k < s.fences.length; k++) {
      const f = s.fences[k];
      if (typeof f !== 'string' || !HEX64_RE.test(f) || !f.startsWith(s.shard) || (k > 0 && f <= s.fences[k - 1])) throw bad(`has a misplaced fence ${k} in ${what}`);
    }
    sum += s.entries;
  }
  if (sum !== c.entries) throw bad(`counts ${c.entries} entries, its shards ${sum}`);
  if (c.entries === 0 ? c.filter !== null : c.filter === null || typeof c.filter !== 'object') throw bad('has a filter that does not match its entry count');
  if (c.filter) {
    const f = c.filter;
    const powerOfTwo = isCount(f.bits) && f.bits >= FILTER_MIN_BITS && f.bits <= FILTER_MAX_BITS && (f.bits & (f.bits - 1)) === 0;
    if (f.name !== generationNames.filter(gen) || !powerOfTwo || !isCount(f.hashes) || f.hashes < 1 || f.hashes > 8 || f.bytes !== filterStoredBytes(f.bits)) throw bad('describes an impossible filter');
  }
}

function shardHeader(info: ShardInfo): Buffer {
  return indexBlobHeader(info.epoch, 1, info.entries);
}

const shardBad = (info: ShardInfo) => (why: string) => new PagewiseError('Corrupt', `the index shard ${info.name} ${why}; run pagewise rebuild-index to write a new generation`);

/** A range of an object its generation's covers names: a missing one is that generation's corruption (`bad`), not a plain not-found. */
async function getCovered(vault: Vault, name: string, bad: (why: string) => PagewiseError, offset: number, count?: number, opts?: GetOptions): Promise<Buffer> {
  try {
    return await vault.getBytes(name, offset, count, opts);
  } catch (err) {
    if (err instanceof BlobNotFoundError) throw bad('is missing from its complete generation');
    throw err;
  }
}

/** Frame `frame` of a shard as plaintext (64 bytes per entry): one range read, authenticated against the header its covers implies, its first entry the fence. */
export async function readShardFramePlain(vault: Vault, keyring: Keyring, info: ShardInfo, frame: number, fenceHex: string = info.fences[frame]): Promise<Buffer> {
  if (!Number.isInteger(frame) || frame < 0 || frame >= info.frames) throw new RangeError(`${info.name} has frames 0 to ${info.frames - 1}, not ${frame}`);
  const bad = shardBad(info);
  keyring.requireEpoch(info.epoch, `the index shard ${info.name}`);
  const n = Math.min(FRAME_ENTRIES, info.entries - frame * FRAME_ENTRIES);
  const stored = await getCovered(vault, info.name, bad, INDEX_HEADER_BYTES + frame * FULL_FRAME_BYTES, frameBytes(n));
  const plain = openIndexFrame(keyring.key('index', info.epoch), shardHeader(info), info.name, frame, stored, bad);
  if (plain.toString('hex', 0, 32) !== fenceHex) throw bad(`frame ${frame} does not begin with its fence`);
  return plain;
}

/** One frame's entries (range read + authenticate). */
export async function readShardFrame(vault: Vault, keyring: Keyring, info: ShardInfo, frame: number): Promise<IndexEntry[]> {
  const plain = await readShardFramePlain(vault, keyring, info, frame);
  return Array.from({ length: plain.length / INDEX_ENTRY_BYTES }, (_, k) => indexEntryAt(plain, k));
}

/** A whole shard (prune's gather). */
export async function readShard(vault: Vault, keyring: Keyring, info: ShardInfo): Promise<IndexEntry[]> {
  const plain = await readShardPlain(vault, keyring, info);
  return Array.from({ length: info.entries }, (_, k) => indexEntryAt(plain, k));
}

/** A whole shard's entries as plaintext (64 bytes each, ascending): one GET bounded by its covers' size, every frame authenticated and its fence checked. */
export async function readShardPlain(vault: Vault, keyring: Keyring, info: ShardInfo): Promise<Buffer> {
  const bad = shardBad(info);
  keyring.requireEpoch(info.epoch, `the index shard ${info.name}`);
  const stored = await getCovered(vault, info.name, bad, 0, undefined, { maxBytes: info.bytes });
  const header = shardHeader(info);
  if (stored.length !== info.bytes || !stored.subarray(0, INDEX_HEADER_BYTES).equals(header)) throw bad('does not match its covers (size or header)');
  const key = keyring.key('index', info.epoch);
  const out = Buffer.alloc(info.entries * INDEX_ENTRY_BYTES);
  for (let f = 0; f < info.frames; f++) {
    const n = Math.min(FRAME_ENTRIES, info.entries - f * FRAME_ENTRIES);
    const at = INDEX_HEADER_BYTES + f * FULL_FRAME_BYTES;
    const plain = openIndexFrame(key, header, info.name, f, stored.subarray(at, at + frameBytes(n)), bad);
    if (plain.toString('hex', 0, 32) !== info.fences[f]) throw bad(`frame ${f} does not begin with its fence`);
    const to = f * FRAME_ENTRIES * INDEX_ENTRY_BYTES;
    if (f > 0 && out.compare(plain, 0, 32, to - INDEX_ENTRY_BYTES, to - INDEX_ENTRY_BYTES + 32) >= 0) throw bad('has entries out of order');
    plain.copy(out, to);
  }
  return out;
}

/** The generation's filter (null for an empty generation): read bounded by its covers, authenticated, its bits and hashes as covers says. */
export async function readFilter(vault: Vault, keyring: Keyring, g: Generation): Promise<BloomFilter | null> {
  const info = g.covers.filter;
  if (!info) return null;
  const bad = (why: string) => new PagewiseError('Corrupt', `the index filter ${info.name} ${why}; run pagewise rebuild-index to write a new generation`);
  const stored = await getCovered(vault, info.name, bad, 0, undefined, { maxBytes: info.bytes });
  if (stored.length !== info.bytes || !stored.subarray(0, 4).equals(FILTER_MAGIC) || stored[4] !== 2 || stored[6] !== 0 || stored[7] !== 0) throw bad('is truncated or is not a Pagewise filter');
  if (stored[5] !== g.covers.epoch) throw bad(`is of key epoch ${stored[5]}, its covers says ${g.covers.epoch}`);
  let plain: Buffer;
  try {
    plain = unseal(keyring.key('index', stored[5]), stored, Buffer.concat([stored.subarray(0, SEALED_HEADER_BYTES), Buffer.from(info.name, 'utf8')]));
  } catch {
    throw bad('fails authentication (damaged, moved, or written under another vault key)');
  }
  if (plain.readUInt32LE(0) !== info.bits || plain[4] !== info.hashes || plain[5] !== 0 || plain[6] !== 0 || plain[7] !== 0) throw bad('does not match its covers');
  return new BloomFilter(info.bits, info.hashes, plain.subarray(FILTER_PLAIN_HEADER));
}

// ---- a reader's view of one generation

export interface GenerationViewStats {
  /** lookups the filter answered "no" */
  filterNo: number;
  /** frames fetched (cache misses) */
  framesRead: number;
}

/**
 * One generation as a lookup sees it: fences (32 bytes per frame), the filter when one is given, and an
 * LRU of frame plaintexts bounded by `frameCacheBytes`. Lookups of the same frame at once share one read.
 */
export class GenerationView {
  readonly stats: GenerationViewStats = { filterNo: 0, framesRead: 0 };
  private readonly fences = new Map<number, { info: ShardInfo; fences: Buffer }>();
  private readonly frames = new Map<string, Buffer>();
  private readonly loading = new Map<string, Promise<Buffer>>();
  private cachedBytes = 0;
  private readonly fenceBytes: number;
  /** The generation without its fences (held as bytes) and delta names. */
  readonly generation: Generation;

  constructor(
    private readonly vault: Vault,
    private readonly keyring: Keyring,
    generation: Generation,
    private readonly filter: BloomFilter | null,
    private readonly frameCacheBytes: number,
  ) {
    let bytes = 0;
    const shards: ShardInfo[] = [];
    for (const s of generation.covers.shards) {
      const fences = Buffer.from(s.fences.join(''), 'hex');
      const slim = { ...s, fences: [] };
      shards.push(slim);
      this.fences.set(parseInt(s.shard, 16), { info: slim, fences });
      bytes += fences.length;
    }
    this.fenceBytes = bytes;
    // Fences are held once, as bytes; delta names are the caller's to keep (or not): the covers held is slim.
    this.generation = { ...generation, covers: { ...generation.covers, deltas: [], shards } };
  }

  /** Bytes held: filter, fences, cached frames. */
  memoryBytes(): number {
    return (this.filter?.bytes.length ?? 0) + this.fenceBytes + this.cachedBytes;
  }

  /** The generation's entry for the content ID, if any. */
  async entryOf(id: Buffer): Promise<IndexEntry | undefined> {
    const shard = this.fences.get(id[0]);
    if (!shard) return undefined;
    if (this.filter && !this.filter.mayContain(id)) {
      this.stats.filterNo++;
      return undefined;
    }
    // The last frame whose fence ≤ id.
    let lo = 0;
    let hi = shard.info.frames;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (shard.fences.compare(id, 0, 32, mid * 32, mid * 32 + 32) <= 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0) return undefined; // before the shard's first entry
    const plain = await this.frame(shard.info, lo - 1, shard.fences.toString('hex', (lo - 1) * 32, lo * 32));
    const k = findIn(plain, id);
    return k === undefined ? undefined : indexEntryAt(plain, k);
  }

  private frame(info: ShardInfo, frame: number, fenceHex: string): Promise<Buffer> {
    const key = `${info.shard}:${frame}`;
    const cached = this.frames.get(key);
    if (cached) {
      this.frames.delete(key); // most recently used last
      this.frames.set(key, cached);
      return Promise.resolve(cached);
    }
    let pending = this.loading.get(key);
    if (!pending) {
      pending = readShardFramePlain(this.vault, this.keyring, info, frame, fenceHex)
        .then((plain) => {
          this.stats.framesRead++;
          this.remember(key, plain);
          return plain;
        })
        .finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private remember(key: string, plain: Buffer): void {
    if (plain.length > this.frameCacheBytes) return;
    while (this.cachedBytes + plain.length > this.frameCacheBytes) {
      const [oldest, bytes] = this.frames.entries().next().value as [string, Buffer];
      this.frames.delete(oldest);
      this.cachedBytes -= bytes.length;
    }
    this.frames.set(key, plain);
    this.cachedBytes += plain.length;
  }
}

/** Index of the entry with content ID `id` in sorted 64-byte entries, or undefined. */
export function findIn(plain: Buffer, id: Buffer): number | undefined {
  const lo = lowerBound(plain, id);
  return lo < plain.length / INDEX_ENTRY_BYTES && plain.compare(id, 0, 32, lo * INDEX_ENTRY_BYTES, lo * INDEX_ENTRY_BYTES + 32) === 0 ? lo : undefined;
}

/** Index of the first entry whose content ID is not below `id` in sorted 64-byte entries (their count if none). */
export function lowerBound(plain: Buffer, id: Buffer): number {
  let lo = 0;
  let hi = plain.length / INDEX_ENTRY_BYTES;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (plain.compare(id, 0, 32, mid * INDEX_ENTRY_BYTES, mid * INDEX_ENTRY_BYTES + 32) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
