/**
 * The block format (docs/FORMAT.md §6.2): a processed page as stored in a segment — compressed (codec
 * recorded per block so it can change later), then sealed with AES-256-GCM under the backup's data key.
 */
import { randomBytes } from 'node:crypto';
import { compressSync, uncompressSync } from 'lz4-napi';
import { PagewiseError } from '../errors';
import { aesGcmOpen, aesGcmSeal } from '../processor/async-crypto';

export const BLOCK_MAGIC = Buffer.from('PWB1');
export const BLOCK_HEADER_BYTES = 24;
export const BLOCK_TAG_BYTES = 16;
export const BLOCK_OVERHEAD = BLOCK_HEADER_BYTES + BLOCK_TAG_BYTES;

export enum Codec {
  Stored = 0,
  Lz4 = 1,
}

export interface EncodedBlock {
  bytes: Buffer;
  codec: Codec;
}

/**
 * Compresses and encrypts one page. lz4 runs synchronously (~1 GB/s, a few ms per 4 MiB page; its async
 * form holds native memory, see async-crypto.ts); AES-GCM runs on libuv's thread pool, so the event loop
 * is free for other pages' downloads and uploads meanwhile.
 */
export async function encodeBlock(plain: Buffer, dataKey: Buffer, backupId: string): Promise<EncodedBlock> {
  const packed = lz4IfSmaller(plain);
  const codec = packed ? Codec.Lz4 : Codec.Stored;
  const body = packed ?? plain;
  const header = Buffer.alloc(BLOCK_HEADER_BYTES);
  BLOCK_MAGIC.copy(header, 0);
  header.writeUInt8(1, 4);
  header.writeUInt8(codec, 5);
  header.writeUInt32LE(plain.length, 8);
  randomBytes(12).copy(header, 12);
  const sealed = await aesGcmSeal(dataKey, header.subarray(12, 24), blockAad(header, backupId), body);
  return { bytes: Buffer.concat([header, sealed]), codec };
}

/**
 * Version 1's codec choice for one page: lz4 output (4-byte LE length prefix)
 * when the probe passes and lz4 makes the page smaller, else undefined (store it as it is).
 */
export function lz4IfSmaller(plain: Buffer): Buffer | undefined {
  if (looksIncompressible(plain)) return undefined;
  const packed = compressSync(plain);
  return packed.length < plain.length ? packed : undefined;
}

/** The block's authenticated data: its header and the backup it belongs to (a block cannot move between backups). */
function blockAad(header: Buffer, backupId: string): Buffer {
  return Buffer.concat([header, Buffer.from(backupId, 'ascii')]);
}

const PROBE_BYTES = 64 * 1024;

/**
 * A cheap look before compressing a large page: if lz4 cannot shrink a 64 KiB sample from its middle by
 * 3 %, the page is stored as it is (encrypted data, media, archives) and the full compression is saved.
 */
export function looksIncompressible(plain: Buffer): boolean {
  const sample = probeSample(plain);
  return sample !== undefined && sampleIncompressible(sample);
}

/** The probe's 64 KiB sample of a page of 256 KiB or more (undefined for a smaller one: it is always compressed). */
export function probeSample(plain: Buffer): Buffer | undefined {
  if (plain.length < 4 * PROBE_BYTES) return undefined;
  const at = Math.floor((plain.length - PROBE_BYTES) / 2 / 512) * 512;
  return plain.subarray(at, at + PROBE_BYTES);
}

/** The probe's verdict on its sample (a worker thread gets only the sample, not the page). */
export function sampleIncompressible(sample: Buffer): boolean {
  return compressSync(sample).length > sample.length * 0.97;
}

/** Authenticates, decrypts and decompresses a block; `where` names it in errors (e.g. "page 17"). */
export async function decodeBlock(block: Buffer, dataKey: Buffer, backupId: string, where: string): Promise<Buffer> {
  if (block.length < BLOCK_OVERHEAD || !block.subarray(0, 4).equals(BLOCK_MAGIC)) {
    throw new PagewiseError('Corrupt', `${where}: the block is truncated or is not a Pagewise block`);
  }
  const version = block.readUInt8(4);
  if (version !== 1) throw new PagewiseError('Corrupt', `${where}: unknown block version ${version}`);
  const codec = block.readUInt8(5) as Codec;
  const plainLength = block.readUInt32LE(8);
  const header = block.subarray(0, BLOCK_HEADER_BYTES);
  let body: Buffer;
  try {
    body = await aesGcmOpen(dataKey, header.subarray(12, 24), blockAad(header, backupId), block.subarray(BLOCK_HEADER_BYTES));
  } catch {
    throw new PagewiseError('Corrupt', `${where}: the block fails authentication (damaged, truncated or swapped)`);
  }
  let plain: Buffer;
  if (codec === Codec.Stored) plain = body;
  else if (codec === Codec.Lz4) {
    try {
      plain = uncompressSync(body);
    } catch {
      throw new PagewiseError('Corrupt', `${where}: the block does not decompress`);
    }
  } else throw new PagewiseError('Corrupt', `${where}: unknown codec ${codec}`);
  if (plain.length !== plainLength) throw new PagewiseError('Corrupt', `${where}: decoded ${plain.length} bytes, expected ${plainLength}`);
  return plain;
}
