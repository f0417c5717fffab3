/**
 * The stand-in's Compute resources (VMs, managed disks, snapshots, restore point collections, restore
 * points, disk restore points) and what each operation does to them. Every disk is a page blob in the
 * Azurite `src` account (container `managed`); a snapshot or a disk restore point is a blob snapshot of
 * its disk's blob, so a granted SAS serves real bytes and snapshots of one disk diff against each other.
 */
import { randomUUID } from 'node:crypto';
import type { PageBlobClient } from '@azure/storage-blob';
import type { AzuriteInstance } from '../../../testkit/azurite';
import { ArmError, badRequest, conflict, notFound, objectAt, Reply, tagsOf } from './arm-http';
import type { Operations } from './lro';

export const CONTAINER = 'managed';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const SLOW_COPY_SKUS = new Set(['premiumv2_lrs', 'ultrassd_lrs']); // their captures copy in the background (completionPercent)
const LEVELS = ['CrashConsistent', 'FileSystemConsistent', 'ApplicationConsistent'] as const;
export type Consistency = (typeof LEVELS)[number];

export interface Disk {
  id: string; name: string; location: string; zone?: string; sku: string; sizeBytes: number;
  osType?: string; hyperVGeneration?: string; uniqueId: string; blob: string; tags: Record<string, string>;
  managedBy?: string; createOption: string; diskState: string; timeCreated: string;
  encryptionType: string; diskEncryptionSetId?: string; ade: boolean; securityType?: string;
  uploadSizeBytes?: number; vhdFooter?: 'valid' | 'missing';
}
export interface Snapshot {
  id: string; name: string; location: string; sourceDiskId: string; sourceUniqueId: string; blob: string; blobSnapshot: string;
  sizeBytes: number; tags: Record<string, string>; incremental: boolean; sku: string; osType?: string; hyperVGeneration?: string;
  completionPercent: number; timeCreated: string; uniqueId: string;
}
export interface Vm {
  id: string; name: string; location: string; zone?: string; vmSize: string; tags: Record<string, string>;
  osDiskId: string; dataDisks: { lun: number; diskId: string }[]; nics: string[]; securityType?: string;
  restorePoints: boolean; consistency: Consistency; vmId: string; osType: string; imageReference?: Record<string, unknown>;
}
export interface Collection { id: string; name: string; location: string; sourceVmId: string; tags: Record<string, string> }
export interface DiskRestorePoint {
  id: string; name: string; diskId: string; lun: number | null; blob: string; blobSnapshot: string; sizeBytes: number;
  sourceUniqueId: string; completionPercent: number; osType?: string; hyperVGeneration?: string; location: string; timeCreated: string;
}
export interface RestorePoint {
  id: string; name: string; collectionId: string; consistencyMode: Consistency; timeCreated: string; vm: Vm;
  disks: DiskRestorePoint[];
}

/** Parameters a route extracted from the path (names as the SDK's URL templates). */
export interface Req {
  method: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  apiVersion: string;
}

const key = (id: string): string => id.toLowerCase();
const now = (): string => new Date().toISOString();

export class ComputeResources {
  readonly disks = new Map<string, Disk>();
  readonly snapshots = new Map<string, Snapshot>();
  readonly vms = new Map<string, Vm>();
  readonly collections = new Map<string, Collection>();
  readonly restorePoints = new Map<string, RestorePoint>();
  /** Resource ID (lower case) → its ID as created, for resources with an un-revoked SAS grant. */
  readonly grants = new Map<string, string>();
  /** Resource ID (lower case) → durationInSeconds of its latest read grant (#17: grants are short). */
  readonly grantSeconds = new Map<string, number>();

  constructor(readonly az: AzuriteInstance, readonly subscriptionId: string, private readonly ops: Operations) {}

  blobClient(name: string): PageBlobClient {
    return this.az.accounts.src.service.getContainerClient(CONTAINER).getPageBlobClient(name);
  }

  id(rg: string, type: string, name: string): string {
    return `/subscriptions/${this.subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/${type}/${name}`;
  }

  private readSas(blob: string, snapshot: string | undefined, seconds: number, permissions: string): string {
    const url = this.az.sasUrl('src', CONTAINER, blob, { permissions, expiresOn: new Date(Date.now() + seconds * 1000) });
    return snapshot ? `${url}&snapshot=${encodeURIComponent(snapshot)}` : url;
  }

  /** Whether a resource exists at this request path (an ARM ID). */
  exists(pathname: string): boolean {
    let k: string;
    try {
      k = key(decodeURIComponent(pathname));
    } catch {
      return false;
    }
    return [this.disks, this.snapshots, this.vms, this.collections, this.restorePoints].some((m) => m.has(k));
  }

  // ---- test set-up ---------------------------------------------------------------------------------

