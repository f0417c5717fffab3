/**
 * The small JSON documents that travel through orchestration histories: inputs, outputs and custom
 * status. References and counts only — never page data, never keys, never a SAS: a caller's SAS is
 * sealed by the starter (docs/DURABLE.md "Sealed URLs") and opened only inside activities.
 */
import type { BackupKind, BackupResult, BatchSummary, CodecSetting, ForgetReport, HeldSlot, ManagedDiskSource, PruneReport, RestorePlan, RestoreResult, RestoreWindowSummary, VerifiedBy, VerifyPlan, VerifyResult, VerifyWindowSummary } from '../core';
import type { BatchRange } from './backupTree';
import type { ProgressCounts, RangeProgress } from './progress';

/** Orchestrator and activity function names (one namespace per function app). */
export const Orchestrators = {
  backupDisk: 'backupDiskOrchestrator',
  backupBatchRange: 'backupBatchRangeOrchestrator',
  restoreDisk: 'restoreDiskOrchestrator',
  verifyBackup: 'verifyBackupOrchestrator',
  settleBlob: 'settleBlobOrchestrator',
  pruneVault: 'pruneVaultOrchestrator',
  retainByPolicy: 'retainByPolicyOrchestrator',
  /** #17 R: a range of restore windows (orchestrations/windowFanOut.ts). */
  restoreWindowRange: 'restoreWindowRangeOrchestrator',
  /** #17 V: a range of verify windows (orchestrations/verifyBackup.ts). */
  verifyWindowRange: 'verifyWindowRangeOrchestrator',
  /** #17 mdrestore: a restore to a new managed disk (plan creates it and grants write; windows; finalize writes the footer, revokes). */
  restoreManagedDisk: 'restoreManagedDiskOrchestrator',
} as const;

export const Activities = {
  planBackup: 'planBackup',
  runBackupBatch: 'runBackupBatch',
  finalizeBackup: 'finalizeBackup',
  probeBlob: 'probeBlob',
  startSettledBackup: 'startSettledBackup',
  watchChangedBlob: 'watchChangedBlob',
  /** Ends a managed-disk snapshot's read grant when its backup failed (finalizeBackup ends it on success). */
  revokeSnapshotGrant: 'revokeSnapshotGrant',
  /** Runs core pruneVault once (issue #13). */
  pruneVaultActivity: 'pruneVaultActivity',
  /** Forgets by the policy's retention rules, disk by disk (writes tombstones only: no delete right needed). */
  forgetByPolicy: 'forgetByPolicy',
  /** How many of the given backup orchestrations are still running. */
  backupsSettled: 'backupsSettled',
  /** #17 R: a restore's steps (core planRestore, restoreWindow, finalizeRestore, abandonRestore). */
  planRestore: 'planRestore',
  restoreWindow: 'restoreWindow',
  finalizeRestore: 'finalizeRestore',
  abandonRestore: 'abandonRestore',
  /** #17 V: opens the backup, checks it whole (containers, the source's size), counts its windows. */
  planVerify: 'planVerify',
  /** #17 V: checks one window of pages (structure, blocks, the source). */
  verifyWindow: 'verifyWindow',
  /** #17 B: gives a queued backup's start slots back when it ends (orchestrations/startSlots.ts). */
  releaseStartSlots: 'releaseStartSlots',
  /** #17 mdrestore: a managed-disk restore's own steps (core planManagedDiskRestore, finalizeManagedDiskRestore, abandonManagedDiskRestore); its windows are restoreWindow's. */
  planManagedDiskRestore: 'planManagedDiskRestore',
  finalizeManagedDiskRestore: 'finalizeManagedDiskRestore',
  abandonManagedDiskRestore: 'abandonManagedDiskRestore',
  /** #18 telemetry: sends an operation's Completed/Failed event and metrics (orchestrations/operationReport.ts). */
  reportOperation: 'reportOperation',
  /** #18 verifysched: a verification's last step — its record in the vault (docs/FORMAT.md §28). */
  recordVerification: 'recordVerification',
} as const;

