/**
 * Restore to Azure: a disk backup onto a new Upload managed disk (its pages through core/restore's writer,
 * then a fixed VHD footer), and a VM backup as new disks — and, when asked, a new VM attaching them, made
 * from the VM manifest's configuration. Nothing that exists is overwritten; every write grant is revoked.
 */
import { PagewiseError, isPagewiseError, isTransient } from '../errors';
import { MAX_PUT_PAGE_BYTES } from '../limits';
import { PageSink, PreparedTarget } from '../restore/file-target';
import { putPages, restoreToTarget } from '../restore/restore';
import { assertDiskWriteTarget } from '../restore/target-guard';
import { targetBlobClient } from '../storage/clients';
import { EngineSettings, OperationProgress, StorageLocation } from '../types';
import { isArmNotFound } from './arm-capture';
import { assertNetworkInterfaceId, assertResourceGroupName, assertResourceName, assertSubscriptionId, diskIdOf, parseVmId, vmIdOf } from './arm-ids';
import { assertUploadDiskSize, endsInFooterSlot } from './arm-provision';
import type { NewDiskSpec, VmCompute } from './compute';
import { readVmManifest, VmManifest, VmManifestDisk } from './vm-manifest';
import { VHD_FOOTER_BYTES, vhdFooter } from './vhd-footer';

/** How long a restore's write grant lives: long enough for a large disk at a slow link (it is revoked when done). */
export const RESTORE_GRANT_SECONDS = 24 * 3600;
/** The tag on what a restore creates: never `pagewise=taken`, which Pagewise alone may delete. */
export const RESTORED_TAGS: Readonly<Record<string, string>> = { pagewise: 'restored' };

/** Where a restored disk goes: a new disk's spec less what the backup decides (its size) and what the restore sets (its tags). */
export type ManagedDiskTarget = Omit<NewDiskSpec, 'sizeBytes' | 'tags'>;

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

/** Whether Compute knows a disk of this ID (a disk that cannot be read for another reason is an error). */
async function diskExists(compute: VmCompute, diskId: string): Promise<boolean> {
  try {
    await compute.getDisk(diskId);
    return true;
  } catch (err) {
    if (isPagewiseError(err, 'TargetNotFound') || isArmNotFound(err)) return false;
    throw err;
  }
}

/** The checked ARM ID of a new disk; refuses one that exists, before anything is created or written. */
async function newDiskId(compute: VmCompute, target: ManagedDiskTarget): Promise<string> {
  const diskId = diskIdOf({
    subscriptionId: assertSubscriptionId(target.subscriptionId),
    resourceGroup: assertResourceGroupName(target.resourceGroup),
    diskName: assertResourceName(target.name, 'the disk name'),
  });
  if (await diskExists(compute, diskId)) {
    throw new PagewiseError('TargetExists', `the managed disk ${target.name} already exists in ${target.resourceGroup}; Pagewise restores only to a new disk`);
  }
  return diskId;
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
      const dataBytes = endsInFooterSlot(diskBytes) ? diskBytes - VHD_FOOTER_BYTES : diskBytes;
      assertUploadDiskSize(dataBytes, `the backup ${req.backupId} (its disk)`);
      await compute.createUploadDisk({ ...target, sizeBytes: dataBytes, tags: { ...RESTORED_TAGS } });
      created = true;
      granted = true; // before the call: a grant whose answer was lost is revoked too (revoking none is harmless)
      const url = await compute.grantDiskWrite(diskId, req.grantSeconds ?? RESTORE_GRANT_SECONDS);
      // The URL is the app's own grant: only then may it be on a managed-disk host (and never in a vault).
      const location: StorageLocation = { url, managedDiskGrant: true };
      await assertDiskWriteTarget(location, what, [req.vault]);
      const { client } = targetBlobClient(location, what);
      const put = async (offset: number, data: Buffer, abortSignal?: AbortSignal) => {
        await putPages(client, offset, data, what, abortSignal);
        putPageCount += Math.ceil(data.length / MAX_PUT_PAGE_BYTES);
      };
      return {
        dense: false,
        async write(offset, data, abortSignal) {
          // The backup's own footer slot is left to the new footer.
          const part = data.subarray(0, Math.max(0, Math.min(data.length, dataBytes - offset)));
          if (part.length === 0) return;
          await put(offset, part, abortSignal);
          dataWritten += part.length;
        },
        commit: () => put(dataBytes, vhdFooter(dataBytes)),
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
  if (failure !== undefined) throw incomplete(failure, created ? target.name : undefined);
  return { diskId, bytesWritten: dataWritten, putPages: putPageCount };
}

/** The restore's error, saying which disk it left behind incomplete (the code kept: a transient failure stays one). */
function incomplete(err: unknown, diskName: string | undefined): unknown {
  if (!diskName) return err;
  const message = `${err instanceof Error ? err.message : String(err)}; the managed disk ${diskName} it created is incomplete: delete it, or restore again under another name`;
  return new PagewiseError(isPagewiseError(err) ? err.code : 'TargetUnreachable', message, { cause: err });
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