  async newDisk(d: Omit<Disk, 'id' | 'uniqueId' | 'blob' | 'timeCreated'> & { rg: string }, blobBytes = d.sizeBytes): Promise<Disk> {
    const id = this.id(d.rg, 'disks', d.name);
    if (this.disks.has(key(id))) throw conflict('Conflict', `Disk ${d.name} exists.`);
    const uniqueId = randomUUID();
    const blob = `${d.name}-${uniqueId}.vhd`;
    await this.blobClient(blob).create(blobBytes);
    const { rg: _rg, ...rest } = d;
    const disk: Disk = { ...rest, id, uniqueId, blob, timeCreated: now() };
    this.disks.set(key(id), disk);
    return disk;
  }

  // ---- virtual machines ----------------------------------------------------------------------------

  vm(id: string): Vm {
    const vm = this.vms.get(key(id));
    if (!vm) throw notFound('Microsoft.Compute/virtualMachines', id);
    return vm;
  }

  vmJson(vm: Vm): Record<string, unknown> {
    const diskRef = (diskId: string) => {
      const d = this.disks.get(key(diskId));
      return { name: d?.name ?? diskId.split('/').pop(), managedDisk: { id: diskId, storageAccountType: d?.sku }, diskSizeGB: d ? Math.ceil(d.sizeBytes / GiB) : undefined };
    };
    const os = this.disks.get(key(vm.osDiskId));
    return {
      id: vm.id, name: vm.name, type: 'Microsoft.Compute/virtualMachines', location: vm.location,
      ...(vm.zone ? { zones: [vm.zone] } : {}), tags: vm.tags,
      properties: {
        vmId: vm.vmId,
        hardwareProfile: { vmSize: vm.vmSize },
        storageProfile: {
          ...(vm.imageReference ? { imageReference: vm.imageReference } : {}),
          osDisk: { osType: vm.osType, createOption: 'FromImage', caching: 'ReadWrite', ...diskRef(vm.osDiskId), ...(os?.ade ? { encryptionSettings: { enabled: true } } : {}) },
          dataDisks: vm.dataDisks.map((dd) => ({ lun: dd.lun, createOption: 'Attach', caching: 'None', ...diskRef(dd.diskId) })),
        },
        ...(vm.securityType ? { securityProfile: { securityType: vm.securityType, ...(vm.securityType === 'TrustedLaunch' ? { uefiSettings: { secureBootEnabled: true, vTpmEnabled: true } } : {}) } } : {}),
        networkProfile: { networkInterfaces: vm.nics.map((id, i) => ({ id, properties: { primary: i === 0 } })) },
        provisioningState: 'Succeeded',
      },
    };
  }

  getVm(r: Req): Reply {
    return { status: 200, body: this.vmJson(this.vm(this.id(r.params.resourceGroupName, 'virtualMachines', r.params.vmName))) };
  }

  listVms(r: Req): Reply {
    const rg = r.params.resourceGroupName?.toLowerCase();
    const value = [...this.vms.values()].filter((vm) => rg === undefined || vm.id.split('/')[4].toLowerCase() === rg).map((vm) => this.vmJson(vm));
    return { status: 200, body: { value } };
  }

