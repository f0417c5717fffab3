/**
 * Public shapes of the Pagewise engine. The single-process engine (`backupDisk`) and the durable
 * activities (`planBackup` → `runBackupBatch`* → `finalizeBackup`) share these; activity inputs and
 * outputs are small references and counts, never page data.
 */
import type { TokenCredential } from '@azure/identity';
import type { Clock } from './clock';
import type { CodecSetting } from './processor/chunk-pool';
import type { Chunking } from './repo/v2/chunker';

/**
 * Where a disk or vault lives and how to authenticate to it: a SAS in the URL, else the connection
 * string, else `credential`, else the default credential (DefaultAzureCredential, made once per process).
 */
export interface StorageLocation {
  /** Blob URL (source) or container URL (vault). May carry a SAS query; it is never logged. */
  url: string;
  /** Optional connection string for the account. */
  connectionString?: string;
  /** A caller's own Azure AD credential (as the Azure SDK clients take one); never serialized. */
  credential?: TokenCredential;
  /**
   * The URL is a read SAS the app's own Compute grant returned for a managed-disk snapshot: only then
   * may it be on a managed-disk export host (md-….blob.storage.azure.net). Never set from user input.
   */
  managedDiskGrant?: boolean;
  /**
   * A source that is a managed-disk snapshot: what Compute says of it (its `id` and `creationData`), so
   * its backups are grouped by the disk it was taken from, not by the grant's one-off URL (FORMAT.md §21.1).
   */
  managedDisk?: ManagedDiskSource;
}

/** The Compute facts of a managed-disk snapshot that name its disk (FORMAT.md §21.1). */
export interface ManagedDiskSource {
  /** `creationData.sourceUniqueId`: the GUID of the disk the snapshot was taken from. */
  sourceUniqueId?: string;
  /** `creationData.sourceResourceId`: the disk's ARM ID. */
  armDiskId?: string;
  /** The snapshot's own ARM ID (recorded in the manifest's source). */
  snapshotResourceId?: string;
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
  /** #15: how pages are cut into chunks (FORMAT.md §15.2); default DEFAULT_CHUNKING clamped to the page. Recorded in the plan. */
  chunking?: Chunking;
  /** #15: the codec of new blocks (§16); default DEFAULT_CODEC (zstd). Recorded in the plan. */
  codec?: CodecSetting;
  /** #15: dedupe each chunk against the whole vault's content index (§17.1, §26.8 (c)); default true. Recorded in the plan. */
  vaultDedupe?: boolean;
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
  /** Force a full backup of a version-2 vault even when a base exists (result `reason: 'forced'`). */
  full?: boolean;
  /**
   * A managed-disk source (`source.managedDisk`): Compute access to the snapshot resources of its earlier
   * backups, for the plan's base check and diff (never serialized; the app's managed identity in Functions).
   * Without it a managed-disk backup is full with reason `base-snapshot-gone`.
   */
  managedSnapshots?: ManagedSnapshotAccess;
  /**
   * The clock of the abandonment rule (docs/FORMAT.md §26.1: a batch or finalize of a plan older than L
   * is BackupExpired) and of the plan's `createdAt`; default the system clock. Tests inject one. Never serialized.
   */
  clock?: Clock;

  abortSignal?: AbortSignal;
  onProgress?: (progress: OperationProgress) => void;
}

/**
 * Compute's view of managed-disk snapshot resources, by ARM ID (FORMAT.md §21.3): an incremental's base is
 * a snapshot resource, not a snapshot of the grant's blob, so its existence and its read URL come from here.
 */
export interface ManagedSnapshotAccess {
  /** Whether the snapshot resource still exists (false when Compute says it is gone). */
  exists(snapshotResourceId: string): Promise<boolean>;
  /** A read SAS URL of the snapshot's VHD (a secret: never in a message, log or durable history). */
  grantRead(snapshotResourceId: string): Promise<string>;
  /** Ends the read access `grantRead` gave; called once the plan is done with it, on success and failure. */
  revokeRead(snapshotResourceId: string): Promise<void>;
}

