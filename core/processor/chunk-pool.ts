/** The writer's chunk pool (main-thread side): chunking, content IDs, compression and sealing of pages in piscina worker threads. */
import * as os from 'node:os';
import * as path from 'node:path';
import { Piscina } from 'piscina';
import { PagewiseError, type PagewiseErrorCode } from '../errors';
import { DEFAULT_CODEC, type CodecSetting } from '../repo/v2/block';
import { gearTable, type Chunking } from '../repo/v2/chunker';
import type { Keyring } from '../repo/v2/keyring';
import { MAX_PAGE_SIZE } from '../limits';
import { zstdBinding, zstdReady } from '../repo/v2/zstd';
import { CONTENT_ID_BYTES, decodeEach, runPoolTask, type ChunkResult, type DecodeKeys, type ChunkTask, type DecodeResult, type DecodeTask, type EncodeResult, type EncodeTask, type PoolTask } from './chunk-worker';

export { DEFAULT_CODEC, type CodecSetting };

export interface PageChunk {
  offset: number;
  length: number;
  /** HMAC(K_cid, bytes); null for a zero chunk */
  contentId: Buffer | null;
}

export interface ChunkPool {
  /** Cuts the page (chunkLengths) and names each chunk, zero chunks null — in a worker thread. */
  chunkPage(page: Buffer, chunking: Chunking): Promise<PageChunk[]>;
  /**
   * chunkPage, and the page's bytes as the pool holds them after (`bytes`: the copy that went to the worker,
   * or `page` itself with no threads). Handing `bytes` to encodeChunks with `handOver` spares the copy there.
   */
  cutPage(page: Buffer, chunking: Chunking): Promise<CutPage>;
  /**
   * Compresses (§16 writer rule: each chunk with `codec`, stored when the output is not smaller) and seals
   * each given non-zero chunk of `page` as a §16 block — in a worker. Returns the blocks in the order given.
   * With `handOver`, `page` must be the `bytes` of a cutPage: its memory moves to the worker (no copy) and
   * the caller does not read it after.
   */
  encodeChunks(page: Buffer, chunks: PageChunk[], codec: CodecSetting, options?: { handOver?: boolean }): Promise<Buffer[]>;
  /**
   * decodeBlock2 of each block (authenticated, decrypted, decoded, length and content ID checked) — in a
   * worker, one task for all of them (a reader gives the blocks of one ranged GET). Each result is the
   * plaintext or the PagewiseError decodeBlock2 would throw (Corrupt naming `where`, WrongKey).
   */
  decodeBlocks(blocks: BlockToDecode[], maxLength?: number): Promise<Array<Buffer | PagewiseError>>;
}

export interface CutPage {
  chunks: PageChunk[];
  /** The page's bytes, for encodeChunks (see cutPage). */
  bytes: Buffer;
}

export interface BlockToDecode {
  block: Buffer;
  contentId: Buffer;
  /** Names the block in an error (e.g. "page 17 of backup x, chunk 2 (pack p)"). */
  where: string;
}

const THREADS_VARIABLE = 'PAGEWISE_WORKER_THREADS';
const MAX_THREADS = 64;

/**
 * Threads: env PAGEWISE_WORKER_THREADS; 0 = run in the calling thread (same code). Default: compiled
 * (dist/, the bench's build) min(2, os.availableParallelism()); from the TypeScript sources (ts-node, jest:
 * development, tests, the demo) 0, because there every worker thread loads ts-node and the TypeScript
 * compiler again (~1 s of CPU each, measured), which costs a short CLI run more than the thread saves.
 */
export function workerThreads(): number {
  const text = process.env[THREADS_VARIABLE];
  // Every pool call asks: the variable is parsed again only when its text changed (tests change it).
  if (parsedThreads && parsedThreads.text === text) return parsedThreads.threads;
  let threads: number;
  if (text === undefined || text.trim() === '') threads = runningFromSources() ? 0 : Math.min(2, os.availableParallelism());
  else if (!/^\s*\d{1,3}\s*$/.test(text) || Number(text) > MAX_THREADS) {
    throw new PagewiseError('BadInput', `${THREADS_VARIABLE} must be a whole number of worker threads from 0 to ${MAX_THREADS}, got ${JSON.stringify(text.slice(0, 20))}`);
  } else threads = Number(text);
  parsedThreads = { text, threads };
  return threads;
}

let parsedThreads: { text: string | undefined; threads: number } | undefined;

