/** Sizes (core/units.ts): binary and decimal units, nonsense refused. */
import { parseBytes, PagewiseError } from '../core';

const MiB = 1024 * 1024;

test('sizes parse with binary and decimal units and reject nonsense', () => {
  expect(parseBytes('4MiB', 'x')).toBe(4 * MiB);
  expect(parseBytes('64 KiB', 'x')).toBe(65536);
  expect(parseBytes('512', 'x')).toBe(512);
  expect(parseBytes('1g', 'x')).toBe(1024 * MiB);
  expect(parseBytes('1GB', 'x')).toBe(1e9);
  expect(() => parseBytes('four', '--cache')).toThrow(/--cache "four" is not a size/);
  expect(() => parseBytes('0', '--cache')).toThrow(PagewiseError);
  expect(() => parseBytes('1.5', '--cache')).toThrow(/whole number/);
});
