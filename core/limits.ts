/**
 * Azure Storage limits Pagewise enforces itself: Azurite accepts requests past them, Azure does not.
 */
export const SECTOR = 512;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/** Put Page: at most 4 MiB per request, 512-aligned. */
export const MAX_PUT_PAGE_BYTES = 4 * MiB;
/** A page blob is at most 8 TiB (managed disks of 32 TiB are exported as snapshots of up to 32 TiB). */
export const MAX_PAGE_BLOB_BYTES = 8 * TiB;
/** Managed-disk snapshots read through a SAS can be up to 32 TiB. */
export const MAX_SOURCE_DISK_BYTES = 32 * TiB;
/** Committed blocks per block blob. */
export const MAX_BLOCKS_PER_BLOB = 50_000;
/** Pagewise's own ceiling for a page, so that one page always fits in one staged block. */
export const MAX_PAGE_SIZE = 100 * MiB;
export const DEFAULT_PAGE_SIZE = 4 * MiB;
export const DEFAULT_CACHE_BYTES = 256 * MiB;
export const DEFAULT_CONCURRENCY = 4;
/** Pages per segment blob (format v1); ≤ MAX_BLOCKS_PER_BLOB. */
export const PAGES_PER_SEGMENT = 16_384;
