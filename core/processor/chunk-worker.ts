/** The CPU work of the chunk pool (cutting, naming, compressing, sealing chunks), run in a piscina worker thread or, with 0 threads, in the caller's. */
import { createHmac } from 'node:crypto';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { isPagewiseError } from '../errors';
import { compressChunk, decodeBlock2Sync, sealBlock2Sync, type BlockKeys, type CodecSetting } from '../repo/v2/block';
import { requireEpochOf } from '../repo/v2/epoch';
import { chunkLengths, type Chunking } from '../repo/v2/chunker';
import { zstdReady } from '../repo/v2/zstd';

export const CONTENT_ID_BYTES = 32;

/** Cut `page` and name each chunk (HMAC(K_cid, bytes); a zero chunk gets no ID). */
export interface ChunkTask {
  op: 'chunk';
  page: Uint8Array;
  chunking: Chunking;
  gear: Uint32Array;
  cidKey: Uint8Array;
}
export interface ChunkResult {
  /** The task's page, handed back (a worker transfers it back: the caller can hand it on to an encode task). */
  page: Uint8Array;
  lengths: number[];
  /** 1 where the chunk is all zeros. */
  zero: Uint8Array;
  /** 32 bytes per chunk (zeros for a zero chunk). */
  ids: Uint8Array;
}

/** Compress and seal the chunks of `data` at `offsets` (`lengths`, `ids`: 32 bytes each). */
export interface EncodeTask {
  op: 'encode';
  data: Uint8Array;
  offsets: number[];
  lengths: number[];
  ids: Uint8Array;
  codec: CodecSetting;
  dataKey: Uint8Array;
  epoch: number;
}
export interface EncodeResult {
  blocks: Uint8Array[];
  /** The task's data, handed back (a worker transfers it back: its memory is reused for the next page). */
  data: Uint8Array;
}

/** Authenticate, decrypt, decode and check (§16) the blocks `data` holds back to back (`lengths`, `ids`: 32 bytes each). */
export interface DecodeTask {
  op: 'decode';
  data: Uint8Array;
  lengths: number[];
  ids: Uint8Array;
  /** Names each block in its error. */
  wheres: string[];
  maxLength: number;
  /** K(data, e) by epoch e, for the epochs the blocks name that the keyring holds; the highest it holds. */
  dataKeys: Array<Uint8Array | null>;
  heldEpoch: number;
  cidKey: Uint8Array;
}
export interface DecodeResult {
  /** The plaintexts back to back (one allocation: one transfer); a failed block has length 0 and an error. */
  plain: Uint8Array;
  lengths: number[];
  errors: Array<{ code: string; message: string } | null>;
}

export type PoolTask = ChunkTask | EncodeTask | DecodeTask;
export type PoolResult = ChunkResult | EncodeResult | DecodeResult;

const asBuffer = (u: Uint8Array) => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));

const ZERO = Buffer.alloc(64 * 1024);

function isAllZero(bytes: Buffer): boolean {
  for (let at = 0; at < bytes.length; at += ZERO.length) {
    const part = bytes.subarray(at, at + ZERO.length);
    if (!part.equals(ZERO.subarray(0, part.length))) return false;
  }
  return true;
}

function chunk(task: ChunkTask): ChunkResult {
  const page = asBuffer(task.page);
  const lengths = chunkLengths(page, task.chunking, task.gear);
  const key = asBuffer(task.cidKey);
  const zero = new Uint8Array(lengths.length);
  const ids = new Uint8Array(lengths.length * CONTENT_ID_BYTES);
  let at = 0;
  lengths.forEach((length, i) => {
    const bytes = page.subarray(at, at + length);
    at += length;
    if (isAllZero(bytes)) zero[i] = 1;
    else ids.set(createHmac('sha256', key).update(bytes).digest(), i * CONTENT_ID_BYTES);
  });
  return { page: task.page, lengths, zero, ids };
}

