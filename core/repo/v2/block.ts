/** The version-2 block `PWB2` (docs/FORMAT.md §16): one chunk compressed, then sealed under a per-block key. */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomFillSync } from 'node:crypto';
import { compressSync, uncompressSync } from 'lz4-napi';
import { PagewiseError } from '../../errors';
import { MAX_PAGE_SIZE } from '../../limits';
import { aesGcmOpen } from '../../processor/async-crypto';
import type { Keyring } from './keyring';
import { mayCompress } from './compressibility';
import { zstdDecodeSync, zstdEncodeSync, zstdReady } from './zstd';

const MAGIC = Buffer.from('PWB2');
const HEADER_BYTES = 36;
const INNER_BYTES = 8;
const TAG_BYTES = 16;
/** 60 bytes per block (§16): header 36, codec and length 8 (inside the ciphertext), GCM tag 16. */
export const BLOCK2_OVERHEAD = HEADER_BYTES + INNER_BYTES + TAG_BYTES;
/** The largest block of any vault: a 100 MiB page plus the overhead. */
export const MAX_BLOCK2_BYTES = MAX_PAGE_SIZE + BLOCK2_OVERHEAD;

export enum Codec2 {
  Stored = 0,
  Lz4 = 1,
  Zstd = 2,
}

/** The writer's codec setting (§16): what it tries; a chunk whose output is not smaller is stored anyway. */
export type CodecSetting = 'zstd' | 'lz4' | 'stored';
/** §24.5: zstd (level ZSTD_LEVEL), measured in bench/results/codec-candidates-2026-12-01.md. */
export const DEFAULT_CODEC: CodecSetting = 'zstd';

/** Kb = HKDF(K(data, e), salt, "pagewise/v2/block"): one key per block (§14.1). */
function blockKey(dataKey: Buffer, salt: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, salt, 'pagewise/v2/block', 32));
}

/**
 * The codec output of one chunk under §16's writer rule: `setting` tried on the chunk itself, kept only when
 * smaller, else stored. Per chunk, not per page: a page's middle says nothing about its other chunks, and
 * zstd rejects incompressible input about as fast as an lz4 probe of it (bench/results/ratio-2026-12-01.md).
 * zstd is tried only on a chunk the pre-check (./compressibility.ts) does not show to be random: zstd
 * spends as long rejecting a random chunk as compressing text, lz4 needs no pre-check.
 * Synchronous: zstd needs zstdReady() first (worker threads await it once).
 */
export function compressChunk(plain: Buffer, setting: CodecSetting): { codec: Codec2; body: Buffer } {
  if (setting === 'stored' || plain.length === 0) return { codec: Codec2.Stored, body: plain };
  if (setting === 'zstd' && !mayCompress(plain)) return { codec: Codec2.Stored, body: plain };
  const body = setting === 'zstd' ? zstdEncodeSync(plain) : compressSync(plain);
  return body.length < plain.length ? { codec: setting === 'zstd' ? Codec2.Zstd : Codec2.Lz4, body } : { codec: Codec2.Stored, body: plain };
}

/**
 * Seals a codec output as a block under K(data, `epoch`) = `dataKey`, synchronously (worker threads; the
 * async callers below use it too). The block is one fresh, exactly sized allocation, so it can be
 * transferred between threads whole.
 */
