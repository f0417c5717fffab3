/** The VM manifest (docs/FORMAT.md §27): one sealed record per whole-VM backup, naming the disk backups it groups. */
import { isPagewiseError, isTransient, PagewiseError } from '../errors';
import { BlobAlreadyExistsError, BlobNotFoundError } from '../repo/store/blob-store';
import { Vault } from '../repo/vault';
import { MAX_ENVELOPE_BYTES, openJson, sealJson } from '../repo/v2/envelope';
import type { Keyring } from '../repo/v2/keyring';
import { openVaultKeyring, readVaultMarkerIfAny } from '../repo/v2/marker';
import { invertedTime } from '../repo/v2/names';
import type { StorageLocation } from '../types';
import type { ConsistencyLevel } from './compute';

export interface VmManifestDisk {
  lun: number | null;
  role: 'os' | 'data';
  diskId: string;
  diskName: string;
  sizeBytes: number;
  sku?: string;
  zone?: string;
  osType?: string;
  hyperVGeneration?: string;
  captureId: string;
  backupId: string;
  kind: 'full' | 'incremental';
  reason: string | null;
  bytesRead: number;
  bytesStored: number;
}

export interface VmManifest {
  format: 'pagewise-vm';
  version: 1;
  vmBackupId: string;
  vmId: string;
  vmName: string;
  createdAt: string;
  completedAt: string;
  capture: 'restore-point' | 'snapshots';
  /** Why snapshots (restore points unavailable…). */
  captureNote?: string;
  requestedConsistency: ConsistencyLevel;
  /** The level obtained (a restore point's consistencyMode; snapshots: crash). */
  consistency: ConsistencyLevel;
  restorePointId?: string;
  vm: {
    location: string;
    zone?: string;
    vmSize?: string;
    tags: Record<string, string>;
    imageReference?: Record<string, unknown>;
    networkInterfaceIds: string[];
    osType?: string;
    hyperVGeneration?: string;
    securityType?: string;
  };
  disks: VmManifestDisk[];
  /** What a restore of this backup will not have: ADE, DES keys, Trusted Launch guest state (VMGS), … */
  notCaptured: { what: string; reason: string }[];
}

/** Envelope kind of a VM manifest (§20.4, §27). */
export const VM_MANIFEST_KIND = 7;
export const VM_MANIFESTS_PREFIX = 'vms/';
/** vms/<vmTag>/<inv>-<nameTag>.pwv */
export const VM_MANIFEST_NAME_RE = /^vms\/([0-9a-f]{32})\/(\d{13})-([0-9a-f]{32})\.pwv$/;
/** A VM has at most 64 data disks (the largest VM sizes); a manifest naming more is refused. */
export const MAX_VM_DISKS = 65;
const CONSISTENCY: readonly string[] = ['application', 'filesystem', 'crash'];

/** tag("vm|" + lower-case VM ID): the VM's folder, so its backups are one listing, newest first (§24.6). */
export const vmTagOf = (keyring: Keyring, vmId: string): string => keyring.tag(`vm|${vmId.toLowerCase()}`);
/** tag("vm-backup|" + vmBackupId): a VM backup found by its ID with one listing of vms/. */
export const vmNameTagOf = (keyring: Keyring, vmBackupId: string): string => keyring.tag(`vm-backup|${vmBackupId}`);
export const vmManifestName = (keyring: Keyring, m: Pick<VmManifest, 'vmId' | 'vmBackupId' | 'completedAt'>): string =>
  `${VM_MANIFESTS_PREFIX}${vmTagOf(keyring, m.vmId)}/${invertedTime(m.completedAt)}-${vmNameTagOf(keyring, m.vmBackupId)}.pwv`;

/** Writes the VM manifest once (If-None-Match); a retried write finding its own manifest there is done. */
export async function writeVmManifest(vault: StorageLocation, userKey: Buffer, m: VmManifest): Promise<void> {
  checkVmManifest(m, 'the VM manifest to write', (why) => new RangeError(why));
  const v = Vault.open(vault);
  const keyring = await openVaultKeyring(v, userKey);
  await putVmManifest(v, keyring, m);
}

