/** Forget, keep rules and undelete for whole-VM backups (docs/FORMAT.md §27.6): a VM backup goes and comes back with its disk backups' tombstones. */
import { Clock, systemClock } from '../clock';
import { PagewiseError } from '../errors';
import { forgetBackups, manifestsByNameTag, undeleteBackups } from '../retention/forget';
import { applyKeepPolicy, describeKeepPolicy, KeepPolicy, parseKeepPolicy } from '../retention/keep-policy';
import { readTombstones } from '../retention/tombstones';
import { Vault } from '../repo/vault';
import { openVaultKeyring } from '../repo/v2/marker';
import type { StorageLocation } from '../types';
import { parseVmId } from './arm-ids';
import { VM_BACKUP_ID_RE } from './backup-vm';
import { listVmBackups, readVmManifest, VmManifest } from './vm-manifest';

/** VM backup IDs one call takes. */
const MAX_VM_IDS = 1000;

/**
 * A VM backup as retention sees it (§27.6): forgotten when every disk backup it names is forgotten (a
 * trusted tombstone) or gone (pruned), at least one of them forgotten; `pruned` when all are gone.
 */
export interface VmBackupListing {
  manifest: VmManifest;
  state: 'live' | 'forgotten' | 'pruned' | 'partial';
  /** forgotten: while the earliest grace of its disk backups lasts, undelete brings the whole VM backup back. */
  deleted?: { forgottenAt: string; graceEndsAt: string };
  /** Disk backups forgotten or gone (partial: while others are not — forgotten one by one with pagewise forget <backup-id>). */
  missingDisks?: string[];
  /** Of those, the ones gone (pruned): no undelete brings them back. */
  prunedDisks?: string[];
}

export interface VmForgetOptions {
  /** Default 14 days (§26.1); 0 only when asked. */
  graceMs?: number;
  dryRun?: boolean;
  clock?: Clock;
  /** The keep policy in words when a policy chose these (tombstones say reason "policy"). */
  rule?: string;
}

export interface VmForgetReport {
  forgotten: { vmBackupId: string; graceEndsAt: string; diskBackups: string[] }[];
  kept: { vmBackupId: string; reasons: string[] }[];
  alreadyForgotten: string[];
  dryRun: boolean;
  problems?: { id: string; problem: string }[];
}

export interface VmUndeleteResult {
  restored: string[];
  notForgotten: string[];
  /** Some disk backup's grace ended or it is gone: the VM backup cannot be made whole again. */
  expired: string[];
  problems?: { id: string; problem: string }[];
}

function checkedVmBackupIds(ids: unknown): string[] {
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_VM_IDS) throw new PagewiseError('BadInput', `give 1 to ${MAX_VM_IDS} VM backup IDs`);
  for (const id of ids) {
    if (typeof id !== 'string' || !VM_BACKUP_ID_RE.test(id)) throw new PagewiseError('BadInput', `${JSON.stringify(String(id).slice(0, 80))} is not a VM backup ID (vm-<time>-<12 hex>, as pagewise list --vm shows)`);
  }
  return [...new Set(ids as string[])];
}

/** The retention state of VM manifests: one listing of manifests and one of tombstones for all of them. */
async function statesOf(vault: StorageLocation, userKey: Buffer, manifests: VmManifest[]): Promise<VmBackupListing[]> {
  if (manifests.length === 0) return [];
  const v = Vault.open(vault);
  const keyring = await openVaultKeyring(v, userKey);
  const present = await manifestsByNameTag(v);
  const tombstones = await readTombstones(v, keyring);
  return manifests.map((manifest) => {
    let forgotten = 0;
    let gone = 0;
    let forgottenAt = '';
    let graceEndsAt = '';
    const missing: string[] = [];
    const pruned: string[] = [];
    for (const d of manifest.disks) {
      const tag = keyring.nameTag(d.backupId);
      const t = tombstones.get(tag)?.tombstone;
      if (!present.has(tag)) {
        gone++;
        missing.push(d.backupId);
        pruned.push(d.backupId);
      } else if (t) {
        forgotten++;
        missing.push(d.backupId);
        if (t.forgottenAt > forgottenAt) forgottenAt = t.forgottenAt;
        if (graceEndsAt === '' || t.graceEndsAt < graceEndsAt) graceEndsAt = t.graceEndsAt;
      }
    }
    const all = manifest.disks.length;
    const gaps = { missingDisks: missing, ...(pruned.length > 0 ? { prunedDisks: pruned } : {}) };
    if (gone === all) return { manifest, state: 'pruned', ...gaps };
    if (forgotten + gone === all) return { manifest, state: 'forgotten', deleted: { forgottenAt, graceEndsAt }, ...gaps };
    if (missing.length > 0) return { manifest, state: 'partial', ...gaps };
    return { manifest, state: 'live' };
  });
}

/** The VM backups of one VM (or all), newest first, each with its retention state (§27.6). */
export async function listVmBackupStates(vault: StorageLocation, userKey: Buffer, vmId?: string): Promise<VmBackupListing[]> {
  return statesOf(vault, userKey, await listVmBackups(vault, userKey, vmId));
}

/**
 * Forgets VM backups: every disk backup each names that is still there and not forgotten gets its
 * tombstone (§26.2), so prune reclaims them after the grace and undelete brings them back before.
 * Every ID is read before anything is written; the VM manifests stay (prune keeps them, §27.6).
 */