/** Engine settings a caller may override per run; everything else comes from app settings. */
export interface EngineOverrides {
  pageSize?: number;
  cacheBytes?: number;
  concurrency?: number;
  /** Back up a snapshot Pagewise takes of the live blob (core `takeSnapshot`). */
  takeSnapshot?: boolean;
  /** Force a full backup (core `full`); otherwise the plan picks an incremental when it can (issue #12). */
  full?: boolean;
  /** #15: core `chunking` as text (`page`, `fastcdc`, `fastcdc:<min>,<avg>,<max>`), `codec`, `vaultDedupe` (recorded in the plan). */
  chunking?: string;
  codec?: CodecSetting;
  vaultDedupe?: boolean;
}

/** How activities are retried (durable RetryOptions); defaults in orchestrations/retry.ts. */
export interface RetrySettings {
  firstRetryIntervalInMs: number;
  maxAttempts: number;
  backoffCoefficient?: number;
  maxRetryIntervalInMs?: number;
}

export interface DiskRef {
  /** Page-blob URL (optionally `?snapshot=`), without its SAS. */
  url: string;
  /** The URL's SAS, sealed (core/crypto/seal.ts); absent for a URL without one. */
  sealedSas?: string;
  /** Set when the URL is a read SAS the Compute API issued for a managed-disk snapshot. */
  grantedBy?: 'compute';
  /**
   * With grantedBy: the app's MAC over the whole URL, SAS included, and `managedDisk` when present
   * (functions/compute.ts), proving its own grant returned it.
   */
  grantSeal?: string;
  /**
   * With grantedBy: what Compute said of the snapshot (its disk's unique ID and ARM ID), so backups of one
   * disk through different grants find their base. Covered by `grantSeal`: no caller can name another disk.
   */
  managedDisk?: ManagedDiskSource;
}

/**
 * How an event-started backup waits for its page blob to stop changing: the ETag must stay the same
 * for `quietPeriodMs`, within `maxWaitMs` of the first look. `attempt` counts settle rounds (a backup
 * that met a change starts the next one), bounded by MAX_SETTLE_ATTEMPTS.
 */
export interface SettleSettings {
  quietPeriodMs: number;
  maxWaitMs: number;
  attempt: number;
}

export interface SettleOrchestrationInput {
  source: DiskRef;
  /** The ETag the event reported, if any (a stale one is followed to the blob's settled state). */
  eventEtag?: string;
  settle: SettleSettings;
}

/** What a blob looks like now (activity probeBlob). */
export interface BlobProbe {
  etag: string;
  /** The backup ID of this state. */
  backupId: string;
  diskBytes: number;
  copyStatus?: string;
}

export interface SettleOrchestrationOutput {
  outcome: 'started' | 'dropped';
  /** Why the event led to no backup (outcome dropped). */
  reason?: string;
  /** The settled state and its backup. */
  etag?: string;
  backupId?: string;
  /** The backup of the settled state existed already (its status then); absent when this run started it. */
  joined?: string;
  /** The event's ETag when the blob had already moved on from it. */
  supersededEtag?: string;
  probes: number;
}

export interface BackupOrchestrationInput {
  backupId: string;
  source: DiskRef;
  /** The state the backup ID names: the plan refuses any other (core BackupRequest.expectedEtag). */
  expectedEtag?: string;
  /** Set for a backup an event started: a change under it starts another settle round. */
  settle?: SettleSettings;
  settings?: EngineOverrides;
  retry?: RetrySettings;
  /** Batch activities of this disk in flight at once (default BATCHES_IN_FLIGHT, app setting PAGEWISE_BATCHES_IN_FLIGHT). */
  batchesInFlight?: number;
  /**
   * A disk of a VM backup (#16): its source is a capture (disk restore point or snapshot) the VM
   * orchestration granted and revokes itself; its plan reaches bases through the VM Compute view.
   */
  vmCapture?: boolean;
  /** #17 B: the start slots a queued start took for this backup; released when it ends (orchestrations/startSlots.ts). */
  startSlots?: HeldSlot[];
  /** #18: what started it (telemetry's `trigger`); absent in inputs written before, then implied (operationReport.ts triggerOf). */
  trigger?: OperationTrigger;
}

