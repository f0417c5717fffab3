/**
 * Pagewise core: the engine, and its public API — the only module code outside core/ imports (the rule
 * is test/rules.public-api.test.ts). Grouped by the room (folder) each part lives in. No Azure Functions
 * imports here.
 */

// types: requests, results, progress and listings of every operation.
export * from './types';

// errors: one error type with a code, and the one rule for which failures are transient.
export { PagewiseError, isPagewiseError, isTransient, TRANSIENT_CODES, abortedError } from './errors';
export type { PagewiseErrorCode, BaseUnusableReason } from './errors';

// limits: the bounds on every configurable count, and byte units.
export { BATCHES_IN_FLIGHT, PAGE_CONCURRENCY, REQUESTS_PER_ACCOUNT, withinBounds, MiB, GiB } from './limits';
export type { CountBounds } from './limits';
export { parseBytes, formatBytes, DAY_MS } from './units';

// Text that leaves the process: secrets redacted, URLs shown without their SAS.
export { redact, displayUrl, printable, SECRET_FIELD } from './redact';
export { nestsTooDeep } from './json-depth';

// repo: the vault — made, listed, its backups' IDs, and the user key that opens them.
export { initVault, upgradeVaultAt, vaultExists } from './repo/vault-state';
export { listBackups, listBackupsByDisk, groupByDisk, checkRestorable } from './repo/catalog';
export type { ListBackupsOptions, DiskBackups } from './repo/catalog';
export { BACKUP_ID_RE, backupIdFor, givenOrDerivedBackupId, snapshotBackupIdFor, validateBackupId } from './repo/backup-id';
export { loadUserKey, writeNewKeyFile, decodeUserKey, encodeKeyFile, generateKey, keyId } from './repo/keys';
// repo, format 2 (docs/FORMAT.md §11–§20): the marker dispatch, making, upgrading and opening a version-2 vault.
export { readVaultMarker, createVaultV2, upgradeVault, openVaultKeyring } from './repo/v2/marker';
export type { VaultMarker, VaultMarkerV2 } from './repo/v2/marker';
export { Keyring } from './repo/v2/keyring';
export type { BaseRef, DiskRef, FullReason, ManifestV2, TableRef } from './repo/v2/records';

// backup: in one process (backupDisk), or as the three steps an orchestration runs (plan, batches, finalize).
export { backupDisk } from './backup/backup-disk';
export { planBackup } from './backup/plan-backup';
export { runBackupBatch } from './backup/run-batch';
export { finalizeBackup } from './backup/finalize-backup';
export { asAlreadyExisted } from './backup/backup-result';
export { resolveSettings } from './backup/settings';
export type { ResolvedSettings } from './backup/settings';
export { whileBackingUp, sameDisk } from './backup/running-backups';

// restore: to a page blob, a sparse file or a block device, and where a disk may be written.
export { restoreBackup, isBlobTarget } from './restore/restore';
export { assertDiskWriteTarget, assertSourceIsNotVault, protectContainer, targetExists } from './restore/target-guard';

// verify: a backup checked from the vault alone, optionally against its source.
export { describeVerification, verifyBackup } from './verify/verify';
// #17 V, verify fan-out: the plan, one window, their sum (the orchestration's steps; verifyBackup runs them in one process).
export { planVerify } from './verify/verify-plan';
export type { VerifyPlan, VerifyPlanRequest } from './verify/verify-plan';
export { verifyWindow } from './verify/verify-window';
export type { VerifyWindowRequest } from './verify/verify-window';
export { addVerifySummaries, NO_VERIFY_WINDOWS, verifyResultOf, MAX_PROBLEMS } from './verify/verify-summary';
export type { VerifyWindowSummary } from './verify/verify-summary';

