/**
 * Forget and undelete (docs/FORMAT.md §26.2): forgetting a backup writes its tombstone and deletes nothing
 * (the backup identity may do it); the backup stays listed `deleted`, restorable, never a base, until
 * prune deletes it after the grace. Undelete removes the tombstone while the grace lasts.
 */
import { Clock, systemClock } from '../clock';
import { PagewiseError } from '../errors';
import { DAY_MS } from '../units';
import { DEFAULT_GRACE_MS } from '../prune/protocol';
import { validateBackupId } from '../repo/backup-id';
import { catalogEntries, groupByDisk, UNKNOWN_DISK } from '../repo/catalog';
import { Vault } from '../repo/vault';
import { openKeyring, Keyring } from '../repo/v2/keyring';
import { readVaultMarker } from '../repo/v2/marker';
import { MANIFEST_NAME_RE, v2names } from '../repo/v2/names';
import { BackupListing, CompleteBackupListing, StorageLocation } from '../types';
import { applyKeepPolicy, describeKeepPolicy, KeepPolicy, parseKeepPolicy } from './keep-policy';
import { readTombstoneAt, removeTombstone, Tombstone, tombstoneName, v1ManifestName, writeTombstone } from './tombstones';

/** Ten years: beyond it a "grace" is a typo. */
export const MAX_GRACE_MS = 3650 * DAY_MS;
/** Backup IDs one call takes (a CLI line, an HTTP body). */
const MAX_IDS = 10_000;

export interface ForgetOptions {
  vault: StorageLocation;
  userKey: Buffer;
  /** Forget these (any complete backup, the newest of a disk too). Or: */
  backupIds?: string[];
  /** per disk, forget the complete backups this policy does not keep (never the disk's newest). */
  policy?: KeepPolicy;
  /** With a policy: this disk only (as the listing names it). */
  disk?: string;
  /** How long a forgotten backup stays recoverable; default DEFAULT_GRACE_MS (14 days); 0 only when asked. */
  graceMs?: number;
  /** Decide and report; write nothing. */
  dryRun?: boolean;
  clock?: Clock;
  /** With backup IDs: the keep policy (in words) that chose them elsewhere (a VM's, §27.6); tombstones then say reason "policy". */
  rule?: string;
}

export interface ForgetReport {
  forgotten: { backupId: string; disk: string; graceEndsAt: string }[];
  kept: { backupId: string; disk: string; reasons: string[] }[];
  /** Named, or chosen, but forgotten before: the earlier tombstone and its grace stand. */
  alreadyForgotten: string[];
  dryRun: boolean;
  /** Present when some backup was not forgotten, or not placed, because of what is in the vault (a tombstone that does not authenticate, a manifest gone meanwhile): why. */
  problems?: { backupId: string; problem: string }[];
}

export interface UndeleteOptions {
  vault: StorageLocation;
  userKey: Buffer;
  backupIds: string[];
  clock?: Clock;
}

export interface UndeleteResult {
  restored: string[];
  notForgotten: string[];
  /** The grace ended, or the manifest is gone: prune may have deleted it or be about to. */
  expired: string[];
  /** Present when a tombstone did not authenticate: not trusted (its grace unknown); removed when the manifest is still there. */
  problems?: { backupId: string; problem: string }[];
}

/** The keyring for forget or undelete: a version-2 vault (an upgraded one too) and a key with a slot. */
async function openForRetention(vault: Vault, userKey: Buffer): Promise<Keyring> {
  const marker = await readVaultMarker(vault);
  if (marker.version !== 2) {
    throw new PagewiseError('BadInput', `${vault.display} is a version-1 vault: forget and undelete need a version-2 vault; upgrade the vault first (pagewise upgrade)`);
  }
  return openKeyring(vault, marker, userKey);
}

function checkedIds(ids: unknown, required: boolean): string[] {
  if (ids === undefined && !required) return [];
  if (!Array.isArray(ids) || (required && ids.length === 0)) throw new PagewiseError('BadInput', 'give the IDs of the backups as a list of one or more');
  if (ids.length > MAX_IDS) throw new PagewiseError('BadInput', `${ids.length} backup IDs are more than the ${MAX_IDS} one call takes`);
  return [...new Set(ids.map((id) => validateBackupId(id as string)))];
}

function checkedGrace(graceMs: unknown): number {
  if (graceMs === undefined) return DEFAULT_GRACE_MS;
  if (typeof graceMs !== 'number' || !Number.isInteger(graceMs) || graceMs < 0 || graceMs > MAX_GRACE_MS) {
    throw new PagewiseError('BadInput', `the grace must be a whole number of milliseconds from 0 to ${MAX_GRACE_MS} (ten years), not ${String(graceMs).slice(0, 40)}`);
  }
  return graceMs;
}

