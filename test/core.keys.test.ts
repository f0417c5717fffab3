/** Keys (core/crypto/keys.ts): key files and data-key wrapping. */
import { generateKey } from '../core';
import { decodeUserKey, encodeKeyFile, keyId, unwrapDataKey, wrapDataKey } from '../core/repo/keys';

test('key files and key wrapping', () => {
  const key = generateKey();
  expect(decodeUserKey(encodeKeyFile(key), 'k')).toEqual(key);
  expect(() => decodeUserKey('{"format":"pagewise-user-key","version":2}', 'the key file k')).toThrow(/version 2/);
  expect(() => decodeUserKey('nope', 'the key file k')).toThrow(/not a Pagewise key file/);
  const damaged = JSON.parse(encodeKeyFile(key));
  damaged.keyId = '0000000000000000';
  expect(() => decodeUserKey(JSON.stringify(damaged), 'k')).toThrow(/damaged/);
  const dataKey = generateKey();
  const wrapped = wrapDataKey(key, dataKey, 'pw-a');
  expect(unwrapDataKey(key, wrapped, 'pw-a', keyId(key))).toEqual(dataKey);
  expect(() => unwrapDataKey(generateKey(), wrapped, 'pw-a', keyId(key))).toThrow(/does not match/);
  expect(() => unwrapDataKey(key, wrapped, 'pw-b', keyId(key))).toThrow(/fails authentication/);
  expect(JSON.stringify(wrapped)).not.toContain(dataKey.toString('base64'));
});