// storage: URLs and clients, the endpoints a request may go to, credentials, the per-account request gate.
export { parseStorageUrl, allowedEndpointOf, sourceBlobClient } from './storage/clients';
export { defaultCredential } from './storage/credentials';
export type { TokenCredential } from './storage/credentials';
export { CLOUD_SUFFIXES, configureStorageEndpoints, configureStorageEndpointsFromEnv, parseEndpoint, endpointOf, azureEndpoint, endpointRefused, isManagedDiskEndpoint, isPathStyleHost } from './storage/endpoints';
export { configureRequestsPerAccount, accountHighWater, DEFAULT_REQUESTS_PER_ACCOUNT } from './storage/account-gate';

// #18 telemetry: the one observer of every storage request core's clients send (counted and sampled by functions/telemetry.ts).
export { observeStorageRequests } from './storage/request-observer';
export type { StorageRequestObserver, StorageRequestRecord } from './storage/request-observer';

// crypto: a caller's SAS sealed so it never reaches the durable task hub.
export { sealUrl, unsealUrl, splitSas, joinSas, taskHubSealKey, SEALED_SAS_RE } from './crypto/seal';
export type { SealedUrl } from './crypto/seal';

// cache: the scratch directory, and the check that a directory is the user's alone.
export { sweepStaleScratchDirs } from './cache/scratch-dir';
export { assertUnsharedDirSync } from './shared-dir';

// source: the disk being backed up, its current state, and uploading a local image as a page blob.
export { SourceDisk, assertNotCopying } from './source/source-disk';
export type { ByteRange } from './source/page-grid';
export { sourceState, deriveBackupId } from './source/source-state';
export type { SourceState } from './source/source-state';
export { uploadImage } from './source/upload-image';
export { diskIdentityOf } from './source/disk-identity';
export { changedRanges, changedPages, MANAGED_WINDOW_BYTES } from './source/changed-ranges';
export type { ChangedRange, DiffBase, DiffListingOptions } from './source/changed-ranges';
export { releaseOlderSnapshots } from './source/snapshot-lifecycle';
export type { ReleasedSnapshots } from './source/snapshot-lifecycle';
export type { UploadImageResult } from './source/upload-image';

// retention: keep policies (restic's --keep-* rules), forget (a tombstone, soft delete) and undelete (#13).
export { applyKeepPolicy, parseKeepPolicy, describeKeepPolicy } from './retention/keep-policy';
export type { KeepPolicy, KeepDecision } from './retention/keep-policy';
export { forgetBackups, undeleteBackups } from './retention/forget';
export type { ForgetOptions, ForgetReport, UndeleteOptions, UndeleteResult } from './retention/forget';

// prune: the garbage collection of a version-2 vault (FORMAT.md §26).
export { pruneVault } from './prune/prune';
export type { PruneOptions, PruneReport, PruneStep } from './prune/prune';

// files (#14) — the vault pseudo-disk: a backup read as a disk straight from the vault, metered.
export { VaultDisk, DEFAULT_FILE_CACHE_BYTES, MAX_DISK_READ_BYTES } from './files/vault-disk';
export type { VaultDiskStats, OpenVaultDiskRequest } from './files/vault-disk';
export { openBackupSource } from './repo/backup-source';
export type { BackupSource, PagePiece, PageRef, OpenSourceOptions } from './repo/backup-source';
export { metered } from './repo/store/wrappers';
export type { StoreMeter } from './repo/store/wrappers';

// files (#14): file-level restore straight from the vault — the volumes of a backed-up disk, their files listed, read, extracted.
export { BackupFiles, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, MAX_WALK_DEPTH, MAX_WALK_HELD_NAMES } from './files/backup-files';
export type { FileListing, FileRestoreStats, OpenBackupFilesRequest, VolumeView, WalkEntry } from './files/backup-files';
export { ExtVolume, fileTypeOf, unusableName } from './files/ext-volume';
export type { FileEntry, FileType } from './files/ext-volume';
export { parseVolumePath, formatVolumePath, MAX_VOLUME_PATH_BYTES } from './files/file-path';
export type { VolumePath } from './files/file-path';
export { extractFiles, MAX_SKIPPED_KEPT } from './files/extract';
export type { ExtractRequest, ExtractResult } from './files/extract';