  /** PUT of a VM from existing disks (createOption Attach): what a restore does. */
  createVm(r: Req): Reply {
    const id = this.id(r.params.resourceGroupName, 'virtualMachines', r.params.vmName);
    if (this.vms.has(key(id))) throw conflict('PropertyChangeNotAllowed', `The stand-in creates VMs only; ${r.params.vmName} exists.`);
    const body = objectAt(r.body, 'The request body');
    const props = objectAt(body.properties, 'properties');
    const storage = objectAt(props.storageProfile, 'properties.storageProfile');
    const osDisk = objectAt(storage.osDisk, 'properties.storageProfile.osDisk');
    const osDiskId = String(objectAt(osDisk.managedDisk, 'osDisk.managedDisk').id ?? '');
    const dataDisks = ((storage.dataDisks ?? []) as unknown[]).map((d, i) => {
      const dd = objectAt(d, `dataDisks[${i}]`);
      return { lun: Number(dd.lun), diskId: String(objectAt(dd.managedDisk, `dataDisks[${i}].managedDisk`).id ?? '') };
    });
    const nics = ((objectAt(props.networkProfile ?? {}, 'networkProfile').networkInterfaces ?? []) as { id?: string }[]).map((n) => String(n.id ?? ''));
    if (typeof body.location !== 'string') throw badRequest('LocationRequired', 'The location property is required for this definition.');
    if (nics.length === 0) throw badRequest('InvalidParameter', 'At least one network interface is required (networkProfile.networkInterfaces).');
    for (const nic of nics) {
      const user = [...this.vms.values()].find((vm) => vm.nics.some((n) => n.toLowerCase() === nic.toLowerCase()));
      if (user) throw badRequest('NicInUse', `Network interface ${nic} is used by existing virtual machine ${user.id}.`);
    }
    const attach = [osDiskId, ...dataDisks.map((d) => d.diskId)].map((diskId) => {
      const disk = this.disks.get(key(diskId));
      if (!disk) throw notFound('Microsoft.Compute/disks', diskId);
      if (disk.managedBy) throw conflict('OperationNotAllowed', `Disk ${disk.name} is attached to ${disk.managedBy}.`);
      if (disk.diskState !== 'Unattached') throw conflict('OperationNotAllowed', `Disk ${disk.name} is in state ${disk.diskState}, not Unattached.`);
      if (disk.vhdFooter === 'missing') throw conflict('OperationNotAllowed', `Disk ${disk.name}'s upload ended without a valid VHD footer.`);
      return disk;
    });
    const hardware = objectAt(props.hardwareProfile ?? {}, 'hardwareProfile');
    const security = props.securityProfile ? objectAt(props.securityProfile, 'securityProfile') : undefined;
    const vm: Vm = {
      id, name: r.params.vmName, location: body.location, zone: Array.isArray(body.zones) ? String(body.zones[0]) : undefined,
      vmSize: String(hardware.vmSize ?? 'Standard_D2s_v5'), tags: tagsOf(body.tags), osDiskId: attach[0].id,
      dataDisks: dataDisks.map((d, i) => ({ lun: d.lun, diskId: attach[i + 1].id })), nics,
      securityType: security?.securityType as string | undefined, restorePoints: true, consistency: 'ApplicationConsistent',
      vmId: randomUUID(), osType: String(osDisk.osType ?? attach[0].osType ?? 'Linux'),
    };
    for (const d of attach) {
      d.managedBy = id;
      d.diskState = 'Attached';
    }
    this.vms.set(key(id), vm);
    return { status: 201, body: { ...this.vmJson(vm), properties: { ...(this.vmJson(vm).properties as object), provisioningState: 'Creating' } }, headers: this.ops.start(vm.location, r.apiVersion) };
  }

  // ---- managed disks -------------------------------------------------------------------------------

  disk(id: string): Disk {
    const d = this.disks.get(key(id));
    if (!d) throw notFound('Microsoft.Compute/disks', id);
    return d;
  }

  diskJson(d: Disk): Record<string, unknown> {
    const encryption = { type: d.encryptionType, ...(d.diskEncryptionSetId ? { diskEncryptionSetId: d.diskEncryptionSetId } : {}) };
    return {
      id: d.id, name: d.name, type: 'Microsoft.Compute/disks', location: d.location, ...(d.zone ? { zones: [d.zone] } : {}),
      tags: d.tags, ...(d.managedBy ? { managedBy: d.managedBy } : {}), sku: { name: d.sku },
      properties: {
        ...(d.osType ? { osType: d.osType } : {}), ...(d.hyperVGeneration ? { hyperVGeneration: d.hyperVGeneration } : {}),
        creationData: { createOption: d.createOption, ...(d.uploadSizeBytes ? { uploadSizeBytes: d.uploadSizeBytes } : {}) },
        diskSizeGB: Math.ceil(d.sizeBytes / GiB), diskSizeBytes: d.sizeBytes, uniqueId: d.uniqueId, encryption,
        ...(d.ade ? { encryptionSettingsCollection: { enabled: true, encryptionSettingsVersion: '1.1' } } : {}),
        ...(d.securityType ? { securityProfile: { securityType: d.securityType } } : {}),
        provisioningState: 'Succeeded', diskState: d.diskState, timeCreated: d.timeCreated,
      },
    };
  }

  getDisk(r: Req): Reply {
    return { status: 200, body: this.diskJson(this.disk(this.id(r.params.resourceGroupName, 'disks', r.params.diskName))) };
  }

  /** PUT of a disk: only `createOption: Upload` (a restore's target) is modelled. */
  async createDisk(r: Req): Promise<Reply> {
    const id = this.id(r.params.resourceGroupName, 'disks', r.params.diskName);
    if (this.disks.has(key(id))) throw conflict('PropertyChangeNotAllowed', `Changing property 'creationData' of disk ${r.params.diskName} is not allowed.`);
    const body = objectAt(r.body, 'The request body');
    const props = objectAt(body.properties, 'properties');
    const creation = objectAt(props.creationData, 'properties.creationData');
    if (creation.createOption !== 'Upload') throw badRequest('InvalidParameter', `The stand-in models disks created with createOption Upload only, not ${String(creation.createOption)}.`);
    const upload = creation.uploadSizeBytes;
    if (typeof upload !== 'number' || !Number.isSafeInteger(upload) || upload <= 512 || (upload - 512) % MiB !== 0) {
      throw badRequest('InvalidParameter', `uploadSizeBytes must be the VHD's size: a whole number of MiB plus the 512-byte footer (got ${String(upload)}).`);
    }
    if (typeof body.location !== 'string') throw badRequest('LocationRequired', 'The location property is required for this definition.');
    const sku = body.sku ? String(objectAt(body.sku, 'sku').name ?? 'Standard_LRS') : 'Standard_LRS';
    const disk = await this.newDisk({
      rg: r.params.resourceGroupName, name: r.params.diskName, location: body.location,
      zone: Array.isArray(body.zones) ? String(body.zones[0]) : undefined, sku, sizeBytes: upload - 512,
      osType: props.osType as string | undefined, hyperVGeneration: props.hyperVGeneration as string | undefined,
      tags: tagsOf(body.tags), createOption: 'Upload', diskState: 'ReadyToUpload', encryptionType: 'EncryptionAtRestWithPlatformKey',
      ade: false, uploadSizeBytes: upload,
    }, upload);
    return { status: 202, body: this.diskJson(disk), headers: this.ops.start(disk.location, r.apiVersion) }; // the disk RP accepts a PUT with 202 (REST docs)
  }

