/**
 * Sealed URLs (docs/DURABLE.md "Sealed URLs"): a caller's SAS kept out of the durable task hub. The URL
 * travels without its SAS query; the SAS travels encrypted (AES-256-GCM) under a key derived from the
 * user key, bound to that URL, and is opened only where storage is called (inside an activity).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { PagewiseError } from '../errors';
import { displayUrl } from '../redact';

/** A URL as it may enter the task hub: `url` holds no SAS; `sealedSas` is the SAS, sealed (absent when there was none). */
export interface SealedUrl {
  url: string;
  sealedSas?: string;
}

const VERSION = 'v1';
const SEAL_INFO = 'pagewise/task-hub-seal/v1';
const AAD_PREFIX = 'pagewise/sealed-sas/v1\n';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const SEALED_SAS_RE = /^v1\.[A-Za-z0-9_-]{40,6000}$/;

/** The sealing key: HKDF-SHA256 of the user key (no salt), its own `info` so it is no other Pagewise key. */
export function taskHubSealKey(userKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', userKey, Buffer.alloc(0), SEAL_INFO, 32));
}

/**
 * Splits a URL's query into what may be seen (`snapshot=`) and the SAS (every other parameter; the
 * storage URL checks admit nothing else). Textual, so the parameters keep their exact encoding.
 */
export function splitSas(url: string): { url: string; sas?: string } {
  const q = url.indexOf('?');
  if (q === -1) return { url };
  const kept: string[] = [];
  const sas: string[] = [];
  for (const part of url.slice(q + 1).split('&')) {
    if (part === '') continue;
    (part.split('=')[0] === 'snapshot' ? kept : sas).push(part);
  }
  const base = url.slice(0, q) + (kept.length > 0 ? `?${kept.join('&')}` : '');
  return sas.length > 0 ? { url: base, sas: sas.join('&') } : { url: base };
}

/** The URL with its SAS sealed; a URL without a SAS is returned as it is. */
export function sealUrl(url: string, key: Buffer): SealedUrl {
  const { url: base, sas } = splitSas(url);
  if (sas === undefined) return { url: base };
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(AAD_PREFIX + base, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(sas, 'utf8'), cipher.final()]);
  return { url: base, sealedSas: `${VERSION}.${Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]).toString('base64url')}` };
}

/** The URL with its SAS again; refuses a seal made under another key, for another URL, or altered. */
export function unsealUrl(sealed: SealedUrl, key: Buffer, what: string): string {
  if (sealed.sealedSas === undefined) return sealed.url;
  const refused = () => new PagewiseError('BadInput', `the sealed SAS of ${what} (${displayUrl(sealed.url)}) does not open under this app's key: sealed by another key, for another URL, or altered`);
  if (!SEALED_SAS_RE.test(sealed.sealedSas)) throw refused();
  const bytes = Buffer.from(sealed.sealedSas.slice(VERSION.length + 1), 'base64url');
  if (bytes.length <= NONCE_BYTES + TAG_BYTES) throw refused();
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, NONCE_BYTES));
  decipher.setAAD(Buffer.from(AAD_PREFIX + sealed.url, 'utf8'));
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  let sas: string;
  try {
    sas = Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    throw refused();
  }
  return joinSas(sealed.url, sas);
}

/** A URL and its SAS query as one URL again (the inverse of splitSas, up to the order of `snapshot=`). */
export function joinSas(url: string, sas: string | undefined): string {
  return sas === undefined ? url : `${url}${url.includes('?') ? '&' : '?'}${sas}`;
}