/** Every version-2 manifest name by its nameTag (one listing): what a tombstone names. */
export async function manifestsByNameTag(vault: Vault): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const name of vault.list(v2names.manifestPrefix())) {
    const nameTag = MANIFEST_NAME_RE.exec(name)?.[3];
    if (nameTag !== undefined) out.set(nameTag, name);
  }
  return out;
}

type Complete = CompleteBackupListing;
interface Target {
  b: Complete;
  reason: 'forget' | 'policy';
  rule?: string;
}

/** Why a named backup that is not a complete one cannot be forgotten (thrown before anything is written). */
function notForgettable(vault: Vault, keyring: Keyring, listings: BackupListing[], id: string): PagewiseError {
  const tag = keyring.nameTag(id);
  const other = listings.find((l) => l.backupId === id) ?? listings.find((l) => l.backupId === tag);
  if (other?.status === 'incomplete') {
    return new PagewiseError('BadInput', `backup ${id} is unfinished (it has no manifest), so there is nothing to forget; prune removes an abandoned backup's staging once it is older than the abandonment limit`);
  }
  if (other?.status === 'damaged') return new PagewiseError('Corrupt', `backup ${id} cannot be forgotten: ${other.problem}`);
  if (other?.status === 'complete' && other.locked) return new PagewiseError('WrongKey', `backup ${id} cannot be forgotten with this key: its manifest was written under a newer master key epoch than this key's slot holds`);
  return new PagewiseError('BackupNotFound', `backup ${id} is not in the vault ${vault.display} (pagewise list shows its backups)`);
}

/**
 * Forgets backups: by ID, or per disk by a keep policy (restic's rules over the disk's complete backups
 * not already forgotten; the disk's newest is always kept). Every ID and the policy are checked before
 * anything is written; a dry run writes nothing and reports the same.
 */