// files (#14): partitions and what each volume holds (file-level restore reads ext2/3/4 only).
export { readPartitionTable, MAX_GPT_ENTRIES, MAX_LOGICAL_PARTITIONS } from './files/partition-table';
export type { Partition, PartitionLayout } from './files/partition-table';
export { identifyVolume } from './files/volume-kind';
export type { VolumeIdentity, VolumeKind } from './files/volume-kind';
export { fileDiskReader, sliceReader, checkRead } from './files/disk-reader';
export type { DiskReader } from './files/disk-reader';

// files (#14), journal part: an ext journal replayed into a bounded in-memory overlay before a volume is mounted.
export { OverlayDisk, DEFAULT_OVERLAY_MAX_BYTES } from './files/overlay-disk';
export { replayExtJournal } from './files/ext-journal';
export type { JournalReplay } from './files/ext-journal';

// file-level restore, how the entry points report it (#14, entry): volumes and journal replays.
export { volumeSummary, replayedVolumes, journalNotes } from './files/files-report';
export type { VolumeSummary } from './files/files-report';

// #15 usage — cost visible: bytes unique and shared per backup and per disk, the vault's totals (docs/SCALE.md).
export { vaultUsage, vaultUsageAt } from './repo/v2/vault-usage';
export type { BackupUsage, DiskUsage, VaultUsage, VaultUsageOptions } from './repo/v2/vault-usage';

// #15 A — chunks: chunking schemes, codecs and the worker-thread chunk pool.
export { DEFAULT_CHUNKING, checkChunking, chunkingForPage, sameChunking, gearTable, chunkLengths } from './repo/v2/chunker';
export type { Chunking, FastCdcChunking } from './repo/v2/chunker';
export { DEFAULT_CODEC, chunkPoolFor, decodeThreads, workerThreads, closeChunkPools } from './processor/chunk-pool';
export type { ChunkPool, CodecSetting, PageChunk } from './processor/chunk-pool';

// #15 D — writer15: the writer's chunking/codec settings as text, the reuse decision.
export { chunkingFromText, chunkingToText } from './backup/settings';
export { ChunkReuse } from './backup/v2/chunk-reuse';
export type { IndexCandidates, PackCreated, ReuseStats } from './backup/v2/chunk-reuse';

// #15 B (index): compacted index generations, the content index (bounded memory), compaction and rebuild-index.
export { writeGeneration, newestGeneration, listGenerations, readShard, readShardFrame, readFilter, BloomFilter, GenerationView, generationNames, filterBitsFor } from './repo/v2/index-generation';
export type { ShardInfo, IndexCovers, Generation } from './repo/v2/index-generation';
export { ContentIndex, contentIndexBound, DEFAULT_FRAME_CACHE_BYTES, DEFAULT_DELTA_BUDGET_ENTRIES } from './repo/v2/content-index';
export type { ContentIndexOptions, ContentIndexStats } from './repo/v2/content-index';
export { compactIndex, rebuildIndex, rebuildVaultIndex } from './repo/v2/index-compaction';
export type { CompactReport, RebuildReport, RebuildVaultIndexOptions } from './repo/v2/index-compaction';

