/**
 * Whole-VM backups (#16) as steps an orchestration calls one by one — capture, each disk granted, backed
 * up and revoked, finalize (VM manifest, then older captures released) or abandon — and `backupVm`
 * composing them inline. Each disk goes through core's managed-disk path (FORMAT.md §21.3): its base is
 * the capture (disk restore point or snapshot) of the disk's previous backup, diffed by ARM ID.
 */
import { createHash } from 'node:crypto';
import { backupDisk } from '../backup/backup-disk';
import { resolveSettings } from '../backup/settings';
import { Clock, systemClock } from '../clock';
import { forEachLimited } from '../concurrency';
import { isPagewiseError, PagewiseError } from '../errors';
import { redact } from '../redact';
import { snapshotBackupIdFor } from '../repo/backup-id';
import type { BackupResult, EngineSettings, ManagedDiskSource, ManagedSnapshotAccess, OperationProgress, StorageLocation } from '../types';
import { isCaptureId, parseCaptureId, parseRestorePointId, parseVmId } from './arm-ids';
import { CapturedDisk, ConsistencyLevel, VmCompute, VmDiskInfo, VmInfo, vmCaptureTag } from './compute';
import { VmManifest, writeVmManifest } from './vm-manifest';

/** A VM backup's ID: vm-<UTC stamp>-<12 hex of the VM ID>; lower-case letters, digits and '-', so a blob-name part, an instance-ID part and a Compute resource name. */
export const VM_BACKUP_ID_RE = /^vm-(\d{8})t(\d{9})z-([0-9a-f]{12})$/;
/** How long a capture's read SAS lives by default: the disk's whole backup reads through it. */
export const DEFAULT_CAPTURE_GRANT_SECONDS = 6 * 3600;
/** How long a base capture's read SAS lives: the plan's diff alone reads it. */
export const BASE_GRANT_SECONDS = 3600;
export const DEFAULT_DISK_CONCURRENCY = 2;

export function vmBackupIdFor(vmId: string, at: Date): string {
  parseVmId(vmId);
  const stamp = at.toISOString().replace(/[-:.]/g, '').toLowerCase(); // 20261201t131616123z
  return `vm-${stamp}-${createHash('sha256').update(`pagewise/vm-backup-id/v1\n${vmId.toLowerCase()}`).digest('hex').slice(0, 12)}`;
}

/** When a VM backup ID was made (ms), or undefined when it is not of vmBackupIdFor's form. */
export function vmBackupTime(vmBackupId: string): number | undefined {
  const m = VM_BACKUP_ID_RE.exec(vmBackupId);
  if (!m) return undefined;
  const iso = `${m[1].slice(0, 4)}-${m[1].slice(4, 6)}-${m[1].slice(6, 8)}T${m[2].slice(0, 2)}:${m[2].slice(2, 4)}:${m[2].slice(4, 6)}.${m[2].slice(6, 9)}Z`;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) && new Date(ms).toISOString() === iso ? ms : undefined;
}

/** The restore point collection Pagewise keeps for a VM (in the VM's resource group). */
export const restorePointCollectionFor = (vmId: string): string => `pagewise-${vmCaptureTag(vmId).slice(0, 24)}`;
/** The name part of a disk: os, or lun<n>. */
export const diskPart = (lun: number | null): string => (lun === null ? 'os' : `lun${lun}`);
const diskLabel = (lun: number | null): string => (lun === null ? 'the OS disk' : `the data disk at LUN ${lun}`);

export interface VmCapture {
  vmBackupId: string;
  vm: VmInfo;
  capture: 'restore-point' | 'snapshots';
  captureNote?: string;
  requestedConsistency: ConsistencyLevel;
  consistency: ConsistencyLevel;
  restorePointId?: string;
  disks: CapturedDisk[];
  notCaptured: { what: string; reason: string }[];
  createdAt: string;
}