export interface RangeOrchestrationInput extends BackupOrchestrationInput {
  range: BatchRange;
}

/** What every activity of one backup receives: the backup, the source reference and overrides. */
export interface BackupActivityInput {
  backupId: string;
  source: DiskRef;
  expectedEtag?: string;
  settings?: EngineOverrides;
  /** BackupOrchestrationInput.vmCapture. */
  vmCapture?: boolean;
}

/** finalizeBackup shapes the whole run's result: its duration from the orchestration's start, whether it already existed. */
export interface FinalizeActivityInput extends BackupActivityInput {
  /** When the orchestration started (replay-safe `currentUtcDateTime`, ISO 8601); absent from orchestrations of older versions. */
  startedAt?: string;
  /** The plan found the manifest: this run read nothing. */
  alreadyComplete?: boolean;
}

export interface BatchActivityInput extends BackupActivityInput {
  /**
   * The batch's position in the plan's list of batches with data (not its batch number). Orchestrations
   * of earlier versions sent it as `batchIndex`; the activity still accepts that name (docs/DURABLE.md).
   */
  planPosition: number;
}

/** Sum of the BatchSummaries of a range of batches. */
export interface RangeSummary {
  batches: number;
  resumedBatches: number;
  pages: number;
  holePages: number;
  zeroPages: number;
  dedupedPages: number;
  bytesRead: number;
  /** Of bytesRead, what batches that were not resumed read (absent in summaries of older versions). */
  bytesReadNow?: number;
  bytesStaged: number;
  cacheHighWaterBytes: number;
}

export interface BackupOrchestrationOutput {
  backupId: string;
  alreadyComplete: boolean;
  batches: RangeSummary;
  /** Sub-orchestrations the root started (one per range of ≤ BATCHES_PER_LEAF batches, or per subtree). */
  rangeOrchestrations: number;
  result: BackupResult;
}

export type BackupPhase = 'planning' | 'copying' | 'finalizing' | 'done' | 'failed';

/**
 * The root's custom status: core's progress counts (pages and source bytes read of the disk's
 * allocated pages and bytes, 0 of 0 until planned) and its batches; `withLiveProgress` adds its running
 * ranges' progress for readers.
 */
export interface BackupProgressStatus extends RangeProgress, ProgressCounts {
  phase: BackupPhase;
  backupId: string;
  /** Once planned: full or incremental, on which base, and why a full one is full (absent before, and in statuses of older versions). */
  kind?: BackupKind['kind'];
  base?: BackupKind['base'];
  reason?: BackupKind['reason'];
  /** A full planned because its base proved unusable (gone, grant refused): why, in words. */
  reasonText?: string;
}

/** A restore's or verification's custom status: core's progress counts (0 of 0 while its activity runs, its final counts when done). */
export interface OperationProgressStatus extends ProgressCounts {
  phase: 'restoring' | 'verifying' | 'done' | 'failed';
  backupId: string;
  /** A verification's verdict, once done. */
  ok?: boolean;
}

/** What restores and verifications started over HTTP carry besides their request. */
export interface OperationInputBase {
  retry?: RetrySettings;
  /** Digest of the HTTP request that started it: an Idempotency-Key reused with another request is refused. */
  requestFingerprint?: string;
  /** #18: what started it (telemetry's `trigger`: a scheduled verification is `timer`). */
  trigger?: OperationTrigger;
}

