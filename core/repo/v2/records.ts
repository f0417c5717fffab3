/** The version-2 backup records (docs/FORMAT.md §20.1–§20.3) as TypeScript types: plan, batch record, manifest. */
import type { CodecSetting } from '../../processor/chunk-pool';
import { SourceIdentity } from '../../source/source-disk';
import type { Chunking } from './chunker';

/** One chunk of a page (§19): its content ID and where its block was written (hints). */
export interface ChunkRef {
  /** 32 bytes; all zero = a zero chunk (not stored, hints zero). */
  contentId: Buffer;
  /** plaintext length of the chunk */
  length: number;
  /** stored length of the block (hint) */
  storedLength: number;
  /** packId holding the block when written, 32 hex (hint) */
  pack: string;
  /** offset of the block in that pack (hint) */
  offset: number;
}

/** A non-hole page (§19): its chunks in page order; chunk lengths add up to `length`. */
export interface PageRecord2 {
  page: number;
  length: number;
  chunks: ChunkRef[];
}

/** The JSON form of a page record in a batch record (§20.2). */
export interface PageRecordJson {
  i: number;
  n: number;
  c: [string, number, number, string, number][];
}

/** A disk's identity (§21.1). */
export interface DiskRef {
  identity: string;
  kind: 'page-blob' | 'managed-disk';
  account?: string;
  container?: string;
  blob?: string;
  sourceUniqueId?: string;
  armDiskId?: string;
}

/** What an incremental's diff was taken against (§20.3). */
export interface BaseRef {
  backupId: string;
  /** the base manifest's blob name */
  manifest: string;
  snapshot: string;
}

import type { FullReason } from '../../types';
export type { FullReason };

/** §20.1, envelope kind 1. */
export interface PlanV2 {
  format: 'pagewise-plan';
  version: 2;
  backupId: string;
  createdAt: string;
  /** `snapshotResourceId`: the managed-disk snapshot resource read (FORMAT.md §20.1), copied into the manifest. */
  source: SourceIdentity & { takenByPagewise: boolean; snapshotResourceId?: string };
  disk: DiskRef;
  diskBytes: number;
  pageSize: number;
  pageCount: number;
  pagesPerBatch: number;
  pagesPerTable: number;
  allocatedBytes: number;
  allocatedPages: number;
  batches: number[];
  /** The writer's chunking (§15.2), clamped to the page; every batch uses it. */
  chunking: Chunking;
  /** The writer's codec setting (blocks record their own). */
  codec: CodecSetting;
  /** #15: whether the batches dedupe against the vault's content index (absent in older plans: false). */
  vaultDedupe?: boolean;
  kind: 'full' | 'incremental';
  base: BaseRef | null;
  reason: FullReason | null;
  keyEpoch: number;
  /** an incremental's changed pages as coalesced runs [firstPage, pageCount]; null for a full */
  changedPages: [number, number][] | null;
  changedBytes: number | null;
  /**
   * §26.3: an incremental's base tables (the base manifest's table refs as they are, in table order);
   * null for a full. The batches and the finalize read the base through these, never its manifest, so
   * a base pruned while this backup runs does not stop it. Absent in plans written before #13: unknown
   * (prune then reads the base manifest; so do the batches and the finalize).
   */
  baseTables?: TableRef[] | null;
  /** §26.3: the base manifest's `generation` (this backup's is one more); null for a full; absent exactly when `baseTables` is. */
  baseGeneration?: number | null;
}

/** §20.2, envelope kind 2. `pages` is stored in its JSON form (PageRecordJson) and converted on read and write. */
export interface BatchRecordV2 {
  format: 'pagewise-batch';
  version: 2;
  backupId: string;
  batchNumber: number;
  firstPage: number;
  pageCount: number;
  bytesRead: number;
  bytesNew: number;
  bytesStored: number;
  zeroPages: number;
  /** #15: distinct content IDs found through the content index (not the base's), and their plaintext bytes; absent in older records. */
  chunksReusedFromVault?: number;
  bytesReusedFromVault?: number;
  packs: string[];
  deltas: string[];
  pages: PageRecord2[];
}

export interface TableRef {
  index: number;
  tableId: string;
  pages: number;
  bytes: number;
  sha256: string;
}

/** §20.3, envelope kind 3. */
export interface ManifestV2 {
  format: 'pagewise-manifest';
  version: 2;
  backupId: string;
  createdAt: string;
  completedAt: string;
  disk: DiskRef;
  source: { url: string; snapshot: string | null; etag: string; snapshotResourceId?: string; takenByPagewise: boolean };
  diskBytes: number;
  pageSize: number;
  pageCount: number;
  pagesPerTable: number;
  chunking: { scheme: string; [k: string]: unknown };
  codec: string;
  kind: 'full' | 'incremental';
  base: BaseRef | null;
  reason: FullReason | null;
  generation: number;
  keyEpoch: number;
  tables: TableRef[];
  /** `chunksReusedFromVault`, `bytesReusedFromVault`: since #15 (the batch records' sums). */
  stats: { allocatedBytes: number; bytesRead: number; bytesChanged: number; bytesNew: number; bytesStored: number; chunks: number; newChunks: number; zeroPages: number; chunksReusedFromVault?: number; bytesReusedFromVault?: number };
}

/** One vault-index entry (§18.1). */
export interface IndexEntry {
  contentId: Buffer;
  /** 32 hex */
  pack: string;
  offset: number;
  storedLength: number;
}