  grantDisk(r: Req): Reply {
    const d = this.disk(this.id(r.params.resourceGroupName, 'disks', r.params.diskName));
    const { access, seconds } = grantRequest(r.body);
    if (access === 'Write') {
      if (d.diskState !== 'ReadyToUpload' && d.diskState !== 'ActiveUpload') throw conflict('OperationNotAllowed', `Write access is granted only to a disk ready to upload; ${d.name} is ${d.diskState}.`);
      d.diskState = 'ActiveUpload';
    } else {
      if (d.managedBy) throw conflict('OperationNotAllowed', `Disk ${d.name} is attached to VM ${d.managedBy}; read access needs it detached or the VM deallocated.`);
      if (d.diskState === 'ReadyToUpload' || d.diskState === 'ActiveUpload') throw conflict('OperationNotAllowed', `Disk ${d.name} is waiting for an upload.`);
      d.diskState = 'ActiveSAS';
    }
    this.grants.set(key(d.id), d.id);
    const accessSAS = this.readSas(d.blob, undefined, seconds, access === 'Write' ? 'rw' : 'r');
    return { status: 202, headers: this.ops.start(d.location, r.apiVersion, { output: { accessSAS } }) };
  }

  async revokeDisk(r: Req): Promise<Reply> {
    const d = this.disk(this.id(r.params.resourceGroupName, 'disks', r.params.diskName));
    this.grants.delete(key(d.id));
    if (d.diskState === 'ActiveUpload' || d.diskState === 'ReadyToUpload') {
      d.vhdFooter = (await this.footerValid(d)) ? 'valid' : 'missing';
      d.diskState = 'Unattached';
    } else if (d.diskState === 'ActiveSAS') d.diskState = d.managedBy ? 'Attached' : 'Unattached';
    return { status: 202, headers: this.ops.start(d.location, r.apiVersion) };
  }

  /** A fixed VHD footer in the last 512 bytes: cookie, fixed type, current size, checksum (VHD spec). */
  private async footerValid(d: Disk): Promise<boolean> {
    const size = d.uploadSizeBytes!;
    const f = await this.blobClient(d.blob).downloadToBuffer(size - 512, 512);
    if (f.subarray(0, 8).toString('latin1') !== 'conectix' || f.readUInt32BE(60) !== 2) return false;
    if (f.readBigUInt64BE(48) !== BigInt(size - 512)) return false;
    let sum = 0;
    for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += f[i];
    return f.readUInt32BE(64) === (~sum >>> 0);
  }

  async deleteDisk(r: Req): Promise<Reply> {
    const id = this.id(r.params.resourceGroupName, 'disks', r.params.diskName);
    const d = this.disks.get(key(id));
    if (!d) return { status: 204 };
    if (d.managedBy) throw conflict('OperationNotAllowed', `Disk ${d.name} is attached to VM ${d.managedBy}.`);
    if (this.grants.has(key(id))) throw conflict('OperationNotAllowed', `Disk ${d.name} has an active SAS; revoke access first.`);
    this.disks.delete(key(id));
    await this.blobClient(d.blob).deleteIfExists({ deleteSnapshots: 'include' }).catch(() => undefined);
    return { status: 202, headers: this.ops.start(d.location, r.apiVersion) };
  }

  // ---- snapshots -----------------------------------------------------------------------------------

  snapshot(id: string): Snapshot {
    const s = this.snapshots.get(key(id));
    if (!s) throw notFound('Microsoft.Compute/snapshots', id);
    return s;
  }

