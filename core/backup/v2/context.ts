/**
 * What every step of a version-2 backup needs after planning: the plan, the vault's keyring and the
 * vault; rebuilt from the backup ID and request in whatever process runs the step.
 */
import { DAY_MS } from '../../units';
import { Clock, systemClock } from '../../clock';
import { PagewiseError } from '../../errors';
import { DEFAULT_ABANDON_AFTER_MS, planExpired } from '../../prune/protocol';
import { validateBackupId } from '../../repo/backup-id';
import { ContentIndex } from '../../repo/v2/content-index';
import { Keyring } from '../../repo/v2/keyring';
import { openVaultKeyring } from '../../repo/v2/marker';
import { readManifest2 } from '../../repo/v2/manifest';
import { v2names } from '../../repo/v2/names';
import { readTable } from '../../repo/v2/page-table';
import { ManifestV2, PageRecord2, PlanV2, TableRef } from '../../repo/v2/records';
import { readPlan2 } from '../../repo/v2/staging';
import { BlobNotFoundError } from '../../repo/store/blob-store';
import { Vault } from '../../repo/vault';
import { SourceDisk } from '../../source/source-disk';
import { BackupRequest } from '../../types';

export interface BackupContextV2 {
  plan: PlanV2;
  keyring: Keyring;
  vault: Vault;
  /** The base manifest once read, for a plan without `baseTables` (see baseOfPlan): the batches and the finalize of one process share it. */
  baseManifest?: Promise<ManifestV2>;
  /** The base tables the batches read most recently, by group (see baseTableOf). */
  baseTables?: Map<number, Promise<PageRecord2[]>>;
  /** The clock of the abandonment rule (the request's, else the system's). */
  clock?: Clock;
  /** The vault's content index, opened once per context (see contentIndexOf). */
  contentIndex?: Promise<ContentIndex>;
}

/**
 * The content index for a batch (§17.1, #15): opened once per process and vault (see sharedContentIndex),
 * refreshed at each batch start so deltas written since (earlier batches, other backups) are found.
 * Memory: ContentIndex's stated bound, for each of at most INDEXES_KEPT vaults.
 */
export async function contentIndexOf(ctx: BackupContextV2): Promise<ContentIndex> {
  let justOpened = false;
  if (!ctx.contentIndex) {
    const shared = sharedContentIndex(ctx.vault, ctx.keyring);
    const opening = shared.index;
    opening.catch(() => ctx.contentIndex === opening && (ctx.contentIndex = undefined)); // a failed open is tried again
    ctx.contentIndex = opening;
    justOpened = shared.opened;
  }
  const index = await ctx.contentIndex;
  if (!justOpened) await index.refresh(); // open() has just listed the index
  return index;
}

/** Vaults whose content index a process keeps between contexts (each orchestrated batch activity opens its own context). */
const INDEXES_KEPT = 4;
const indexes = new Map<string, Promise<ContentIndex>>();

/**
 * The process's ContentIndex of a vault, opened once and shared by the contexts of every backup into it:
 * an orchestrated backup runs each batch as an activity with a new context, and reopening the index (a
 * generation's filter and fences, every uncovered delta) per batch cost more than its refresh. The key is
 * the vault (endpoint, account, container) and the keyring (vault ID, epoch, key check); the generation is
 * followed by refresh(), which swaps in a newer complete generation and drops the deltas it covers, as a
 * new open would. Least recently used beyond INDEXES_KEPT vaults are dropped.
 */
function sharedContentIndex(vault: Vault, keyring: Keyring): { index: Promise<ContentIndex>; opened: boolean } {
  const { url, account, container } = vault.parsed;
  const key = `${url.origin}|${account}|${container}|${keyring.vaultId}|${keyring.epoch}|${keyring.keyCheck()}`;
  let index = indexes.get(key);
  if (index) {
    indexes.delete(key); // to the most recent end
    indexes.set(key, index);
    return { index, opened: false };
  }
  index = ContentIndex.open(vault, keyring);
  const opening = index;
  opening.catch(() => indexes.get(key) === opening && indexes.delete(key));
  indexes.set(key, index);
  while (indexes.size > INDEXES_KEPT) indexes.delete(indexes.keys().next().value!);
  return { index, opened: true };
}

/** Forgets the process's content indexes (tests; a process that wants the memory back). */
export function forgetContentIndexes(): void {
  indexes.clear();
}

/** Base tables a context keeps for the finalize after the batches (each up to pagesPerTable records). */
const BASE_TABLES_KEPT = 4;

/**
 * The base's table `ref`, read once while it is among the last few read in this context: a batch and
 * the finalize after it (single-process engine) need the same group's table.
 */
export function baseTableOf(ctx: BackupContextV2, ref: TableRef, pagesPerTable: number): Promise<PageRecord2[]> {
  const kept = (ctx.baseTables ??= new Map());
  const known = kept.get(ref.index);
  if (known) return known;
  const read = readTable(ctx.vault, ctx.keyring, ref, pagesPerTable).catch((err: unknown) => {
    if (!(err instanceof BlobNotFoundError)) throw err;
    // Only prune deletes a table: the base was forgotten and pruned while this backup ran (§26.8).
    throw new PagewiseError('BackupIncomplete', `backup ${ctx.plan.backupId}: page table ${v2names.table(ref.tableId)} (group ${ref.index}) of its base ${ctx.plan.base?.manifest ?? ''} is no longer in the vault: removed by prune; ${START_AGAIN}`, { cause: err });
  });
  read.catch(() => kept.get(ref.index) === read && kept.delete(ref.index)); // a failed read is tried again
  kept.set(ref.index, read);
  if (kept.size > BASE_TABLES_KEPT) kept.delete(kept.keys().next().value!);
  return read;
}

