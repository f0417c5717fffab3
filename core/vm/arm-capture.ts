/**
 * The capture half of ArmVmCompute: VMs read, restore points and incremental snapshots taken, granted,
 * revoked and released through the real `@azure/arm-compute` client (its pollers follow
 * Azure-AsyncOperation / Location; its pipeline retries 429 after Retry-After). Every ID that reaches a
 * request path is parsed by core/vm/arm-ids first; only resources tagged pagewise=taken are deleted.
 */
import type { ComputeManagementClient } from '@azure/arm-compute';
import { PagewiseError } from '../errors';
import { redact } from '../redact';
import type { ArmContext } from './arm-context';
import { checkTagText } from './tag-text';
import {
  parseCaptureId,
  parseDiskId,
  parseRestorePointId,
  parseSnapshotId,
  parseVmId,
  restorePointIdOf,
  assertResourceName,
  assertSubscriptionId,
  vmIdOf,
  isCaptureId,
} from './arm-ids';
import { ConsistencyLevel, PAGEWISE_TAG, PAGEWISE_TAG_VALUE, PAGEWISE_VM_TAG, pagewiseTags, vmCaptureTag, VmCaptureCompute, VmDiskInfo, VmInfo } from './compute';

const GiB = 1024 ** 3;
/** A VM has at most 64 data disks; a VM said to have more is refused rather than walked. */
const MAX_DATA_DISKS = 64;
/** Captures Pagewise lists for one VM; more is a sign of something wrong, not a loop to follow forever. */
const MAX_LISTED = 10_000;

/** How long a grant waits for a capture's background copy (Premium SSD v2 / Ultra: completionPercent < 100). */
export interface CompletionWait {
  /** First pause, ms; doubles up to maxDelayMs. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** Gives up (a transient error: a retry later may find it done) after this long, ms. */
  timeoutMs: number;
}
export const DEFAULT_COMPLETION_WAIT: CompletionWait = { firstDelayMs: 2_000, maxDelayMs: 60_000, timeoutMs: 4 * 3600_000 };

const isTaken = (tags: Record<string, string> | undefined): boolean => tags?.[PAGEWISE_TAG] === PAGEWISE_TAG_VALUE;

/** ARM's "not there": 404 of the resource, its parent or its group. */
export function isArmNotFound(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: string } | undefined;
  return e?.statusCode === 404 || e?.code === 'ResourceNotFound' || e?.code === 'ResourceGroupNotFound' || e?.code === 'NotFound' || e?.code === 'ParentResourceNotFound';
}

/** The ARM error code and message of a failed call, without secrets. */
export function armErrorText(err: unknown): string {
  const e = err as { statusCode?: number; code?: string; message?: string } | undefined;
  const parts = [e?.statusCode !== undefined ? String(e.statusCode) : undefined, e?.code].filter(Boolean).join(' ');
  return redact(`${parts ? `${parts}: ` : ''}${e?.message ?? String(err)}`).slice(0, 500);
}

/** Codes Compute answers a restore point create with when the VM cannot have one (its type, disks or state). */
const RESTORE_POINT_UNSUPPORTED = new Set(['OperationNotAllowed', 'OperationNotSupported', 'NotSupported', 'BadRequest', 'InvalidParameter', 'RestorePointNotSupported', 'VMRestorePointNotSupported']);
/** The `reason` of the PagewiseError a restore point create refused for the VM carries. */
export const RESTORE_POINTS_UNSUPPORTED = 'restore-points-unsupported';

const CONSISTENCY_OF: Record<string, ConsistencyLevel> = {
  applicationconsistent: 'application',
  filesystemconsistent: 'filesystem',
  crashconsistent: 'crash',
};

function consistencyOf(mode: unknown, what: string): ConsistencyLevel {
  const level = typeof mode === 'string' ? CONSISTENCY_OF[mode.toLowerCase()] : undefined;
  if (!level) throw new PagewiseError('Corrupt', `Compute answered ${what} with an unknown consistencyMode ${JSON.stringify(String(mode).slice(0, 40))}`);
  return level;
}