  /** A snapshot as GET shows it; a background copy (Premium SSD v2, Ultra) advances 50 % per look. */
  snapshotJson(s: Snapshot, look = false): Record<string, unknown> {
    if (look && s.completionPercent < 100) s.completionPercent = Math.min(100, s.completionPercent + 50);
    return {
      id: s.id, name: s.name, type: 'Microsoft.Compute/snapshots', location: s.location, tags: s.tags, sku: { name: s.sku, tier: 'Standard' },
      properties: {
        ...(s.osType ? { osType: s.osType } : {}), ...(s.hyperVGeneration ? { hyperVGeneration: s.hyperVGeneration } : {}),
        creationData: { createOption: 'Copy', sourceResourceId: s.sourceDiskId, sourceUniqueId: s.sourceUniqueId },
        diskSizeGB: Math.ceil(s.sizeBytes / GiB), diskSizeBytes: s.sizeBytes, uniqueId: s.uniqueId, incremental: s.incremental,
        encryption: { type: 'EncryptionAtRestWithPlatformKey' }, provisioningState: 'Succeeded', timeCreated: s.timeCreated,
        diskState: this.grants.has(key(s.id)) ? 'ActiveSAS' : 'Unattached', completionPercent: s.completionPercent,
      },
    };
  }

  getSnapshot(r: Req): Reply {
    return { status: 200, body: this.snapshotJson(this.snapshot(this.id(r.params.resourceGroupName, 'snapshots', r.params.snapshotName)), true) };
  }

  listSnapshots(r: Req): Reply {
    const rg = r.params.resourceGroupName?.toLowerCase();
    const value = [...this.snapshots.values()].filter((s) => rg === undefined || s.id.split('/')[4].toLowerCase() === rg).map((s) => this.snapshotJson(s));
    return { status: 200, body: { value } };
  }

  /** PUT of a snapshot copied from a managed disk: a blob snapshot of the disk's blob. */
  async createSnapshot(r: Req): Promise<Reply> {
    const id = this.id(r.params.resourceGroupName, 'snapshots', r.params.snapshotName);
    const body = objectAt(r.body, 'The request body');
    const props = objectAt(body.properties, 'properties');
    const creation = objectAt(props.creationData, 'properties.creationData');
    const sourceId = String(creation.sourceResourceId ?? '');
    if (creation.createOption !== 'Copy' && creation.createOption !== 'CopyStart') throw badRequest('InvalidParameter', `The stand-in models snapshots copied from a disk (createOption Copy or CopyStart), not ${String(creation.createOption)}.`);
    const existing = this.snapshots.get(key(id));
    if (existing) {
      if (existing.sourceDiskId.toLowerCase() !== sourceId.toLowerCase()) throw conflict('PropertyChangeNotAllowed', `Changing property 'sourceResourceId' of snapshot ${existing.name} is not allowed.`);
      existing.tags = body.tags === undefined ? existing.tags : tagsOf(body.tags);
      return { status: 200, body: this.snapshotJson(existing) };
    }
    const disk = this.disks.get(key(sourceId));
    if (!disk) throw notFound('Microsoft.Compute/disks', sourceId || '(no creationData.sourceResourceId)');
    if (disk.diskState === 'ReadyToUpload' || disk.diskState === 'ActiveUpload') throw conflict('OperationNotAllowed', `Disk ${disk.name} is waiting for an upload.`);
    if (typeof body.location !== 'string') throw badRequest('LocationRequired', 'The location property is required for this definition.');
    if (body.location.toLowerCase() !== disk.location.toLowerCase()) throw badRequest('InvalidParameter', `A snapshot of ${disk.name} must be in its region ${disk.location}.`);
    const { snapshot } = await this.blobClient(disk.blob).createSnapshot();
    const s: Snapshot = {
      id, name: r.params.snapshotName, location: disk.location, sourceDiskId: disk.id, sourceUniqueId: disk.uniqueId,
      blob: disk.blob, blobSnapshot: snapshot!, sizeBytes: disk.sizeBytes, tags: tagsOf(body.tags), incremental: props.incremental === true,
      sku: body.sku ? String(objectAt(body.sku, 'sku').name ?? 'Standard_LRS') : 'Standard_LRS', osType: disk.osType,
      hyperVGeneration: disk.hyperVGeneration, completionPercent: SLOW_COPY_SKUS.has(disk.sku.toLowerCase()) ? 0 : 100,
      timeCreated: now(), uniqueId: randomUUID(),
    };
    this.snapshots.set(key(id), s);
    const created = this.snapshotJson(s) as { properties: Record<string, unknown> };
    return { status: 202, body: { ...created, properties: { ...created.properties, provisioningState: 'Creating' } }, headers: this.ops.start(s.location, r.apiVersion) };
  }

  grantSnapshot(r: Req): Reply {
    const s = this.snapshot(this.id(r.params.resourceGroupName, 'snapshots', r.params.snapshotName));
    const { access, seconds } = grantRequest(r.body);
    if (access !== 'Read') throw conflict('OperationNotAllowed', 'A snapshot is granted read access only.');
    if (s.completionPercent < 100) throw conflict('OperationNotAllowed', `Snapshot ${s.name} is still being copied (completionPercent ${s.completionPercent}).`);
    this.grants.set(key(s.id), s.id);
    this.grantSeconds.set(key(s.id), seconds);
    const accessSAS = this.readSas(s.blob, s.blobSnapshot, seconds, 'r');
    return { status: 202, headers: this.ops.start(s.location, r.apiVersion, { output: { accessSAS } }) };
  }