/** Why a backup is full rather than incremental (docs/FORMAT.md §20.3 `reason`); null for an incremental. */
export type FullReason =
  | 'no-base'
  | 'base-snapshot-gone'
  | 'size-changed'
  | 'page-size-changed'
  | 'chunking-changed'
  | 'v1-base'
  | 'v1-vault'
  | 'forced'
  | 'base-replaced'
  | 'other-key'
  /** every candidate base was forgotten (a tombstone, docs/FORMAT.md §26.2): a forgotten backup is never a base */
  | 'base-forgotten';

/** Full or incremental, against which base, and why (PlanRef and BackupResult share it). */
export interface BackupKind {
  /** A version-1 vault always backs up in full. */
  kind: 'full' | 'incremental';
  /** The backup an incremental was diffed against, and the snapshot of it the diff started from; null for a full. */
  base: { backupId: string; snapshot: string } | null;
  /** Why a full backup is full; null for an incremental. */
  reason: FullReason | null;
}

/**
 * How far a backup, restore or verification has come: one shape for all three, reported after each page
 * (the CLI's progress bars show it). Bytes are what the phase handles: a backup's source bytes read of
 * the disk's allocated bytes; a restore's or verification's page bytes of the backup's (each page's real
 * length: the disk's last page may be shorter than the page size).
 */