/** Cores at most of a machine where decoding stays in the calling thread unless PAGEWISE_WORKER_THREADS says otherwise. */
export const IN_THREAD_DECODE_CORES = 2;

/**
 * Threads a decode uses (restore, verify, file restore: decrypt, decompress, content-ID check):
 * PAGEWISE_WORKER_THREADS when it is set; else none on a machine of ≤ IN_THREAD_DECODE_CORES cores, and
 * workerThreads() on a larger one. Measured on 2 cores (bench/results/restore-threads-2026-12-02.md): a
 * 256 MiB restore of the built engine used 1.79 s of client CPU decoding in its own thread against 2.15 s
 * in 2 worker threads (medians of 6; each task's blocks copied in, its plaintext back: more memory churn,
 * more collection), and took 3.83 s against 4.07 s. Decoding is light next to encoding (~160 MiB/s a
 * core), so on a small machine the threads add work and take the cores the thread moving the bytes needs.
 * Not measured on more cores: there the default stays the threads.
 */
export function decodeThreads(): number {
  const workers = workerThreads(); // checks the variable
  const text = process.env[THREADS_VARIABLE];
  return decodeThreadsFor({ explicit: text !== undefined && text.trim() !== '', cores: os.availableParallelism(), workers });
}

/** decodeThreads' rule: the variable's threads when it is set, else none on a small machine, else the workers. */
export function decodeThreadsFor(o: { explicit: boolean; cores: number; workers: number }): number {
  return o.explicit || o.cores > IN_THREAD_DECODE_CORES ? o.workers : 0;
}

/** Whether this module runs as TypeScript source (ts-node, jest) rather than compiled JavaScript. */
export function runningFromSources(): boolean {
  return path.extname(__filename) === '.ts';
}

/**
 * Under ts-node or jest this file is `.ts`, and a worker thread starts without their hooks: it registers
 * ts-node itself (transpile only, this repository's tsconfig). Compiled (dist/, the bench's build) it
 * loads the `.js` sibling on bare node.
 */
function workerFile(): { filename: string; execArgv: string[]; env: NodeJS.ProcessEnv } {
  const ext = path.extname(__filename);
  const filename = path.join(__dirname, `chunk-worker${ext}`);
  if (ext !== '.ts') return { filename, execArgv: [], env: process.env };
  return { filename, execArgv: ['-r', require.resolve('ts-node/register/transpile-only')], env: { ...process.env, TS_NODE_PROJECT: path.resolve(__dirname, '..', '..', 'tsconfig.json') } };
}

/** One pool per thread count for the whole process (a test may change the count), made on first use. */
const pools = new Map<number, Piscina<PoolTask, unknown>>();

function poolOf(threads: number): Piscina<PoolTask, unknown> {
  let pool = pools.get(threads);
  if (!pool) {
    zstdBinding(); // the workers load the same binding; the main thread says (once) if it is the fallback
    const { filename, execArgv, env } = workerFile();
    // All threads start with the pool and stay (with minThreads 0 a first task under jest was seen waiting
    // past 15 s for its worker); idle ones are unref'd by piscina, so they never keep a process alive.
    // No Atomics.wait between tasks: it freezes a worker's event loop, and a task awaits (zstd's WebAssembly load).
    pool = new Piscina<PoolTask, unknown>({ filename, execArgv, env, minThreads: threads, maxThreads: threads, useAtomics: false });
    pools.set(threads, pool);
  }
  return pool;
}

/** Runs a task in a worker (its buffers transferred: copies, or memory handed over) or, with 0 threads, here. */
async function run<R>(task: PoolTask, transfer: ArrayBuffer[], threads = workerThreads()): Promise<R> {
  if (threads === 0) return (await runPoolTask(task)) as R;
  return (await poolOf(threads).run(task, { transferList: transfer })) as R;
}

/**
 * Page-sized shared memory (SharedArrayBuffer) that came back from encode tasks, reused for the next page's
 * copy. Shared memory is seen by the worker where it is: no transfer there and back (each transfer back is
 * new external memory to V8, and that churn made it collect every few pages), and no fresh 4 MiB per page.
 * A page's memory is used by one task at a time (cut, then encode) and spared only when its encode is back.
 */
const spares: SharedArrayBuffer[] = [];
const MAX_SPARES = 4;

/** Whether memory is shared (realm-independent: memory back from a worker is made by another realm's constructor under jest). */
function isShared(memory: ArrayBufferLike): memory is SharedArrayBuffer {
  return Object.prototype.toString.call(memory) === '[object SharedArrayBuffer]';
}