  revokeSnapshot(r: Req): Reply {
    const s = this.snapshot(this.id(r.params.resourceGroupName, 'snapshots', r.params.snapshotName));
    this.grants.delete(key(s.id));
    return { status: 202, headers: this.ops.start(s.location, r.apiVersion) };
  }

  async deleteSnapshot(r: Req): Promise<Reply> {
    const id = this.id(r.params.resourceGroupName, 'snapshots', r.params.snapshotName);
    const s = this.snapshots.get(key(id));
    if (!s) return { status: 204 };
    if (this.grants.has(key(id))) throw conflict('OperationNotAllowed', `Snapshot ${s.name} has an active SAS; revoke access first.`);
    this.snapshots.delete(key(id));
    await this.blobClient(s.blob).withSnapshot(s.blobSnapshot).deleteIfExists().catch(() => undefined);
    return { status: 202, headers: this.ops.start(s.location, r.apiVersion) };
  }

  // ---- restore point collections, restore points, disk restore points ------------------------------

  collection(id: string): Collection {
    const c = this.collections.get(key(id));
    if (!c) throw notFound('Microsoft.Compute/restorePointCollections', id);
    return c;
  }

  collectionJson(c: Collection, expandRestorePoints = false): Record<string, unknown> {
    const points = [...this.restorePoints.values()].filter((p) => p.collectionId === key(c.id));
    return {
      id: c.id, name: c.name, type: 'Microsoft.Compute/restorePointCollections', location: c.location, tags: c.tags,
      properties: {
        source: { id: c.sourceVmId, location: c.location }, restorePointCollectionId: c.id, provisioningState: 'Succeeded',
        ...(expandRestorePoints ? { restorePoints: points.map((p) => this.restorePointJson(p)) } : {}),
      },
    };
  }

  getCollection(r: Req): Reply {
    const c = this.collection(this.id(r.params.resourceGroupName, 'restorePointCollections', r.params.restorePointCollectionName));
    return { status: 200, body: this.collectionJson(c, r.query.get('$expand') === 'restorePoints') };
  }

  listCollections(r: Req): Reply {
    const rg = r.params.resourceGroupName?.toLowerCase();
    const value = [...this.collections.values()].filter((c) => rg === undefined || c.id.split('/')[4].toLowerCase() === rg).map((c) => this.collectionJson(c));
    return { status: 200, body: { value } };
  }

  /** PUT of a collection (not an LRO in the SDK): its source VM is fixed once made. */
  putCollection(r: Req): Reply {
    const id = this.id(r.params.resourceGroupName, 'restorePointCollections', r.params.restorePointCollectionName);
    const body = objectAt(r.body, 'The request body');
    const props = objectAt(body.properties ?? {}, 'properties');
    const sourceId = String(objectAt(props.source ?? {}, 'properties.source').id ?? '');
    const existing = this.collections.get(key(id));
    if (existing) {
      if (sourceId && sourceId.toLowerCase() !== existing.sourceVmId.toLowerCase()) throw conflict('PropertyChangeNotAllowed', `Changing property 'source' of restore point collection ${existing.name} is not allowed.`);
      if (body.tags !== undefined) existing.tags = tagsOf(body.tags);
      return { status: 200, body: this.collectionJson(existing) };
    }
    const vm = this.vm(sourceId || '(no properties.source.id)');
    const c: Collection = { id, name: r.params.restorePointCollectionName, location: String(body.location ?? vm.location), sourceVmId: vm.id, tags: tagsOf(body.tags) };
    if (c.location.toLowerCase() !== vm.location.toLowerCase()) throw badRequest('InvalidParameter', `The collection must be in the VM's region ${vm.location}.`);
    this.collections.set(key(id), c);
    return { status: 201, body: this.collectionJson(c) };
  }

  async deleteCollection(r: Req): Promise<Reply> {
    const id = this.id(r.params.resourceGroupName, 'restorePointCollections', r.params.restorePointCollectionName);
    const c = this.collections.get(key(id));
    if (!c) return { status: 204 };
    const points = [...this.restorePoints.values()].filter((p) => p.collectionId === key(id));
    for (const p of points) this.assertNoGrant(p);
    for (const p of points) await this.dropRestorePoint(p);
    this.collections.delete(key(id));
    return { status: 202, headers: this.ops.start(c.location, r.apiVersion) };
  }

  restorePoint(id: string): RestorePoint {
    const p = this.restorePoints.get(key(id));
    if (!p) throw notFound('Microsoft.Compute/restorePointCollections/restorePoints', id);
    return p;
  }