export async function putVmManifest(v: Vault, keyring: Keyring, m: VmManifest): Promise<string> {
  const name = vmManifestName(keyring, m);
  try {
    await v.putNew(name, sealJson(keyring, VM_MANIFEST_KIND, name, m));
  } catch (err) {
    if (!(err instanceof BlobAlreadyExistsError)) throw err;
    const there = await readVmManifestAt(v, keyring, name);
    if (there.vmBackupId !== m.vmBackupId) throw err;
  }
  return name;
}

/** The VM manifest of `vmBackupId`: BackupNotFound when the vault has none; Corrupt when the one there fails its checks. */
export async function readVmManifest(vault: StorageLocation, userKey: Buffer, vmBackupId: string): Promise<VmManifest> {
  const v = Vault.open(vault);
  const keyring = await openVaultKeyring(v, userKey);
  const suffix = `-${vmNameTagOf(keyring, vmBackupId)}.pwv`;
  let problem: PagewiseError | undefined;
  for await (const name of v.list(VM_MANIFESTS_PREFIX)) {
    if (!name.endsWith(suffix) || !VM_MANIFEST_NAME_RE.test(name)) continue;
    try {
      const m = await readVmManifestAt(v, keyring, name);
      if (m.vmBackupId !== vmBackupId) throw new PagewiseError('Corrupt', `the VM manifest ${name} names VM backup ${m.vmBackupId}, not ${vmBackupId}`);
      return m;
    } catch (err) {
      if (!isPagewiseError(err, 'Corrupt')) throw err;
      problem ??= err; // a copy under another VM's folder must not hide the real one
    }
  }
  if (problem) throw problem;
  throw new PagewiseError('BackupNotFound', `the vault ${v.display} has no VM backup ${JSON.stringify(vmBackupId.slice(0, 120))}`);
}

/** The VM backups of one VM (or of every VM), newest first; a manifest that fails its checks is skipped when listing all, refused for one VM. */
export async function listVmBackups(vault: StorageLocation, userKey: Buffer, vmId?: string): Promise<VmManifest[]> {
  const v = Vault.open(vault);
  // A vault before its first backup (no marker yet) holds no VM backup: an empty list, as listBackups answers (#18 portal).
  if (!(await readVaultMarkerIfAny(v))) return [];
  const keyring = await openVaultKeyring(v, userKey);
  const prefix = vmId === undefined ? VM_MANIFESTS_PREFIX : `${VM_MANIFESTS_PREFIX}${vmTagOf(keyring, vmId)}/`;
  const out: VmManifest[] = [];
  for await (const name of v.list(prefix)) {
    if (!VM_MANIFEST_NAME_RE.test(name)) continue;
    try {
      out.push(await readVmManifestAt(v, keyring, name));
    } catch (err) {
      if (vmId !== undefined || isTransient(err) || !isPagewiseError(err, 'Corrupt')) throw err;
    }
  }
  // Within one VM the names sort newest first; across VMs the folders interleave.
  return out.sort((a, b) => Date.parse(b.completedAt) - Date.parse(a.completedAt));
}

