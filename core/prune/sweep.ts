/**
 * The sweep (docs/FORMAT.md §26.7 a–e): deletions in the protocol's crash-safe order — grace-ended
 * manifests (then their verification records, then their tombstones), tables, packs (each then its deltas), orphan and covered deltas,
 * superseded index generations (covers first), staging (plan last). Each deletion is idempotent: 404 counts as done, a lock (409) is reported and skipped.
 */
import { throwIfAborted } from '../errors';
import type { Vault } from '../repo/vault';
import { MANIFEST_NAME_RE, v2names } from '../repo/v2/names';
import { generationName, GcVerdict } from './decide';
import type { Gathered } from './gather';
import type { PruneStep } from './prune-types';
import { VERIFIED_PREFIX } from '../verify/verify-records';

export interface SweepHooks {
  abortSignal?: AbortSignal;
  onProgress?: (step: PruneStep, done: number, total: number) => void;
  beforeMutation?: (step: PruneStep, blobName: string) => void | Promise<void>;
}

export interface SweepTally {
  deleted: { manifests: string[]; tables: number; packs: number; deltas: number; stagingBlobs: number; marks: number; generations: number };
  bytesReclaimed: number;
  locked: { name: string; lock: 'policy' | 'legal-hold' }[];
}

export function emptyTally(): SweepTally {
  return { deleted: { manifests: [], tables: 0, packs: 0, deltas: 0, stagingBlobs: 0, marks: 0, generations: 0 }, bytesReclaimed: 0, locked: [] };
}

/** Deletes one blob at a time through the hooks, keeping the tally of bytes and locks. */
export class Deleter {
  constructor(
    readonly vault: Vault,
    readonly tally: SweepTally,
    private readonly hooks: SweepHooks,
  ) {}

  async delete(step: PruneStep, name: string, bytes: number): Promise<'deleted' | 'missing' | 'locked'> {
    throwIfAborted(this.hooks.abortSignal, 'the prune was cancelled');
    await this.hooks.beforeMutation?.(step, name);
    const { outcome, lock } = await this.vault.deleteTelling(name, { abortSignal: this.hooks.abortSignal });
    if (outcome === 'locked') this.tally.locked.push({ name, lock: lock ?? 'policy' });
    if (outcome === 'deleted') this.tally.bytesReclaimed += bytes;
    return outcome;
  }
}