/** What a VM backup cannot carry, found in the VM's and its disks' configuration (FORMAT.md §27.4). */
export function notCapturedOf(vm: VmInfo): { what: string; reason: string }[] {
  const out: { what: string; reason: string }[] = [];
  for (const d of [vm.osDisk, ...vm.dataDisks]) {
    if (d.encryption?.adeEnabled) {
      out.push({ what: `Azure Disk Encryption key of ${d.name}`, reason: 'the disk is encrypted inside the guest (ADE): the backup holds its encrypted sectors; the BitLocker/DM-Crypt key in Key Vault is not captured and a restore needs it' });
    }
    if (d.encryption?.diskEncryptionSetId || /customerkey/i.test(d.encryption?.type ?? '')) {
      out.push({ what: `customer-managed key of ${d.name}`, reason: `encrypted at rest with a customer-managed key${d.encryption?.diskEncryptionSetId ? ` (disk encryption set ${d.encryption.diskEncryptionSetId})` : ''}: the data is read in clear through the grant and stored under the vault key; the key and its disk encryption set are not captured (a restored disk gets platform-managed keys unless one is set)` });
    }
  }
  const security = vm.securityType ?? vm.osDisk.securityType;
  if (security && /trustedlaunch|confidential/i.test(security)) {
    out.push({ what: 'VM guest state (VMGS: vTPM and UEFI variables)', reason: `the VM is ${security}: its guest state is not read; a restored VM starts with a fresh vTPM, so secrets sealed to the old one (e.g. BitLocker's TPM protector) need their recovery key` });
  }
  return out;
}

/**
 * Takes the VM's capture: a restore point (all disks at one instant, the consistency Compute obtained)
 * unless asked for snapshots or restore points are unavailable for the VM (mode auto), then one
 * incremental snapshot per disk (crash-consistent per disk). A capture half made is deleted on failure.
 */
export async function captureVm(compute: VmCompute, req: { vmId: string; vmBackupId: string; consistency?: ConsistencyLevel; mode?: 'auto' | 'restore-point' | 'snapshots'; clock?: Clock }): Promise<VmCapture> {
  parseVmId(req.vmId);
  if (!VM_BACKUP_ID_RE.test(req.vmBackupId)) throw new PagewiseError('BadInput', `${JSON.stringify(String(req.vmBackupId).slice(0, 80))} is not a VM backup ID (vm-<stamp>-<12 hex>)`);
  const mode = req.mode ?? 'auto';
  const requested = req.consistency ?? 'application';
  const createdAt = new Date((req.clock ?? systemClock)()).toISOString();
  const vm = await compute.getVm(req.vmId);
  const disks = [vm.osDisk, ...vm.dataDisks];
  const base = { vmBackupId: req.vmBackupId, vm, requestedConsistency: requested, notCaptured: notCapturedOf(vm), createdAt };

  let captureNote: string | undefined;
  if (mode !== 'snapshots') {
    let rp: Awaited<ReturnType<VmCompute['createRestorePoint']>> | undefined;
    try {
      rp = await compute.createRestorePoint(vm, restorePointCollectionFor(vm.id), req.vmBackupId, requested);
    } catch (err) {
      if (mode === 'restore-point' || !isPagewiseError(err) || err.reason !== 'restore-points-unsupported') throw err;
      captureNote = `restore points are unavailable for this VM (${redact(err.message).slice(0, 300)}): each disk was captured by its own incremental snapshot, crash-consistent`;
    }
    if (rp) {
      const captured: CapturedDisk[] = [];
      for (const d of disks) {
        const captureId = rp.diskRestorePointIds.get(d.id.toLowerCase());
        if (!captureId) {
          await compute.deleteRestorePoint(rp.restorePointId).catch(() => undefined);
          throw new PagewiseError('Corrupt', `the restore point ${rp.restorePointId} has no disk restore point of ${diskLabel(d.lun)} (${d.name}); it was deleted`);
        }
        captured.push(capturedDisk(d, captureId));
      }
      return { ...base, capture: 'restore-point', consistency: rp.consistency, restorePointId: rp.restorePointId, disks: captured };
    }
  } else {
    captureNote = 'incremental snapshots were asked for (mode snapshots): each disk was captured on its own, crash-consistent';
  }

  const captured: CapturedDisk[] = [];
  try {
    for (const d of disks) {
      const id = await compute.createIncrementalSnapshot(d, `${req.vmBackupId}-${diskPart(d.lun)}`, { 'pagewise-vm': vmCaptureTag(vm.id) });
      captured.push(capturedDisk(d, id));
    }
  } catch (err) {
    await Promise.all(captured.map((c) => compute.deleteSnapshot(c.captureId).catch(() => undefined)));
    throw err;
  }
  return { ...base, capture: 'snapshots', ...(captureNote ? { captureNote } : {}), consistency: 'crash', disks: captured };
}