async function encode(task: EncodeTask): Promise<EncodeResult> {
  if (task.codec === 'zstd') await zstdReady();
  const data = asBuffer(task.data);
  const dataKey = asBuffer(task.dataKey);
  const blocks: Uint8Array[] = [];
  task.lengths.forEach((length, i) => {
    const at = task.offsets[i];
    const plain = data.subarray(at, at + length);
    const { codec, body } = compressChunk(plain, task.codec);
    blocks.push(sealBlock2Sync(codec, body, length, task.ids.subarray(i * CONTENT_ID_BYTES, (i + 1) * CONTENT_ID_BYTES), dataKey, task.epoch));
  });
  return { blocks, data: task.data };
}

/** The keys and bounds a decode needs, without the blocks (a task's, or the caller's in its own thread). */
export type DecodeKeys = Pick<DecodeTask, 'maxLength' | 'dataKeys' | 'heldEpoch' | 'cidKey'>;

/**
 * Each block decoded (decodeBlock2Sync: authenticated, decrypted, decoded, length and content ID checked):
 * its plaintext, or the error as code and message (error classes do not cross threads). After zstdReady().
 */
export function decodeEach(blocks: Array<{ block: Buffer; contentId: Buffer; where: string }>, k: DecodeKeys): Array<Buffer | { code: string; message: string }> {
  const keys: BlockKeys = {
    dataKey: (epoch, what) => {
      requireEpochOf(k.heldEpoch, epoch, what);
      const key = k.dataKeys[epoch];
      if (!key) throw new Error(`the decode task lacks the key of epoch ${epoch}`);
      return asBuffer(key);
    },
    contentIdKey: asBuffer(k.cidKey),
  };
  return blocks.map(({ block, contentId, where }) => {
    try {
      return decodeBlock2Sync(block, contentId, keys, where, k.maxLength);
    } catch (err) {
      return isPagewiseError(err) ? { code: err.code, message: err.message } : { code: 'Corrupt', message: `${where}: ${(err as Error).message}` };
    }
  });
}

async function decode(task: DecodeTask): Promise<DecodeResult> {
  await zstdReady();
  const data = asBuffer(task.data);
  let at = 0;
  const blocks = task.lengths.map((length, i) => {
    const block = data.subarray(at, at + length);
    at += length;
    return { block, contentId: asBuffer(task.ids.subarray(i * CONTENT_ID_BYTES, (i + 1) * CONTENT_ID_BYTES)), where: task.wheres[i] };
  });
  const plains: Buffer[] = [];
  const errors: DecodeResult['errors'] = [];
  for (const out of decodeEach(blocks, task)) {
    plains.push(Buffer.isBuffer(out) ? out : EMPTY);
    errors.push(Buffer.isBuffer(out) ? null : out);
  }
  // One allocation for the plaintexts: one transfer back to the caller's thread.
  const plain = new Uint8Array(plains.reduce((sum, p) => sum + p.length, 0));
  let to = 0;
  for (const p of plains) {
    plain.set(p, to);
    to += p.length;
  }
  return { plain, lengths: plains.map((p) => p.length), errors };
}

const EMPTY = Buffer.alloc(0);

/** The work itself, the same in a worker and in the calling thread. */
export async function runPoolTask(task: PoolTask): Promise<PoolResult> {
  if (task.op === 'chunk') return chunk(task);
  if (task.op === 'encode') return encode(task);
  if (task.op === 'decode') return decode(task);
  throw new Error(`unknown chunk-pool task ${JSON.stringify((task as { op?: unknown }).op)}`);
}

/** The worker thread's entry: results go back transferred (each block, the ID array and the task's page own their memory). */
export default async function handle(task: PoolTask): Promise<unknown> {
  const result = await runPoolTask(task);
  const buffers = 'blocks' in result ? [...result.blocks.map((b) => b.buffer), result.data.buffer] : 'plain' in result ? [result.plain.buffer] : [result.ids.buffer, result.zero.buffer, result.page.buffer];
  // Shared memory (a page the caller shares) goes back as it came: it cannot be transferred, only shared.
  const transfer = buffers.filter((b) => Object.prototype.toString.call(b) !== '[object SharedArrayBuffer]');
  return move({ [transferableSymbol]: transfer, [valueSymbol]: result } as never);
}
