/**
 * Planning a version-2 backup: choose the base (§21.2), list the changed pages against it (or, for a
 * full, the allocated ones), and store the encrypted plan (§20.1) before any page is read. A plan that
 * exists for the backup ID is resumed as it is: a crash mid-incremental resumes as the same incremental.
 */
import { systemClock } from '../../clock';
import { isPagewiseError, isTransient, PagewiseError } from '../../errors';
import { redact } from '../../redact';
import { PAGES_PER_SEGMENT } from '../../limits';
import { pagesPerBatchFor } from '../../repo/backup-plan';
import { Keyring } from '../../repo/v2/keyring';
import { pagesPerTableFor } from '../../repo/v2/page-table';
import { FullReason, PlanV2 } from '../../repo/v2/records';
import { readPlan2, writePlan2 } from '../../repo/v2/staging';
import { Vault } from '../../repo/vault';
import { changedPages, changedRanges, DiffBase } from '../../source/changed-ranges';
import { diskIdentityOf } from '../../source/disk-identity';
import { PageGrid, pagesOfRangesAsync } from '../../source/page-grid';
import { SourceDisk } from '../../source/source-disk';
import { BackupRequest, ManagedSnapshotAccess, PlanRef } from '../../types';
import { backupIdTaken, planDifferences } from '../plan-mismatch';
import { ResolvedSettings } from '../settings';
import { BaseChoice, blobSnapshots, chooseBase, hasV1Backup, managedSnapshots } from './base';
import { manifestOfPlan, openPlannedSourceV2 } from './context';
import { PageRuns } from './page-runs';

/** The opened version-2 vault; `upgraded`: made from a version-1 vault (a disk's first backup may then be `v1-base`). */
export interface OpenedVaultV2 {
  vault: Vault;
  keyring: Keyring;
  upgraded: boolean;
}

export async function planV2(req: BackupRequest, { vault, keyring, upgraded }: OpenedVaultV2, live: SourceDisk, backupId: string, settings: ResolvedSettings): Promise<PlanRef> {
  const existing = await readPlan2(vault, keyring, backupId);
  if (existing) return resume(req, vault, keyring, live, existing, settings);

  // §26.3: the plan's time is taken before the base is chosen, so whatever it reuses was visible no earlier.
  const createdAt = new Date((req.clock ?? systemClock)()).toISOString();
  if (req.expectedEtag !== undefined && live.identity.etag !== req.expectedEtag) throw changedSince(req.expectedEtag, live);
  live.assertNotCopying();
  const taken = Boolean(req.takeSnapshot && !live.identity.snapshot);
  const source = taken ? await live.takeSnapshot(req.source) : live;
  const grid = new PageGrid(source.diskBytes, settings.pageSize);
  const managedDisk = req.source.managedDisk;
  const disk = diskIdentityOf(source.identity, managedDisk);
  const managed = disk.kind === 'managed-disk';
  const pagesPerBatch = pagesPerBatchFor(settings.pageSize, PAGES_PER_SEGMENT);

  const snapshots = managed ? managedSnapshots(req.managedSnapshots) : blobSnapshots(source);
  let choice: BaseChoice = req.full ? { base: null, reason: 'forced' } : await chooseBase(vault, keyring, disk.identity, snapshots, { diskBytes: source.diskBytes, pageSize: settings.pageSize, chunking: settings.chunking });
  if (!choice.base && choice.reason === 'no-base' && upgraded && (await hasV1Backup(vault, disk.identity))) choice = { base: null, reason: 'v1-base' };
  let changed: { runs: [number, number][]; bytes: number } | null = null;
  let reasonText: string | undefined;
  if (choice.base && choice.manifest.pagesPerTable !== pagesPerTableFor(settings.pageSize)) {
    // The plan records the base's table refs by group (§26.3): they are this plan's groups only on one page grid.
    throw new PagewiseError('Corrupt', `the base manifest ${choice.base.manifest} has ${choice.manifest.pagesPerTable} pages per table, not ${pagesPerTableFor(settings.pageSize)} for its page size`);
  }
  if (choice.base) {
    try {
      changed = managed ? await diffAgainstManaged(source, choice.base.snapshot, grid, req.managedSnapshots!) : await diffAgainst(source, { snapshot: choice.base.snapshot }, grid);
    } catch (err) {
      const reason = baseUnusableReason(err);
      if (!reason) throw err;
      choice = { base: null, reason };
      reasonText = (err as Error).message;
    }
  }
  const runs = changed ? PageRuns.of(changed.runs, grid.pageCount, `the diff of ${source.identity.url}`) : null;
  const totals = await readTotals(source, grid, pagesPerBatch, runs);
  const plan: PlanV2 = {
    format: 'pagewise-plan',
    version: 2,
    backupId,
    createdAt,
    source: { ...source.identity, takenByPagewise: taken, ...(managedDisk?.snapshotResourceId ? { snapshotResourceId: managedDisk.snapshotResourceId } : {}) },
    disk,
    diskBytes: source.diskBytes,
    pageSize: settings.pageSize,
    pageCount: grid.pageCount,
    pagesPerBatch,
    pagesPerTable: pagesPerTableFor(settings.pageSize),
    allocatedBytes: totals.allocatedBytes,
    allocatedPages: totals.allocatedPages,
    batches: runs ? runs.batches(pagesPerBatch) : totals.batches,
    chunking: settings.chunking,
    codec: settings.codec,
    vaultDedupe: settings.vaultDedupe,
    kind: choice.base ? 'incremental' : 'full',
    base: choice.base,
    reason: choice.base ? null : choice.reason,
    keyEpoch: keyring.epoch,
    changedPages: changed ? changed.runs : null,
    changedBytes: changed ? changed.bytes : null,
    baseTables: choice.base ? choice.manifest.tables : null,
    baseGeneration: choice.base ? choice.manifest.generation : null,
  };
  await writePlan2(vault, keyring, plan);
  // Two starts of the same backup at once: the plan written first is the plan (the other's is dropped).
  const stored = (await readPlan2(vault, keyring, backupId)) ?? plan;
  if (stored.createdAt !== plan.createdAt) return resume(req, vault, keyring, live, stored, settings);
  return { ...planRefV2(plan, false, totals), ...(reasonText ? { reasonText } : {}) };
}

