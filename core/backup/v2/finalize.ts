/**
 * Finalizing a version-2 backup: build each group's page table from the base's (unchanged pages) and
 * this backup's batch records (changed pages), reuse the base's table where no page of the group
 * changed, check every table and every block the tables name still exists (§23 writers rule 3, §26.8:
 * a moved block through the vault index) and that the plan is not expired, write the manifest last, then release the snapshots Pagewise took for earlier backups of the disk (this backup's
 * snapshot stays: it is the next base).
 */
import { forEachLimited } from '../../concurrency';
import { PagewiseError } from '../../errors';
import { manifestsOfDisk, writeManifest2 } from '../../repo/v2/manifest';
import { v2names } from '../../repo/v2/names';
import { isZeroChunk, readTable, writeTable } from '../../repo/v2/page-table';
import { VaultIndex } from '../../repo/v2/vault-index';
import { systemClock } from '../../clock';
import { DEFAULT_GC_PARAMS, mayRelyOnExisting } from '../../prune/protocol';
import { BatchRecordV2, ManifestV2, PageRecord2, TableRef } from '../../repo/v2/records';
import { readBatch2 } from '../../repo/v2/staging';
import { releaseOlderSnapshots } from '../../source/snapshot-lifecycle';
import { SourceDisk } from '../../source/source-disk';
import { BackupRequest, BackupResult } from '../../types';
import { effectiveCacheBytes, resolveSettings } from '../settings';
import { MAX_BASE_CANDIDATES } from './base';
import { dedupedPagesOf, newBlocksOf } from './batch';
import { BackupContextV2, BaseOfPlan, baseOfPlan, baseTableOf, manifestOfPlan, openBackupContextV2, requireNotExpired, START_AGAIN } from './context';
import { PageRuns } from './page-runs';

/** Packs checked present at once before the manifest (each a HEAD; the account gate bounds them all). */
const PACK_CHECKS_AT_ONCE = 16;
/** Base tables read ahead of the group being built (bounded: each holds up to pagesPerTable records). */
const TABLES_AHEAD = 4;

/** What the batch records say beyond the manifest: packs written, pages recorded, new blocks. */
interface BatchTotals {
  bytesRead: number;
  bytesNew: number;
  bytesStored: number;
  zeroPages: number;
  packs: number;
  recordedPages: number;
  newBlocks: number;
  dedupedPages: number;
  chunksReusedFromVault: number;
  bytesReusedFromVault: number;
}

const NO_TOTALS: BatchTotals = { bytesRead: 0, bytesNew: 0, bytesStored: 0, zeroPages: 0, packs: 0, recordedPages: 0, newBlocks: 0, dedupedPages: 0, chunksReusedFromVault: 0, bytesReusedFromVault: 0 };

function addRecord(t: BatchTotals, r: BatchRecordV2): void {
  t.bytesRead += r.bytesRead;
  t.bytesNew += r.bytesNew;
  t.bytesStored += r.bytesStored;
  t.zeroPages += r.zeroPages;
  t.packs += r.packs.length;
  t.recordedPages += r.pages.length;
  t.newBlocks += newBlocksOf(r);
  t.dedupedPages += dedupedPagesOf(r);
  t.chunksReusedFromVault += r.chunksReusedFromVault ?? 0;
  t.bytesReusedFromVault += r.bytesReusedFromVault ?? 0;
}

