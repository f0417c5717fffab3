/** Page-table chunks (core/repo/page-table.ts): round trips, bound to their segment. */
import { generateKey } from '../core';
import { encodeChunk, decodeChunk, PageEntry } from '../core/repo/page-table';

test('page-table chunks round-trip and are bound to their segment', () => {
  const key = generateKey();
  const entries: PageEntry[] = [
    {
      page: 5,
      ref: 0,
      codec: 1,
      segment: 0,
      offset: 0,
      storedLength: 100,
      plainLength: 4096,
      sha256: Buffer.alloc(32, 1),
    },
    {
      page: 2 ** 40,
      ref: 0,
      codec: 0,
      segment: 0,
      offset: 2 ** 33,
      storedLength: 4136,
      plainLength: 4096,
      sha256: Buffer.alloc(32, 2),
    },
  ];
  const chunk = encodeChunk(entries, 0, key, 'pw-x');
  expect(decodeChunk(chunk, 0, key, 'pw-x')).toEqual(entries);
  expect(() => decodeChunk(chunk, 1, key, 'pw-x')).toThrow(/segment 1 fails authentication/);
});
