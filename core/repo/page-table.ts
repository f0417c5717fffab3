/**
 * Page-table chunks (docs/FORMAT.md §7): per segment, the sorted entries mapping each non-hole page to
 * its block, sealed with the backup's data key.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { PagewiseError } from '../errors';
import { Codec } from './block-codec';

export const ENTRY_BYTES = 64;
const CHUNK_MAGIC = Buffer.from('PWI1');
const TABLE_MAGIC = Buffer.from('PWPT');

export interface PageEntry {
  page: number;
  ref: number;
  codec: Codec;
  segment: number;
  offset: number;
  storedLength: number;
  plainLength: number;
  sha256: Buffer;
}

function aad(backupId: string, segment: number): Buffer {
  const seg = Buffer.alloc(4);
  seg.writeUInt32LE(segment);
  return Buffer.concat([CHUNK_MAGIC, Buffer.from(backupId, 'ascii'), seg]);
}

export function encodeChunk(entries: PageEntry[], segment: number, dataKey: Buffer, backupId: string): Buffer {
  const plain = Buffer.alloc(16 + ENTRY_BYTES * entries.length);
  TABLE_MAGIC.copy(plain, 0);
  plain.writeUInt16LE(1, 4);
  plain.writeUInt32LE(segment, 8);
  plain.writeUInt32LE(entries.length, 12);
  entries.forEach((e, k) => {
    const at = 16 + k * ENTRY_BYTES;
    plain.writeBigUInt64LE(BigInt(e.page), at);
    plain.writeUInt16LE(e.ref, at + 8);
    plain.writeUInt8(e.codec, at + 10);
    plain.writeUInt32LE(e.segment, at + 12);
    plain.writeBigUInt64LE(BigInt(e.offset), at + 16);
    plain.writeUInt32LE(e.storedLength, at + 24);
    plain.writeUInt32LE(e.plainLength, at + 28);
    e.sha256.copy(plain, at + 32);
  });
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', dataKey, nonce);
  cipher.setAAD(aad(backupId, segment));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([CHUNK_MAGIC, nonce, body, cipher.getAuthTag()]);
}

export function decodeChunk(stored: Buffer, segment: number, dataKey: Buffer, backupId: string): PageEntry[] {
  const where = `the page table of segment ${segment}`;
  if (stored.length < 32 + 16 || !stored.subarray(0, 4).equals(CHUNK_MAGIC)) {
    throw new PagewiseError('Corrupt', `${where} is truncated or not a Pagewise index chunk`);
  }
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, stored.subarray(4, 16));
    decipher.setAAD(aad(backupId, segment));
    decipher.setAuthTag(stored.subarray(stored.length - 16));
    plain = Buffer.concat([decipher.update(stored.subarray(16, stored.length - 16)), decipher.final()]);
  } catch {
    throw new PagewiseError('Corrupt', `${where} fails authentication (damaged or swapped)`);
  }
  if (!plain.subarray(0, 4).equals(TABLE_MAGIC) || plain.readUInt16LE(4) !== 1 || plain.readUInt32LE(8) !== segment) {
    throw new PagewiseError('Corrupt', `${where} has a bad header`);
  }
  const count = plain.readUInt32LE(12);
  if (plain.length !== 16 + count * ENTRY_BYTES) throw new PagewiseError('Corrupt', `${where} has a bad length`);
  const entries: PageEntry[] = [];
  for (let k = 0; k < count; k++) {
    const at = 16 + k * ENTRY_BYTES;
    entries.push({
      page: Number(plain.readBigUInt64LE(at)),
      ref: plain.readUInt16LE(at + 8),
      codec: plain.readUInt8(at + 10),
      segment: plain.readUInt32LE(at + 12),
      offset: Number(plain.readBigUInt64LE(at + 16)),
      storedLength: plain.readUInt32LE(at + 24),
      plainLength: plain.readUInt32LE(at + 28),
      sha256: Buffer.from(plain.subarray(at + 32, at + 64)),
    });
  }
  return entries;
}