// #16 vmcore — whole-VM backups through Compute: the Compute view (VmCompute) and its ARM implementation,
// the ARM context and IDs, the VM manifest (FORMAT.md §27), and the VM backup engine in steps.
export type { CapturedDisk, ConsistencyLevel, NewDiskSpec, NewVmSpec, VmCaptureCompute, VmCompute, VmDiskInfo, VmInfo, VmProvisioningCompute } from './vm/compute';
export { PAGEWISE_TAG, PAGEWISE_TAG_VALUE, PAGEWISE_VM_TAG, pagewiseTags, vmCaptureTag } from './vm/compute';
export { ArmVmCompute } from './vm/arm-vm-compute';
export type { ArmVmComputeOptions } from './vm/arm-vm-compute';
export { armCapture, armAccessDenied, isArmNotFound, armErrorText, DEFAULT_COMPLETION_WAIT, RESTORE_POINTS_UNSUPPORTED } from './vm/arm-capture';
export type { ArmCaptureOptions, CompletionWait } from './vm/arm-capture';
export { armContext, parseArmEndpoint, parseArmPollMs, MIN_ARM_POLL_MS, MAX_ARM_POLL_MS, StaticTokenCredential, PUBLIC_ARM_ENDPOINT } from './vm/arm-context';
export type { ArmContext, ArmContextOptions } from './vm/arm-context';
export {
  parseVmId, parseDiskId, parseSnapshotId, parseCaptureId, parseRestorePointId, parseDiskRestorePointId, isCaptureId, parseResourceGroupId, parseSubscriptionScope,
  assertResourceName, assertResourceGroupName, assertSubscriptionId, resourceGroupIdOf, vmIdOf, diskIdOf, snapshotIdOf, restorePointIdOf, diskRestorePointIdOf,
} from './vm/arm-ids';
export type { CaptureRef, DiskRestorePointRef, ResourceGroupRef, RestorePointRef, SnapshotRef as ArmSnapshotRef, VmRef, DiskRef as ArmDiskRef } from './vm/arm-ids';
export { writeVmManifest, readVmManifest, listVmBackups, VM_MANIFEST_NAME_RE } from './vm/vm-manifest';
export type { VmManifest, VmManifestDisk } from './vm/vm-manifest';
export {
  vmBackupIdFor, vmBackupTime, VM_BACKUP_ID_RE, captureVm, managedCaptureAccess, grantCapturedDisk, revokeCapturedDisk, backupCapturedDisk,
  capturedDiskBackupId, managedDiskOfCapture, diskOutcomeOf, vmManifestOf, finalizeVmBackup, abandonVmCapture, backupVm, notCapturedOf,
  restorePointCollectionFor, DEFAULT_CAPTURE_GRANT_SECONDS, BASE_GRANT_SECONDS, DEFAULT_DISK_CONCURRENCY,
} from './vm/backup-vm';
export type { VmCapture, DiskOutcome, VmBackupRequest, VmBackupResult } from './vm/backup-vm';

// #16 vmrestore: restore to Azure — new managed disks (a fixed VHD footer last) and a new VM.
export { vhdFooter, parseVhdFooter, vhdGeometry, VHD_FOOTER_BYTES } from './vm/vhd-footer';
export type { VhdFooter, VhdGeometry } from './vm/vhd-footer';
export { armProvisioning, assertUploadDiskSize, MIN_UPLOAD_DISK_BYTES, MAX_UPLOAD_DISK_BYTES } from './vm/arm-provision';
export { assertNetworkInterfaceId } from './vm/arm-ids';
export { restoreBackupToManagedDisk, restoreVm, RESTORE_GRANT_SECONDS, RESTORED_TAGS, DEFAULT_RESTORE_PREFIX } from './vm/restore-vm';
export type { ManagedDiskTarget, ManagedDiskRestoreRequest, ManagedDiskRestoreResult, VmRestoreRequest, VmRestoreResult } from './vm/restore-vm';
// #16 vmfunc — which VMs a policy selector names (by ID, resource group, subscription, or tag through Resource Graph).
export { checkVmSelector, describeSelector, MAX_TAG_SUBSCRIPTIONS, MAX_VMS_PER_SELECTOR, uniqueVmIds, vmsInScope } from './vm/vm-scope';
export type { VmSelector, VmTagSelector } from './vm/vm-scope';
// #16 vmretain — VM-level forget, keep rules and undelete (FORMAT §27.6).
export { forgetVmBackups, forgetVmBackupsByPolicy, undeleteVmBackups, listVmBackupStates } from './vm/vm-retention';
export type { VmBackupListing, VmForgetOptions, VmForgetReport, VmUndeleteResult } from './vm/vm-retention';
export { checkTagText, MAX_TAG_TEXT } from './vm/tag-text';