/** A VM manifest read from `name`: authenticated, its fields checked, its VM, ID and time those of its name. */
export async function readVmManifestAt(v: Vault, keyring: Keyring, name: string): Promise<VmManifest> {
  const parts = VM_MANIFEST_NAME_RE.exec(name);
  if (!parts) throw new PagewiseError('BadInput', `${JSON.stringify(name.slice(0, 120))} is not the name of a VM manifest`);
  let stored: Buffer;
  try {
    stored = await v.getBytes(name, 0, undefined, { maxBytes: MAX_ENVELOPE_BYTES });
  } catch (err) {
    if (err instanceof BlobNotFoundError) throw new PagewiseError('BackupNotFound', `the VM manifest ${name} is not in the vault ${v.display}`, { cause: err });
    throw err;
  }
  const m = openJson<VmManifest>(keyring, VM_MANIFEST_KIND, name, stored);
  const bad = (why: string) => new PagewiseError('Corrupt', `the VM manifest ${name} ${why}`);
  checkVmManifest(m, '', bad);
  if (vmTagOf(keyring, m.vmId) !== parts[1]) throw bad('names another VM than its place in the vault (moved?)');
  if (vmNameTagOf(keyring, m.vmBackupId) !== parts[3]) throw bad('names another VM backup than its blob name (moved?)');
  if (invertedTime(m.completedAt) !== parts[2]) throw bad('has another completion time than its blob name');
  return m;
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const isText = (s: unknown, max = 1024): s is string => typeof s === 'string' && s.length > 0 && s.length <= max;
const isTime = (s: unknown): boolean => typeof s === 'string' && Number.isFinite(Date.parse(s));

/** The fields a listing, a restore or a release relies on have their types and bounds. */
function checkVmManifest(m: VmManifest, what: string, bad: (why: string) => Error): void {
  const w = what ? `${what} ` : '';
  if (m?.format !== 'pagewise-vm' || m.version !== 1) throw bad(`${w}is not a version-1 Pagewise VM manifest`);
  if (!isText(m.vmBackupId, 200) || !isText(m.vmId, 400) || typeof m.vmName !== 'string' || !isTime(m.createdAt) || !isTime(m.completedAt)) throw bad(`${w}lacks its IDs or times`);
  if (m.capture !== 'restore-point' && m.capture !== 'snapshots') throw bad(`${w}has an unknown capture ${JSON.stringify(String(m.capture).slice(0, 40))}`);
  if (!CONSISTENCY.includes(m.consistency) || !CONSISTENCY.includes(m.requestedConsistency)) throw bad(`${w}has an unknown consistency level`);
  if (typeof m.vm !== 'object' || m.vm === null || typeof m.vm.location !== 'string' || !Array.isArray(m.vm.networkInterfaceIds) || typeof m.vm.tags !== 'object' || m.vm.tags === null) throw bad(`${w}lacks the VM's configuration`);
  if (!Array.isArray(m.notCaptured)) throw bad(`${w}lacks its list of what was not captured`);
  if (!Array.isArray(m.disks) || m.disks.length === 0 || m.disks.length > MAX_VM_DISKS) throw bad(`${w}has ${Array.isArray(m.disks) ? m.disks.length : 'no'} disks (1 to ${MAX_VM_DISKS})`);
  const luns = new Set<string>();
  for (const d of m.disks) {
    if (typeof d !== 'object' || d === null) throw bad(`${w}has a disk entry that is not an object`);
    const lunOk = d.lun === null ? d.role === 'os' : isCount(d.lun) && d.lun <= 255 && d.role === 'data';
    if (!lunOk) throw bad(`${w}has a disk with LUN ${JSON.stringify(d.lun)} and role ${JSON.stringify(d.role)}`);
    const key = String(d.lun);
    if (luns.has(key)) throw bad(`${w}names ${d.lun === null ? 'the OS disk' : `LUN ${d.lun}`} twice`);
    luns.add(key);
    if (!isText(d.diskId, 400) || !isText(d.captureId, 600) || !isText(d.backupId, 200) || typeof d.diskName !== 'string') throw bad(`${w}has a disk lacking its IDs`);
    if (!isCount(d.sizeBytes) || !isCount(d.bytesRead) || !isCount(d.bytesStored)) throw bad(`${w}has a disk size or count that is not a whole number`);
    if (d.kind !== 'full' && d.kind !== 'incremental') throw bad(`${w}has a disk backup of unknown kind`);
  }
  if (m.disks.filter((d) => d.lun === null).length !== 1) throw bad(`${w}does not name exactly one OS disk`);
}
