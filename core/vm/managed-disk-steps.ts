/**
 * The steps of a restore to a new managed disk, shared by the one-process restore (restore-vm.ts) and the
 * fan-out (restore-vm-fanout.ts): the name checked free, the Upload disk created, its write grant opened,
 * pages written short of the footer slot, the VHD footer last, and the error that names an incomplete disk.
 */
import { PageBlobClient } from '@azure/storage-blob';
import { PagewiseError, isPagewiseError } from '../errors';
import { MAX_PUT_PAGE_BYTES } from '../limits';
import { putPages } from '../restore/restore';
import { assertDiskWriteTarget } from '../restore/target-guard';
import { targetBlobClient } from '../storage/clients';
import { StorageLocation } from '../types';
import { isArmNotFound } from './arm-capture';
import { assertResourceGroupName, assertResourceName, assertSubscriptionId, diskIdOf } from './arm-ids';
import { assertUploadDiskSize, endsInFooterSlot } from './arm-provision';
import type { NewDiskSpec, VmCompute, VmProvisioningCompute } from './compute';
import { VHD_FOOTER_BYTES, vhdFooter } from './vhd-footer';

/** How long a restore's write grant lives: long enough for a large disk at a slow link (it is revoked when done). */
export const RESTORE_GRANT_SECONDS = 24 * 3600;
/** The tag on what a restore creates: never `pagewise=taken`, which Pagewise alone may delete. */
export const RESTORED_TAGS: Readonly<Record<string, string>> = { pagewise: 'restored' };

/** Where a restored disk goes: a new disk's spec less what the backup decides (its size) and what the restore sets (its tags). */
export type ManagedDiskTarget = Omit<NewDiskSpec, 'sizeBytes' | 'tags'>;

/** Whether Compute knows a disk of this ID (a disk that cannot be read for another reason is an error). */
export async function diskExists(compute: Pick<VmCompute, 'getDisk'>, diskId: string): Promise<boolean> {
  try {
    await compute.getDisk(diskId);
    return true;
  } catch (err) {
    if (isPagewiseError(err, 'TargetNotFound') || isArmNotFound(err)) return false;
    throw err;
  }
}

/** The checked ARM ID of a disk target (its subscription, group and name by core/vm/arm-ids.ts's rules). */
export function targetDiskId(target: ManagedDiskTarget): string {
  return diskIdOf({
    subscriptionId: assertSubscriptionId(target.subscriptionId),
    resourceGroup: assertResourceGroupName(target.resourceGroup),
    diskName: assertResourceName(target.name, 'the disk name'),
  });
}

export function diskExistsError(target: ManagedDiskTarget): PagewiseError {
  return new PagewiseError('TargetExists', `the managed disk ${target.name} already exists in ${target.resourceGroup}; Pagewise restores only to a new disk`);
}

/** The checked ARM ID of a new disk; refuses one that exists, before anything is created or written. */
export async function newDiskId(compute: Pick<VmCompute, 'getDisk'>, target: ManagedDiskTarget): Promise<string> {
  const diskId = targetDiskId(target);
  if (await diskExists(compute, diskId)) throw diskExistsError(target);
  return diskId;
}

/**
 * The disk data bytes of a backup of `diskBytes`: a backup that ends in a footer slot (N MiB + 512: Azure's
 * export of a managed disk) gets a new footer in that slot; its old one is not copied.
 */
export function uploadDataBytes(diskBytes: number, backupId: string): number {
  const dataBytes = endsInFooterSlot(diskBytes) ? diskBytes - VHD_FOOTER_BYTES : diskBytes;
  assertUploadDiskSize(dataBytes, `the backup ${backupId} (its disk)`);
  return dataBytes;
}

/** Creates the Upload disk (refused by Compute if one of the name appeared meanwhile), tagged `pagewise=restored` and `extraTags`. */
export async function createRestoreDisk(compute: VmProvisioningCompute, target: ManagedDiskTarget, dataBytes: number, extraTags: Record<string, string> = {}): Promise<string> {
  return compute.createUploadDisk({ ...target, sizeBytes: dataBytes, tags: { ...extraTags, ...RESTORED_TAGS } });
}

/** The write grant's URL as a target location, checked: the app's own grant, never in a vault. */
export async function grantLocation(url: string, what: string, vaults: StorageLocation[]): Promise<StorageLocation> {
  // The URL is the app's own grant: only then may it be on a managed-disk host (and never in a vault).
  const location: StorageLocation = { url, managedDiskGrant: true };
  await assertDiskWriteTarget(location, what, vaults);
  return location;
}

/** Writes a disk's pages through its grant, short of the footer slot (a backup's own footer is left to the new one). */
export interface DiskPageWriter {
  /** Writes what of `data` lies before the footer slot; the data bytes written. */
  write(offset: number, data: Buffer, abortSignal?: AbortSignal): Promise<number>;
  /** The fixed VHD footer at the end of the data. */
  writeFooter(abortSignal?: AbortSignal): Promise<void>;
}

export function diskPageWriter(location: StorageLocation, dataBytes: number, what: string, onPut: (requests: number) => void = () => {}): DiskPageWriter {
  const { client }: { client: PageBlobClient } = targetBlobClient(location, what);
  const put = async (offset: number, data: Buffer, abortSignal?: AbortSignal) => {
    await putPages(client, offset, data, what, abortSignal);
    onPut(Math.ceil(data.length / MAX_PUT_PAGE_BYTES));
  };
  return {
    async write(offset, data, abortSignal) {
      const part = data.subarray(0, Math.max(0, Math.min(data.length, dataBytes - offset)));
      if (part.length > 0) await put(offset, part, abortSignal);
      return part.length;
    },
    writeFooter: (abortSignal) => put(dataBytes, vhdFooter(dataBytes), abortSignal),
  };
}

/** The restore's error, saying which disk it left behind incomplete (the code kept: a transient failure stays one). */
export function incompleteDiskError(err: unknown, diskName: string | undefined): unknown {
  if (!diskName) return err;
  const message = `${err instanceof Error ? err.message : String(err)}; the managed disk ${diskName} it created is incomplete: delete it, or restore again under another name`;
  return new PagewiseError(isPagewiseError(err) ? err.code : 'TargetUnreachable', message, { cause: err });
}