export interface OperationProgress {
  phase: 'copying' | 'restoring' | 'verifying';
  pagesDone: number;
  pagesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

/**
 * What `planBackup` returns: a reference to the plan stored in the vault plus counts. For an incremental,
 * `allocatedBytes`/`allocatedPages` are what this backup reads (the allocated bytes of its changed
 * pages): the totals its progress counts toward; the disk's own allocation is in the manifest.
 */
export interface PlanRef extends BackupKind {
  backupId: string;
  /** Batches with data (the plan's `batches` list): their plan positions are 0 … batchCount−1. */
  batchCount: number;
  diskBytes: number;
  allocatedBytes: number;
  /** Pages holding allocated bytes: what a backup's progress counts pages of (OperationProgress.pagesTotal). */
  allocatedPages: number;
  pageSize: number;
  pagesPerBatch: number;
  /** true when a manifest already exists: the backup is complete, nothing to do. */
  alreadyComplete: boolean;
  /** The vault format the backup is written in (the marker's version). */
  formatVersion?: 1 | 2;
  /** A full planned where a base was found but proved unusable: why, in words (no secret; logged by the plan step). */
  reasonText?: string;
}

/** What one batch (a window of pages) reports. */
export interface BatchSummary {
  backupId: string;
  /** The batch covers pages [batchNumber·pagesPerBatch, …); not its position in the plan's list. */
  batchNumber: number;
  pages: number;
  holePages: number;
  zeroPages: number;
  dedupedPages: number;
  bytesRead: number;
  bytesStaged: number;
  cacheHighWaterBytes: number;
  /** true when the batch record already existed (resumed, nothing redone). */
  resumed: boolean;
  /** Version 2 (#15): distinct chunks found through the vault's content index, and their plaintext bytes. */
  chunksReusedFromVault?: number;
  bytesReusedFromVault?: number;
}

/**
 * A backup's outcome. Version-2 meanings: `bytesRead` the source bytes the backup read (an incremental:
 * its changed pages only), `bytesChanged` the bytes of the ranges the diff reported changed (a full: =
 * bytesRead), `bytesNew` the plaintext of the blocks it stored, `bytesStored` their stored size,
 * `storedBlocks` the new blocks, `segments` the packs it wrote, `pages` the non-hole pages of the disk
 * plus this backup's zero pages, `dedupedPages` the changed pages that needed no new block (their
 * content was the base's or an earlier page's of the batch). Version 1: `bytesChanged` = `bytesRead`,
 * `bytesNew` = `bytesStored`, segments as Part I.
 */
export interface BackupResult extends BackupKind {
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
  /** Scratch-cache capacity of the run (each batch activity of an orchestrated run has a cache this size). */
  cacheCapacityBytes: number;
  cacheHighWaterBytes: number;
  /**
   * true when the manifest already existed (the same disk state was backed up before): nothing was read
   * or written by this run, `bytesRead` is 0 and `completedAt` says when the backup was made.
   */
  alreadyExisted: boolean;
  /**
   * Source bytes this run read. `bytesRead` counts the whole backup; a run that resumed batches an
   * earlier run had read reads less (a read speed is this figure over `durationMs`).
   */
  bytesReadNow: number;
  /** When the backup's manifest was written (ISO 8601). */
  completedAt: string;
  /** Bytes of the ranges the diff against the base reported changed; a full backup: = bytesRead. */
  bytesChanged: number;
  /** Plaintext bytes of the blocks this backup stored (version 1: = bytesStored). */
  bytesNew: number;
  /** Version 2: non-zero chunk references of the backup's tables (every page, unchanged ones too). */
  chunks?: number;
  /** Version 2 (#15): chunks this backup found through the vault's content index (not in its base), and their plaintext bytes. */
  chunksReusedFromVault?: number;
  bytesReusedFromVault?: number;
  /** The vault format the backup was written in. */
  formatVersion: 1 | 2;
  /**
   * The snapshot Pagewise took of the source (with `takeSnapshot`), and whether it was deleted after the
   * manifest. Version 1 deletes it; version 2 keeps it (`deleted: false`): it is the next backup's base.
   */
  sourceSnapshot?: { snapshot: string; deleted: boolean };
  /** Version 2: snapshots Pagewise took for earlier backups of this disk, deleted after this manifest. */
  releasedSnapshots?: string[];
  /**
   * Most pages that were between read-back from the cache and their staged block at once (each holds
   * its plaintext and block in memory): at most the concurrency. Set by the single-process engine.
   */
  pagesInMemoryHighWater?: number;
  /** The whole run, from plan to manifest (an orchestrated run: its orchestration's start to end). */
  durationMs: number;
}

export interface RestoreRequest {
  backupId: string;
  vault: StorageLocation;
  userKey: Buffer;
  /** A page-blob URL (with SAS or connection string) or a local file path. */
  target: StorageLocation;
  /** The target path is a block device, written in place (never created, truncated or renamed over). */
  device?: boolean;
  overwrite?: boolean;
  /** Local files a file restore must never replace, even with overwrite (the key file it decrypts with). */
  keepFiles?: string[];
  concurrency?: number;
  /** Stops the restore; a file or page-blob target is removed (a device keeps what was written). */
  abortSignal?: AbortSignal;
  onProgress?: (progress: OperationProgress) => void;
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
  /** Directory for the scratch cache of the comparison with the source (default: OS temp dir). */
  scratchDir?: string;
  /** Stops the verification with an Aborted error (not a problem found): no verdict, scratch removed. */
  abortSignal?: AbortSignal;
  onProgress?: (progress: OperationProgress) => void;
}

export interface VerifyResult {
  backupId: string;
  /** The backup's format: version 1 (segments) or 2 (packs and page tables). */
  formatVersion: 1 | 2;
  ok: boolean;
  /** false: structure and presence only (manifest, page tables, segment sizes), no block was read. */
  readData: boolean;
  /** true when every page was also compared with the source disk. */
  comparedWithSource: boolean;
  /** Page-table entries checked (structure; with readData their blocks too). */
  pagesChecked: number;
  /**
   * Blob containers of blocks checked present and whole: version 1 its segments (each the size the
   * manifest says), version 2 the packs its page tables name (each HEAD once, at least as long as every
   * block it is said to hold). The same number as `packsChecked` for version 2.
   */
  segmentsChecked: number;
  /**
   * Version 2: distinct packs checked present and long enough (0 for version 1), per window of the
   * verification (RESTORE_WINDOW_BYTES): a pack holding blocks of two windows is checked in each.
   */
  packsChecked: number;
  /** Page tables read and checked against the manifest (size, SHA-256, authentication); version 1: its page-table chunks. */
  tablesChecked: number;
  /**
   * Version 2: blocks whose hinted pack is gone (repacked, then pruned) found in another existing pack
   * through the vault index (FORMAT.md §19 hints) — not a problem: a page table's hints go stale by design.
   */
  blocksRelocated: number;
  /** Blocks read, decrypted, decompressed and hash-checked (version 2: non-zero chunks): 0 without readData. */
  blocksChecked: number;
  /** Plaintext bytes of those blocks: 0 without readData. */
  bytesChecked: number;
  problems: string[];
  durationMs: number;
}

/**
 * What the vault's catalog says of a backup: `complete` (its manifest is there, and its MAC verifies
 * when a key was given), `incomplete` (planned, no manifest yet: running, stopped, or resumable), or
 * `damaged` (its manifest or plan cannot be read, or the manifest fails its MAC).
 */
export type BackupStatus = 'complete' | 'incomplete' | 'damaged';

/**
 * A complete backup: restorable. A version-2 backup listed without a key that opens its manifest is
 * `locked`: only its blob name is known — `backupId` is then its nameTag (the ID itself is inside the
 * encrypted manifest), `disk` its diskTag, `completedAt` from the name, `source` says it is locked, and
 * the other facts are absent.
 */
export interface CompleteBackupListing {
  backupId: string;
  status: 'complete';
  formatVersion: 1 | 2;
  createdAt?: string;
  completedAt: string;
  source: string;
  diskBytes?: number;
  pageSize?: number;
  bytesStored?: number;
  /** The disk as `pagewise list` groups by it: version 2 its armDiskId, else its identity (docs/FORMAT.md §21.1); version 1 its URL. */
  disk?: string;
  /** Version 2: full or incremental, the base's backup ID (null for a full), the generation (0 for a full). */
  kind?: 'full' | 'incremental';
  base?: string | null;
  generation?: number;
  /** Version 2: bytes read from the source, plaintext bytes newly stored, allocated bytes of the disk. */
  bytesRead?: number;
  bytesNew?: number;
  allocatedBytes?: number;
  /** Version 2 without a key that opens it: only the blob name's facts are listed. */
  locked?: true;
  /** Forgotten (soft-deleted, docs/FORMAT.md §26.2): restorable until graceEndsAt, never a base; `pagewise undelete` keeps it. */
  deleted?: { forgottenAt: string; graceEndsAt: string };
  /** A tombstone under this backup's name that fails authentication or its checks: why. Not trusted: the backup counts as kept. */
  tombstoneProblem?: string;
  /** #18: its newest verification record (docs/FORMAT.md §28), when it has one and the key opens it; absent = never verified. */
  lastVerified?: LastVerified;
}

/** #18: who started a verification: the nightly schedule, the HTTP API, the CLI. */
export type VerifiedBy = 'schedule' | 'http' | 'cli';

/** #18: what the catalog shows of a backup's newest verification record (docs/FORMAT.md §28). */
export interface LastVerified {
  at: string;
  ok: boolean;
  by: VerifiedBy;
  /** The orchestration instance (absent for the CLI). */
  instanceId?: string;
  readData: boolean;
  /** Why it failed (at most 10, redacted); absent when ok. */
  problems?: string[];
}

/** A backup that cannot be restored (yet): what its plan says, when the plan is readable, and why. */
export interface UnfinishedBackupListing {
  backupId: string;
  status: 'incomplete' | 'damaged';
  /** why it cannot be restored */
  problem: string;
  formatVersion?: 1 | 2;
  /** As CompleteBackupListing.disk, when the plan was read. */
  disk?: string;
  createdAt?: string;
  source?: string;
  diskBytes?: number;
  pageSize?: number;
}

export type BackupListing = CompleteBackupListing | UnfinishedBackupListing;
