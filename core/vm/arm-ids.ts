/**
 * ARM resource IDs of the Compute resources Pagewise touches (VMs, managed disks, snapshots, restore
 * point collections, restore points, disk restore points): parsed strictly, because their parts become
 * the path of a Compute request made with the app's identity. ARM's own name rules only — a GUID
 * subscription, a resource-group name not ending in '.', resource names without '/', '..' or encodings.
 */
import { PagewiseError } from '../errors';

const SUB = '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';
const RG = '([-\\p{L}\\p{N}_.()]{0,89}[-\\p{L}\\p{N}_()])';
/** Compute resource names: 1-80 letters, digits, '_', '-', '.', not starting with '-'/'.' nor ending in '.'/'-'. */
const NAME = '([\\p{L}\\p{N}_](?:[-\\p{L}\\p{N}_.]{0,78}[\\p{L}\\p{N}_])?)';
const PREFIX = `^/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft\\.Compute`;

const VM_RE = new RegExp(`${PREFIX}/virtualMachines/${NAME}$`, 'iu');
const DISK_RE = new RegExp(`${PREFIX}/disks/${NAME}$`, 'iu');
const SNAPSHOT_RE = new RegExp(`${PREFIX}/snapshots/${NAME}$`, 'iu');
const RESTORE_POINT_RE = new RegExp(`${PREFIX}/restorePointCollections/${NAME}/restorePoints/${NAME}$`, 'iu');
const DISK_RESTORE_POINT_RE = new RegExp(`${PREFIX}/restorePointCollections/${NAME}/restorePoints/${NAME}/diskRestorePoints/${NAME}$`, 'iu');
const NIC_RE = new RegExp(`^/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft\\.Network/networkInterfaces/${NAME}$`, 'iu');
const GROUP_RE = new RegExp(`^/subscriptions/${SUB}/resourceGroups/${RG}$`, 'iu');
const SUBSCRIPTION_RE = new RegExp(`^/subscriptions/${SUB}$`, 'iu');
const SUBSCRIPTION_ID_RE = new RegExp(`^${SUB}$`, 'iu');
const GROUP_NAME_RE = new RegExp(`^${RG}$`, 'u');
const NAME_RE = new RegExp(`^${NAME}$`, 'u');

export interface ResourceGroupRef {
  subscriptionId: string;
  resourceGroup: string;
}
export interface VmRef extends ResourceGroupRef {
  vmName: string;
}
export interface DiskRef extends ResourceGroupRef {
  diskName: string;
}
export interface SnapshotRef extends ResourceGroupRef {
  snapshotName: string;
}
export interface RestorePointRef extends ResourceGroupRef {
  collectionName: string;
  restorePointName: string;
}
export interface DiskRestorePointRef extends RestorePointRef {
  diskRestorePointName: string;
}

/** What a managed-disk capture's ARM ID names: an incremental snapshot or a disk restore point. */
export type CaptureRef = ({ kind: 'snapshot' } & SnapshotRef) | ({ kind: 'diskRestorePoint' } & DiskRestorePointRef);

const base = (m: RegExpExecArray): ResourceGroupRef => ({ subscriptionId: m[1].toLowerCase(), resourceGroup: m[2] });
const shownId = (id: string): string => JSON.stringify(String(id).slice(0, 300));

function bad(id: string, what: string, form: string): PagewiseError {
  return new PagewiseError('BadInput', `${what} ${shownId(id)} is not the ARM ID of ${form}`);
}