export function sealBlock2Sync(codec: Codec2, body: Uint8Array, plainLength: number, contentId: Uint8Array, dataKey: Buffer, epoch: number): Buffer {
  const out = Buffer.allocUnsafeSlow(BLOCK2_OVERHEAD + body.length);
  const header = out.subarray(0, HEADER_BYTES);
  MAGIC.copy(header, 0);
  header[4] = 2;
  header[5] = epoch;
  header[6] = 0;
  header[7] = 0;
  randomFillSync(header, 8, 28); // salt (16) and nonce (12)
  const inner = Buffer.alloc(INNER_BYTES);
  inner[0] = codec;
  inner.writeUInt32LE(plainLength, 4);
  const cipher = createCipheriv('aes-256-gcm', blockKey(dataKey, header.subarray(8, 24)), header.subarray(24, 36), { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.concat([header, contentId]));
  let at = HEADER_BYTES;
  for (const part of [cipher.update(inner), cipher.update(body), cipher.final(), cipher.getAuthTag()]) at += part.copy(out, at);
  if (at !== out.length) throw new Error(`a sealed block came out ${at} bytes, expected ${out.length}`);
  return out;
}

/** Compresses (§16 writer rule, the default codec) and seals one chunk. */
export async function encodeBlock2(plain: Buffer, contentId: Buffer, keyring: Keyring): Promise<Buffer> {
  if (DEFAULT_CODEC === 'zstd') await zstdReady();
  const { codec, body } = compressChunk(plain, DEFAULT_CODEC);
  return sealBlock2Sync(codec, body, plain.length, contentId, keyring.key('data'), keyring.epoch);
}

/** Seals an already encoded chunk (codec output) as a block; exported so tests can make blocks of any codec. */
export async function sealBlock2(codec: Codec2, body: Buffer, plainLength: number, contentId: Buffer, keyring: Keyring): Promise<Buffer> {
  return sealBlock2Sync(codec, body, plainLength, contentId, keyring.key('data'), keyring.epoch);
}

/** What decoding a block needs of a keyring: K(data, e) (throwing WrongKey for an epoch not held) and K_cid. */
export interface BlockKeys {
  dataKey(epoch: number, what: string): Buffer;
  contentIdKey: Buffer;
}

type Bad = (why: string) => PagewiseError;

/** §16's checks of the clear header; the block's limit on plaintext bytes. */
function checkHeader(stored: Buffer, bad: Bad, maxLength: number): number {
  const limit = Math.min(maxLength, MAX_PAGE_SIZE);
  if (stored.length < BLOCK2_OVERHEAD || !stored.subarray(0, 4).equals(MAGIC)) throw bad('the block is truncated or is not a version-2 Pagewise block');
  if (stored.length > limit + BLOCK2_OVERHEAD) throw bad(`the block is ${stored.length} bytes, more than a chunk of at most ${limit} bytes is stored as`);
  if (stored[4] !== 2) throw bad(`unknown block version ${stored[4]}`);
  if (stored[6] !== 0 || stored[7] !== 0) throw bad('the block has non-zero reserved bytes');
  return limit;
}

/** The plaintext of the decrypted inner bytes (codec, reserved, length, codec output), length checked. Synchronous: zstd after zstdReady(). */
function decodeInner(inner: Buffer, bad: Bad, limit: number): Buffer {
  const codec = inner[0] as Codec2;
  const plainLength = inner.readUInt32LE(4);
  if (inner[1] !== 0 || inner[2] !== 0 || inner[3] !== 0) throw bad('the block has non-zero reserved bytes');
  if (plainLength > limit) throw bad(`the block claims ${plainLength} bytes, more than ${limit}`);
  const body = inner.subarray(INNER_BYTES);
  let plain: Buffer;
  if (codec === Codec2.Stored) plain = body;
  else if (codec === Codec2.Lz4) {
    // lz4-napi allocates what the prefix says: it must be the checked length first.
    if (body.length < 4 || body.readUInt32LE(0) !== plainLength) throw bad('the lz4 block states another length than the block');
    try {
      plain = uncompressSync(body);
    } catch {
      throw bad('the block does not decompress (lz4)');
    }
  } else if (codec === Codec2.Zstd) {
    try {
      plain = zstdDecodeSync(body, plainLength);
    } catch (err) {
      throw bad(`the block does not decompress (zstd: ${(err as Error).message})`);
    }
  } else throw bad(`unknown codec ${codec}`);
  if (plain.length !== plainLength) throw bad(`decoded ${plain.length} bytes, expected ${plainLength}`);
  return plain;
}

const FAILS_AUTHENTICATION = 'the block fails authentication (damaged, or not the chunk its content ID names)';
const NOT_ITS_CHUNK = 'the chunk does not match its content ID';

/**
 * Authenticates, decrypts and decodes a block that should hold the chunk `contentId`; checks its
 * length and its content ID. `where` names it in errors (e.g. "page 17 of backup x"); `maxLength`
 * bounds the plaintext (the backup's page size), else 100 MiB. The crypto runs on libuv's pool.
 */
export async function decodeBlock2(stored: Buffer, contentId: Buffer, keyring: Keyring, where: string, maxLength = MAX_PAGE_SIZE): Promise<Buffer> {
  const bad: Bad = (why) => new PagewiseError('Corrupt', `${where}: ${why}`);
  const limit = checkHeader(stored, bad, maxLength);
  keyring.requireEpoch(stored[5], `${where}: the block`);
  const header = stored.subarray(0, HEADER_BYTES);
  let inner: Buffer;
  try {
    inner = await aesGcmOpen(blockKey(keyring.key('data', stored[5]), header.subarray(8, 24)), header.subarray(24, 36), Buffer.concat([header, contentId]), stored.subarray(HEADER_BYTES));
  } catch {
    throw bad(FAILS_AUTHENTICATION);
  }
  if (inner[0] === Codec2.Zstd) await zstdReady();
  const plain = decodeInner(inner, bad, limit);
  if (!(await keyring.contentIdAsync(plain)).equals(contentId)) throw bad(NOT_ITS_CHUNK);
  return plain;
}

/** decodeBlock2, synchronously, with the keys alone (the chunk pool's worker threads; zstd after zstdReady()). */
export function decodeBlock2Sync(stored: Buffer, contentId: Buffer, keys: BlockKeys, where: string, maxLength = MAX_PAGE_SIZE): Buffer {
  const bad: Bad = (why) => new PagewiseError('Corrupt', `${where}: ${why}`);
  const limit = checkHeader(stored, bad, maxLength);
  const dataKey = keys.dataKey(stored[5], `${where}: the block`);
  const header = stored.subarray(0, HEADER_BYTES);
  const sealed = stored.subarray(HEADER_BYTES, stored.length - TAG_BYTES);
  let inner: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', blockKey(dataKey, header.subarray(8, 24)), header.subarray(24, 36), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.concat([header, contentId]));
    decipher.setAuthTag(stored.subarray(stored.length - TAG_BYTES));
    const opened = decipher.update(sealed);
    // final() authenticates; GCM returns nothing more from it (joined only if it ever did).
    const rest = decipher.final();
    inner = rest.length === 0 ? opened : Buffer.concat([opened, rest]);
  } catch {
    throw bad(FAILS_AUTHENTICATION);
  }
  const plain = decodeInner(inner, bad, limit);
  if (!createHmac('sha256', keys.contentIdKey).update(plain).digest().equals(contentId)) throw bad(NOT_ITS_CHUNK);
  return plain;
}