function capturedDisk(disk: VmDiskInfo, captureId: string): CapturedDisk {
  parseCaptureId(captureId, `the capture of ${diskLabel(disk.lun)}`);
  return { lun: disk.lun, role: disk.lun === null ? 'os' : 'data', disk, captureId, takenByPagewise: true };
}

/** The Compute view of captures by ARM ID for core's plan (base exists? grant/revoke its read): snapshots AND disk restore points. */
export function managedCaptureAccess(compute: VmCompute, seconds = BASE_GRANT_SECONDS): ManagedSnapshotAccess {
  return {
    // An ARM ID not of a capture's form is no base: its parts would become a request path.
    exists: async (id) => (isCaptureId(id) ? compute.captureExists(id) : false),
    grantRead: async (id) => compute.grantCaptureRead(parseCaptured(id), seconds),
    revokeRead: async (id) => compute.revokeCaptureRead(parseCaptured(id)),
  };
}

const parseCaptured = (id: string): string => (parseCaptureId(id, 'the base capture'), id);

/** The disk identity a captured disk's backups are grouped by (FORMAT.md §21.1), with the capture as the state read. */
export function managedDiskOfCapture(disk: CapturedDisk): ManagedDiskSource {
  return { ...(disk.disk.uniqueId ? { sourceUniqueId: disk.disk.uniqueId } : {}), armDiskId: disk.disk.id, snapshotResourceId: disk.captureId };
}

export async function grantCapturedDisk(compute: VmCompute, disk: CapturedDisk, seconds: number): Promise<{ url: string; managedDisk: ManagedDiskSource }> {
  const url = await compute.grantCaptureRead(disk.captureId, seconds);
  return { url, managedDisk: managedDiskOfCapture(disk) };
}

export async function revokeCapturedDisk(compute: VmCompute, disk: CapturedDisk): Promise<void> {
  await compute.revokeCaptureRead(disk.captureId);
}

/** A captured disk's backup ID: a capture's ARM ID names one immutable state, so a repeat resumes (as for a snapshot event). */
export function capturedDiskBackupId(disk: CapturedDisk, settings: EngineSettings = {}): string {
  return snapshotBackupIdFor(disk.captureId, resolveSettings(settings).pageSize);
}