// #15 speed — the zstd binding in use (native or the WebAssembly fallback) and the codec pre-check's rule and counts.
export { zstdBinding, zstdEncodeSync, zstdReady, ZSTD_LEVEL } from './repo/v2/zstd';
export type { ZstdBinding } from './repo/v2/zstd';
export { mayCompress, precheckCounts, PRECHECK_MIN_BYTES } from './repo/v2/compressibility';
export type { PrecheckCounts } from './repo/v2/compressibility';

// #17 part R (restore fan-out): plan → windows → finalize (or abandon), over the streaming restore's page writer.
export { planRestore, assertPlanOf, windowPages, windowPagesFor, RESTORE_WINDOW_BYTES, RESTORE_PLAN_VERSION } from './restore/restore-plan';
export type { RestorePlan, RestorePlanRequest, RestoreStepRequest } from './restore/restore-plan';
export { restoreWindow, addWindowSummaries, NO_WINDOWS } from './restore/restore-window';
export type { RestoreWindowSummary } from './restore/restore-window';
export { finalizeRestore, abandonRestore } from './restore/finalize-restore';
export type { FinalizedRestore } from './restore/finalize-restore';
export { RESTORE_OPERATION_RE } from './restore/restore-marks';
export { MAX_SOURCE_DISK_BYTES } from './limits';
// #17 leftbehind — nothing left behind: the snapshot sweeper (docs/VM.md "Nothing left behind").
export { sweepSnapshots, describeSweep, MAX_DELETES_PER_SWEEP } from './vm/snapshot-sweep';
export type { SnapshotSweepCompute, SweepActivity, SweepRequest, SweepReport, SweepScope, SweptSnapshot, KeptReason } from './vm/snapshot-sweep';
export { armSnapshotSweep, sweptSnapshotOf, MAX_SWEPT_PER_SCOPE } from './vm/arm-snapshots';
export { managedDiskIdentityOf } from './source/disk-identity';
// #17 B startbudget — the start budget: slot blobs per scope (task hub, source account), taken as blob leases.
export { StartSlots, slotBlobName, holderLeaseId, START_SLOTS_LAYOUT, START_GRACE_MS, RECORD_LEASE_SECONDS } from './fleet/start-slots';
export type { SlotScope, SlotScopeKind, HeldSlot, HolderRunning, TakeResult } from './fleet/start-slots';
export { forEachLimited } from './concurrency';
// #15 speed (part S): FastCDC's masks, for the bench's JavaScript gear loops (bench/lib/gear-js.ts).
export { spreadMask } from './repo/v2/chunker';
// #17 follow-up mdrestore — restore fan-out to a new managed disk (docs/VM.md, docs/DURABLE.md "Restore fan-out").
export { planManagedDiskRestore, finalizeManagedDiskRestore, abandonManagedDiskRestore, RESTORE_OPERATION_TAG } from './vm/restore-vm-fanout';
export type { ManagedDiskPlan, ManagedDiskPlanRequest, ManagedDiskStepRequest } from './vm/restore-vm-fanout';
export { newDiskId, targetDiskId } from './vm/managed-disk-steps';

// #18 auth: the audit log (functions/auth/audit.ts) keeps small JSON blobs in the vault (FORMAT.md "Audit log").
export { Vault } from './repo/vault';
// #18 verifysched — verification records (docs/FORMAT.md §28) and the nightly sample (functions/scheduledVerifications.ts).
export { writeVerificationRecord, readLastVerified, withLastVerified, verificationRecord, recordProblem, VERIFIED_PREFIX, MAX_RECORD_PROBLEMS } from './verify/verify-records';
export type { VerificationRecord, LastVerifiedRead } from './verify/verify-records';
export { pickVerifications, verifyCandidates, verificationBytes } from './verify/verify-rotation';
export type { VerifyCandidate, VerifySample } from './verify/verify-rotation';
// #18 follow-up (followb): reading lastVerified costs one listing once a process has read the records.
export { forgetRememberedRecords, KEYRING_TTL_MS } from './verify/record-cache';
