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

/** A whole-number setting's allowed range and default: one definition for the CLI, app settings and schemas. */
export interface CountBounds {
  readonly min: number;
  readonly max: number;
  readonly default: number;
}
/** Pages in flight at once within one backup, restore or verify. */
export const PAGE_CONCURRENCY: CountBounds = { min: 1, max: 64, default: 4 };
/**
 * Batch activities one disk keeps in flight (each holds a scratch cache on its worker). One activity
 * already keeps a page blob's ~60 MiB/s busy (docs/SCALE.md R5); the second starts while the first
 * drains its last pages. More only adds memory, scratch and 503s on one blob.
 */
export const BATCHES_IN_FLIGHT: CountBounds = { min: 1, max: 32, default: 2 };
/** Data requests in flight to one storage account, shared by every operation of the process. */
export const REQUESTS_PER_ACCOUNT: CountBounds = { min: 1, max: 10_000, default: 32 };

/** Whether `value` is a whole number within `bounds`. */
export function withinBounds(value: number, bounds: CountBounds): boolean {
  return Number.isSafeInteger(value) && value >= bounds.min && value <= bounds.max;
}
/**
 * A JSON document Pagewise reads from a vault (marker, plan, manifest, batch record): at most this many
 * bytes and this many levels of nesting — the largest real manifest (32 TiB at 64 KiB pages) is a few
 * MiB and 4 levels deep, so a hostile vault cannot make a reader buffer gigabytes or overflow its stack.
 */
export const MAX_VAULT_JSON_BYTES = 64 * MiB;
export const MAX_VAULT_JSON_DEPTH = 32;
/** Pages per segment blob (format v1); ≤ MAX_BLOCKS_PER_BLOB. */
export const PAGES_PER_SEGMENT = 16_384;
