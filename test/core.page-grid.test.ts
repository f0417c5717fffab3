/** Page arithmetic (core/source/page-grid.ts): page sizes, allocated ranges cut at page borders. */
import { PagewiseError } from '../core';
import { PageGrid, pagesOfRanges, normalizeRanges, validatePageSize } from '../core/source/page-grid';

const MiB = 1024 * 1024;

test('page size must be a multiple of 512 up to 100 MiB', () => {
  expect(validatePageSize(512)).toBe(512);
  expect(validatePageSize(100 * MiB)).toBe(100 * MiB);
  for (const bad of [0, 511, 1000, 4 * MiB + 1, 100 * MiB + 512, -512, 1.5]) expect(() => validatePageSize(bad)).toThrow(PagewiseError);
});

test('allocated ranges are split at page borders and merged within a page', () => {
  const grid = new PageGrid(10 * 1024, 4096); // 3 pages, the last 2 KiB
  expect(grid.pageCount).toBe(3);
  expect(grid.pageLength(2)).toBe(2048);
  const pages = [...pagesOfRanges(grid, [
    { offset: 512, length: 512 },
    { offset: 1024, length: 512 }, // adjacent: merged
    { offset: 3584, length: 1024 }, // spans pages 0 and 1
    { offset: 9216, length: 4096 }, // runs past the end: clipped
  ])];
  expect(pages).toEqual([
    { page: 0, ranges: [{ offset: 512, length: 1024 }, { offset: 3584, length: 512 }] },
    { page: 1, ranges: [{ offset: 4096, length: 512 }] },
    { page: 2, ranges: [{ offset: 9216, length: 1024 }] },
  ]);
  expect(normalizeRanges([{ offset: 100, length: 50 }, { offset: 0, length: 120 }, { offset: 500, length: 10 }], 505)).toEqual([
    { offset: 0, length: 150 },
    { offset: 500, length: 5 },
  ]);
});
