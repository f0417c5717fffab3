/**
 * Public shapes of the Pagewise engine. The single-process engine (`backupDisk`) and the durable
 * activities (`planBackup` → `runBackupBatch`* → `finalizeBackup`) share these; activity inputs and
 * outputs are small references and counts, never page data.
 */

/** Where a disk or vault lives and how to authenticate to it. */
export interface StorageLocation {
  /** Blob URL (source) or container URL (vault). May carry a SAS query; it is never logged. */
  url: string;
  /** Optional connection string for the account (else SAS in the URL, else DefaultAzureCredential). */
  connectionString?: string;
}

export interface EngineSettings {
  /** Page size configured for the source account, bytes (multiple of 512). Default 4 MiB. */
  pageSize?: number;
  /** Scratch cache capacity, bytes. Must hold at least one page and be smaller than the disk. */
  cacheBytes?: number;
  /** Pages downloaded/processed/staged at once (bounded by cache slots). Default 4. */
  concurrency?: number;
  /** Directory for the scratch cache (default: OS temp dir). */
  scratchDir?: string;
  /**
   * Back up a blob snapshot Pagewise takes when it plans, instead of the live blob: a disk in use keeps
   * changing, and reads pinned to its ETag would fail with SourceChanged. The snapshot is deleted once
   * the manifest is written. Needs write (create) and delete permission on the source. Ignored when the
   * source URL already names a snapshot.
   */
  takeSnapshot?: boolean;
}

export interface BackupRequest extends EngineSettings {
  source: StorageLocation;
  vault: StorageLocation;
  /** 32-byte user key (from a key file). */
  userKey: Buffer;
  /** Fixed backup ID; default derived from (source blob, snapshot, etag) so a repeat start resumes. */
  backupId?: string;
  /**
   * The ETag the backup ID was derived from (a start that read the disk, or a settled Event Grid
   * event): the plan refuses a disk in any other state rather than store it under that ID.
   */
  expectedEtag?: string;
  abortSignal?: AbortSignal;
  onProgress?: (progress: BackupProgress) => void;
}

export interface BackupProgress {
  pagesDone: number;
  pagesTotal: number;
  bytesRead: number;
  allocatedBytes: number;
}

/** What `planBackup` returns: a reference to the plan stored in the vault plus counts. */
export interface PlanRef {
  backupId: string;
  batchCount: number;
  diskBytes: number;
  allocatedBytes: number;
  pageSize: number;
  pagesPerBatch: number;
  /** true when a manifest already exists: the backup is complete, nothing to do. */
  alreadyComplete: boolean;
}

/** What one batch (a window of pages) reports. */
export interface BatchSummary {
  backupId: string;
  batchIndex: number;
  pages: number;
  holePages: number;
  zeroPages: number;
  dedupedPages: number;
  bytesRead: number;
  bytesStaged: number;
  cacheHighWaterBytes: number;
  /** true when the batch record already existed (resumed, nothing redone). */
  resumed: boolean;
}

export interface BackupResult {
  backupId: string;
  diskBytes: number;
  allocatedBytes: number;
  bytesRead: number;
  bytesStored: number;
  pages: number;
  storedBlocks: number;
  zeroPages: number;
  dedupedPages: number;
  pageSize: number;
  segments: number;
  cacheCapacityBytes: number;
  cacheHighWaterBytes: number;
  /** The snapshot Pagewise took of the source (with `takeSnapshot`), and whether it was deleted after the manifest. */
  sourceSnapshot?: { snapshot: string; deleted: boolean };
  /**
   * Most pages that were between read-back from the cache and their staged block at once (each holds
   * its plaintext and block in memory): at most the concurrency. Set by the single-process engine.
   */
  pagesInMemoryHighWater?: number;
  durationMs: number;
}

export interface RestoreRequest {
  backupId: string;
  vault: StorageLocation;
  userKey: Buffer;
  /** A page-blob URL (with SAS or connection string) or a local file path. */
  target: StorageLocation;
  overwrite?: boolean;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface RestoreResult {
  backupId: string;
  target: string;
  diskBytes: number;
  pagesWritten: number;
  bytesWritten: number;
  durationMs: number;
}

export interface VerifyRequest {
  backupId: string;
  vault: StorageLocation;
  userKey: Buffer;
  /** Read, decrypt, decompress and hash-check every block (default true for the core API). */
  readData?: boolean;
  /** Also compare with the source disk. */
  source?: StorageLocation;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface VerifyResult {
  backupId: string;
  ok: boolean;
  pagesChecked: number;
  blocksChecked: number;
  bytesChecked: number;
  problems: string[];
  durationMs: number;
}

export interface BackupListing {
  backupId: string;
  createdAt: string;
  completedAt: string;
  source: string;
  diskBytes: number;
  pageSize: number;
  bytesStored: number;
}