/** Inline: grant → backupDisk (managedSnapshots = managedCaptureAccess) → revoke in finally. */
export async function backupCapturedDisk(req: {
  compute: VmCompute;
  disk: CapturedDisk;
  vault: StorageLocation;
  userKey: Buffer;
  settings?: EngineSettings;
  full?: boolean;
  grantSeconds?: number;
  onProgress?: (p: OperationProgress) => void;
  backupId?: string;
  /** Stops the disk's backup (Aborted); the grant is revoked all the same. */
  abortSignal?: AbortSignal;
}): Promise<BackupResult> {
  const { url, managedDisk } = await grantCapturedDisk(req.compute, req.disk, req.grantSeconds ?? DEFAULT_CAPTURE_GRANT_SECONDS);
  let result: BackupResult;
  try {
    result = await backupDisk({
      ...req.settings,
      source: { url, managedDiskGrant: true, managedDisk },
      vault: req.vault,
      userKey: req.userKey,
      backupId: req.backupId ?? capturedDiskBackupId(req.disk, req.settings),
      full: req.full,
      managedSnapshots: managedCaptureAccess(req.compute),
      onProgress: req.onProgress,
      abortSignal: req.abortSignal,
    });
  } catch (err) {
    // The backup's failure is the answer; a revoke failing too leaves a SAS that lives out its grant.
    await revokeCapturedDisk(req.compute, req.disk).catch(() => undefined);
    throw err;
  }
  await revokeCapturedDisk(req.compute, req.disk);
  return result;
}

export type DiskOutcome =
  | { lun: number | null; ok: true; result: Pick<BackupResult, 'backupId' | 'kind' | 'reason' | 'bytesRead' | 'bytesStored'> }
  | { lun: number | null; ok: false; error: string };

/** The disk outcome of a backup result (what an activity returns: small, no secret). */
export function diskOutcomeOf(lun: number | null, r: BackupResult): DiskOutcome {
  return { lun, ok: true, result: { backupId: r.backupId, kind: r.kind, reason: r.reason, bytesRead: r.bytesRead, bytesStored: r.bytesStored } };
}

/** The VM manifest of a capture whose every disk succeeded. */
export function vmManifestOf(capture: VmCapture, outcomes: DiskOutcome[], completedAt: string): VmManifest {
  const failed: string[] = [];
  const disks = capture.disks.map((d) => {
    const o = outcomes.find((x) => x.lun === d.lun);
    if (!o || !o.ok) {
      failed.push(`${diskLabel(d.lun)}: ${o ? (o as { error: string }).error : 'no outcome'}`);
      return undefined;
    }
    const info = d.disk;
    return {
      lun: d.lun, role: d.role, diskId: info.id, diskName: info.name, sizeBytes: info.sizeBytes,
      ...(info.sku ? { sku: info.sku } : {}), ...(info.zone ? { zone: info.zone } : {}), ...(info.osType ? { osType: info.osType } : {}),
      ...(info.hyperVGeneration ? { hyperVGeneration: info.hyperVGeneration } : {}),
      captureId: d.captureId, backupId: o.result.backupId, kind: o.result.kind, reason: o.result.reason,
      bytesRead: o.result.bytesRead, bytesStored: o.result.bytesStored,
    };
  });
  if (failed.length > 0) throw new PagewiseError('BackupIncomplete', `VM backup ${capture.vmBackupId} has disks that were not backed up, so no VM manifest was written: ${redact(failed.join('; ')).slice(0, 2000)}`);
  const vm = capture.vm;
  return {
    format: 'pagewise-vm', version: 1,
    vmBackupId: capture.vmBackupId, vmId: vm.id, vmName: vm.name, createdAt: capture.createdAt, completedAt,
    capture: capture.capture, ...(capture.captureNote ? { captureNote: capture.captureNote } : {}),
    requestedConsistency: capture.requestedConsistency, consistency: capture.consistency,
    ...(capture.restorePointId ? { restorePointId: capture.restorePointId } : {}),
    vm: {
      location: vm.location, ...(vm.zone ? { zone: vm.zone } : {}), ...(vm.vmSize ? { vmSize: vm.vmSize } : {}), tags: vm.tags,
      ...(vm.imageReference ? { imageReference: vm.imageReference } : {}), networkInterfaceIds: vm.networkInterfaceIds,
      ...(vm.osDisk.osType ? { osType: vm.osDisk.osType } : {}), ...(vm.osDisk.hyperVGeneration ? { hyperVGeneration: vm.osDisk.hyperVGeneration } : {}),
      ...(vm.securityType ? { securityType: vm.securityType } : {}),
    },
    disks: disks as VmManifest['disks'],
    notCaptured: capture.notCaptured,
  };
}