  restorePointJson(p: RestorePoint, instanceView = false, provisioningState = 'Succeeded'): Record<string, unknown> {
    const byDisk = (diskId: string) => p.disks.find((d) => d.diskId.toLowerCase() === diskId.toLowerCase());
    const diskEntry = (diskId: string) => {
      const d = this.disks.get(key(diskId));
      const drp = byDisk(diskId);
      return {
        name: d?.name ?? diskId.split('/').pop(), caching: 'ReadWrite', diskSizeGB: d ? Math.ceil(d.sizeBytes / GiB) : undefined,
        managedDisk: { id: diskId, storageAccountType: d?.sku },
        ...(drp ? { diskRestorePoint: { id: drp.id, encryption: { type: d?.encryptionType ?? 'EncryptionAtRestWithPlatformKey' } } } : {}),
      };
    };
    const vm = p.vm;
    return {
      id: p.id, name: p.name, type: 'Microsoft.Compute/restorePointCollections/restorePoints',
      properties: {
        sourceMetadata: {
          hardwareProfile: { vmSize: vm.vmSize }, vmId: vm.vmId, location: vm.location,
          ...(vm.securityType ? { securityProfile: { securityType: vm.securityType } } : {}),
          storageProfile: {
            osDisk: { osType: vm.osType, ...diskEntry(vm.osDiskId) },
            dataDisks: vm.dataDisks.map((dd) => ({ lun: dd.lun, ...diskEntry(dd.diskId) })),
          },
        },
        provisioningState, consistencyMode: p.consistencyMode, timeCreated: p.timeCreated,
        ...(instanceView ? {
          instanceView: {
            diskRestorePoints: p.disks.map((d) => ({ id: d.id, replicationStatus: { status: { code: 'ReplicationState/succeeded', level: 'Info', displayStatus: 'Succeeded' }, completionPercent: d.completionPercent } })),
            statuses: [{ code: 'ProvisioningState/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded' }],
          },
        } : {}),
      },
    };
  }

  getRestorePoint(r: Req): Reply {
    const p = this.restorePoint(this.restorePointId(r));
    const instanceView = r.query.get('$expand') === 'instanceView';
    if (instanceView) for (const d of p.disks) this.diskRestorePointJson(d, true); // a look advances a background copy
    return { status: 200, body: this.restorePointJson(p, instanceView) };
  }

  private restorePointId(r: Req): string {
    return `${this.id(r.params.resourceGroupName, 'restorePointCollections', r.params.restorePointCollectionName)}/restorePoints/${r.params.restorePointName}`;
  }

