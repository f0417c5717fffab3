/**
 * The snapshot sweeper's decisions (#17, docs/VM.md "Nothing left behind"): deletes the snapshots Pagewise
 * took (tag pagewise=taken) for VM backups that never got a manifest, once a grace has passed, and ends
 * read grants Pagewise left open on snapshots no Pagewise backup is reading. Compute is reached through the
 * small SnapshotSweepCompute view; whether a backup still runs is asked of the caller (the durable client).
 */
import { Clock, systemClock } from '../clock';
import { isPagewiseError } from '../errors';
import { redact } from '../redact';
import { openVaultKeyring } from '../repo/v2/marker';
import { manifestsOfDisk } from '../repo/v2/manifest';
import { Vault } from '../repo/vault';
import { MAX_BASE_CANDIDATES } from '../backup/v2/base';
import { managedDiskIdentityOf } from '../source/disk-identity';
import type { StorageLocation } from '../types';
import { vmBackupIdOfCapture, vmBackupTime } from './backup-vm';
import { PAGEWISE_TAG, PAGEWISE_TAG_VALUE } from './compute';
import { VM_MANIFEST_NAME_RE, VM_MANIFESTS_PREFIX, vmNameTagOf } from './vm-manifest';

/** A snapshot as the sweeper sees it (from one Compute listing). */
export interface SweptSnapshot {
  /** ARM ID. */
  id: string;
  tags: Record<string, string>;
  /** Compute's timeCreated (ISO), when it gives one. */
  timeCreated?: string;
  /** diskState ActiveSAS: a read grant is open. */
  activeSas: boolean;
  /** creationData.sourceUniqueId / sourceResourceId: the disk it is of. */
  sourceUniqueId?: string;
  sourceResourceId?: string;
}

export interface SweepScope {
  subscriptionId: string;
  resourceGroup?: string;
}

/** What the sweeper asks of Compute. */
export interface SnapshotSweepCompute {
  listSnapshots(scope: SweepScope): Promise<SweptSnapshot[]>;
  /** Gone = ok. */
  revokeCaptureRead(snapshotId: string): Promise<void>;
  /** Refuses a snapshot without pagewise=taken; gone = ok. */
  deleteSnapshot(snapshotId: string): Promise<void>;
}

/** What the sweeper asks of the durable task hub (the caller): never answer "idle" when unsure. */
export interface SweepActivity {
  /** A Pagewise operation that may read this snapshot still runs: its VM backup, or any backup of its disk (a plan diffs against its base). */
  inUse(snapshot: SweptSnapshot, vmBackupId: string | undefined): Promise<boolean>;
  /** Pagewise granted this snapshot's read (a snapshot it did not take: the Event Grid path started a backup of it). */
  grantedByPagewise(snapshot: SweptSnapshot): Promise<boolean>;
}

export interface SweepRequest {
  compute: SnapshotSweepCompute;
  activity: SweepActivity;
  scopes: SweepScope[];
  vault: StorageLocation;
  userKey: Buffer;
  /** Orphans younger than this are kept (a VM backup between its capture and its first disk). */
  graceMs: number;
  clock?: Clock;
  /** Decide and report, change nothing. */
  dryRun?: boolean;
}

export type KeptReason = 'young' | 'in-use' | 'has-manifest' | 'base-of-next-incremental' | 'not-named-by-pagewise';

export interface SweepReport {
  /** Taken snapshots deleted (their open grant revoked first). */
  deleted: string[];
  /** Grants revoked on snapshots kept. */
  revoked: string[];
  /** Taken snapshots kept, and why. */
  kept: { id: string; reason: KeptReason }[];
  /** Snapshots listed; those not taken by Pagewise are never deleted. */
  listed: number;
  problems: { id: string; problem: string }[];
  dryRun: boolean;
}

/** Orphans one sweep deletes at most: a sweep that would delete more is a sign of something wrong; the next sweep goes on. */
export const MAX_DELETES_PER_SWEEP = 500;

const isTaken = (s: SweptSnapshot): boolean => s.tags[PAGEWISE_TAG] === PAGEWISE_TAG_VALUE;

/**
 * One sweep. A taken snapshot is deleted only when all hold: its name is a VM capture's (vm-<stamp>-<hex>-os|lunN);
 * its VM backup has no VM manifest; no Pagewise operation that may read it runs; it is older than the grace (by
 * Compute's timeCreated and by its VM backup's time, the younger of the two); no disk backup manifest among
 * the newest of its disk names it (it could be the base of the next incremental). Every other snapshot is kept.
 * An open grant is revoked on a kept snapshot only when Pagewise made it and nothing of Pagewise reads it now.
 */