/** The VM backup a Pagewise capture ID was taken for (its restore point's or snapshot's name), or undefined. */
export function vmBackupIdOfCapture(captureId: string): string | undefined {
  const name = /\/restorePoints\//i.test(captureId) && !/\/diskRestorePoints\//i.test(captureId)
    ? parseRestorePointId(captureId).restorePointName
    : isCaptureId(captureId) && parseCaptureId(captureId).kind === 'snapshot'
      ? (parseCaptureId(captureId) as { snapshotName: string }).snapshotName.replace(/-(os|lun\d{1,3})$/, '')
      : undefined;
  return name !== undefined && VM_BACKUP_ID_RE.test(name) ? name : undefined;
}

/**
 * Writes the VM manifest when every disk succeeded (else throws, writing nothing), then releases older captures
 * of this VM that Pagewise took and that are no base any more: this capture is each disk's newest base; a
 * capture of a later VM backup (running now) is kept, and so is anything not named as Pagewise names them.
 */
export async function finalizeVmBackup(compute: VmCompute, vault: StorageLocation, userKey: Buffer, capture: VmCapture, outcomes: DiskOutcome[], clock: Clock = systemClock): Promise<{ manifest: VmManifest; released: string[]; kept: string[]; releaseProblem?: string }> {
  const manifest = vmManifestOf(capture, outcomes, new Date(Math.max(clock(), Date.parse(capture.createdAt))).toISOString());
  await writeVmManifest(vault, userKey, manifest);
  // From here the backup stands: a release that fails is left to the next backup, never a failure of this one.
  try {
    return { manifest, ...(await releaseOlderCaptures(compute, capture)) };
  } catch (err) {
    return { manifest, released: [], kept: [], releaseProblem: `older captures were not released (the next backup will): ${redact(err instanceof Error ? err.message : String(err)).slice(0, 500)}` };
  }
}

/** Deletes the captures Pagewise took for older backups of this VM (see finalizeVmBackup). */
async function releaseOlderCaptures(compute: VmCompute, capture: VmCapture): Promise<{ released: string[]; kept: string[] }> {
  const mine = new Set((capture.restorePointId ? [capture.restorePointId] : capture.disks.map((d) => d.captureId)).map((id) => id.toLowerCase()));
  const thisTime = vmBackupTime(capture.vmBackupId) ?? Date.parse(capture.createdAt);
  const released: string[] = [];
  const kept: string[] = [];
  for (const id of await compute.listPagewiseCaptures(capture.vm)) {
    const of = vmBackupIdOfCapture(id);
    const time = of === undefined ? undefined : vmBackupTime(of);
    if (mine.has(id.toLowerCase()) || time === undefined || time >= thisTime) {
      kept.push(id);
      continue;
    }
    try {
      if (/\/snapshots\//i.test(id)) {
        await compute.revokeCaptureRead(id).catch(() => undefined); // a grant left by a crashed run blocks the delete
        await compute.deleteSnapshot(id);
      } else {
        await compute.deleteRestorePoint(id);
      }
      released.push(id);
    } catch {
      kept.push(id); // released by a later backup; the manifest stands
    }
  }
  return { released, kept };
}

/** On failure: revokes every grant of this capture and deletes its restore point / snapshots (nothing left behind). */
export async function abandonVmCapture(compute: VmCompute, capture: VmCapture): Promise<void> {
  const problems: string[] = [];
  const attempt = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      problems.push(`${what}: ${redact(err instanceof Error ? err.message : String(err)).slice(0, 300)}`);
    }
  };
  for (const d of capture.disks) await attempt(`revoking ${diskLabel(d.lun)}`, () => compute.revokeCaptureRead(d.captureId));
  if (capture.restorePointId) await attempt('deleting the restore point', () => compute.deleteRestorePoint(capture.restorePointId!));
  else for (const d of capture.disks) await attempt(`deleting the snapshot of ${diskLabel(d.lun)}`, () => compute.deleteSnapshot(d.captureId));
  if (problems.length > 0) throw new PagewiseError('SourceUnreachable', `abandoning VM backup ${capture.vmBackupId} left something behind: ${problems.join('; ')}`);
}

