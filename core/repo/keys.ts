/**
 * Keys (docs/FORMAT.md §9): the user key lives in a key file the user keeps; each backup has a random
 * data key stored in the vault only wrapped (AES-256-GCM) by a KEK derived from the user key. A key ID
 * derived from the user key lets a reader report "wrong key" before decrypting anything.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { PagewiseError } from '../errors';
import { createKeyFileExclusive, readKeyFileText } from '../crypto/key-file';

export const KEY_BYTES = 32;

export interface WrappedKey {
  nonce: string;
  ciphertext: string;
  tag: string;
}

export function keyId(userKey: Buffer): string {
  return createHmac('sha256', userKey).update('pagewise/key-id/v1').digest('hex').slice(0, 16);
}

function derive(userKey: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', userKey, Buffer.alloc(0), info, KEY_BYTES));
}

export function manifestMacKey(userKey: Buffer): Buffer {
  return derive(userKey, 'pagewise/manifest-mac/v1');
}

export function generateKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

export function wrapDataKey(userKey: Buffer, dataKey: Buffer, backupId: string): WrappedKey {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', derive(userKey, 'pagewise/kek/v1'), nonce);
  cipher.setAAD(Buffer.from(`pagewise/wrap/v1|${backupId}`));
  const ciphertext = Buffer.concat([cipher.update(dataKey), cipher.final()]);
  return { nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
}

/** Refuses a user key other than the one a backup was made with, naming both key IDs. */
export function assertKeyMatches(userKey: Buffer, backupId: string, expectedKeyId: string): void {
  if (keyId(userKey) !== expectedKeyId) {
    throw new PagewiseError('WrongKey', `the user key (key ID ${keyId(userKey)}) does not match backup ${backupId}, which needs key ID ${expectedKeyId}`);
  }
}

export function unwrapDataKey(userKey: Buffer, wrapped: WrappedKey, backupId: string, expectedKeyId: string): Buffer {
  assertKeyMatches(userKey, backupId, expectedKeyId);
  try {
    const decipher = createDecipheriv('aes-256-gcm', derive(userKey, 'pagewise/kek/v1'), Buffer.from(wrapped.nonce, 'base64'));
    decipher.setAAD(Buffer.from(`pagewise/wrap/v1|${backupId}`));
    decipher.setAuthTag(Buffer.from(wrapped.tag, 'base64'));
    const key = Buffer.concat([decipher.update(Buffer.from(wrapped.ciphertext, 'base64')), decipher.final()]);
    if (key.length !== KEY_BYTES) throw new Error('bad length');
    return key;
  } catch {
    throw new PagewiseError('Corrupt', `the wrapped data key of backup ${backupId} fails authentication`);
  }
}

interface KeyFile {
  format: 'pagewise-user-key';
  version: 1;
  keyId: string;
  key: string;
}

export function encodeKeyFile(userKey: Buffer): string {
  const file: KeyFile = { format: 'pagewise-user-key', version: 1, keyId: keyId(userKey), key: userKey.toString('base64') };
  return `${JSON.stringify(file)}\n`;
}

export function decodeUserKey(text: string, where: string): Buffer {
  let file: Partial<KeyFile>;
  try {
    file = JSON.parse(text) as Partial<KeyFile>;
  } catch {
    throw new PagewiseError('BadKeyFile', `${where} is not a Pagewise key file (not JSON)`);
  }
  if (file.format !== 'pagewise-user-key') throw new PagewiseError('BadKeyFile', `${where} is not a Pagewise key file`);
  if (file.version !== 1) throw new PagewiseError('BadKeyFile', `${where} has key-file version ${String(file.version)}, this Pagewise reads version 1`);
  const key = Buffer.from(String(file.key ?? ''), 'base64');
  if (key.length !== KEY_BYTES) throw new PagewiseError('BadKeyFile', `${where} does not hold a 256-bit key`);
  if (file.keyId !== keyId(key)) throw new PagewiseError('BadKeyFile', `${where} is damaged: its key ID does not match its key`);
  return key;
}

/** The user key from a key file: a regular file of the caller's own, mode 0600 (see key-file.ts). */
export async function loadUserKey(file: string): Promise<Buffer> {
  return decodeUserKey(await readKeyFileText(file), `the key file ${file}`);
}

/** Writes a new key file; refuses to overwrite one (losing a key loses every backup made with it). */
export async function writeNewKeyFile(file: string): Promise<string> {
  const key = generateKey();
  await createKeyFileExclusive(file, encodeKeyFile(key));
  return keyId(key);
}