/** `length` bytes of shared memory: a spare of about that size, or fresh. */
function sharedMemory(length: number): Uint8Array {
  const k = spares.findIndex((b) => b.byteLength >= length && b.byteLength <= 2 * length);
  return k >= 0 ? new Uint8Array(spares.splice(k, 1)[0], 0, length) : new Uint8Array(new SharedArrayBuffer(length));
}

/** A copy of `bytes` in shared memory of its own (a spare or a fresh one; no pooled slab goes to a worker). */
function copyOf(bytes: Uint8Array): Uint8Array {
  const copy = sharedMemory(bytes.length);
  copy.set(bytes);
  return copy;
}

/** Keeps the memory of `bytes` (a task's, back from a worker) for a later copy; the oldest spare goes when there are enough. */
function spare(bytes: Uint8Array): void {
  if (!isShared(bytes.buffer) || bytes.buffer.byteLength === 0) return;
  if (spares.length >= MAX_SPARES) spares.shift();
  spares.push(bytes.buffer);
}

/** The memory of pages cutPage gave back from a worker: only these may be handed over to an encode task (never a caller's or a pooled slab). */
const handOverable = new WeakSet<ArrayBufferLike>();
/**
 * Pages handed over: their shared memory is reused for later pages once the encode is back, so the caller's
 * view of it must not be read again (transferred memory used to be detached, and a second use failed; this
 * keeps that failure loud instead of reading another page's bytes).
 */
const handedOver = new WeakSet<ArrayBufferLike>();

interface PoolKeys {
  cidKey: Uint8Array;
  gear: Uint32Array;
  dataKey: Uint8Array;
  epoch: number;
}

const poolsByKeyring = new WeakMap<Keyring, ChunkPool>();

/** The pool bound to a keyring's keys (K_cid, K_name, K(data, epoch)); keys go to workers with each call (small). */
export function chunkPoolFor(keyring: Keyring): ChunkPool {
  let bound = poolsByKeyring.get(keyring);
  if (!bound) {
    const keys: PoolKeys = { cidKey: keyring.key('content-id'), gear: gearTable(keyring.key('name')), dataKey: keyring.key('data'), epoch: keyring.epoch };
    bound = {
      chunkPage: async (page, chunking) => (await cutPage(keys, page, chunking)).chunks,
      cutPage: (page, chunking) => cutPage(keys, page, chunking),
      encodeChunks: (page, chunks, codec, options) => encodeChunks(keys, page, chunks, codec, options?.handOver === true),
      decodeBlocks: (blocks, maxLength) => decodeBlocks(keyring, keys, blocks, maxLength),
    };
    poolsByKeyring.set(keyring, bound);
  }
  return bound;
}

async function cutPage(keys: PoolKeys, page: Buffer, chunking: Chunking): Promise<CutPage> {
  // In this thread the task reads the caller's page (held until the promise settles); a worker gets a copy.
  const threads = workerThreads();
  const sent = threads > 0 ? copyOf(page) : page;
  const task: ChunkTask = { op: 'chunk', page: sent, chunking, gear: keys.gear, cidKey: keys.cidKey };
  const { lengths, zero, ids, page: back } = await run<ChunkResult>(task, [], threads); // shared memory: not transferred
  const chunks: PageChunk[] = [];
  let offset = 0;
  lengths.forEach((length, i) => {
    chunks.push({ offset, length, contentId: zero[i] ? null : Buffer.from(ids.buffer, ids.byteOffset + i * CONTENT_ID_BYTES, CONTENT_ID_BYTES) });
    offset += length;
  });
  if (offset !== page.length) throw new Error(`the chunker covered ${offset} of a page's ${page.length} bytes`);
  if (back === page) return { chunks, bytes: page };
  handOverable.add(back.buffer);
  return { chunks, bytes: Buffer.from(back.buffer, back.byteOffset, back.byteLength) };
}