export async function forgetBackups(o: ForgetOptions): Promise<ForgetReport> {
  const ids = checkedIds(o.backupIds, false);
  const policy = o.policy === undefined ? undefined : parseKeepPolicy(o.policy);
  if ((ids.length > 0) === (policy !== undefined)) throw new PagewiseError('BadInput', 'give the backups to forget by ID, or a keep policy: one of the two');
  if (o.disk !== undefined && (policy === undefined || typeof o.disk !== 'string' || o.disk.length === 0 || o.disk.length > 1024)) {
    throw new PagewiseError('BadInput', policy === undefined ? 'a disk goes with a keep policy, not with backup IDs' : 'the disk must be a disk name as pagewise list shows it');
  }
  const graceMs = checkedGrace(o.graceMs);
  const dryRun = o.dryRun ?? false;
  const vault = Vault.open(o.vault);
  const keyring = await openForRetention(vault, o.userKey);
  const nowMs = (o.clock ?? systemClock)();

  const listings: BackupListing[] = [];
  for await (const entry of catalogEntries(vault, { userKey: o.userKey })) listings.push(entry);
  const complete = listings.filter((l): l is Complete => l.status === 'complete' && !l.locked);

  const report: ForgetReport = { forgotten: [], kept: [], alreadyForgotten: [], dryRun };
  const problems: NonNullable<ForgetReport['problems']> = [];
  const targets: Target[] = [];
  if (policy === undefined) {
    for (const id of ids) {
      const b = complete.find((l) => l.backupId === id);
      if (!b) throw notForgettable(vault, keyring, listings, id);
      targets.push(o.rule === undefined ? { b, reason: 'forget' } : { b, reason: 'policy', rule: o.rule.slice(0, 200) });
    }
  } else {
    const rule = describeKeepPolicy(policy);
    const groups = groupByDisk(complete).filter((g) => o.disk === undefined || g.disk === o.disk);
    if (o.disk !== undefined && groups.length === 0) throw new PagewiseError('BackupNotFound', `the vault ${vault.display} holds no complete backup of disk ${o.disk.slice(0, 200)} (pagewise list names the disks)`);
    for (const g of groups) {
      // Already forgotten ones are on their way out: they hold no bucket of the policy. One without a
      // readable completion time (a version-1 manifest of another key, unverified) is kept and said.
      const timed = (g.backups as Complete[]).filter((b) => {
        if (Number.isFinite(Date.parse(b.completedAt))) return true;
        problems.push({ backupId: b.backupId, problem: `kept: its completion time ${JSON.stringify(String(b.completedAt).slice(0, 40))} is not a time, so no keep rule can place it` });
        return false;
      });
      const live = timed.filter((b) => !b.deleted);
      if (live.length === 0) continue;
      const byId = new Map(live.map((b) => [b.backupId, b]));
      for (const d of applyKeepPolicy(live.map((b) => ({ backupId: b.backupId, time: b.completedAt })), policy, { nowMs })) {
        // groupByDisk's first is the disk's newest: a policy never forgets it (restic's rules keep it anyway).
        const reasons = !d.keep && d.backupId === live[0].backupId ? ['newest of its disk'] : d.reasons;
        if (reasons.length > 0) report.kept.push({ backupId: d.backupId, disk: g.disk, reasons });
        else targets.push({ b: byId.get(d.backupId)!, reason: 'policy', rule });
      }
    }
  }

  const forgottenAt = new Date(nowMs).toISOString();
  const graceEndsAt = new Date(nowMs + graceMs).toISOString();
  const manifests = targets.some((t) => t.b.formatVersion === 2) ? await manifestsByNameTag(vault) : new Map<string, string>();
  for (const { b, reason, rule } of targets) {
    if (b.deleted) {
      report.alreadyForgotten.push(b.backupId);
      continue;
    }
    if (b.tombstoneProblem !== undefined) {
      problems.push({ backupId: b.backupId, problem: `not forgotten: ${b.tombstoneProblem} (a tombstone is there that this vault's keys did not write; it is not trusted and not overwritten)` });
      continue;
    }
    const manifest = b.formatVersion === 1 ? v1ManifestName(b.backupId) : manifests.get(keyring.nameTag(b.backupId));
    if (manifest === undefined) {
      problems.push({ backupId: b.backupId, problem: 'not forgotten: its manifest is gone since it was listed' });
      continue;
    }
    const t: Tombstone = { format: 'pagewise-tombstone', version: 2, backupId: b.backupId, manifest, formatVersion: b.formatVersion, forgottenAt, graceEndsAt, reason, ...(rule !== undefined ? { rule } : {}) };
    if (!dryRun && (await writeTombstone(vault, keyring, t)) === 'already') {
      report.alreadyForgotten.push(b.backupId); // forgotten meanwhile by another run: its grace stands
      continue;
    }
    report.forgotten.push({ backupId: b.backupId, disk: b.disk ?? UNKNOWN_DISK, graceEndsAt });
  }
  return problems.length > 0 ? { ...report, problems } : report;
}

/** Whether a backup's manifest is still there (version 1 by its name; version 2 by a manifest of its nameTag). */
async function manifestExists(vault: Vault, keyring: Keyring, backupId: string, manifests: () => Promise<Map<string, string>>): Promise<boolean> {
  return (await vault.exists(v1ManifestName(backupId))) || (await manifests()).has(keyring.nameTag(backupId));
}

/**
 * Undeletes forgotten backups: removes each one's tombstone while its grace lasts and its manifest is
 * there ('expired' otherwise). Needs the delete right (the prune identity).
 */
export async function undeleteBackups(o: UndeleteOptions): Promise<UndeleteResult> {
  const ids = checkedIds(o.backupIds, true);
  const vault = Vault.open(o.vault);
  const keyring = await openForRetention(vault, o.userKey);
  const nowMs = (o.clock ?? systemClock)();
  let listed: Promise<Map<string, string>> | undefined;
  const manifests = () => (listed ??= manifestsByNameTag(vault));
  const result: UndeleteResult = { restored: [], notForgotten: [], expired: [] };
  const problems: NonNullable<UndeleteResult['problems']> = [];
  for (const id of ids) {
    const read = await readTombstoneAt(vault, keyring, tombstoneName(keyring, id));
    if (!read) {
      result.notForgotten.push(id);
      continue;
    }
    const t = read.tombstone;
    const alive = t ? nowMs < Date.parse(t.graceEndsAt) && (await vault.exists(t.manifest)) : await manifestExists(vault, keyring, id, manifests);
    if (!t) problems.push({ backupId: id, problem: `${read.problem ?? 'its tombstone is unreadable'}; not trusted${alive ? ', removed (the backup is kept)' : ''}` });
    if (!alive) {
      result.expired.push(id);
      continue;
    }
    if ((await removeTombstone(vault, keyring, id)) === 'removed') result.restored.push(id);
    else result.notForgotten.push(id); // undeleted meanwhile
  }
  return problems.length > 0 ? { ...result, problems } : result;
}
