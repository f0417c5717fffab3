/**
 * JSON-schema properties of the engine overrides a caller may give per disk (HTTP start body, policy
 * disks): one definition, so the two surfaces accept exactly the same values.
 */
import { PAGE_CONCURRENCY } from '../core';

export const engineOverrideProperties = {
  // The source account's page size: a multiple of 512 B, at most 100 MiB (core validatePageSize).
  pageSize: { type: 'integer', minimum: 512, maximum: 104857600, multipleOf: 512, nullable: true },
  cacheBytes: { type: 'integer', minimum: 512, maximum: Number.MAX_SAFE_INTEGER, nullable: true },
  concurrency: { type: 'integer', minimum: PAGE_CONCURRENCY.min, maximum: PAGE_CONCURRENCY.max, nullable: true },
  takeSnapshot: { type: 'boolean', nullable: true },
  // Read and store the whole disk even when an incremental is possible (issue #12).
  full: { type: 'boolean', nullable: true },
  // #15: how pages are cut (FORMAT.md §15.2; core checks the sizes against the page), the codec, vault-wide dedupe.
  chunking: { type: 'string', maxLength: 64, pattern: '^(page|fastcdc(:[^,]+,[^,]+,[^,]+)?)$', nullable: true },
  codec: { type: 'string', enum: ['zstd', 'lz4', 'stored'], nullable: true },
  vaultDedupe: { type: 'boolean', nullable: true },
} as const;