/** A disk restore point ID from a Compute answer, checked before it reaches any request path. */
function checkedDrp(id: string, what: string): string {
  parseCaptureId(id, what);
  return id;
}

/** A restore point that exists and succeeded, or undefined. */
async function existingRestorePoint(client: ComputeManagementClient, group: string, collection: string, name: string) {
  try {
    const rp = await client.restorePoints.get(group, collection, name);
    return rp.provisioningState === undefined || rp.provisioningState === 'Succeeded' ? rp : undefined;
  } catch (err) {
    if (isArmNotFound(err)) return undefined;
    throw err;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The capture half over an ARM context. */
export interface ArmCaptureOptions {
  completionWait?: CompletionWait;
  /** The pollers' interval when Compute gives no Retry-After (the SDK's default otherwise, 2 s); tests shorten it. */
  pollIntervalMs?: number;
}

/**
 * A 401/403 from Compute or Resource Graph as AccessDenied (as arm-provision's armFailure does): the
 * identity lacks a role or the token is refused, which no retry mends — an activity reports it at once.
 */
export function armAccessDenied(err: unknown, what: string): unknown {
  const status = (err as { statusCode?: number } | undefined)?.statusCode;
  if (err instanceof PagewiseError || (status !== 401 && status !== 403)) return err;
  return new PagewiseError('AccessDenied', `${what}: Compute refused the request (${armErrorText(err)})`, { cause: err });
}

/** Every method of `api` with armAccessDenied applied to its failures, named by the method. */
function deniedAsAccessDenied<T extends object>(api: T): T {
  const out = {} as Record<string, unknown>;
  for (const [name, fn] of Object.entries(api)) {
    out[name] = typeof fn !== 'function' ? fn : async (...args: unknown[]) => {
      try {
        return await (fn as (...a: unknown[]) => Promise<unknown>).apply(api, args);
      } catch (err) {
        throw armAccessDenied(err, typeof args[0] === 'string' ? `${name} ${args[0].slice(0, 300)}` : name);
      }
    };
  }
  return out as T;
}

export function armCapture(ctx: ArmContext, options: ArmCaptureOptions = {}): VmCaptureCompute {
  const wait = options.completionWait ?? DEFAULT_COMPLETION_WAIT;
  const lro = options.pollIntervalMs === undefined ? {} : { updateIntervalInMs: options.pollIntervalMs };
  const compute = (subscriptionId: string): Promise<ComputeManagementClient> => ctx.compute(subscriptionId);

  async function diskInfo(client: ComputeManagementClient, diskId: string, lun: number | null, vmAde: boolean): Promise<VmDiskInfo> {
    const ref = parseDiskId(diskId, lun === null ? 'the OS disk' : `the disk at LUN ${lun}`);
    const d = await client.disks.get(ref.resourceGroup, ref.diskName);
    const sizeBytes = d.diskSizeBytes ?? (d.diskSizeGB !== undefined ? d.diskSizeGB * GiB : undefined);
    if (sizeBytes === undefined || !Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % 512 !== 0) {
      throw new PagewiseError('Corrupt', `Compute gave disk ${ref.diskName} no valid size (${JSON.stringify(sizeBytes)})`);
    }
    const ade = vmAde || d.encryptionSettingsCollection?.enabled === true;
    const encryption = d.encryption || ade ? { ...(d.encryption?.type ? { type: d.encryption.type } : {}), ...(d.encryption?.diskEncryptionSetId ? { diskEncryptionSetId: d.encryption.diskEncryptionSetId } : {}), ...(ade ? { adeEnabled: true } : {}) } : undefined;
    return {
      id: d.id ?? diskId,
      name: d.name ?? ref.diskName,
      lun,
      sizeBytes,
      ...(d.sku?.name ? { sku: d.sku.name } : {}),
      location: d.location,
      ...(d.zones?.[0] ? { zone: d.zones[0] } : {}),
      ...(d.osType ? { osType: d.osType } : {}),
      ...(d.hyperVGeneration ? { hyperVGeneration: d.hyperVGeneration } : {}),
      ...(d.uniqueId ? { uniqueId: d.uniqueId } : {}),
      ...(encryption ? { encryption } : {}),
      ...(d.securityProfile?.securityType ? { securityType: d.securityProfile.securityType } : {}),
    };
  }

  async function vmInfo(client: ComputeManagementClient, vm: Awaited<ReturnType<ComputeManagementClient['virtualMachines']['get']>>, asked: string): Promise<VmInfo> {
    const id = vm.id ?? asked;
    parseVmId(id, 'the VM Compute answered');
    const storage = vm.storageProfile;
    const osDiskId = storage?.osDisk?.managedDisk?.id;
    if (!osDiskId) throw new PagewiseError('BadInput', `the VM ${vm.name ?? asked} has no managed OS disk: Pagewise backs up VMs on managed disks only`);
    const data = storage?.dataDisks ?? [];
    if (data.length > MAX_DATA_DISKS) throw new PagewiseError('Corrupt', `Compute says VM ${vm.name} has ${data.length} data disks (at most ${MAX_DATA_DISKS})`);
    const unmanaged = data.filter((d) => !d.managedDisk?.id);
    if (unmanaged.length > 0) throw new PagewiseError('BadInput', `the VM ${vm.name} has data disks that are not managed disks (LUN ${unmanaged.map((d) => d.lun).join(', ')})`);
    const ade = storage?.osDisk?.encryptionSettings?.enabled === true;
    const osDisk = await diskInfo(client, osDiskId, null, ade);
    const dataDisks: VmDiskInfo[] = [];
    const luns = new Set<number>();
    for (const d of data) {
      if (!Number.isInteger(d.lun) || d.lun < 0 || d.lun > 255 || luns.has(d.lun)) throw new PagewiseError('Corrupt', `Compute says VM ${vm.name} has a data disk at LUN ${JSON.stringify(d.lun)}`);
      luns.add(d.lun);
      dataDisks.push(await diskInfo(client, d.managedDisk!.id!, d.lun, false));
    }
    return {
      id,
      name: vm.name ?? parseVmId(id).vmName,
      location: vm.location,
      ...(vm.zones?.[0] ? { zone: vm.zones[0] } : {}),
      ...(vm.hardwareProfile?.vmSize ? { vmSize: vm.hardwareProfile.vmSize } : {}),
      tags: { ...(vm.tags ?? {}) },
      ...(storage?.imageReference ? { imageReference: { ...storage.imageReference } as Record<string, unknown> } : {}),
      networkInterfaceIds: (vm.networkProfile?.networkInterfaces ?? []).map((n) => n.id).filter((n): n is string => typeof n === 'string'),
      ...(vm.securityProfile?.securityType ? { securityType: vm.securityProfile.securityType } : {}),
      osDisk,
      dataDisks: dataDisks.sort((a, b) => (a.lun ?? -1) - (b.lun ?? -1)),
    };
  }

  /** Waits until a capture's background copy is done (completionPercent absent or 100), with doubling pauses, bounded. */
  async function whenComplete(read: () => Promise<{ completionPercent?: number; provisioningState?: string }>, what: string): Promise<void> {
    const deadline = Date.now() + wait.timeoutMs;
    let delay = wait.firstDelayMs;
    for (;;) {
      const state = await read();
      const pct = state.completionPercent;
      if ((pct === undefined || pct >= 100) && (state.provisioningState === undefined || state.provisioningState === 'Succeeded')) return;
      if (state.provisioningState === 'Failed') throw new PagewiseError('SourceNotFound', `${what} failed to provision: there is nothing whole to read`);
      if (Date.now() + delay > deadline) {
        throw new PagewiseError('SourceUnreachable', `${what} is still being copied (${pct ?? '?'}% done) after ${Math.round(wait.timeoutMs / 1000)} s; a later attempt will try again`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, wait.maxDelayMs);
    }
  }

  /** Restore point IDs of the Pagewise-tagged collections in a resource group that were made for this VM. */
  async function pagewiseRestorePoints(client: ComputeManagementClient, vm: VmInfo): Promise<string[]> {
    const ref = parseVmId(vm.id);
    const tag = vmCaptureTag(vm.id);
    const out: string[] = [];
    for await (const coll of client.restorePointCollections.list(ref.resourceGroup)) {
      if (!isTaken(coll.tags) || coll.tags?.[PAGEWISE_VM_TAG] !== tag || !coll.name) continue;
      const full = await client.restorePointCollections.get(ref.resourceGroup, coll.name, { expand: 'restorePoints' });
      for (const rp of full.restorePoints ?? []) {
        if (rp.id && out.length < MAX_LISTED) out.push(restorePointIdOf(parseRestorePointId(rp.id, 'a restore point Compute listed')));
      }
    }
    return out;
  }

  return deniedAsAccessDenied<VmCaptureCompute>({
    async getVm(vmId) {
      const ref = parseVmId(vmId);
      const client = await compute(ref.subscriptionId);
      return vmInfo(client, await client.virtualMachines.get(ref.resourceGroup, ref.vmName), vmId);
    },

    async listVms(scope) {
      const subscriptionId = assertSubscriptionId(scope.subscriptionId);
      const client = await compute(subscriptionId);
      const pages = scope.resourceGroup === undefined ? client.virtualMachines.listAll() : client.virtualMachines.list(scope.resourceGroup);
      const out: VmInfo[] = [];
      for await (const vm of pages) {
        if (out.length >= MAX_LISTED) throw new PagewiseError('LimitExceeded', `more than ${MAX_LISTED} VMs in the scope`);
        out.push(await vmInfo(client, vm, vm.id ?? ''));
      }
      return out;
    },

    async vmIdsByTag(subscriptionIds, tag) {
      const subs = subscriptionIds.map((s) => assertSubscriptionId(s));
      checkTagText(tag.name, 'name', 'the VM');
      checkTagText(tag.value, 'value', 'the VM');
      const { ResourceGraphClient } = await import('@azure/arm-resourcegraph');
      const client = new ResourceGraphClient(ctx.credential, { endpoint: ctx.endpoint, credentials: { scopes: [`${ctx.endpoint}/.default`] } });
      const query = `resources | where type =~ 'microsoft.compute/virtualmachines' | where tags['${tag.name}'] =~ '${tag.value}' | project id`;
      const ids: string[] = [];
      let skipToken: string | undefined;
      do {
        const page = await client.resources({ subscriptions: subs, query, options: { resultFormat: 'objectArray', ...(skipToken ? { skipToken } : {}) } });
        const rows: unknown = page.data;
        if (!Array.isArray(rows)) throw new PagewiseError('Corrupt', 'Resource Graph answered the VM query without a list of rows');
        for (const row of rows) {
          const id = (row as { id?: unknown })?.id;
          if (typeof id === 'string') ids.push(vmIdOf(parseVmId(id, 'a VM ID Resource Graph returned')));
        }
        if (ids.length > MAX_LISTED) throw new PagewiseError('LimitExceeded', `more than ${MAX_LISTED} VMs carry the tag`);
        skipToken = page.skipToken;
      } while (skipToken);
      return ids;
    },

    async createRestorePoint(vm, collectionName, restorePointName, consistency) {
      const ref = parseVmId(vm.id);
      assertResourceName(collectionName, 'the restore point collection name');
      assertResourceName(restorePointName, 'the restore point name');
      const client = await compute(ref.subscriptionId);
      await client.restorePointCollections.createOrUpdate(ref.resourceGroup, collectionName, { location: vm.location, source: { id: vm.id }, tags: pagewiseTags(vm.id) });
      let rp;
      try {
        // Compute takes only CrashConsistent as an input mode ("For now, only CrashConsistent is accepted as a
        // valid input", RestorePointProperties.consistencyMode); without one it makes the best it can
        // (application-consistent, else file-system-consistent) and says which in the response.
        rp = await client.restorePoints.beginCreateAndWait(ref.resourceGroup, collectionName, restorePointName, consistency === 'crash' ? { consistencyMode: 'CrashConsistent' } : {}, lro);
      } catch (err) {
        const code = (err as { code?: string }).code;
        const status = (err as { statusCode?: number }).statusCode;
        // A retried capture step (an activity run again) finds its own restore point made: that is the capture.
        if (status === 409 && code === 'Conflict') rp = await existingRestorePoint(client, ref.resourceGroup, collectionName, restorePointName);
        if (!rp && code && RESTORE_POINT_UNSUPPORTED.has(code) && (status === undefined || status === 400 || status === 409)) {
          throw new PagewiseError('BadInput', `Compute cannot take a restore point of VM ${ref.vmName} (${armErrorText(err)})`, { cause: err, reason: RESTORE_POINTS_UNSUPPORTED });
        }
        if (!rp) throw err;
      }
      const restorePointId = restorePointIdOf({ ...ref, collectionName, restorePointName });
      const obtained = consistencyOf(rp.consistencyMode, `the restore point ${restorePointName}`);
      const diskRestorePointIds = new Map<string, string>();
      const profile = rp.sourceMetadata?.storageProfile;
      for (const d of [profile?.osDisk, ...(profile?.dataDisks ?? [])]) {
        const diskId = d?.managedDisk?.id;
        const drpId = d?.diskRestorePoint?.id;
        if (diskId && drpId) diskRestorePointIds.set(diskId.toLowerCase(), checkedDrp(drpId, 'a disk restore point Compute returned'));
      }
      if (diskRestorePointIds.size === 0) {
        for await (const drp of client.diskRestorePoint.listByRestorePoint(ref.resourceGroup, collectionName, restorePointName)) {
          if (drp.id && drp.sourceResourceId) diskRestorePointIds.set(drp.sourceResourceId.toLowerCase(), checkedDrp(drp.id, 'a disk restore point Compute listed'));
          if (diskRestorePointIds.size > MAX_DATA_DISKS + 1) break;
        }
      }
      return { restorePointId, consistency: obtained, diskRestorePointIds };
    },

    async deleteRestorePoint(restorePointId) {
      const ref = parseRestorePointId(restorePointId);
      const client = await compute(ref.subscriptionId);
      try {
        const coll = await client.restorePointCollections.get(ref.resourceGroup, ref.collectionName);
        if (!isTaken(coll.tags)) throw new PagewiseError('AccessDenied', `the restore point collection ${ref.collectionName} does not carry ${PAGEWISE_TAG}=${PAGEWISE_TAG_VALUE}: Pagewise deletes only what it took`);
        await client.restorePoints.beginDeleteAndWait(ref.resourceGroup, ref.collectionName, ref.restorePointName, lro);
      } catch (err) {
        if (!isArmNotFound(err)) throw err;
      }
    },

    async createIncrementalSnapshot(disk, snapshotName, tags) {
      const diskRef = parseDiskId(disk.id);
      assertResourceName(snapshotName, 'the snapshot name');
      const client = await compute(diskRef.subscriptionId);
      // Snapshots live beside their disk (same subscription and group): the grant, the diff and the release find them there.
      const snap = await client.snapshots.beginCreateOrUpdateAndWait(diskRef.resourceGroup, snapshotName, {
        location: disk.location,
        incremental: true,
        creationData: { createOption: 'Copy', sourceResourceId: disk.id },
        tags: { ...tags, [PAGEWISE_TAG]: PAGEWISE_TAG_VALUE },
      }, lro);
      const id = snap.id ?? `/subscriptions/${diskRef.subscriptionId}/resourceGroups/${diskRef.resourceGroup}/providers/Microsoft.Compute/snapshots/${snapshotName}`;
      parseSnapshotId(id, 'the snapshot Compute made');
      return id;
    },

    async deleteSnapshot(snapshotId) {
      const ref = parseSnapshotId(snapshotId);
      const client = await compute(ref.subscriptionId);
      try {
        const snap = await client.snapshots.get(ref.resourceGroup, ref.snapshotName);
        if (!isTaken(snap.tags)) throw new PagewiseError('AccessDenied', `the snapshot ${ref.snapshotName} does not carry ${PAGEWISE_TAG}=${PAGEWISE_TAG_VALUE}: Pagewise deletes only what it took`);
        await client.snapshots.beginDeleteAndWait(ref.resourceGroup, ref.snapshotName, lro);
      } catch (err) {
        if (!isArmNotFound(err)) throw err;
      }
    },

    async captureExists(captureId) {
      const ref = parseCaptureId(captureId);
      const client = await compute(ref.subscriptionId);
      try {
        if (ref.kind === 'snapshot') await client.snapshots.get(ref.resourceGroup, ref.snapshotName);
        else await client.diskRestorePoint.get(ref.resourceGroup, ref.collectionName, ref.restorePointName, ref.diskRestorePointName);
        return true;
      } catch (err) {
        if (isArmNotFound(err)) return false;
        throw err;
      }
    },

    async grantCaptureRead(captureId, seconds) {
      const ref = parseCaptureId(captureId);
      if (!Number.isInteger(seconds) || seconds < 60 || seconds > 7 * 86400) throw new RangeError(`a capture grant of ${seconds} s (60 s to 7 days)`);
      const client = await compute(ref.subscriptionId);
      let access;
      if (ref.kind === 'snapshot') {
        await whenComplete(() => client.snapshots.get(ref.resourceGroup, ref.snapshotName), `the snapshot ${ref.snapshotName}`);
        access = await client.snapshots.beginGrantAccessAndWait(ref.resourceGroup, ref.snapshotName, { access: 'Read', durationInSeconds: seconds }, lro);
      } else {
        const args = [ref.resourceGroup, ref.collectionName, ref.restorePointName, ref.diskRestorePointName] as const;
        await whenComplete(() => client.diskRestorePoint.get(...args), `the disk restore point ${ref.diskRestorePointName}`);
        access = await client.diskRestorePoint.beginGrantAccessAndWait(...args, { access: 'Read', durationInSeconds: seconds }, lro);
      }
      if (!access.accessSAS) throw new PagewiseError('SourceNotFound', `Compute granted no read SAS for ${ref.kind === 'snapshot' ? 'snapshot' : 'disk restore point'} ${captureId}`);
      return access.accessSAS;
    },

    async revokeCaptureRead(captureId) {
      const ref = parseCaptureId(captureId);
      const client = await compute(ref.subscriptionId);
      try {
        if (ref.kind === 'snapshot') await client.snapshots.beginRevokeAccessAndWait(ref.resourceGroup, ref.snapshotName, lro);
        else await client.diskRestorePoint.beginRevokeAccessAndWait(ref.resourceGroup, ref.collectionName, ref.restorePointName, ref.diskRestorePointName, lro);
      } catch (err) {
        if (!isArmNotFound(err)) throw err;
      }
    },

    async listPagewiseCaptures(vm) {
      const ref = parseVmId(vm.id);
      const client = await compute(ref.subscriptionId);
      const tag = vmCaptureTag(vm.id);
      const out = await pagewiseRestorePoints(client, vm);
      // Snapshots are beside their disks: one listing per resource group the VM's disks are in.
      const groups = new Set([vm.osDisk, ...vm.dataDisks].map((d) => parseDiskId(d.id).resourceGroup.toLowerCase()));
      for (const group of groups) {
        for await (const snap of client.snapshots.listByResourceGroup(group)) {
          if (!isTaken(snap.tags) || snap.tags?.[PAGEWISE_VM_TAG] !== tag || !snap.id || !isCaptureId(snap.id)) continue;
          if (out.length >= MAX_LISTED) throw new PagewiseError('LimitExceeded', `more than ${MAX_LISTED} Pagewise captures of VM ${vm.name}`);
          out.push(snap.id);
        }
      }
      return out;
    },
  });
}
