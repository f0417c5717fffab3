/**
 * The provisioning half of ArmVmCompute: what a restore asks of Compute — a managed disk read back, a new
 * Upload disk, its write grant and revoke, a new VM attaching restored disks. Every name and ID is checked
 * (core/vm/arm-ids.ts) before it becomes a request path; a resource that exists is never updated.
 */
import type { Disk, VirtualMachine } from '@azure/arm-compute';
import { PagewiseError } from '../errors';
import { MiB, SECTOR } from '../limits';
import type { ArmContext } from './arm-context';
import { assertResourceGroupName, assertResourceName, assertSubscriptionId, diskIdOf, parseDiskId, vmIdOf } from './arm-ids';
import { armErrorText, isArmNotFound } from './arm-capture';
import type { NewDiskSpec, NewVmSpec, VmDiskInfo, VmProvisioningCompute } from './compute';
import { VHD_FOOTER_BYTES } from './vhd-footer';

/** Azure's bounds of an Upload disk's data (uploadSizeBytes minus the footer): 20 MiB to 32 TiB, whole MiB. */
export const MIN_UPLOAD_DISK_BYTES = 20 * MiB;
export const MAX_UPLOAD_DISK_BYTES = 32 * 1024 * 1024 * MiB;

/** Refuses, before any request, a disk size Compute would not accept as an Upload disk. */
export function assertUploadDiskSize(sizeBytes: number, what = 'the disk'): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes % MiB !== 0) {
    throw new PagewiseError('BadInput', `${what} is ${sizeBytes} bytes: a managed disk is uploaded as a whole number of MiB (Azure's rule for a fixed VHD)`);
  }
  if (sizeBytes < MIN_UPLOAD_DISK_BYTES || sizeBytes > MAX_UPLOAD_DISK_BYTES) {
    throw new PagewiseError('BadInput', `${what} is ${sizeBytes} bytes: Azure uploads managed disks of 20 MiB to 32 TiB only`);
  }
}

function isStatus(err: unknown, ...statuses: number[]): boolean {
  return statuses.includes((err as { statusCode?: number } | undefined)?.statusCode ?? -1);
}

/** Compute's failure as a PagewiseError naming the resource (armErrorText: code and message, secrets redacted). */
function armFailure(err: unknown, what: string, creating = false): never {
  if (err instanceof PagewiseError) throw err;
  const detail = armErrorText(err);
  if (isArmNotFound(err)) throw new PagewiseError('TargetNotFound', `${what}: not found (${detail})`, { cause: err });
  if (isStatus(err, 401, 403)) throw new PagewiseError('AccessDenied', `${what}: Compute refused the request (${detail})`, { cause: err });
  // A disk create's conflict is a disk of that name; any other refusal is the request or the resource's state (not transient).
  if (creating && isStatus(err, 409, 412)) throw new PagewiseError('TargetExists', `${what}: Compute answered a conflict, a disk of that name exists (${detail})`, { cause: err });
  if (isStatus(err, 400, 409, 412)) throw new PagewiseError('BadInput', `${what}: Compute refused it (${detail})`, { cause: err });
  throw new PagewiseError('TargetUnreachable', `${what} failed (${detail})`, { cause: err });
}

/** A managed disk as VmDiskInfo (lun null: a disk on its own belongs to no VM slot). */
function diskInfoOf(disk: Disk, id: string): VmDiskInfo & { diskState?: string; tags?: Record<string, string> } {
  const sizeBytes = disk.diskSizeBytes ?? (disk.diskSizeGB !== undefined ? disk.diskSizeGB * 1024 * MiB : 0);
  return {
    id,
    name: disk.name ?? parseDiskId(id).diskName,
    lun: null,
    sizeBytes,
    location: disk.location,
    ...(disk.sku?.name ? { sku: disk.sku.name } : {}),
    ...(disk.zones?.[0] ? { zone: disk.zones[0] } : {}),
    ...(disk.osType ? { osType: disk.osType } : {}),
    ...(disk.hyperVGeneration ? { hyperVGeneration: disk.hyperVGeneration } : {}),
    ...(disk.uniqueId ? { uniqueId: disk.uniqueId } : {}),
    ...(disk.securityProfile?.securityType ? { securityType: disk.securityProfile.securityType } : {}),
    ...(disk.diskState ? { diskState: disk.diskState } : {}),
    ...(disk.tags ? { tags: { ...disk.tags } } : {}),
  };
}

/** The provisioning half of VmCompute over an ARM context (ArmVmCompute's default). */
/** Compute's OS types, from a recorded value (case aside); anything else is refused. */
function osTypeOf(value: string, what: string): 'Windows' | 'Linux' {
  const lower = value.toLowerCase();
  if (lower === 'windows') return 'Windows';
  if (lower === 'linux') return 'Linux';
  throw new PagewiseError('BadInput', `${what}: the OS type ${JSON.stringify(value.slice(0, 40))} is neither Windows nor Linux`);
}