/** What an incremental reuses of its base: the base manifest's table refs (in table order) and its generation. */
export interface BaseOfPlan {
  tables: TableRef[];
  generation: number;
}

/**
 * The base of the plan (null for a full): from the plan's `baseTables` and `baseGeneration` (§26.3), so
 * a base manifest forgotten and pruned while this backup runs does not stop it (prune keeps the tables
 * the plan names). Only a plan written before those were recorded reads its base manifest (once per context).
 */
export function baseOfPlan(ctx: BackupContextV2): Promise<BaseOfPlan> | null {
  const { plan } = ctx;
  if (!plan.base) return null;
  if (plan.baseTables && typeof plan.baseGeneration === 'number') return Promise.resolve({ tables: plan.baseTables, generation: plan.baseGeneration });
  if (!ctx.baseManifest) {
    ctx.baseManifest = baseManifestOfOldPlan(ctx);
    ctx.baseManifest.catch(() => (ctx.baseManifest = undefined)); // a failed read is tried again by the next caller
  }
  return ctx.baseManifest;
}

/** A plan without `baseTables` (written before #13): its base manifest, which must still be there and on the plan's page grid. */
async function baseManifestOfOldPlan({ vault, keyring, plan }: BackupContextV2): Promise<ManifestV2> {
  const name = plan.base!.manifest;
  const base = await readManifest2(vault, keyring, name).catch((err: unknown) => {
    if (!(err instanceof PagewiseError) || err.code !== 'BackupNotFound') throw err;
    throw new PagewiseError('BackupIncomplete', `backup ${plan.backupId} was planned before its plan recorded its base's tables, and its base manifest ${name} is no longer in the vault: its base was deleted by prune while it ran; ${START_AGAIN}`, { cause: err });
  });
  if (base.pageSize !== plan.pageSize || base.pagesPerTable !== plan.pagesPerTable || base.diskBytes !== plan.diskBytes) {
    throw new PagewiseError('Corrupt', `the base ${name} of backup ${plan.backupId} has another page grid than its plan`);
  }
  return base;
}

export async function openBackupContextV2(req: BackupRequest, backupId: string): Promise<BackupContextV2> {
  validateBackupId(backupId);
  const vault = Vault.open(req.vault);
  const keyring = await openVaultKeyring(vault, req.userKey);
  const plan = await readPlan2(vault, keyring, backupId);
  if (!plan) throw new PagewiseError('BackupNotFound', `backup ${backupId} has no plan in the vault ${vault.display}`);
  return { plan, keyring, vault, clock: req.clock ?? systemClock };
}

/** What a backup that lost a reused object to prune can do: its batch records are written once, so it cannot be repaired in place. */
export const START_AGAIN = 'no manifest was written. This backup cannot be finished: start a new backup of the disk (it chooses a base still whole, or goes full); a run that resolves to this backup ID again (the same --backup-id, or a disk unchanged since) stops here, so give it another ID (--backup-id)';

/**
 * §26.1/§26.8: a backup whose plan is older than the abandonment limit L may not run a batch nor write
 * its manifest — prune treats its staging as abandoned and may be deleting what it staged. BackupExpired
 * is not transient: the orchestration does not retry it. The backup ID stays taken (its plan is written
 * once) until prune removes that staging, so the user starts a new backup rather than rerunning this one.
 */
export function requireNotExpired(ctx: BackupContextV2, step: string, stoppedBefore: string): void {
  const { plan } = ctx;
  const created = Date.parse(plan.createdAt);
  if (!Number.isFinite(created)) throw new PagewiseError('Corrupt', `the plan of backup ${plan.backupId} has no valid createdAt (${JSON.stringify(String(plan.createdAt)).slice(0, 40)})`);
  const now = (ctx.clock ?? systemClock)();
  if (!planExpired(created, now, { abandonAfterMs: DEFAULT_ABANDON_AFTER_MS })) return;
  const days = DEFAULT_ABANDON_AFTER_MS / DAY_MS;
  throw new PagewiseError(
    'BackupExpired',
    `backup ${plan.backupId} was planned at ${plan.createdAt}, more than ${days} days ago (the abandonment limit): prune may already be removing what it staged, so it cannot ${step}; stopped before ${stoppedBefore}. ` +
      `Start a new backup of the disk: a run that resolves to this backup ID again (the same --backup-id, or a disk unchanged since) stops here until prune has removed this backup's staging, so give it another ID (--backup-id)`,
  );
}

/** The source as the plan saw it: the snapshot Pagewise took, if it took one; pinned to the plan's ETag and size. */
export function openPlannedSourceV2(req: BackupRequest, plan: PlanV2): Promise<SourceDisk> {
  return SourceDisk.open(req.source, plan.source.etag, snapshotTakenV2(plan), plan.diskBytes);
}

/** The snapshot this backup reads that Pagewise took (kept as the next backup's base), or undefined. */
export function snapshotTakenV2(plan: PlanV2): string | undefined {
  return plan.source.takenByPagewise && plan.source.snapshot ? plan.source.snapshot : undefined;
}

/** The manifest of the planned backup, if written: one listing of its disk's manifests (not the vault's). */
export async function manifestOfPlan(vault: Vault, keyring: Keyring, plan: PlanV2): Promise<{ name: string; manifest: ManifestV2 } | undefined> {
  const suffix = `-${keyring.nameTag(plan.backupId)}.pwm`;
  for await (const name of vault.list(v2names.manifestPrefix(keyring.diskTag(plan.disk.identity)))) {
    if (name.endsWith(suffix)) return { name, manifest: await readManifest2(vault, keyring, name) };
  }
  return undefined;
}