async function encodeChunks(keys: PoolKeys, page: Buffer, chunks: PageChunk[], codec: CodecSetting, handOver: boolean): Promise<Buffer[]> {
  if (chunks.length === 0) return [];
  let total = 0;
  for (const c of chunks) {
    if (c.contentId === null || c.contentId.length !== CONTENT_ID_BYTES) throw new RangeError(`encodeChunks takes non-zero chunks with a content ID; the chunk at ${c.offset} has none`);
    if (!(Number.isSafeInteger(c.offset) && Number.isSafeInteger(c.length) && c.offset >= 0 && c.length > 0 && c.offset + c.length <= page.length)) {
      throw new RangeError(`the chunk at ${c.offset} of ${c.length} bytes lies outside the page of ${page.length} bytes`);
    }
    total += c.length;
  }
  const ids = new Uint8Array(chunks.length * CONTENT_ID_BYTES);
  chunks.forEach((c, i) => ids.set(c.contentId as Buffer, i * CONTENT_ID_BYTES));
  // The chunks are read where they are: in this thread, in a page handed over (its memory moves to the
  // worker), else only the chunks to store are copied for the worker, not the whole page.
  if (handedOver.has(page.buffer)) throw new RangeError('encodeChunks was given a page already handed over to an earlier encode: its memory is the pool\'s again');
  const threads = workerThreads();
  const inPlace = threads === 0 || (handOver && handOverable.delete(page.buffer));
  if (inPlace && threads > 0) handedOver.add(page.buffer);
  let data: Uint8Array = page;
  let offsets = chunks.map((c) => c.offset);
  if (!inPlace) {
    data = sharedMemory(total);
    offsets = [];
    let at = 0;
    for (const c of chunks) {
      data.set(page.subarray(c.offset, c.offset + c.length), at);
      offsets.push(at);
      at += c.length;
    }
  }
  const task: EncodeTask = { op: 'encode', data, offsets, lengths: chunks.map((c) => c.length), ids, codec, dataKey: keys.dataKey, epoch: keys.epoch };
  const { blocks, data: back } = await run<EncodeResult>(task, isShared(data.buffer) ? [ids.buffer] : [data.buffer as ArrayBuffer, ids.buffer], threads);
  if (threads > 0) spare(back);
  return blocks.map((b) => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
}

async function decodeBlocks(keyring: Keyring, keys: PoolKeys, blocks: BlockToDecode[], maxLength = MAX_PAGE_SIZE): Promise<Array<Buffer | PagewiseError>> {
  if (blocks.length === 0) return [];
  // K(data, e) of each epoch the blocks name (byte 5, §16) that the keyring holds; the worker checks the rest.
  const dataKeys: Array<Uint8Array | null> = [];
  for (const { block } of blocks) {
    const e = block.length > 5 ? block[5] : 0;
    if (e <= keyring.epoch && !dataKeys[e]) dataKeys[e] = keyring.key('data', e);
  }
  for (let e = 0; e < dataKeys.length; e++) dataKeys[e] ??= null;
  const decodeKeys: DecodeKeys = { maxLength, dataKeys, heldEpoch: keyring.epoch, cidKey: keys.cidKey };
  const threads = decodeThreads();
  if (threads === 0) {
    // In this thread the blocks are read where they lie and each plaintext stays its own buffer: no task copies.
    for (const b of blocks) if (b.contentId.length !== CONTENT_ID_BYTES) throw new RangeError(`decodeBlocks takes 32-byte content IDs; ${b.where} has ${b.contentId.length}`);
    await zstdReady();
    return decodeEach(blocks, decodeKeys).map((out) => (Buffer.isBuffer(out) ? out : new PagewiseError(out.code as PagewiseErrorCode, out.message)));
  }
  const data = new Uint8Array(blocks.reduce((sum, b) => sum + b.block.length, 0));
  const ids = new Uint8Array(blocks.length * CONTENT_ID_BYTES);
  let at = 0;
  blocks.forEach((b, i) => {
    if (b.contentId.length !== CONTENT_ID_BYTES) throw new RangeError(`decodeBlocks takes 32-byte content IDs; ${b.where} has ${b.contentId.length}`);
    data.set(b.block, at);
    ids.set(b.contentId, i * CONTENT_ID_BYTES);
    at += b.block.length;
  });
  const task: DecodeTask = { op: 'decode', data, lengths: blocks.map((b) => b.block.length), ids, wheres: blocks.map((b) => b.where), ...decodeKeys };
  const { plain, lengths, errors } = await run<DecodeResult>(task, [data.buffer, ids.buffer], threads);
  const all = Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  let from = 0;
  return lengths.map((length, i) => {
    const error = errors[i];
    const out = error ? new PagewiseError(error.code as PagewiseErrorCode, error.message) : all.subarray(from, from + length);
    from += length;
    return out;
  });
}

/** Ends every worker thread (tests, CLI exit); the next call starts new ones. Idle workers never keep the process alive anyway. */
export async function closeChunkPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.destroy()));
}