export function armProvisioning(ctx: ArmContext, options: { pollIntervalMs?: number } = {}): VmProvisioningCompute {
  const diskRef = (diskId: string) => parseDiskId(diskId);
  // The pollers' interval when Compute gives no Retry-After (as armCapture's; tests shorten it).
  const poll = options.pollIntervalMs !== undefined ? { updateIntervalInMs: options.pollIntervalMs } : {};
  return {
    async getDisk(diskId) {
      const ref = diskRef(diskId);
      const client = await ctx.compute(ref.subscriptionId);
      try {
        return diskInfoOf(await client.disks.get(ref.resourceGroup, ref.diskName), diskIdOf(ref));
      } catch (err) {
        armFailure(err, `reading the disk ${ref.diskName}`);
      }
    },

    async createUploadDisk(spec: NewDiskSpec) {
      const ref = {
        subscriptionId: assertSubscriptionId(spec.subscriptionId),
        resourceGroup: assertResourceGroupName(spec.resourceGroup),
        diskName: assertResourceName(spec.name, 'the disk name'),
      };
      assertUploadDiskSize(spec.sizeBytes, `the disk ${ref.diskName}`);
      const disk: Disk = {
        location: spec.location,
        ...(spec.zone ? { zones: [spec.zone] } : {}),
        ...(spec.sku ? { sku: { name: spec.sku } } : {}),
        ...(spec.osType ? { osType: osTypeOf(spec.osType, `the disk ${ref.diskName}`) } : {}),
        ...(spec.hyperVGeneration ? { hyperVGeneration: spec.hyperVGeneration } : {}),
        tags: { ...(spec.tags ?? {}) },
        creationData: { createOption: 'Upload', uploadSizeBytes: spec.sizeBytes + VHD_FOOTER_BYTES },
      };
      const client = await ctx.compute(ref.subscriptionId);
      try {
        // If-None-Match: a disk made meanwhile under this name is refused, not updated (where Compute honours it).
        await client.disks.createOrUpdate(ref.resourceGroup, ref.diskName, disk, { ...poll, requestOptions: { headers: { 'If-None-Match': '*' } } });
      } catch (err) {
        armFailure(err, `creating the upload disk ${ref.diskName}`, true);
      }
      return diskIdOf(ref);
    },

    async grantDiskWrite(diskId, seconds) {
      const ref = diskRef(diskId);
      const client = await ctx.compute(ref.subscriptionId);
      let access;
      try {
        access = await client.disks.grantAccess(ref.resourceGroup, ref.diskName, { access: 'Write', durationInSeconds: seconds }, poll);
      } catch (err) {
        armFailure(err, `granting write access to the disk ${ref.diskName}`);
      }
      if (!access?.accessSAS) throw new PagewiseError('TargetUnreachable', `Compute granted no write SAS for the disk ${ref.diskName}`);
      return access.accessSAS;
    },

    async revokeDiskAccess(diskId) {
      const ref = diskRef(diskId);
      const client = await ctx.compute(ref.subscriptionId);
      try {
        await client.disks.revokeAccess(ref.resourceGroup, ref.diskName, poll);
      } catch (err) {
        if (isArmNotFound(err)) return; // gone: nothing left to revoke
        armFailure(err, `revoking access to the disk ${ref.diskName}`);
      }
    },

    async createVm(spec: NewVmSpec) {
      const ref = {
        subscriptionId: assertSubscriptionId(spec.subscriptionId),
        resourceGroup: assertResourceGroupName(spec.resourceGroup),
        vmName: assertResourceName(spec.name, 'the VM name'),
      };
      const attach = (diskId: string, what: string) => ({ id: diskIdOf(parseDiskId(diskId, what)) });
      const vm: VirtualMachine = {
        location: spec.location,
        ...(spec.zone ? { zones: [spec.zone] } : {}),
        tags: { ...(spec.tags ?? {}) },
        hardwareProfile: { vmSize: spec.vmSize },
        storageProfile: {
          osDisk: { createOption: 'Attach', managedDisk: attach(spec.osDiskId, 'the OS disk'), ...(spec.osType ? { osType: osTypeOf(spec.osType, `the VM ${ref.vmName}`) } : {}) },
          dataDisks: spec.dataDisks.map((d) => ({ lun: d.lun, createOption: 'Attach', managedDisk: attach(d.diskId, `the data disk at LUN ${d.lun}`) })),
        },
        networkProfile: { networkInterfaces: spec.networkInterfaceIds.map((id, i) => ({ id, primary: i === 0 })) },
      };
      const client = await ctx.compute(ref.subscriptionId);
      try {
        await client.virtualMachines.createOrUpdate(ref.resourceGroup, ref.vmName, vm, { ...poll, ifNoneMatch: '*' });
      } catch (err) {
        armFailure(err, `creating the VM ${ref.vmName}`);
      }
      return vmIdOf(ref);
    },
  };
}

/** Whether a sector-aligned size is a disk's data plus a VHD footer (how Azure serves a managed disk's export). */
export function endsInFooterSlot(diskBytes: number): boolean {
  return diskBytes % MiB === VHD_FOOTER_BYTES && diskBytes % SECTOR === 0;
}