async function resume(req: BackupRequest, vault: Vault, keyring: Keyring, live: SourceDisk, plan: PlanV2, settings: ResolvedSettings): Promise<PlanRef> {
  // A plan that reads a snapshot Pagewise took resumes from that snapshot, however the live disk has
  // changed since; otherwise the live disk must still be in the planned state.
  const pinned = plan.source.takenByPagewise;
  const sameState = pinned || (plan.source.etag === live.identity.etag && plan.diskBytes === live.diskBytes);
  const complete = async () => (await manifestOfPlan(vault, keyring, plan)) !== undefined;
  if (!sameState && plan.source.etag === req.expectedEtag) {
    // Finished before the disk changed: that backup stands. Unfinished: it can never finish.
    if (await complete()) return planRefV2(plan, true, { allocatedBytes: 0, allocatedPages: 0 });
    throw changedSince(req.expectedEtag, live);
  }
  const differences = planDifferences(plan, live, settings.pageSize, pinned);
  if (differences.length > 0) throw backupIdTaken(plan.backupId, plan, differences, settings.pageSize);
  if (await complete()) return planRefV2(plan, true, { allocatedBytes: 0, allocatedPages: 0 });
  const source = await openPlannedSourceV2(req, plan);
  const runs = plan.changedPages ? PageRuns.of(plan.changedPages, plan.pageCount, `the plan of backup ${plan.backupId}`) : null;
  return planRefV2(plan, false, await readTotals(source, new PageGrid(plan.diskBytes, plan.pageSize), plan.pagesPerBatch, runs));
}

/** The changed page runs of `source` since `base`, and the bytes of its changed (not cleared) ranges. */
async function diffAgainst(source: SourceDisk, base: DiffBase, grid: PageGrid): Promise<{ runs: [number, number][]; bytes: number }> {
  let bytes = 0;
  async function* counted() {
    for await (const r of changedRanges(source, base)) {
      if (!r.cleared) bytes += r.length;
      yield r;
    }
  }
  const found: [number, number][] = [];
  for await (const run of changedPages(counted(), grid)) found.push(run);
  return { runs: PageRuns.coalesce(found), bytes };
}