export interface RestoreOrchestrationInput extends OperationInputBase {
  backupId: string;
  target: DiskRef;
  overwrite?: boolean;
}

export interface VerifyOrchestrationInput extends OperationInputBase {
  backupId: string;
  readData?: boolean;
  source?: DiskRef;
  // #18: `trigger` (OperationInputBase) also names its record's `by`: timer → schedule, cli → cli, else http.
}

/** A prune started over HTTP or by the schedule: core PruneOptions' caller-settable part. */
export interface PruneOrchestrationInput {
  dryRun?: boolean;
  /** Fraction 0…1 of the vault's pack bytes that may stay unused before repacking (core GcParams.maxUnused). */
  maxUnused?: number;
  /** Repack mostly unused packs (default true; never in a dry run). */
  repack?: boolean;
  retry?: RetrySettings;
}

/** A prune's custom status: its phase, and once done the report's figures (the output holds the whole report). */
export interface PruneProgressStatus {
  phase: 'pruning' | 'done' | 'failed';
  dryRun: boolean;
  pruneId?: string;
  bytesReclaimed?: number;
  blocked?: string;
}

/**
 * After a scheduled run: wait (durable timers) until its backups have finished, then forget by the
 * policy's retention rules, then prune when the app's role allows. Only instance IDs travel here: the
 * policy (its disk URLs may carry a SAS) is read again by the activity.
 */
export interface RetainByPolicyInput {
  /** Backup orchestrations of the run to wait for (`backup-…` instance IDs). */
  backupInstances: string[];
  prune: boolean;
  /** Minutes between looks at the backups, and how long to wait for them at most before forgetting anyway. */
  pollMinutes?: number;
  maxWaitMinutes?: number;
  retry?: RetrySettings;
  /**
   * #17 B: the run's starts went through the queue — their backups are not known when the timer fires.
   * The wait counts `starts` start records of firing `run` (yyyymmddhhmm) that have not settled (docs/DURABLE.md "Start budget").
   */
  queuedRun?: { run: string; starts: number };
}

export interface RetainByPolicyOutput {
  waitedRounds: number;
  /** Backups still running when the wait ended (they are not the newest of their disk yet; the policy ran anyway). */
  stillRunning: number;
  forget?: ForgetReport;
  prune?: PruneReport;
}

// #17 R — restore fan-out: plan → windows (range sub-orchestrations) → finalize; abandon on failure.

/** The plan activity's input: the restore (target sealed as in the orchestration input) and its operation. */
export interface RestorePlanInput {
  backupId: string;
  target: DiskRef;
  overwrite?: boolean;
  /** The restore's orchestration instance ID: the target is marked with it. */
  operationId: string;
}

/** The plan activity's output: core's plan and how many window activities a leaf keeps in flight. */
export interface RestorePlanOutput {
  plan: RestorePlan;
  windowsInFlight: number;
  /** A managed-disk restore: the disk's write grant, sealed (functions/compute.ts grantedSource): the later steps' target. */
  target?: DiskRef;
}

/** What the window, finalize and abandon activities receive: the restore and its plan. */
export interface RestoreStepInput {
  backupId: string;
  target: DiskRef;
  plan: RestorePlan;
}

export interface RestoreWindowInput extends RestoreStepInput {
  window: number;
}

export interface RestoreRangeInput {
  step: RestoreStepInput;
  range: BatchRange;
  windowsInFlight: number;
  retry?: RetrySettings;
}

/** A restore's custom status: core's counts (the plan's totals; done as windows end) and its windows. */
export interface RestoreProgressStatus extends OperationProgressStatus {
  windowsTotal: number;
  windowsDone: number;
}

/** The restore orchestration's output: core's result and its windows. */
export type RestoreOrchestrationOutput = RestoreResult & { windows: number };

// #17 mdrestore — a restore fan-out to a new managed disk (docs/DURABLE.md "Restore fan-out", docs/VM.md).

