/**
 * Sealed URLs (core/crypto/seal.ts, docs/DURABLE.md "Sealed URLs"): the SAS leaves the URL sealed and
 * comes back only under the same key, for the same URL, unaltered; what may be seen stays readable.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { sealUrl, splitSas, taskHubSealKey, unsealUrl } from '../core';

const userKey = randomBytes(32);
const key = taskHubSealKey(userKey);
const SAS = 'sv=2024-01-01&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=not-a-real-signature%2Bfake%3D';
const BLOB = 'https://acct.blob.core.windows.net/vhds/disk%201.vhd';

test('the SAS is split off as given; snapshot= stays with the URL', () => {
  expect(splitSas(`${BLOB}?${SAS}`)).toEqual({ url: BLOB, sas: SAS });
  expect(splitSas(`${BLOB}?snapshot=2024-05-02T01%3A00%3A00.0000000Z&${SAS}`)).toEqual({
    url: `${BLOB}?snapshot=2024-05-02T01%3A00%3A00.0000000Z`,
    sas: SAS,
  });
  expect(splitSas(BLOB)).toEqual({ url: BLOB });
  expect(splitSas(`${BLOB}?snapshot=2024-05-02T01:00:00Z`)).toEqual({ url: `${BLOB}?snapshot=2024-05-02T01:00:00Z` });
});

test('a sealed URL holds no part of the SAS and opens to the same URL', () => {
  const sealed = sealUrl(`${BLOB}?${SAS}`, key);
  expect(sealed.url).toBe(BLOB);
  expect(sealed.sealedSas).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
  const text = JSON.stringify(sealed);
  for (const part of ['sig=', 'not-a-real-signature', 'sv=2024', 'sp=r']) expect(text).not.toContain(part);
  expect(unsealUrl(sealed, key, 'the source')).toBe(`${BLOB}?${SAS}`);
  // Random nonce: the same URL seals differently each time, and both open.
  const again = sealUrl(`${BLOB}?${SAS}`, key);
  expect(again.sealedSas).not.toBe(sealed.sealedSas);
  expect(unsealUrl(again, key, 'the source')).toBe(`${BLOB}?${SAS}`);
  // With a snapshot: the snapshot stays first, the SAS follows.
  const snap = sealUrl(`${BLOB}?snapshot=2024-05-02T01:00:00Z&${SAS}`, key);
  expect(unsealUrl(snap, key, 'the source')).toBe(`${BLOB}?snapshot=2024-05-02T01:00:00Z&${SAS}`);
});

test('a URL without a SAS is not sealed', () => {
  expect(sealUrl(BLOB, key)).toEqual({ url: BLOB });
  expect(unsealUrl({ url: BLOB }, key, 'the source')).toBe(BLOB);
});

test('a seal opens only under the same key, for the same URL, unaltered', () => {
  const sealed = sealUrl(`${BLOB}?${SAS}`, key);
  const refused = /^the sealed SAS of the target \(https:\/\/.+\) does not open under this app's key: sealed by another key, for another URL, or altered$/;
  const body = sealed.sealedSas!.slice(3);
  const flipped = `v1.${body.slice(0, 20)}${body[20] === 'A' ? 'B' : 'A'}${body.slice(21)}`;
  for (const [what, ref, withKey] of [
    ['another app key', sealed, taskHubSealKey(randomBytes(32))],
    ['the user key itself', sealed, userKey],
    ['another disk', { ...sealed, url: BLOB.replace('disk%201', 'disk2') }, key],
    ['another account', { ...sealed, url: BLOB.replace('acct', 'evil') }, key],
    ['a snapshot added', { ...sealed, url: `${BLOB}?snapshot=2024-05-02T01:00:00Z` }, key],
    ['a flipped byte', { ...sealed, sealedSas: flipped }, key],
    ['cut short', { ...sealed, sealedSas: sealed.sealedSas!.slice(0, 40) }, key],
    ['another version', { ...sealed, sealedSas: `v2.${body}` }, key],
    ['not base64url', { ...sealed, sealedSas: `v1.${'/'.repeat(60)}` }, key],
  ] as const) {
    let message = `${what}: opened`;
    try {
      unsealUrl(ref, withKey, 'the target');
    } catch (err) {
      message = refused.test((err as Error).message) ? `${what}: refused` : `${what}: ${(err as Error).message}`;
    }
    expect(message).toBe(`${what}: refused`);
  }
});

test('the sealing key is HKDF of the user key under its own info, apart from the other keys derived from it', () => {
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', userKey, Buffer.alloc(0), info, 32));
  expect(taskHubSealKey(userKey).equals(derive('pagewise/task-hub-seal/v1'))).toBe(true);
  for (const other of ['pagewise/kek/v1', 'pagewise/manifest-mac/v1', 'pagewise/compute-grant/v1']) {
    expect(taskHubSealKey(userKey).equals(derive(other))).toBe(false);
  }
  expect(taskHubSealKey(userKey).equals(userKey)).toBe(false);
});
