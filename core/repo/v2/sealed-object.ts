/**
 * The 20-byte header and AES-256-GCM seal every version-2 object but a block shares (docs/FORMAT.md
 * §17.2, §19, §20.4): magic, version 2, key epoch, a kind or reserved byte, a reserved byte, a 12-byte
 * nonce; then the ciphertext and the 16-byte tag. What each object authenticates beyond its header
 * (its blob name, its pack) is the caller's `aad`.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const SEALED_HEADER_BYTES = 20;
export const SEALED_TAG_BYTES = 16;

/** A new header with a random nonce. */
export function sealedHeader(magic: Buffer, epoch: number, kind = 0): Buffer {
  const header = Buffer.alloc(SEALED_HEADER_BYTES);
  magic.copy(header, 0);
  header[4] = 2;
  header[5] = epoch;
  header[6] = kind;
  randomBytes(12).copy(header, 8);
  return header;
}

/** header ‖ ciphertext ‖ tag, the header's nonce used, `aad` authenticated. */
export function seal(key: Buffer, header: Buffer, aad: Buffer, plain: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, header.subarray(8, SEALED_HEADER_BYTES));
  cipher.setAAD(aad);
  return Buffer.concat([header, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

/** The plaintext of a sealed object (header ‖ ciphertext ‖ tag); throws when it does not authenticate. */
export function unseal(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(8, SEALED_HEADER_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - SEALED_TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(SEALED_HEADER_BYTES, sealed.length - SEALED_TAG_BYTES)), decipher.final()]);
}
