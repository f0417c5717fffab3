/**
 * SHA-256, HMAC-SHA256 and AES-256-GCM of whole pages, run on libuv's thread pool (WebCrypto's `subtle` queues its
 * jobs there), off the event loop: the main thread only schedules them, so the downloads, stages and
 * slot I/O of other pages go on while a page is hashed or sealed, and a second core does the work.
 *
 * lz4 is deliberately not here: lz4-napi allocates with its own mimalloc, and a buffer allocated on a
 * pool thread but freed on the main thread (where V8 finalizes it) stays on that thread's deferred-free
 * list until it allocates again. Measured (scratch micro-test, 200 pages of 4 MiB): async `compress`
 * peaked at 395 MiB RSS against 199 MiB for `compressSync`; the engine-level finding is docs/SCALE.md R1.
 */
import { webcrypto } from 'node:crypto';

const subtle = webcrypto.subtle;

/** SHA-256 of `bytes`, computed off the event loop. */
export async function sha256(bytes: Uint8Array): Promise<Buffer> {
  return Buffer.from(await subtle.digest('SHA-256', bytes));
}

// One imported key per data key Buffer (a backup's context keeps its Buffer for its lifetime).
const aesKeys = new WeakMap<Buffer, Promise<webcrypto.CryptoKey>>();

function aesKey(key: Buffer): Promise<webcrypto.CryptoKey> {
  let imported = aesKeys.get(key);
  if (!imported) {
    imported = subtle.importKey('raw', key, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
    aesKeys.set(key, imported);
  }
  return imported;
}

/** AES-256-GCM with a 128-bit tag: returns ciphertext followed by the tag. */
export async function aesGcmSeal(key: Buffer, iv: Uint8Array, aad: Uint8Array, plain: Uint8Array): Promise<Buffer> {
  return Buffer.from(await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, await aesKey(key), plain));
}

/** Opens ciphertext-followed-by-tag; rejects (with WebCrypto's OperationError) when authentication fails. */
export async function aesGcmOpen(key: Buffer, iv: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Promise<Buffer> {
  return Buffer.from(await subtle.decrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, await aesKey(key), sealed));
}

// One imported HMAC key per key Buffer (a keyring keeps its derived keys for its lifetime).
const hmacKeys = new WeakMap<Buffer, Promise<webcrypto.CryptoKey>>();

/** HMAC-SHA256 of `bytes` under `key`, computed off the event loop (content IDs of whole pages, FORMAT.md §15.3). */
export async function hmacSha256(key: Buffer, bytes: Uint8Array): Promise<Buffer> {
  let imported = hmacKeys.get(key);
  if (!imported) {
    imported = subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    hmacKeys.set(key, imported);
  }
  return Buffer.from(await subtle.sign('HMAC', await imported, bytes));
}