/** Steps a–e for a verdict and the items sweepable now; `sweepable` is already empty of tables, packs and deltas when the run is blocked. */
export async function sweep(d: Deleter, g: Gathered, v: GcVerdict, sweepable: GcVerdict['candidates'], hooks: SweepHooks): Promise<void> {
  const { snapshot: s } = g;
  const tally = d.tally;
  const progress = (step: PruneStep, done: number, total: number) => hooks.onProgress?.(step, done, total);

  // a. manifests whose grace ended, then their verification records (§28), then their tombstones; then
  // tombstones left without a manifest (a run stopped between the two): their records first, then them.
  const tombstoneOfManifest = new Map([...g.tombstones].map(([name, t]) => [t.tombstone.formatVersion === 1 ? t.tombstone.manifest : t.nameTag, { name, bytes: t.bytes, nameTag: t.nameTag }]));
  const tombstoneFor = (manifest: string) => tombstoneOfManifest.get(g.v1.has(manifest) ? manifest : (MANIFEST_NAME_RE.exec(manifest)?.[3] ?? manifest));
  const orphans = s.tombstonesWithoutManifest;
  const manifestTotal = v.graceEndedManifests.length + orphans.length;
  let done = 0;
  for (const manifest of v.graceEndedManifests) {
    progress('manifests', done++, manifestTotal);
    const outcome = await d.delete('manifests', manifest, g.manifestBytes.get(manifest) ?? 0);
    if (outcome === 'locked') continue; // its tombstone stays with it
    if (outcome === 'deleted') tally.deleted.manifests.push(manifest);
    if (!(await deleteV1Rest(d, g, manifest))) continue;
    const t = tombstoneFor(manifest);
    if (t && (await deleteRecords(d, t.nameTag))) await d.delete('manifests', t.name, t.bytes);
  }
  for (const name of orphans) {
    progress('manifests', done++, manifestTotal);
    const t = g.tombstones.get(name);
    if (t && t.tombstone.formatVersion === 1 && !(await deleteV1Rest(d, g, t.tombstone.manifest))) continue;
    if (t && !(await deleteRecords(d, t.nameTag))) continue;
    await d.delete('manifests', name, t?.bytes ?? 0);
  }
  progress('manifests', manifestTotal, manifestTotal);

  // b. tables no live backup names.
  for (const [k, tableId] of sweepable.tables.entries()) {
    progress('tables', k, sweepable.tables.length);
    if ((await d.delete('tables', v2names.table(tableId), s.allTables.get(tableId)?.bytes ?? 0)) === 'deleted') tally.deleted.tables++;
  }
  progress('tables', sweepable.tables.length, sweepable.tables.length);

  // c. packs, each followed by its deltas; d. deltas whose pack is gone or unreferenced.
  const deltasOf = new Map<string, GcVerdict['candidates']['deltas']>();
  for (const delta of s.deltas) {
    if (!delta.packId) continue;
    const list = deltasOf.get(delta.packId);
    if (list) list.push(delta.name);
    else deltasOf.set(delta.packId, [delta.name]);
  }
  const deltaBytes = new Map(s.deltas.map((x) => [x.name, x.bytes]));
  const packOfDelta = new Map(s.deltas.map((x) => [x.name, x.packId]));
  const lockedPacks = new Set<string>();
  const deltasGone = new Set<string>();
  const deleteDelta = async (name: string) => {
    if (deltasGone.has(name)) return;
    const outcome = await d.delete('deltas', name, deltaBytes.get(name) ?? 0);
    if (outcome !== 'locked') deltasGone.add(name);
    if (outcome === 'deleted') tally.deleted.deltas++;
  };
  for (const [k, packId] of sweepable.packs.entries()) {
    progress('packs', k, sweepable.packs.length);
    const outcome = await d.delete('packs', v2names.pack(packId), s.packs.get(packId)?.bytes ?? 0);
    if (outcome === 'locked') {
      lockedPacks.add(packId); // its deltas still describe it: they stay while it does
      continue;
    }
    if (outcome === 'deleted') tally.deleted.packs++;
    for (const delta of deltasOf.get(packId) ?? []) await deleteDelta(delta);
  }
  progress('packs', sweepable.packs.length, sweepable.packs.length);
  for (const [k, name] of sweepable.deltas.entries()) {
    progress('deltas', k, sweepable.deltas.length);
    if (!lockedPacks.has(packOfDelta.get(name) ?? '')) await deleteDelta(name);
  }
  progress('deltas', sweepable.deltas.length, sweepable.deltas.length);

  // d′. index generations below the newest complete one: covers.pwe first — a generation half deleted is an incomplete
  // one, which readers ignore and the next run still finds a candidate — then its shards and filter.
  const generationOf = new Map((s.generations ?? []).map((x) => [generationName(x.gen), x]));
  for (const [k, gen] of sweepable.generations.entries()) {
    progress('generations', k, sweepable.generations.length);
    const blobs = [...(generationOf.get(gen)?.blobs ?? [])].sort((a, b) => Number(b.name.endsWith('/covers.pwe')) - Number(a.name.endsWith('/covers.pwe')));
    let allGone = true;
    for (const b of blobs) {
      const outcome = await d.delete('generations', b.name, b.bytes);
      if (outcome === 'locked') allGone = false;
    }
    if (allGone) tally.deleted.generations++;
  }
  progress('generations', sweepable.generations.length, sweepable.generations.length);

  // e. staging of finished or abandoned backups: batch records (and anything else there), the plan last.
  const stagingOf = new Map(s.staging.map((x) => [x.nameTag, x]));
  for (const [k, nameTag] of sweepable.staging.entries()) {
    progress('staging', k, sweepable.staging.length);
    const plan = v2names.plan(nameTag);
    const blobs = [...(stagingOf.get(nameTag)?.blobs ?? [])].sort((a, b) => Number(a.name === plan) - Number(b.name === plan));
    let allGone = true;
    for (const b of blobs) {
      if (b.name === plan && !allGone) break; // a locked batch record keeps its plan beside it
      const outcome = await d.delete('staging', b.name, b.bytes);
      if (outcome === 'deleted') tally.deleted.stagingBlobs++;
      if (outcome === 'locked') allGone = false;
    }
  }
  progress('staging', sweepable.staging.length, sweepable.staging.length);
}

/** For a tombstoned version-1 backup: every blob of backups/<id>/ but its manifest (deleted first, by the caller). True when all are gone. */
async function deleteV1Rest(d: Deleter, g: Gathered, manifest: string): Promise<boolean> {
  const backup = g.v1.get(manifest);
  if (!backup) return true;
  let allGone = true;
  for (const b of backup.blobs) if (b.name !== manifest && (await d.delete('manifests', b.name, b.bytes)) === 'locked') allGone = false;
  return allGone;
}

/**
 * A pruned backup's verification records `verified/<nameTag>/` (FORMAT §28), before its tombstone: the
 * tombstone is what brings a stopped run back to them. True when none is left (a locked one keeps the tombstone).
 */
async function deleteRecords(d: Deleter, nameTag: string): Promise<boolean> {
  let allGone = true;
  for await (const b of d.vault.listDetailed(`${VERIFIED_PREFIX}${nameTag}/`)) if ((await d.delete('manifests', b.name, b.contentLength)) === 'locked') allGone = false;
  return allGone;
}