/**
 * The diff of a managed-disk snapshot against its base snapshot resource (FORMAT.md §21.3): Compute grants
 * a read URL of the base for this diff alone and the grant is revoked once the diff is done, failed or not.
 * A grant refused (the resource gone, or no access to it) is a base that cannot be used: BaseUnusable.
 */
async function diffAgainstManaged(source: SourceDisk, baseResource: string, grid: PageGrid, access: ManagedSnapshotAccess): Promise<{ runs: [number, number][]; bytes: number }> {
  let url: string;
  try {
    url = await access.grantRead(baseResource);
  } catch (err) {
    if (isTransient(err)) throw err;
    const why = redact(err instanceof Error ? err.message : String(err));
    throw new PagewiseError('BaseUnusable', `Compute granted no read access to the base snapshot ${baseResource} (${why})`, { cause: err, reason: 'base-snapshot-gone' });
  }
  let diff: { runs: [number, number][]; bytes: number };
  try {
    diff = await diffAgainst(source, { snapshot: baseResource, url }, grid);
  } catch (err) {
    // The diff's own failure is what decides (a full, or a retry); a revoke failing now leaves a SAS that lives out its short grant.
    await access.revokeRead(baseResource).catch(() => undefined);
    throw err;
  }
  await access.revokeRead(baseResource); // failing: the plan step is retried (a new grant), never a plan on an open grant
  return diff;
}

/** The full reason a BaseUnusable error of the diff carries, or undefined for any other error. */
function baseUnusableReason(err: unknown): FullReason | undefined {
  if (!isPagewiseError(err, 'BaseUnusable')) return undefined;
  return err.reason === 'base-replaced' ? 'base-replaced' : 'base-snapshot-gone';
}

interface Totals {
  /** The disk's allocation (the manifest's). */
  allocatedBytes: number;
  allocatedPages: number;
  /** What this backup reads: allocated bytes and pages of its changed pages (a full: all of them). */
  readBytes: number;
  readPages: number;
  /** A full backup's batches: those holding an allocated page. */
  batches: number[];
}

/** One listing of the disk's allocated ranges: its totals, and what of it this backup reads. */
async function readTotals(source: SourceDisk, grid: PageGrid, pagesPerBatch: number, changed: PageRuns | null): Promise<Totals> {
  const t: Totals = { allocatedBytes: 0, allocatedPages: 0, readBytes: 0, readPages: 0, batches: [] };
  for await (const p of pagesOfRangesAsync(grid, source.allocatedRanges())) {
    const bytes = p.ranges.reduce((sum, r) => sum + r.length, 0);
    t.allocatedBytes += bytes;
    t.allocatedPages++;
    if (changed && !changed.has(p.page)) continue;
    t.readBytes += bytes;
    t.readPages++;
    const batch = Math.floor(p.page / pagesPerBatch);
    if (t.batches[t.batches.length - 1] !== batch) t.batches.push(batch);
  }
  return t;
}

/** The disk is no longer in the state its backup ID names: back up that state, never another under its name. */
function changedSince(expectedEtag: string, live: SourceDisk): PagewiseError {
  return new PagewiseError('SourceChanged', `the source disk ${live.identity.url} changed since its backup was started (ETag ${expectedEtag} → ${live.identity.etag}); this backup names the earlier state`);
}

/** A plan's reference; its allocated totals are what this backup reads (progress counts toward them). */
function planRefV2(plan: PlanV2, alreadyComplete: boolean, reads: { readBytes?: number; readPages?: number; allocatedBytes: number; allocatedPages: number }): PlanRef {
  return {
    backupId: plan.backupId,
    batchCount: plan.batches.length,
    diskBytes: plan.diskBytes,
    allocatedBytes: reads.readBytes ?? reads.allocatedBytes,
    allocatedPages: reads.readPages ?? reads.allocatedPages,
    pageSize: plan.pageSize,
    pagesPerBatch: plan.pagesPerBatch,
    alreadyComplete,
    kind: plan.kind,
    base: plan.base ? { backupId: plan.base.backupId, snapshot: plan.base.snapshot } : null,
    reason: plan.reason,
    formatVersion: 2,
  };
}