  /** PUT of a restore point (LRO): one blob snapshot per included disk; the obtained consistency is the VM's best up to what was asked. */
  async createRestorePoint(r: Req): Promise<Reply> {
    const c = this.collection(this.id(r.params.resourceGroupName, 'restorePointCollections', r.params.restorePointCollectionName));
    const id = this.restorePointId(r);
    if (this.restorePoints.has(key(id))) throw conflict('Conflict', `Restore point ${r.params.restorePointName} exists; a restore point cannot be updated.`);
    const vm = this.vm(c.sourceVmId);
    if (!vm.restorePoints) throw conflict('OperationNotAllowed', `Restore points are not supported for virtual machine ${vm.name} (its size, disks or security type).`);
    const props = objectAt(objectAt(r.body ?? {}, 'The request body').properties ?? {}, 'properties');
    const asked = props.consistencyMode ?? 'ApplicationConsistent';
    if (!LEVELS.includes(asked as Consistency)) throw badRequest('InvalidParameter', `consistencyMode must be one of ${LEVELS.join(', ')}.`);
    const obtained = LEVELS[Math.min(LEVELS.indexOf(asked as Consistency), LEVELS.indexOf(vm.consistency))];
    const excluded = new Set(((props.excludeDisks ?? []) as { id?: string }[]).map((e) => String(e.id ?? '').toLowerCase()));
    const members = [{ lun: null as number | null, diskId: vm.osDiskId }, ...vm.dataDisks].filter((m) => !excluded.has(m.diskId.toLowerCase()));
    const disks: DiskRestorePoint[] = [];
    for (const m of members) {
      const d = this.disk(m.diskId);
      const { snapshot } = await this.blobClient(d.blob).createSnapshot();
      const name = `${d.name}_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
      disks.push({
        id: `${id}/diskRestorePoints/${name}`, name, diskId: d.id, lun: m.lun, blob: d.blob, blobSnapshot: snapshot!, sizeBytes: d.sizeBytes,
        sourceUniqueId: d.uniqueId, completionPercent: SLOW_COPY_SKUS.has(d.sku.toLowerCase()) ? 0 : 100, osType: d.osType,
        hyperVGeneration: d.hyperVGeneration, location: d.location, timeCreated: now(),
      });
    }
    const p: RestorePoint = { id, name: r.params.restorePointName, collectionId: key(c.id), consistencyMode: obtained, timeCreated: now(), vm: { ...vm, dataDisks: [...vm.dataDisks] }, disks };
    this.restorePoints.set(key(id), p);
    return { status: 201, body: this.restorePointJson(p, false, 'Creating'), headers: this.ops.start(c.location, r.apiVersion) };
  }

  async deleteRestorePoint(r: Req): Promise<Reply> {
    const p = this.restorePoints.get(key(this.restorePointId(r)));
    if (!p) return { status: 204 };
    this.assertNoGrant(p);
    await this.dropRestorePoint(p);
    return { status: 202, headers: this.ops.start(p.vm.location, r.apiVersion) };
  }

  private assertNoGrant(p: RestorePoint): void {
    const granted = p.disks.find((d) => this.grants.has(key(d.id)));
    if (granted) throw conflict('OperationNotAllowed', `Disk restore point ${granted.name} of restore point ${p.name} has an active SAS; revoke access first.`);
  }

  private async dropRestorePoint(p: RestorePoint): Promise<void> {
    this.restorePoints.delete(key(p.id));
    for (const d of p.disks) await this.blobClient(d.blob).withSnapshot(d.blobSnapshot).deleteIfExists().catch(() => undefined);
  }

  diskRestorePoint(r: Req): DiskRestorePoint {
    const p = this.restorePoint(this.restorePointId({ ...r, params: { ...r.params, restorePointName: r.params.vmRestorePointName } }));
    const d = p.disks.find((x) => x.name.toLowerCase() === r.params.diskRestorePointName.toLowerCase());
    if (!d) throw notFound('Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints', `${p.id}/diskRestorePoints/${r.params.diskRestorePointName}`);
    return d;
  }

  diskRestorePointJson(d: DiskRestorePoint, look = false): Record<string, unknown> {
    if (look && d.completionPercent < 100) d.completionPercent = Math.min(100, d.completionPercent + 50);
    const disk = this.disks.get(key(d.diskId));
    return {
      id: d.id, name: d.name, type: 'Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints',
      properties: {
        timeCreated: d.timeCreated, sourceResourceId: d.diskId, sourceUniqueId: d.sourceUniqueId, familyId: d.sourceUniqueId,
        ...(d.osType ? { osType: d.osType } : {}), ...(d.hyperVGeneration ? { hyperVGeneration: d.hyperVGeneration } : {}),
        encryption: { type: disk?.encryptionType ?? 'EncryptionAtRestWithPlatformKey' }, sourceResourceLocation: d.location,
        completionPercent: d.completionPercent, replicationState: 'Succeeded', networkAccessPolicy: 'AllowAll', publicNetworkAccess: 'Enabled',
        ...(disk?.securityType ? { securityProfile: { securityType: disk.securityType } } : {}),
      },
    };
  }

  getDiskRestorePoint(r: Req): Reply {
    return { status: 200, body: this.diskRestorePointJson(this.diskRestorePoint(r), true) };
  }

  listDiskRestorePoints(r: Req): Reply {
    const p = this.restorePoint(this.restorePointId({ ...r, params: { ...r.params, restorePointName: r.params.vmRestorePointName } }));
    return { status: 200, body: { value: p.disks.map((d) => this.diskRestorePointJson(d)) } };
  }

  grantDiskRestorePoint(r: Req): Reply {
    const d = this.diskRestorePoint(r);
    const { access, seconds } = grantRequest(r.body);
    if (access !== 'Read') throw conflict('OperationNotAllowed', 'A disk restore point is granted read access only.');
    if (d.completionPercent < 100) throw conflict('OperationNotAllowed', `Disk restore point ${d.name} is still being copied (completionPercent ${d.completionPercent}).`);
    this.grants.set(key(d.id), d.id);
    const accessSAS = this.readSas(d.blob, d.blobSnapshot, seconds, 'r');
    return { status: 202, headers: this.ops.start(d.location, r.apiVersion, { output: { accessSAS } }) };
  }

  revokeDiskRestorePoint(r: Req): Reply {
    const d = this.diskRestorePoint(r);
    this.grants.delete(key(d.id));
    return { status: 202, headers: this.ops.start(d.location, r.apiVersion) };
  }
}

/** GrantAccessData: `access` Read|Write and `durationInSeconds` (1 s … 5 days here). */
function grantRequest(body: unknown): { access: 'Read' | 'Write'; seconds: number } {
  const b = objectAt(body, 'The request body');
  if (b.access !== 'Read' && b.access !== 'Write') throw badRequest('InvalidParameter', `access must be Read or Write, not ${String(b.access)}.`);
  const seconds = b.durationInSeconds;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > 5 * 86400) {
    throw badRequest('InvalidParameter', `durationInSeconds must be a whole number of seconds up to 5 days (got ${String(seconds)}).`);
  }
  return { access: b.access, seconds };
}

export { ArmError };