/** `opened`: the context the caller already has for this backup (the single-process engine's), else opened here. */
export async function finalizeV2(req: BackupRequest & { backupId: string }, opened?: BackupContextV2): Promise<BackupResult> {
  const started = Date.now();
  const ctx = opened ?? (await openBackupContextV2(req, req.backupId));
  const { plan, vault, keyring } = ctx;
  const capacity = effectiveCacheBytes(resolveSettings(req), plan.pageCount);
  const done = await manifestOfPlan(vault, keyring, plan);
  if (done) {
    // A finalize repeated after the manifest: the same result (the staging may be pruned since: counts 0).
    const totals = await batchTotals(ctx).catch(() => ({ ...NO_TOTALS }));
    return { ...resultOfV2(done.manifest, totals, Date.now() - started, capacity), ...(await releaseSnapshots(req, ctx, done.name)) };
  }

  const base = await baseOfPlan(ctx); // the plan's record of its base: its manifest may be pruned by now (§26.3)
  const changed = plan.changedPages ? PageRuns.of(plan.changedPages, plan.pageCount, `the plan of backup ${plan.backupId}`) : null;
  const baseTables = new Map((base?.tables ?? []).map((t) => [t.index, t]));
  const baseTable = tablesAhead(ctx, base);
  const totals = { ...NO_TOTALS };
  const tables: TableRef[] = [];
  const packs = new Set<string>();
  let chunks = 0;
  const note = (records: PageRecord2[]) => {
    for (const r of records) {
      for (const c of r.chunks) {
        if (isZeroChunk(c)) continue;
        chunks++;
        packs.add(c.pack);
      }
    }
  };

  // Batch records are read in plan order, each once (a batch may straddle two groups: kept for the next).
  let next = 0;
  let held: BatchRecordV2 | undefined;
  const recordsOfGroup = async (first: number, count: number): Promise<PageRecord2[]> => {
    const out: PageRecord2[] = [];
    for (;;) {
      if (held) {
        if (held.firstPage >= first + count) return out;
        out.push(...held.pages.filter((p) => p.page >= first && p.page < first + count));
        if (held.firstPage + held.pageCount > first + count) return out; // continues into the next group
        held = undefined;
        continue;
      }
      const batch = plan.batches[next];
      if (batch === undefined || batch * plan.pagesPerBatch >= first + count) return out;
      next++;
      const record = await readBatch2(vault, keyring, plan.backupId, batch);
      if (!record) throw new PagewiseError('BackupIncomplete', `batch ${batch} of backup ${plan.backupId} has not finished; the backup cannot be finalized yet`);
      addRecord(totals, record);
      held = record;
    }
  };

  // §26.8 (c): a table already there (409) is relied on only if it is not older than the plan by more than L.
  const planMs = Date.parse(plan.createdAt);
  const reuse = { nameTag: keyring.nameTag(plan.backupId), mayRely: (createdMs: number) => mayRelyOnExisting(createdMs, planMs, DEFAULT_GC_PARAMS) };
  const groups = Math.ceil(plan.pageCount / plan.pagesPerTable);
  for (let g = 0; g < groups; g++) {
    const first = g * plan.pagesPerTable;
    const count = Math.min(plan.pagesPerTable, plan.pageCount - first);
    const baseRef = baseTables.get(g);
    if (changed && !changed.touches(first, count)) {
      // No page of the group changed: the base's table is this backup's as it is.
      if (baseRef) {
        tables.push(baseRef);
        note(await baseTable(g));
      }
      continue;
    }
    const kept = changed && baseRef ? (await baseTable(g)).filter((r) => !changed.has(r.page)) : [];
    const records = [...kept, ...(await recordsOfGroup(first, count))].sort((a, b) => a.page - b.page);
    if (records.length === 0) continue; // every page of the group is a hole
    tables.push(await writeTable(vault, keyring, g, records, reuse));
    note(records);
  }
  if (next < plan.batches.length) throw new PagewiseError('Corrupt', `the plan of backup ${plan.backupId} lists batch ${plan.batches[next]} outside the disk's page groups`);

  // §26.8, in this order, right before the manifest: its tables, its blocks, then the abandonment limit.
  await requireTables(ctx, tables);
  await requirePacks(ctx, packs, tables);
  requireNotExpired(ctx, 'be finished', 'writing its manifest');
  const completedAt = new Date((ctx.clock ?? systemClock)()).toISOString();
  const body: ManifestV2 = {
    format: 'pagewise-manifest',
    version: 2,
    backupId: plan.backupId,
    createdAt: plan.createdAt,
    completedAt,
    disk: plan.disk,
    source: {
      url: plan.source.url,
      snapshot: plan.source.snapshot || null,
      etag: plan.source.etag,
      ...(plan.source.snapshotResourceId ? { snapshotResourceId: plan.source.snapshotResourceId } : {}),
      takenByPagewise: plan.source.takenByPagewise,
    },
    diskBytes: plan.diskBytes,
    pageSize: plan.pageSize,
    pageCount: plan.pageCount,
    pagesPerTable: plan.pagesPerTable,
    chunking: { ...plan.chunking },
    codec: plan.codec,
    kind: plan.kind,
    base: plan.base,
    reason: plan.reason,
    generation: base ? base.generation + 1 : 0,
    keyEpoch: plan.keyEpoch,
    tables,
    stats: {
      allocatedBytes: plan.allocatedBytes,
      bytesRead: totals.bytesRead,
      bytesChanged: plan.changedBytes ?? totals.bytesRead,
      bytesNew: totals.bytesNew,
      bytesStored: totals.bytesStored,
      chunks,
      newChunks: totals.newBlocks,
      zeroPages: totals.zeroPages,
      chunksReusedFromVault: totals.chunksReusedFromVault,
      bytesReusedFromVault: totals.bytesReusedFromVault,
    },
  };
  const name = await writeManifest2(vault, keyring, body);
  return { ...resultOfV2(body, totals, Date.now() - started, capacity), ...(await releaseSnapshots(req, ctx, name)) };
}

