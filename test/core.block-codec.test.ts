/** The block codec (core/repo/block-codec.ts): round trips, codec choice, damage detected. */
import { generateKey } from '../core';
import { encodeBlock, decodeBlock, Codec, BLOCK_OVERHEAD } from '../core/repo/block-codec';

const MiB = 1024 * 1024;

test('a block round-trips, records its codec, and any damage fails authentication', async () => {
  const key = generateKey();
  const text = Buffer.from('hello pagewise '.repeat(1000));
  const packed = await encodeBlock(text, key, 'pw-1');
  expect(packed.codec).toBe(Codec.Lz4);
  expect(packed.bytes.length).toBeLessThan(text.length);
  expect(await decodeBlock(packed.bytes, key, 'pw-1', 'page 0')).toEqual(text);
  const noise = (await import('node:crypto')).randomBytes(65536);
  const stored = await encodeBlock(noise, key, 'pw-1');
  expect(stored.codec).toBe(Codec.Stored);
  expect(stored.bytes.length).toBe(noise.length + BLOCK_OVERHEAD);
  const flipped = Buffer.from(packed.bytes);
  flipped[30] ^= 1;
  await expect(decodeBlock(flipped, key, 'pw-1', 'page 7')).rejects.toThrow(/page 7: .*fails authentication/);
  await expect(decodeBlock(packed.bytes, key, 'pw-2', 'page 7')).rejects.toThrow(/fails authentication/); // moved between backups
  await expect(decodeBlock(packed.bytes.subarray(0, 20), key, 'pw-1', 'page 7')).rejects.toThrow(/truncated/);
});

test('a large incompressible page is stored without compressing it whole; a compressible one is compressed', async () => {
  const { looksIncompressible } = require('../core/repo/block-codec') as typeof import('../core/repo/block-codec');
  const { randomBytes } = await import('node:crypto');
  const noise = randomBytes(MiB);
  const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(30000)).subarray(0, MiB);
  expect(looksIncompressible(noise)).toBe(true);
  expect(looksIncompressible(text)).toBe(false);
  expect(looksIncompressible(randomBytes(128 * 1024))).toBe(false); // small pages: always try
  const key = generateKey();
  expect((await encodeBlock(noise, key, 'pw-p')).codec).toBe(Codec.Stored);
  const packed = await encodeBlock(text, key, 'pw-p');
  expect(packed.codec).toBe(Codec.Lz4);
  expect(await decodeBlock(packed.bytes, key, 'pw-p', 'page 0')).toEqual(text);
});
