/** Prune's view of staging/ (docs/FORMAT.md §20.1–§20.2, §26): per unfinished backup its plan's age, the base tables it relies on and its batch records' content IDs. */
import { forEachLimited } from '../concurrency';
import { PagewiseError } from '../errors';
import type { BlobInfo, CallOptions } from '../repo/store/blob-store';
import type { Vault } from '../repo/vault';
import { openJson } from '../repo/v2/envelope';
import type { Keyring } from '../repo/v2/keyring';
import { HEX32_RE, v2names } from '../repo/v2/names';
import type { PlanV2 } from '../repo/v2/records';
import { getIfAny, planBaseProblem, readBatch2 } from '../repo/v2/staging';
import type { GcSnapshot } from './decide';
import { ContentIds, contentIdsOf, GATHER_READS_AT_ONCE, problemOf } from './gather-content';
import { GcParams, planExpired } from './protocol';

type Staging = GcSnapshot['staging'][number];
const BATCH_NAME_RE = /^batches\/(\d{8})\.pwe$/;

export interface StagingContext {
  nowMs: number;
  params: GcParams;
  /** nameTags of backups that have a manifest, or had one (a tombstone names them). */
  finished: Set<string>;
  /** tableIds of each readable manifest by blob name: an old plan's base tables, when the plan does not record them. */
  manifestTables: Map<string, string[] | undefined>;
  ids: ContentIds;
  onProblem: (why: string) => void;
  options?: CallOptions;
}

/** Groups a flat listing of staging/ by nameTag; a name outside staging/<32 hex>/ is told as a problem and left alone. */
export function stagingGroups(listed: BlobInfo[], onProblem: (why: string) => void): Map<string, BlobInfo[]> {
  const groups = new Map<string, BlobInfo[]>();
  for (const b of listed) {
    const nameTag = b.name.split('/')[1] ?? '';
    if (!HEX32_RE.test(nameTag)) {
      onProblem(`${b.name.slice(0, 120)} was not written by Pagewise (no nameTag after staging/); prune leaves it`);
      continue;
    }
    const group = groups.get(nameTag);
    if (group) group.push(b);
    else groups.set(nameTag, [b]);
  }
  return groups;
}

/** Each staging group as decide sees it; plans and batch records are read only for backups that may still finish. */
export async function gatherStaging(vault: Vault, keyring: Keyring, groups: Map<string, BlobInfo[]>, c: StagingContext): Promise<GcSnapshot['staging']> {
  const out: Staging[] = [];
  await forEachLimited(groups.entries(), GATHER_READS_AT_ONCE, async ([nameTag, blobs]) => {
    const entry: Staging = {
      nameTag,
      createdMs: blobs.reduce((min, b) => Math.min(min, b.createdOn.getTime()), Infinity),
      hasManifest: c.finished.has(nameTag),
      contentIds: [],
      blobs: blobs.map((b) => ({ name: b.name, bytes: b.contentLength })),
    };
    out.push(entry);
    if (entry.hasManifest) return; // done: nothing of it is live through staging
    try {
      const plan = await readPlanOf(vault, keyring, nameTag);
      if (!plan) {
        entry.contentIds = 'unknown'; // batch records without a plan: what they hold cannot be read by name
        return;
      }
      entry.planCreatedMs = Date.parse(plan.createdAt);
      if (planExpired(entry.planCreatedMs, c.nowMs, c.params)) return; // abandoned: may no longer finalize
      entry.baseTableIds = baseTablesOf(plan, c.manifestTables);
      entry.contentIds = await batchContentIds(vault, keyring, plan.backupId, blobs, nameTag, c);
    } catch (err) {
      c.onProblem(problemOf(err));
      entry.contentIds = 'unknown';
    }
  });
  return out.sort((a, b) => (a.nameTag < b.nameTag ? -1 : 1));
}

/** The plan of staging/<nameTag>/, authenticated and of this backup; undefined when there is none. */
async function readPlanOf(vault: Vault, keyring: Keyring, nameTag: string): Promise<PlanV2 | undefined> {
  const name = v2names.plan(nameTag);
  const stored = await getIfAny(vault, name);
  if (!stored) return undefined;
  const plan = openJson<PlanV2>(keyring, 1, name, stored);
  const sound = plan?.format === 'pagewise-plan' && plan.version === 2 && typeof plan.backupId === 'string' && keyring.nameTag(plan.backupId) === nameTag
    && typeof plan.createdAt === 'string' && Number.isFinite(Date.parse(plan.createdAt));
  const problem = sound ? planBaseProblem(plan) : undefined;
  if (!sound || problem) throw new PagewiseError('Corrupt', `the plan ${name} is not a version-2 Pagewise plan of this backup${problem ? `: ${problem}` : ''}`);
  return plan;
}

/**
 * The tables an in-flight backup relies on: the plan's `baseTables`; for a plan written before they
 * were recorded, its base manifest's tables when that manifest is there and readable, else 'unknown'.
 */
function baseTablesOf(plan: PlanV2, manifestTables: Map<string, string[] | undefined>): string[] | null | 'unknown' {
  if (plan.baseTables !== undefined) return plan.baseTables && plan.baseTables.map((t) => t.tableId);
  if (plan.base === null) return null;
  return manifestTables.get(plan.base.manifest) ?? 'unknown';
}

/** The content IDs of every batch record of an in-flight backup. */
async function batchContentIds(vault: Vault, keyring: Keyring, backupId: string, blobs: BlobInfo[], nameTag: string, c: StagingContext): Promise<string[]> {
  const prefix = v2names.stagingPrefix(nameTag);
  const out: string[] = [];
  for (const b of blobs) {
    const m = BATCH_NAME_RE.exec(b.name.slice(prefix.length));
    if (!m) continue;
    const record = await readBatch2(vault, keyring, backupId, Number(m[1]));
    if (record) for (const id of contentIdsOf(record.pages, c.ids)) out.push(id);
  }
  return out;
}