export async function sweepSnapshots(req: SweepRequest): Promise<SweepReport> {
  const now = (req.clock ?? systemClock)();
  const report: SweepReport = { deleted: [], revoked: [], kept: [], listed: 0, problems: [], dryRun: req.dryRun ?? false };
  const vault = Vault.open(req.vault);
  const keyring = await openVaultKeyring(vault, req.userKey);
  const manifested = await vmManifestNameTags(vault);
  const attempt = async (id: string, work: () => Promise<void>): Promise<boolean> => {
    try {
      await work();
      return true;
    } catch (err) {
      report.problems.push({ id, problem: redact(err instanceof Error ? err.message : String(err)).slice(0, 500) });
      return false;
    }
  };
  const keep = async (s: SweptSnapshot, reason: KeptReason, idle: boolean) => {
    report.kept.push({ id: s.id, reason });
    if (s.activeSas && idle) await revokeIdle(s);
  };
  const revokeIdle = async (s: SweptSnapshot) => {
    if (req.dryRun || (await attempt(s.id, () => req.compute.revokeCaptureRead(s.id)))) report.revoked.push(s.id);
  };

  for (const scope of req.scopes) {
    let snapshots: SweptSnapshot[];
    try {
      snapshots = await req.compute.listSnapshots(scope);
    } catch (err) {
      // One scope that cannot be listed (no access, throttled past retries) does not stop the others.
      report.problems.push({ id: `/subscriptions/${scope.subscriptionId}${scope.resourceGroup ? `/resourceGroups/${scope.resourceGroup}` : ''}`, problem: redact(err instanceof Error ? err.message : String(err)).slice(0, 500) });
      continue;
    }
    report.listed += snapshots.length;
    for (const s of snapshots) {
      if (!isTaken(s)) {
        // Not Pagewise's to delete; its grant is Pagewise's to end only when an Event Grid backup made it and none reads it now.
        if (s.activeSas && (await req.activity.grantedByPagewise(s)) && !(await req.activity.inUse(s, undefined))) await revokeIdle(s);
        continue;
      }
      const vmBackupId = vmBackupIdOfCapture(s.id);
      if (vmBackupId === undefined) {
        await keep(s, 'not-named-by-pagewise', false);
        continue;
      }
      const busy = await req.activity.inUse(s, vmBackupId);
      if (manifested.has(vmNameTagOf(keyring, vmBackupId))) {
        await keep(s, 'has-manifest', !busy); // the VM's next finalize releases it when it is no base any more
        continue;
      }
      if (busy) {
        await keep(s, 'in-use', false);
        continue;
      }
      if (!isOldEnough(s, vmBackupId, now, req.graceMs)) {
        await keep(s, 'young', false);
        continue;
      }
      if (await isNamedByDiskManifest(vault, keyring, s)) {
        await keep(s, 'base-of-next-incremental', true);
        continue;
      }
      if (report.deleted.length >= MAX_DELETES_PER_SWEEP) {
        report.problems.push({ id: s.id, problem: `not deleted this time: a sweep deletes at most ${MAX_DELETES_PER_SWEEP} snapshots` });
        continue;
      }
      if (req.dryRun) {
        report.deleted.push(s.id);
        continue;
      }
      // A grant left open blocks the delete (Compute answers 409): end it first.
      const done = await attempt(s.id, async () => {
        if (s.activeSas) await req.compute.revokeCaptureRead(s.id);
        await req.compute.deleteSnapshot(s.id);
      });
      if (done) report.deleted.push(s.id);
    }
  }
  return report;
}

/** Older than the grace by both clocks it has: Compute's timeCreated and the VM backup ID's stamp (the younger counts). */
function isOldEnough(s: SweptSnapshot, vmBackupId: string, now: number, graceMs: number): boolean {
  const created = s.timeCreated ? Date.parse(s.timeCreated) : NaN;
  const named = vmBackupTime(vmBackupId);
  const times = [created, named ?? NaN].filter((t) => Number.isFinite(t));
  if (times.length === 0) return false; // no age known: never old enough
  return now - Math.max(...times) >= graceMs;
}

/** The name tags of the VM backups the vault holds a manifest of (names only: nothing decrypted). */
async function vmManifestNameTags(vault: Vault): Promise<Set<string>> {
  const tags = new Set<string>();
  for await (const name of vault.list(VM_MANIFESTS_PREFIX)) {
    const m = VM_MANIFEST_NAME_RE.exec(name);
    if (m) tags.add(m[3]);
  }
  return tags;
}

/**
 * Whether a disk backup manifest names this snapshot as its source, among the newest of its disk that an
 * incremental's base is chosen from (core/backup/v2/base.ts chooseBase): such a snapshot may be the next base.
 * A snapshot whose disk cannot be told, or a manifest that cannot be read, counts as named (kept).
 */
async function isNamedByDiskManifest(vault: Vault, keyring: Awaited<ReturnType<typeof openVaultKeyring>>, s: SweptSnapshot): Promise<boolean> {
  let identity: string;
  try {
    identity = managedDiskIdentityOf({
      ...(s.sourceUniqueId ? { sourceUniqueId: s.sourceUniqueId } : {}),
      ...(s.sourceResourceId ? { armDiskId: s.sourceResourceId } : {}),
    }).identity;
  } catch (err) {
    if (isPagewiseError(err, 'BadInput')) return true; // no disk identity: keep rather than guess
    throw err;
  }
  let read = 0;
  for await (const entry of manifestsOfDisk(vault, keyring, identity)) {
    if (!entry.manifest) return true;
    if (entry.manifest.source.snapshotResourceId?.toLowerCase() === s.id.toLowerCase()) return true;
    if (++read >= MAX_BASE_CANDIDATES) break;
  }
  return false;
}

/** A sweep's report in one line for a log (counts and IDs, no secret). */
export function describeSweep(r: SweepReport): string {
  const head = `${r.dryRun ? 'would delete' : 'deleted'} ${r.deleted.length} snapshot(s), revoked ${r.revoked.length} grant(s), kept ${r.kept.length} taken snapshot(s) of ${r.listed} listed`;
  const parts = [
    r.deleted.length ? `deleted: ${r.deleted.join(', ')}` : '',
    r.revoked.length ? `revoked: ${r.revoked.join(', ')}` : '',
    r.problems.length ? `problems: ${r.problems.map((p) => `${p.id}: ${p.problem}`).join('; ')}` : '',
  ].filter(Boolean);
  return parts.length ? `${head}; ${parts.join('; ')}` : head;
}