export interface VmBackupRequest {
  compute: VmCompute;
  vmId: string;
  vault: StorageLocation;
  userKey: Buffer;
  full?: boolean;
  consistency?: ConsistencyLevel;
  mode?: 'auto' | 'restore-point' | 'snapshots';
  settings?: EngineSettings;
  /** Disks backed up at once (default 2). */
  diskConcurrency?: number;
  grantSeconds?: number;
  /** Default vmBackupIdFor(vmId, now). */
  vmBackupId?: string;
  clock?: Clock;
  /** Progress of one disk's backup. */
  onDiskProgress?: (lun: number | null, p: OperationProgress) => void;
  /** Called when one disk's backup ends (ok or not). */
  onDiskDone?: (outcome: DiskOutcome) => void;
  /** Called once the capture is taken (what is about to be backed up). */
  onCapture?: (capture: VmCapture) => void;
  /** Stops every disk's backup; the capture is then abandoned (revoked, deleted). */
  abortSignal?: AbortSignal;
}

export interface VmBackupResult {
  vmBackupId: string;
  manifest: VmManifest;
  disks: DiskOutcome[];
  released: string[];
  kept: string[];
  /** Why older captures were not released this time (the backup stands; the next one releases them). */
  releaseProblem?: string;
  notCaptured: { what: string; reason: string }[];
  durationMs: number;
}

/** capture → disks (diskConcurrency, default 2) → finalize | abandon. */
export async function backupVm(req: VmBackupRequest): Promise<VmBackupResult> {
  const started = Date.now();
  const clock = req.clock ?? systemClock;
  const vmBackupId = req.vmBackupId ?? vmBackupIdFor(req.vmId, new Date(clock()));
  const capture = await captureVm(req.compute, { vmId: req.vmId, vmBackupId, consistency: req.consistency, mode: req.mode, clock });
  req.onCapture?.(capture);
  const outcomes: DiskOutcome[] = [];
  try {
    await forEachLimited(capture.disks, Math.max(1, req.diskConcurrency ?? DEFAULT_DISK_CONCURRENCY), async (disk) => {
      let outcome: DiskOutcome;
      try {
        const r = await backupCapturedDisk({
          compute: req.compute, disk, vault: req.vault, userKey: req.userKey, settings: req.settings, full: req.full, grantSeconds: req.grantSeconds, abortSignal: req.abortSignal,
          onProgress: req.onDiskProgress ? (p) => req.onDiskProgress!(disk.lun, p) : undefined,
        });
        outcome = diskOutcomeOf(disk.lun, r);
      } catch (err) {
        outcome = { lun: disk.lun, ok: false, error: redact(err instanceof Error ? err.message : String(err)).slice(0, 1000) };
      }
      outcomes.push(outcome);
      req.onDiskDone?.(outcome);
    });
    const done = await finalizeVmBackup(req.compute, req.vault, req.userKey, capture, outcomes, clock);
    const order = (lun: number | null) => capture.disks.findIndex((d) => d.lun === lun);
    return {
      vmBackupId, manifest: done.manifest, disks: [...outcomes].sort((a, b) => order(a.lun) - order(b.lun)), released: done.released, kept: done.kept,
      ...(done.releaseProblem ? { releaseProblem: done.releaseProblem } : {}), notCaptured: capture.notCaptured, durationMs: Date.now() - started,
    };
  } catch (err) {
    await abandonVmCapture(req.compute, capture).catch(() => undefined);
    throw err;
  }
}