export async function forgetVmBackups(vault: StorageLocation, userKey: Buffer, vmBackupIds: string[], o: VmForgetOptions = {}): Promise<VmForgetReport> {
  const ids = checkedVmBackupIds(vmBackupIds);
  const manifests: VmManifest[] = [];
  for (const id of ids) manifests.push(await readVmManifest(vault, userKey, id));
  const states = await statesOf(vault, userKey, manifests);
  const nowMs = (o.clock ?? systemClock)();
  const report: VmForgetReport = { forgotten: [], kept: [], alreadyForgotten: [], dryRun: o.dryRun ?? false };
  const targets = states.filter((s) => {
    if (s.state === 'live' || s.state === 'partial') return true;
    report.alreadyForgotten.push(s.manifest.vmBackupId);
    return false;
  });
  if (targets.length === 0) return report;
  const diskIds = targets.flatMap((s) => s.manifest.disks.map((d) => d.backupId).filter((b) => !s.missingDisks?.includes(b)));
  const disks = await forgetBackups({
    vault,
    userKey,
    backupIds: diskIds,
    clock: () => nowMs,
    dryRun: o.dryRun ?? false,
    ...(o.graceMs !== undefined ? { graceMs: o.graceMs } : {}),
    ...(o.rule !== undefined ? { rule: o.rule } : {}),
  });
  const graceOf = new Map(disks.forgotten.map((f) => [f.backupId, f.graceEndsAt]));
  const problems = (disks.problems ?? []).map((p) => ({ id: p.backupId, problem: p.problem }));
  for (const s of targets) {
    const mine = s.manifest.disks.map((d) => d.backupId).filter((b) => graceOf.has(b));
    const graces = mine.map((b) => graceOf.get(b)!).sort();
    if (mine.length > 0) report.forgotten.push({ vmBackupId: s.manifest.vmBackupId, graceEndsAt: graces[0], diskBackups: mine });
    else report.alreadyForgotten.push(s.manifest.vmBackupId); // forgotten meanwhile by another run
  }
  return problems.length > 0 ? { ...report, problems } : report;
}

/**
 * One VM's backups by a keep policy (restic's rules, core/retention/keep-policy, each at its completedAt):
 * the VM backups the policy does not keep are forgotten with forgetVmBackups; the newest live one is
 * always kept. BackupNotFound when the vault holds no VM backup of the VM.
 */
export async function forgetVmBackupsByPolicy(vault: StorageLocation, userKey: Buffer, vmId: string, policy: KeepPolicy, o: Omit<VmForgetOptions, 'rule'> = {}): Promise<VmForgetReport> {
  parseVmId(vmId, 'the VM');
  const keep = parseKeepPolicy(policy);
  const nowMs = (o.clock ?? systemClock)();
  const states = await listVmBackupStates(vault, userKey, vmId);
  if (states.length === 0) throw new PagewiseError('BackupNotFound', `the vault holds no VM backup of ${vmId.slice(0, 400)} (pagewise list --vm shows them)`);
  const live = states.filter((s) => s.state === 'live' || s.state === 'partial');
  const kept: VmForgetReport['kept'] = [];
  const drop: string[] = [];
  const decisions = live.length === 0 ? [] : applyKeepPolicy(live.map((s) => ({ backupId: s.manifest.vmBackupId, time: s.manifest.completedAt })), keep, { nowMs });
  for (const d of decisions) {
    // listVmBackups sorts newest first: a policy never forgets the VM's newest live backup.
    const reasons = !d.keep && d.backupId === live[0].manifest.vmBackupId ? ['newest of its VM'] : d.reasons;
    if (reasons.length > 0) kept.push({ vmBackupId: d.backupId, reasons });
    else drop.push(d.backupId);
  }
  if (drop.length === 0) return { forgotten: [], kept, alreadyForgotten: [], dryRun: o.dryRun ?? false };
  const report = await forgetVmBackups(vault, userKey, drop, { ...o, clock: () => nowMs, rule: describeKeepPolicy(keep) });
  return { ...report, kept };
}

/** Undeletes VM backups: removes the tombstones of their disk backups while every grace lasts (needs the delete right). */
export async function undeleteVmBackups(vault: StorageLocation, userKey: Buffer, vmBackupIds: string[], o: { clock?: Clock } = {}): Promise<VmUndeleteResult> {
  const ids = checkedVmBackupIds(vmBackupIds);
  const manifests: VmManifest[] = [];
  for (const id of ids) manifests.push(await readVmManifest(vault, userKey, id));
  const states = await statesOf(vault, userKey, manifests);
  const result: VmUndeleteResult = { restored: [], notForgotten: [], expired: [] };
  const problems: NonNullable<VmUndeleteResult['problems']> = [];
  for (const s of states) {
    const id = s.manifest.vmBackupId;
    if (s.state === 'live') {
      result.notForgotten.push(id);
      continue;
    }
    if (s.prunedDisks !== undefined) {
      result.expired.push(id);
      problems.push({ id, problem: `cannot be made whole again: disk backup(s) ${s.prunedDisks.join(', ')} are pruned` });
      continue;
    }
    const back = await undeleteBackups({ vault, userKey, backupIds: s.missingDisks ?? [], ...(o.clock ? { clock: o.clock } : {}) });
    for (const p of back.problems ?? []) problems.push({ id: p.backupId, problem: p.problem });
    if (back.expired.length > 0) {
      result.expired.push(id);
      problems.push({ id, problem: `not whole again: disk backup(s) ${back.expired.join(', ')} are past their grace or pruned` });
    } else result.restored.push(id);
  }
  return problems.length > 0 ? { ...result, problems } : result;
}