/**
 * The base's table of group g, with the next few groups' tables already being read: the groups are
 * built in order and each base table is read once (sequential GETs were most of a small incremental's
 * finalize on a large disk).
 */
function tablesAhead(ctx: BackupContextV2, base: BaseOfPlan | null): (group: number) => Promise<PageRecord2[]> {
  const refs = base?.tables ?? [];
  const reads = new Map<number, Promise<PageRecord2[]>>();
  let started = 0; // refs[0 .. started) have been asked for
  return (group) => {
    while (started < refs.length && (refs[started].index <= group || reads.size < TABLES_AHEAD)) {
      const ref = refs[started++];
      const read = baseTableOf(ctx, ref, ctx.plan.pagesPerTable);
      read.catch(() => undefined); // one read ahead that fails is reported when its group asks for it
      reads.set(ref.index, read);
    }
    for (const index of reads.keys()) if (index < group) reads.delete(index); // groups passed without their table
    const read = reads.get(group);
    if (!read) throw new Error(`finalize asked for the base table of group ${group}, which the base does not have`);
    reads.delete(group);
    return read;
  };
}

/** §26.8 (2): every table the manifest names is there (one HEAD each): a base's table pruned meanwhile stops the backup. */
async function requireTables({ vault, plan }: BackupContextV2, tables: TableRef[]): Promise<void> {
  const missing: TableRef[] = [];
  await forEachLimited(tables, PACK_CHECKS_AT_ONCE, async (t) => {
    if (!(await vault.exists(v2names.table(t.tableId)))) missing.push(t);
  });
  if (missing.length === 0) return;
  missing.sort((a, b) => a.index - b.index);
  const named = missing.slice(0, 3).map((t) => `${v2names.table(t.tableId)} (group ${t.index})`).join(', ');
  throw new PagewiseError('BackupIncomplete', `backup ${plan.backupId} names ${missing.length} page table(s) no longer in the vault (${named}${missing.length > 3 ? ', …' : ''}): removed by prune; ${START_AGAIN}`);
}

/**
 * §23 writers rule 3 and §26.8 (3), just before the manifest: every block a table of this backup names is
 * in an existing pack — its hinted pack (one HEAD per distinct pack), else (a repack moved it, then prune
 * removed the old pack) a pack the vault index names for its content ID. Only when a pack is gone are the
 * tables read again, to look its chunks up; the manifest keeps the stale hints (readers use the index too).
 */
async function requirePacks({ vault, keyring, plan }: BackupContextV2, packs: Set<string>, tables: TableRef[]): Promise<void> {
  const present = new Map<string, boolean>();
  await forEachLimited(packs, PACK_CHECKS_AT_ONCE, async (pack) => void present.set(pack, await vault.exists(v2names.pack(pack))));
  if ([...present.values()].every(Boolean)) return;
  const index = await VaultIndex.open(vault, keyring);
  const packExists = async (pack: string) => {
    if (!present.has(pack)) present.set(pack, await vault.exists(v2names.pack(pack)));
    return present.get(pack)!;
  };
  const lost = new Set<string>();
  let lostChunks = 0;
  for (const ref of tables) {
    const moving = (await readTable(vault, keyring, ref, plan.pagesPerTable)).flatMap((r) => r.chunks.filter((c) => !isZeroChunk(c) && present.get(c.pack) === false));
    await forEachLimited(moving, PACK_CHECKS_AT_ONCE, async (c) => {
      if (await index.locate(c.contentId.toString('hex'), packExists)) return;
      lost.add(c.pack);
      lostChunks++;
    });
  }
  if (lost.size === 0) return;
  const named = [...lost].sort().slice(0, 3).map((p) => v2names.pack(p)).join(', ');
  throw new PagewiseError('BackupIncomplete', `backup ${plan.backupId} refers to ${lostChunks} block(s) in ${lost.size} pack(s) no longer in the vault (${named}${lost.size > 3 ? ', …' : ''}), and the vault index names no other pack holding them: removed by prune; ${START_AGAIN}`);
}

