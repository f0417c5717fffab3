/**
 * Restore to Azure: a disk backup onto a new Upload managed disk (its pages through core/restore's writer,
 * then a fixed VHD footer), and a VM backup as new disks — and, when asked, a new VM attaching them, made
 * from the VM manifest's configuration. Nothing that exists is overwritten; every write grant is revoked.
 */
import { PagewiseError, isPagewiseError, isTransient } from '../errors';
import { PageSink, PreparedTarget } from '../restore/file-target';
import { restoreToTarget } from '../restore/restore';
import { EngineSettings, OperationProgress, StorageLocation } from '../types';
import { isArmNotFound } from './arm-capture';
import { assertNetworkInterfaceId, assertResourceGroupName, assertResourceName, assertSubscriptionId, parseVmId, vmIdOf } from './arm-ids';
import type { VmCompute } from './compute';
import { createRestoreDisk, diskPageWriter, grantLocation, incompleteDiskError, ManagedDiskTarget, newDiskId, RESTORE_GRANT_SECONDS, RESTORED_TAGS, uploadDataBytes } from './managed-disk-steps';
import { readVmManifest, VmManifest, VmManifestDisk } from './vm-manifest';

export { RESTORE_GRANT_SECONDS, RESTORED_TAGS } from './managed-disk-steps';
export type { ManagedDiskTarget } from './managed-disk-steps';

export interface ManagedDiskRestoreRequest {
  compute: VmCompute;
  vault: StorageLocation;
  userKey: Buffer;
  backupId: string;
  target: ManagedDiskTarget;
  settings?: EngineSettings;
  onProgress?: (p: OperationProgress) => void;
  /** Seconds the write grant lives (default RESTORE_GRANT_SECONDS). */
  grantSeconds?: number;
}

export interface ManagedDiskRestoreResult {
  diskId: string;
  /** Bytes of disk data written (non-hole runs; the footer not counted). */
  bytesWritten: number;
  /** Put Page requests made, the footer's included. */
  putPages: number;
}

/**
 * Restores a disk backup to a new managed disk: Upload disk created at the backup's size, write grant,
 * non-hole runs in Put Pages of at most 4 MiB, the VHD footer last, revoke (also after a failure, which
 * then names the incomplete disk it left). A backup that ends in a footer slot (N MiB + 512: Azure's export
 * of a managed disk) gets a new footer in that slot; its old one is not copied.
 */
export async function restoreBackupToManagedDisk(req: ManagedDiskRestoreRequest): Promise<ManagedDiskRestoreResult> {
  const { compute, target } = req;
  const diskId = await newDiskId(compute, target);
  const what = `the managed disk ${target.name}`;
  let created = false;
  let granted = false;
  let putPageCount = 0;
  let dataWritten = 0;
  const prepared: PreparedTarget = {
    display: what,
    async open(diskBytes: number): Promise<PageSink> {
      const dataBytes = uploadDataBytes(diskBytes, req.backupId);
      await createRestoreDisk(compute, target, dataBytes);
      created = true;
      granted = true; // before the call: a grant whose answer was lost is revoked too (revoking none is harmless)
      const url = await compute.grantDiskWrite(diskId, req.grantSeconds ?? RESTORE_GRANT_SECONDS);
      const writer = diskPageWriter(await grantLocation(url, what, [req.vault]), dataBytes, what, (n) => (putPageCount += n));
      return {
        dense: false,
        async write(offset, data, abortSignal) {
          // Read after the await: writes run concurrently, and `x += await …` would add to a stale total.
          const written = await writer.write(offset, data, abortSignal);
          dataWritten += written;
        },
        commit: () => writer.writeFooter(),
        async abandon() {}, // the disk stays (no delete through a grant); the error names it
      };
    },
  };
  let failure: unknown;
  try {
    await restoreToTarget({ backupId: req.backupId, vault: req.vault, userKey: req.userKey, concurrency: req.settings?.concurrency, onProgress: req.onProgress }, prepared);
  } catch (err) {
    failure = err;
  }
  if (granted) {
    try {
      await compute.revokeDiskAccess(diskId);
    } catch (err) {
      failure ??= err;
    }
  }
  if (failure !== undefined) throw incompleteDiskError(failure, created ? target.name : undefined);
  return { diskId, bytesWritten: dataWritten, putPages: putPageCount };
}