export function parseVmId(id: string, what = 'the VM'): VmRef {
  const m = VM_RE.exec(id);
  if (!m) throw bad(id, what, 'a virtual machine (/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>)');
  return { ...base(m), vmName: m[3] };
}
export function parseDiskId(id: string, what = 'the disk'): DiskRef {
  const m = DISK_RE.exec(id);
  if (!m) throw bad(id, what, 'a managed disk');
  return { ...base(m), diskName: m[3] };
}
export function parseSnapshotId(id: string, what = 'the snapshot'): SnapshotRef {
  const m = SNAPSHOT_RE.exec(id);
  if (!m) throw bad(id, what, 'a managed-disk snapshot');
  return { ...base(m), snapshotName: m[3] };
}
export function parseRestorePointId(id: string, what = 'the restore point'): RestorePointRef {
  const m = RESTORE_POINT_RE.exec(id);
  if (!m) throw bad(id, what, 'a VM restore point');
  return { ...base(m), collectionName: m[3], restorePointName: m[4] };
}
export function parseDiskRestorePointId(id: string, what = 'the disk restore point'): DiskRestorePointRef {
  const m = DISK_RESTORE_POINT_RE.exec(id);
  if (!m) throw bad(id, what, 'a disk restore point');
  return { ...base(m), collectionName: m[3], restorePointName: m[4], diskRestorePointName: m[5] };
}
/** A snapshot or a disk restore point: the two things a managed-disk backup reads and diffs against. */
export function parseCaptureId(id: string, what = 'the capture'): CaptureRef {
  if (SNAPSHOT_RE.test(id)) return { kind: 'snapshot', ...parseSnapshotId(id, what) };
  if (DISK_RESTORE_POINT_RE.test(id)) return { kind: 'diskRestorePoint', ...parseDiskRestorePointId(id, what) };
  throw bad(id, what, 'a managed-disk snapshot or a disk restore point');
}
export function isCaptureId(id: string): boolean {
  return SNAPSHOT_RE.test(id) || DISK_RESTORE_POINT_RE.test(id);
}
/** A network interface's ID (it goes into a new VM's body, core/vm/restore-vm.ts): ARM's rules, like every other ID. */
export function assertNetworkInterfaceId(id: string, what = 'the network interface'): string {
  if (typeof id !== 'string' || !NIC_RE.test(id)) throw bad(String(id), what, 'a network interface (/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.Network/networkInterfaces/<name>)');
  return id;
}
/** A resource group's ID (/subscriptions/<guid>/resourceGroups/<name>), or undefined. */
export function parseResourceGroupId(id: string): ResourceGroupRef | undefined {
  const m = GROUP_RE.exec(id);
  return m ? base(m) : undefined;
}
/** A subscription's ID (/subscriptions/<guid>) → its GUID, or undefined. */
export function parseSubscriptionScope(id: string): string | undefined {
  return SUBSCRIPTION_RE.exec(id)?.[1]?.toLowerCase();
}
export function assertSubscriptionId(value: string, what = 'the subscription'): string {
  if (!SUBSCRIPTION_ID_RE.test(value)) throw new PagewiseError('BadInput', `${what} ${shownId(value)} is not a subscription GUID`);
  return value.toLowerCase();
}
export function assertResourceGroupName(value: string, what = 'the resource group'): string {
  if (!GROUP_NAME_RE.test(value)) throw new PagewiseError('BadInput', `${what} ${shownId(value)} is not a resource-group name`);
  return value;
}
/** A name Pagewise gives a new Compute resource (a disk, a VM, a snapshot): ARM's rules, checked before any request. */
export function assertResourceName(value: string, what = 'the resource name'): string {
  if (!NAME_RE.test(value)) throw new PagewiseError('BadInput', `${what} ${shownId(value)} is not a valid Compute resource name (1-80 letters, digits, '_', '-', '.')`);
  return value;
}

const group = (r: ResourceGroupRef): string => `/subscriptions/${r.subscriptionId}/resourceGroups/${r.resourceGroup}`;
export const resourceGroupIdOf = group;
export const vmIdOf = (r: VmRef): string => `${group(r)}/providers/Microsoft.Compute/virtualMachines/${r.vmName}`;
export const diskIdOf = (r: DiskRef): string => `${group(r)}/providers/Microsoft.Compute/disks/${r.diskName}`;
export const snapshotIdOf = (r: SnapshotRef): string => `${group(r)}/providers/Microsoft.Compute/snapshots/${r.snapshotName}`;
export const restorePointIdOf = (r: RestorePointRef): string =>
  `${group(r)}/providers/Microsoft.Compute/restorePointCollections/${r.collectionName}/restorePoints/${r.restorePointName}`;
export const diskRestorePointIdOf = (r: DiskRestorePointRef): string => `${restorePointIdOf(r)}/diskRestorePoints/${r.diskRestorePointName}`;