/** The totals of every batch record of the plan (a repeated finalize). */
async function batchTotals({ vault, keyring, plan }: BackupContextV2): Promise<BatchTotals> {
  const totals = { ...NO_TOTALS };
  for (const batch of plan.batches) {
    const record = await readBatch2(vault, keyring, plan.backupId, batch);
    if (record) addRecord(totals, record);
  }
  return totals;
}

/**
 * The manifest is written. The snapshot this backup read stays (the next base); the snapshots Pagewise
 * took for EARLIER backups of the disk (older manifests, after this one in the newest-first listing) go.
 * Nothing is released when this backup read the live blob: an older snapshot is then the only base.
 */
async function releaseSnapshots(req: BackupRequest, { vault, keyring, plan }: BackupContextV2, manifestName: string): Promise<Pick<BackupResult, 'sourceSnapshot' | 'releasedSnapshots'>> {
  const keep = plan.source.snapshot;
  if (!keep) return { releasedSnapshots: [] };
  const taken: string[] = [];
  let older = false;
  let read = 0;
  for await (const entry of manifestsOfDisk(vault, keyring, plan.disk.identity)) {
    if (entry.name === manifestName) {
      older = true;
      continue;
    }
    if (!older) continue;
    const m = entry.manifest;
    if (m?.source.takenByPagewise && m.source.snapshot && m.source.snapshot !== keep) taken.push(m.source.snapshot);
    if (++read >= MAX_BASE_CANDIDATES) break;
  }
  const released = { deleted: [] as string[] };
  const present = await stillThere(req, taken);
  if (present.length > 0) released.deleted = (await releaseOlderSnapshots(req.source, keep, present)).deleted;
  return {
    ...(plan.source.takenByPagewise ? { sourceSnapshot: { snapshot: keep, deleted: false } } : {}),
    releasedSnapshots: released.deleted,
  };
}

/**
 * Which of `snapshots` still exist (a HEAD each), so the result names only what this run released, not
 * what an earlier run did. The source cannot be opened (deleted, SAS expired): none, nothing released.
 */
async function stillThere(req: BackupRequest, snapshots: string[]): Promise<string[]> {
  if (snapshots.length === 0) return [];
  let source: SourceDisk;
  try {
    source = await SourceDisk.open(req.source);
  } catch {
    return [];
  }
  const unique = [...new Set(snapshots)];
  const there = await Promise.all(unique.map((s) => source.snapshotExists(s).catch(() => true))); // unknown: let the release try
  return unique.filter((_, k) => there[k]);
}

/** The result of a version-2 backup from its manifest (and its batch records' totals). */
export function resultOfV2(m: ManifestV2, totals: BatchTotals, durationMs: number, cacheCapacityBytes: number): BackupResult {
  return {
    backupId: m.backupId,
    diskBytes: m.diskBytes,
    allocatedBytes: m.stats.allocatedBytes,
    bytesRead: m.stats.bytesRead,
    bytesStored: m.stats.bytesStored,
    pages: m.tables.reduce((sum, t) => sum + t.pages, 0) + m.stats.zeroPages,
    storedBlocks: m.stats.newChunks,
    zeroPages: m.stats.zeroPages,
    dedupedPages: totals.dedupedPages,
    pageSize: m.pageSize,
    segments: totals.packs,
    cacheCapacityBytes,
    cacheHighWaterBytes: 0,
    alreadyExisted: false,
    bytesReadNow: 0, // finalizing reads no source; the engine running the batches fills this in
    completedAt: m.completedAt,
    durationMs,
    kind: m.kind,
    base: m.base ? { backupId: m.base.backupId, snapshot: m.base.snapshot } : null,
    reason: m.reason,
    bytesChanged: m.stats.bytesChanged,
    bytesNew: m.stats.bytesNew,
    chunks: m.stats.chunks,
    chunksReusedFromVault: m.stats.chunksReusedFromVault ?? 0,
    bytesReusedFromVault: m.stats.bytesReusedFromVault ?? 0,
    formatVersion: 2,
  };
}
