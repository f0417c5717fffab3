/**
 * The narrow view of the Azure Resource Manager (Compute) calls Pagewise makes for whole-VM backups and
 * restores (#16): one interface, so the engine is written against it and the real implementation
 * (`ArmVmCompute`, core/vm/arm-vm-compute.ts) is the only thing that speaks ARM.
 */
import { createHash } from 'node:crypto';

/** What a VM capture guarantees of its disks taken together (a restore point's `consistencyMode`, lower-cased). */
export type ConsistencyLevel = 'application' | 'filesystem' | 'crash';

export interface VmDiskInfo {
  /** The managed disk's ARM ID. */
  id: string;
  name: string;
  /** null = the OS disk. */
  lun: number | null;
  /** diskSizeBytes (exact), else diskSizeGB × GiB. */
  sizeBytes: number;
  /** e.g. Premium_LRS, PremiumV2_LRS, UltraSSD_LRS. */
  sku?: string;
  location: string;
  zone?: string;
  /** OS disk only. */
  osType?: string;
  hyperVGeneration?: string;
  /** The disk's GUID (a snapshot's creationData.sourceUniqueId matches it). */
  uniqueId?: string;
  encryption?: { type?: string; diskEncryptionSetId?: string; adeEnabled?: boolean };
  /** securityProfile.securityType (TrustedLaunch, ConfidentialVM…). */
  securityType?: string;
}

export interface VmInfo {
  id: string;
  name: string;
  location: string;
  zone?: string;
  vmSize?: string;
  tags: Record<string, string>;
  imageReference?: Record<string, unknown>;
  networkInterfaceIds: string[];
  /** The VM's securityProfile.securityType. */
  securityType?: string;
  osDisk: VmDiskInfo;
  dataDisks: VmDiskInfo[];
}

/** A managed-disk capture: a disk restore point (of a VM restore point) or an incremental snapshot. */
export interface CapturedDisk {
  lun: number | null;
  role: 'os' | 'data';
  disk: VmDiskInfo;
  /** ARM ID of the disk restore point or the snapshot (core/vm/arm-ids parseCaptureId). */
  captureId: string;
  takenByPagewise: true;
}

export interface NewDiskSpec {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  zone?: string;
  sku?: string;
  sizeBytes: number;
  osType?: string;
  hyperVGeneration?: string;
  tags?: Record<string, string>;
}

export interface NewVmSpec {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  zone?: string;
  vmSize: string;
  osDiskId: string;
  osType?: string;
  dataDisks: { lun: number; diskId: string }[];
  networkInterfaceIds: string[];
  tags?: Record<string, string>;
}

/** The capture half (vmcore: core/vm/arm-capture.ts). */
export interface VmCaptureCompute {
  getVm(vmId: string): Promise<VmInfo>;
  listVms(scope: { subscriptionId: string; resourceGroup?: string }): Promise<VmInfo[]>;
  /** Resource Graph: IDs of the VMs carrying tag name=value in these subscriptions. */
  vmIdsByTag(subscriptionIds: string[], tag: { name: string; value: string }): Promise<string[]>;
  createRestorePoint(
    vm: VmInfo,
    collectionName: string,
    restorePointName: string,
    consistency: ConsistencyLevel,
  ): Promise<{ restorePointId: string; consistency: ConsistencyLevel; diskRestorePointIds: Map<string /* disk ID, lower-case */, string> }>;
  /** Gone = ok. */
  deleteRestorePoint(restorePointId: string): Promise<void>;
  createIncrementalSnapshot(disk: VmDiskInfo, snapshotName: string, tags: Record<string, string>): Promise<string /* snapshot ID */>;
  /** Gone = ok. */
  deleteSnapshot(snapshotId: string): Promise<void>;
  captureExists(captureId: string): Promise<boolean>;
  /** A read SAS URL (a secret); waits until the capture's completionPercent is 100. */
  grantCaptureRead(captureId: string, seconds: number): Promise<string>;
  /** Gone = ok. */
  revokeCaptureRead(captureId: string): Promise<void>;
  /** Restore points / snapshots Pagewise took for this VM (by its tag). */
  listPagewiseCaptures(vm: VmInfo): Promise<string[]>;
}

/** The provisioning half (vmrestore: core/vm/arm-provision.ts). */
export interface VmProvisioningCompute {
  getDisk(diskId: string): Promise<VmDiskInfo & { diskState?: string; tags?: Record<string, string> }>;
  /** createOption Upload, uploadSizeBytes = sizeBytes + 512 (the VHD footer). */
  createUploadDisk(spec: NewDiskSpec): Promise<string /* disk ID */>;
  /** A write SAS URL (a secret). */
  grantDiskWrite(diskId: string, seconds: number): Promise<string>;
  revokeDiskAccess(diskId: string): Promise<void>;
  createVm(spec: NewVmSpec): Promise<string /* VM ID */>;
}

export interface VmCompute extends VmCaptureCompute, VmProvisioningCompute {}

/** The tag on everything Pagewise creates; only resources carrying it are ever deleted by Pagewise. */
export const PAGEWISE_TAG = 'pagewise';
export const PAGEWISE_TAG_VALUE = 'taken';
/** The tag naming the VM a capture was taken for: a keyed tag of the VM ID (never the VM backup's secret). */
export const PAGEWISE_VM_TAG = 'pagewise-vm';

/**
 * The `pagewise-vm` tag value of a VM's captures: 32 hex digits of a domain-separated SHA-256 of the lower-case
 * VM ID. Not a secret (the VM's own subscription holds both); fixed length where the VM ID may exceed ARM's
 * 256-character tag values, and never the VM backup's key.
 */
export function vmCaptureTag(vmId: string): string {
  return createHash('sha256').update(`pagewise/vm-capture-tag/v1\n${vmId.toLowerCase()}`).digest('hex').slice(0, 32);
}

/** The tags of everything Pagewise creates for a VM. */
export function pagewiseTags(vmId: string): Record<string, string> {
  return { [PAGEWISE_TAG]: PAGEWISE_TAG_VALUE, [PAGEWISE_VM_TAG]: vmCaptureTag(vmId) };
}