export interface VmRestoreRequest {
  compute: VmCompute;
  vault: StorageLocation;
  userKey: Buffer;
  vmBackupId: string;
  resourceGroup: string;
  /** Default: the backed-up VM's subscription. */
  subscriptionId?: string;
  /** The disks to restore: LUNs and 'os'; default all. */
  luns?: (number | 'os')[];
  /** Prefix of each new disk's name (default "restored-"), before the backed-up disk's name. */
  namePrefix?: string;
  /** Also create a VM attaching the restored disks (the OS disk must be among them). */
  createVm?: { name: string; networkInterfaceIds?: string[] };
  settings?: EngineSettings;
  onProgress?: (lun: number | null, p: OperationProgress) => void;
}

export interface VmRestoreResult {
  disks: { lun: number | null; diskId: string; bytesWritten: number }[];
  vmId?: string;
}

export const DEFAULT_RESTORE_PREFIX = 'restored-';

const namesOf = (disks: { diskId: string }[]) => disks.map((d) => d.diskId.split('/').pop()).join(', ');
const lunName = (lun: number | null) => (lun === null ? 'the OS disk' : `the data disk at LUN ${lun}`);

/** The manifest's disks a request selects, each named once; a LUN the backup has not is refused. */
function selectDisks(m: VmManifest, luns: (number | 'os')[] | undefined): VmManifestDisk[] {
  if (!luns || luns.length === 0) return m.disks;
  const wanted = new Set(luns.map((l) => (l === 'os' ? null : l)));
  for (const lun of wanted) {
    if (!m.disks.some((d) => d.lun === lun)) throw new PagewiseError('BadInput', `the VM backup ${m.vmBackupId} holds no ${lunName(lun)}`);
  }
  return m.disks.filter((d) => wanted.has(d.lun));
}

/**
 * Restores a VM backup as new managed disks named `<prefix><backed-up disk name>` in a resource group,
 * and creates a VM from the manifest's configuration when asked. Every name is checked free before the
 * first disk is created; a disk that fails stops the restore (disks already restored are kept and named).
 */