/** Where a managed-disk restore creates its disk (core ManagedDiskTarget; the restore sets its size and tags). */
export interface ManagedDiskTargetInput {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  sku?: string;
  zone?: string;
}

export interface ManagedDiskRestoreInput extends OperationInputBase {
  backupId: string;
  managedDisk: ManagedDiskTargetInput;
}

/** The managed-disk plan activity's input. */
export interface ManagedDiskPlanInput {
  backupId: string;
  managedDisk: ManagedDiskTargetInput;
  operationId: string;
}

export type { BatchSummary, BackupResult, ForgetReport, PruneReport, RestorePlan, RestoreResult, RestoreWindowSummary, VerifyResult };

// #17 V: verify fan-out (orchestrations/verifyBackup.ts, docs/DURABLE.md "Verify fan-out").

/** What planVerify returns: core's plan, and the window activities one leaf keeps in flight (PAGEWISE_BATCHES_IN_FLIGHT). */
export interface VerifyPlanOutput extends VerifyPlan {
  windowsInFlight: number;
}

/** What every window activity of one verification receives, besides its window. */
export interface VerifyWindowsInput {
  backupId: string;
  readData: boolean;
  windowPages: number;
  /** Version 2: the manifest's blob name (the plan's). */
  manifestName?: string;
  /** The source to compare with (its SAS sealed), only when the plan found its size the backup's. */
  source?: DiskRef;
}

/** verifyWindow's input: window `window` covers pages [window·windowPages, (window+1)·windowPages). */
export interface VerifyWindowInput extends VerifyWindowsInput {
  window: number;
}

/** verifyWindowRangeOrchestrator's input: a range of windows (r<first>+<count>) and how to run them. */
export interface VerifyRangeInput {
  windows: VerifyWindowsInput;
  range: BatchRange;
  windowsInFlight: number;
  retry?: RetrySettings;
}

/** A verification's custom status while its windows run: the root's (phase, totals) or a range's (its windows). */
export interface VerifyWindowProgress {
  windowsTotal: number;
  /** Windows whose activities have completed, in this instance's finished waves (a running range's are added by readers). */
  windowsDone: number;
  pagesDone: number;
  bytesDone: number;
  /** Range sub-orchestrations in flight. */
  running?: string[];
}

export type VerifyProgressStatus = OperationProgressStatus & Partial<VerifyWindowProgress>;

export type { VerifyPlan, VerifyWindowSummary };

// ---- #18 telemetry: operation reports (orchestrations/operationReport.ts, functions/operationReports.ts) ----

/** The operations telemetry follows (event names `Pagewise<Kind><Phase>`, docs/TELEMETRY.md). */
export type OperationReportKind = 'backup' | 'vm-backup' | 'restore' | 'verify' | 'prune';
/** What started an operation. */
export type OperationTrigger = 'http' | 'timer' | 'queue' | 'eventgrid' | 'cli';

/** The reportOperation activity's input: the operation, how it ended, and its figures or failure. Redacted text only. */
export interface OperationReportInput {
  kind: OperationReportKind;
  phase: 'Completed' | 'Failed';
  instanceId: string;
  trigger: OperationTrigger;
  disk?: string;
  backupId?: string;
  reason?: string;
  errorCode?: string;
  /** Top-level numbers of the output (bytesRead, bytesStored, pages, durationMs …). */
  figures?: Record<string, number>;
}

// #18 verifysched: the verification record (orchestrations/verifyBackup.ts → functions/verifyActivities.ts).

/** recordVerification's input: the outcome of one verification, at the orchestration's (replay-safe) end time. */
export interface RecordVerificationInput {
  backupId: string;
  instanceId: string;
  by: VerifiedBy;
  /** ISO 8601 UTC with milliseconds. */
  at: string;
  ok: boolean;
  readData: boolean;
  /** Why it failed: the verification's first problems, or the error that stopped it. */
  problems?: string[];
}
