/**
 * What travels through the histories of VM backups (#16): the names of their orchestrators and
 * activities, inputs, outputs and custom status. A capture rides sealed with the app's MAC (no input
 * sent through the durable API can name a capture Pagewise did not take); a disk's read grant rides as a
 * sealed DiskRef (its SAS never in a history); counts and IDs otherwise.
 */
import type { ConsistencyLevel, DiskOutcome, HeldSlot, VmCapture } from '../core';
import type { DiskRef, OperationTrigger, RetrySettings } from './contracts';

export const VmOrchestrators = {
  backupVm: 'backupVmOrchestrator',
  backupVmDisk: 'backupVmDiskOrchestrator',
} as const;

export const VmActivities = {
  captureVm: 'captureVm',
  grantVmDisk: 'grantVmDisk',
  revokeVmDisk: 'revokeVmDisk',
  finalizeVmBackup: 'finalizeVmBackup',
  abandonVmCapture: 'abandonVmCapture',
} as const;

export const CONSISTENCY_LEVELS: readonly ConsistencyLevel[] = ['application', 'filesystem', 'crash'];
export const CAPTURE_MODES = ['auto', 'restore-point', 'snapshots'] as const;
export type VmCaptureMode = (typeof CAPTURE_MODES)[number];


export interface VmBackupOrchestrationInput {
  vmBackupId: string;
  vmId: string;
  /** Every disk backed up full (else each is incremental on its newest capture when it can be). */
  full?: boolean;
  consistency?: ConsistencyLevel;
  mode?: VmCaptureMode;
  /** Disks backed up at once (PAGEWISE_VM_DISK_CONCURRENCY, default DEFAULT_VM_DISK_CONCURRENCY). */
  diskConcurrency?: number;
  batchesInFlight?: number;
  retry?: RetrySettings;
  /** #17 B: the start slot a queued start took (task hub scope only); released when the VM backup ends. */
  startSlots?: HeldSlot[];
  /** #18: what started it (telemetry's `trigger`). */
  trigger?: OperationTrigger;
}

export const DEFAULT_VM_DISK_CONCURRENCY = 4;
export const MAX_VM_DISK_CONCURRENCY = 16;

/** The captureVm activity's input. */
export interface CaptureVmInput {
  vmBackupId: string;
  vmId: string;
  consistency?: ConsistencyLevel;
  mode?: VmCaptureMode;
}

/** A capture as it leaves the captureVm activity: the capture, and the app's MAC over it (functions/vmSeal.ts). */
export interface SealedCapture {
  capture: VmCapture;
  seal: string;
}

/** One disk of a sealed capture: what grantVmDisk and revokeVmDisk receive. */
export interface VmDiskInput extends SealedCapture {
  lun: number | null;
}

/** What grantVmDisk returns: the disk's backup ID and its read grant, sealed. */
export interface VmDiskGrant {
  backupId: string;
  source: DiskRef;
}

export interface VmDiskOrchestrationInput extends VmDiskInput {
  full?: boolean;
  batchesInFlight?: number;
  retry?: RetrySettings;
}

/** The backupVmDisk sub-orchestration's custom status: which backup it runs (readers follow it for live counts). */
export interface VmDiskStatus {
  state: 'granting' | 'backing-up' | 'revoking' | 'done' | 'failed';
  backupId?: string;
  backupInstanceId?: string;
}

export interface VmFinalizeInput extends SealedCapture {
  outcomes: DiskOutcome[];
}

export type VmPhase = 'capturing' | 'backing-up' | 'finalizing' | 'abandoning' | 'done' | 'failed';

/** Per disk in the VM's custom status: its state and, once done, its figures; readers add live counts of running ones. */
export interface VmDiskProgress {
  lun: number | null;
  role: 'os' | 'data';
  diskName: string;
  sizeBytes: number;
  state: 'pending' | 'running' | 'done' | 'failed';
  /** The backupVmDisk sub-orchestration. */
  instanceId: string;
  backupId?: string;
  kind?: 'full' | 'incremental';
  bytesRead?: number;
  bytesStored?: number;
  error?: string;
}

export interface VmBackupStatus {
  phase: VmPhase;
  vmBackupId: string;
  vmId: string;
  capture?: 'restore-point' | 'snapshots';
  requestedConsistency?: ConsistencyLevel;
  consistency?: ConsistencyLevel;
  disks: VmDiskProgress[];
  notCaptured?: { what: string; reason: string }[];
}

export interface VmBackupOutput {
  vmBackupId: string;
  vmId: string;
  capture: 'restore-point' | 'snapshots';
  consistency: ConsistencyLevel;
  disks: VmDiskProgress[];
  notCaptured: { what: string; reason: string }[];
  released: string[];
  kept: string[];
  /** The manifest stands, but older captures were not released (the next backup will). */
  releaseProblem?: string;
}