export async function restoreVm(req: VmRestoreRequest): Promise<VmRestoreResult> {
  const m = await readVmManifest(req.vault, req.userKey, req.vmBackupId);
  const subscriptionId = assertSubscriptionId(req.subscriptionId ?? parseVmId(m.vmId, 'the backed-up VM').subscriptionId);
  const resourceGroup = assertResourceGroupName(req.resourceGroup);
  const prefix = req.namePrefix ?? DEFAULT_RESTORE_PREFIX;
  const chosen = selectDisks(m, req.luns);
  const vmPlan = req.createVm ? planVm(m, chosen, req.createVm, subscriptionId, resourceGroup) : undefined;
  const targets = chosen.map((d) => ({
    disk: d,
    target: {
      subscriptionId,
      resourceGroup,
      name: assertResourceName(`${prefix}${d.diskName}`, `the new name of ${lunName(d.lun)}`),
      location: m.vm.location,
      ...(d.zone ?? m.vm.zone ? { zone: d.zone ?? m.vm.zone } : {}),
      ...(d.sku ? { sku: d.sku } : {}),
      ...(d.role === 'os' && (d.osType ?? m.vm.osType) ? { osType: d.osType ?? m.vm.osType } : {}),
      ...(d.role === 'os' && (d.hyperVGeneration ?? m.vm.hyperVGeneration) ? { hyperVGeneration: d.hyperVGeneration ?? m.vm.hyperVGeneration } : {}),
    } satisfies ManagedDiskTarget,
  }));
  // Every name free before anything is created (each restore checks its own again, just before it creates).
  for (const { target } of targets) await newDiskId(req.compute, target);
  if (vmPlan) await assertVmNameFree(req.compute, vmPlan.name, subscriptionId, resourceGroup);
  const disks: VmRestoreResult['disks'] = [];
  for (const { disk, target } of targets) {
    try {
      const r = await restoreBackupToManagedDisk({
        compute: req.compute,
        vault: req.vault,
        userKey: req.userKey,
        backupId: disk.backupId,
        target,
        settings: req.settings,
        onProgress: (p) => req.onProgress?.(disk.lun, p),
      });
      disks.push({ lun: disk.lun, diskId: r.diskId, bytesWritten: r.bytesWritten });
    } catch (err) {
      if (disks.length === 0) throw err;
      const message = `restoring ${lunName(disk.lun)} failed: ${err instanceof Error ? err.message : String(err)} (restored before it and kept: ${namesOf(disks)})`;
      throw new PagewiseError(isPagewiseError(err) ? err.code : 'TargetUnreachable', message, { cause: err });
    }
  }
  if (!vmPlan) return { disks };
  const osDisk = disks.find((d) => d.lun === null)!;
  try {
    const vmId = await req.compute.createVm({
      ...vmPlan,
      osDiskId: osDisk.diskId,
      dataDisks: disks.filter((d) => d.lun !== null).map((d) => ({ lun: d.lun!, diskId: d.diskId })),
    });
    return { disks, vmId };
  } catch (err) {
    const message = `${err instanceof Error ? err.message : String(err)} (the restored disks are kept: ${namesOf(disks)})`;
    throw new PagewiseError(isPagewiseError(err) ? err.code : 'TargetUnreachable', message, { cause: err });
  }
}

/** The new VM's settings from the manifest; refused before any disk is made when they cannot make a VM. */
function planVm(m: VmManifest, chosen: VmManifestDisk[], ask: { name: string; networkInterfaceIds?: string[] }, subscriptionId: string, resourceGroup: string) {
  const name = assertResourceName(ask.name, 'the VM name');
  if (!chosen.some((d) => d.lun === null)) throw new PagewiseError('BadInput', 'a VM is created only with its OS disk: restore the OS disk too (--disk os)');
  if (!m.vm.vmSize) throw new PagewiseError('BadInput', `the VM backup ${m.vmBackupId} records no VM size; a VM cannot be created from it`);
  const networkInterfaceIds = ask.networkInterfaceIds ?? m.vm.networkInterfaceIds;
  if (networkInterfaceIds.length === 0) throw new PagewiseError('BadInput', 'a new VM needs a network interface: name one (--nic <id>)');
  for (const id of networkInterfaceIds) assertNetworkInterfaceId(id);
  return {
    subscriptionId,
    resourceGroup,
    name,
    location: m.vm.location,
    ...(m.vm.zone ? { zone: m.vm.zone } : {}),
    vmSize: m.vm.vmSize,
    ...(m.vm.osType ? { osType: m.vm.osType } : {}),
    networkInterfaceIds,
    tags: { ...m.vm.tags, ...RESTORED_TAGS },
  };
}

async function assertVmNameFree(compute: VmCompute, name: string, subscriptionId: string, resourceGroup: string): Promise<void> {
  try {
    await compute.getVm(vmIdOf({ subscriptionId, resourceGroup, vmName: name }));
  } catch (err) {
    if (isArmNotFound(err) || isPagewiseError(err, 'TargetNotFound') || isPagewiseError(err, 'SourceNotFound')) return;
    // A VM Compute answered but Pagewise cannot back up (e.g. unmanaged disks) still exists.
    if (!isPagewiseError(err) || isPagewiseError(err, 'AccessDenied') || isTransient(err)) throw err;
  }
  throw new PagewiseError('TargetExists', `the VM ${name} already exists in ${resourceGroup}; Pagewise creates only a new VM`);
}
