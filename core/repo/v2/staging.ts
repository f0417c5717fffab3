/** Staging records of a version-2 backup (docs/FORMAT.md §20.1, §20.2): the plan and the batch records, encrypted. */
import { PagewiseError } from '../../errors';
import { BlobAlreadyExistsError, BlobNotFoundError } from '../store/blob-store';
import type { Vault } from '../vault';
import { MAX_ENVELOPE_BYTES, openJson, sealJson } from './envelope';
import type { Keyring } from './keyring';
import { DELTA_NAME_RE, HEX32_RE, v2names } from './names';
import { recordFromJson, recordToJson } from './page-table';
import type { BatchRecordV2, PlanV2, TableRef } from './records';
import { checkChunking } from './chunker';
import type { CodecSetting } from '../../processor/chunk-pool';

const PLAN_CODECS: readonly CodecSetting[] = ['zstd', 'lz4', 'stored'];

/** Writes the plan once (If-None-Match). A plan already there for this backup (a retried plan step) is kept as it is: read it with readPlan2. */
export async function writePlan2(vault: Vault, keyring: Keyring, plan: PlanV2): Promise<void> {
  const name = v2names.plan(keyring.nameTag(plan.backupId));
  await putOnce(vault, name, sealJson(keyring, 1, name, plan));
}

/** The plan of `backupId`, or undefined when none was written. */
export async function readPlan2(vault: Vault, keyring: Keyring, backupId: string): Promise<PlanV2 | undefined> {
  const name = v2names.plan(keyring.nameTag(backupId));
  const stored = await getIfAny(vault, name);
  if (!stored) return undefined;
  const plan = openJson<PlanV2>(keyring, 1, name, stored);
  if (plan?.format !== 'pagewise-plan' || plan.version !== 2 || plan.backupId !== backupId || !plainCounts(plan, ['diskBytes', 'pageSize', 'pageCount', 'pagesPerBatch', 'pagesPerTable', 'keyEpoch'])
    || !wholeNumbers(plan.batches) || !(plan.changedPages === null || (Array.isArray(plan.changedPages) && plan.changedPages.every((run) => wholeNumbers(run) && run.length === 2)))
    || typeof plan.disk !== 'object' || plan.disk === null || typeof plan.disk.identity !== 'string' || (plan.kind !== 'full' && plan.kind !== 'incremental')) {
    throw new PagewiseError('Corrupt', `the plan ${name} of backup ${backupId} is not a version-2 Pagewise plan`);
  }
  const problem = planBaseProblem(plan);
  if (problem) throw new PagewiseError('Corrupt', `the plan ${name} of backup ${backupId} is not a version-2 Pagewise plan: ${problem}`);
  // The batches cut and encode by these (#15): a scheme or codec this writer does not know stops them here.
  const chunking = checkChunking(plan.chunking, plan.pageSize, `the plan ${name} of backup ${backupId}`, 'Corrupt');
  if (!PLAN_CODECS.includes(plan.codec) || (plan.vaultDedupe !== undefined && typeof plan.vaultDedupe !== 'boolean')) {
    throw new PagewiseError('Corrupt', `the plan ${name} of backup ${backupId} names an unknown codec or a vaultDedupe that is not a boolean`);
  }
  return { ...plan, chunking };
}

/**
 * Why the plan's record of its base (§20.1, §26.3: `base`, `baseTables`, `baseGeneration`) is not sound,
 * or undefined: a full has neither (null); an incremental has its base's table refs, on the plan's page
 * grid, and the base's generation; a plan written before #13 has neither field.
 */
export function planBaseProblem(plan: PlanV2): string | undefined {
  const { base, baseTables, baseGeneration } = plan;
  if (!(base === null || (typeof base === 'object' && typeof base.manifest === 'string'))) return 'its base is malformed';
  if (baseTables === undefined) return baseGeneration === undefined ? undefined : 'it has a baseGeneration without baseTables';
  if (base === null) return baseTables === null && baseGeneration === null ? undefined : 'a backup without a base has baseTables or a baseGeneration';
  if (typeof baseGeneration !== 'number' || !Number.isSafeInteger(baseGeneration) || baseGeneration < 0) return 'its baseGeneration is not a whole number';
  if (!plainCounts(plan, ['pageCount', 'pagesPerTable']) || plan.pagesPerTable < 1) return 'its page grid is malformed';
  const problem = tableRefsProblem(baseTables, Math.ceil(plan.pageCount / plan.pagesPerTable), plan.pagesPerTable);
  return problem ? `baseTables: ${problem}` : undefined;
}

/**
 * Writes a batch record once (If-None-Match). One already there (this request's own retry that landed, or
 * another run of the batch) is read back and kept only when it records the same pages with the same
 * content; a different record under this name is Corrupt, never silently kept. `pages` go in their JSON form.
 */
export async function writeBatch2(vault: Vault, keyring: Keyring, rec: BatchRecordV2): Promise<void> {
  const name = v2names.batch(keyring.nameTag(rec.backupId), rec.batchNumber);
  try {
    await vault.putNew(name, sealJson(keyring, 2, name, { ...rec, pages: rec.pages.map(recordToJson) }));
  } catch (err) {
    if (!(err instanceof BlobAlreadyExistsError)) throw err;
    const there = await readBatch2(vault, keyring, rec.backupId, rec.batchNumber);
    const differs = there ? batchDifference(there, rec) : 'it is gone';
    if (differs) throw new PagewiseError('Corrupt', `the batch record ${name} of backup ${rec.backupId} already exists and differs from the one this batch wrote (${differs})`);
  }
}

/**
 * Why two records of one batch do not describe the same backed-up content, or undefined when they do.
 * Packs and offsets may differ (each run stores into its own packs, committed before its record).
 */
function batchDifference(a: BatchRecordV2, b: BatchRecordV2): string | undefined {
  for (const f of ['firstPage', 'pageCount', 'bytesRead', 'zeroPages'] as const) if (a[f] !== b[f]) return `${f} ${a[f]} ≠ ${b[f]}`;
  if (a.pages.length !== b.pages.length) return `${a.pages.length} ≠ ${b.pages.length} page records`;
  for (let k = 0; k < a.pages.length; k++) {
    const [p, q] = [a.pages[k], b.pages[k]];
    const same = p.page === q.page && p.length === q.length && p.chunks.length === q.chunks.length
      && p.chunks.every((c, j) => c.length === q.chunks[j].length && c.contentId.equals(q.chunks[j].contentId));
    if (!same) return `page ${q.page}`;
  }
  return undefined;
}

/** A batch record, or undefined when the batch has not finished; its page records checked. */
export async function readBatch2(vault: Vault, keyring: Keyring, backupId: string, batch: number): Promise<BatchRecordV2 | undefined> {
  const name = v2names.batch(keyring.nameTag(backupId), batch);
  const stored = await getIfAny(vault, name);
  if (!stored) return undefined;
  const rec = openJson<Omit<BatchRecordV2, 'pages'> & { pages: unknown }>(keyring, 2, name, stored);
  if (rec?.format !== 'pagewise-batch' || rec.version !== 2 || rec.backupId !== backupId || rec.batchNumber !== batch
    || !plainCounts(rec, ['firstPage', 'pageCount', 'bytesRead', 'bytesNew', 'bytesStored', 'zeroPages'])
    || !plainCounts(rec, ['chunksReusedFromVault', 'bytesReusedFromVault'].filter((f) => f in rec))
    || !Array.isArray(rec.pages) || !Array.isArray(rec.packs) || !rec.packs.every((p) => typeof p === 'string' && HEX32_RE.test(p))
    || !Array.isArray(rec.deltas) || !rec.deltas.every((d) => typeof d === 'string' && DELTA_NAME_RE.test(d))) {
    throw new PagewiseError('Corrupt', `the batch record ${name} of backup ${backupId} is not a version-2 Pagewise batch record`);
  }
  const where = `the batch record ${name}`;
  const pages = rec.pages.map((p) => recordFromJson(p, where));
  for (let k = 0; k < pages.length; k++) {
    const p = pages[k].page;
    if (p < rec.firstPage || p >= rec.firstPage + rec.pageCount || (k > 0 && p <= pages[k - 1].page)) throw new PagewiseError('Corrupt', `${where}: page ${p} is out of order or outside the batch`);
  }
  return { ...rec, pages };
}

/** Whether `v` is an array of whole numbers ≥ 0. */
function wholeNumbers(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0);
}

/** Whether every named field is a whole number ≥ 0. */
export function plainCounts(o: object, fields: string[]): boolean {
  return fields.every((f) => {
    const v = (o as Record<string, unknown>)[f];
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  });
}

const HEX64_RE = /^[0-9a-f]{64}$/;

/**
 * Why `tables` is not a list of table refs (a manifest's `tables`, a plan's `baseTables`) of a disk of
 * `groups` page groups of `pagesPerTable` pages, or undefined when it is: each ref's fields of their
 * type, indexes ascending and below `groups` (so at most `groups` refs), 1 to `pagesPerTable` pages.
 */
export function tableRefsProblem(tables: unknown, groups: number, pagesPerTable: number): string | undefined {
  if (!Array.isArray(tables)) return 'its tables are not a list';
  if (tables.length > groups) return `${tables.length} tables for ${groups} page groups`;
  let previous = -1;
  for (const t of tables as Partial<TableRef>[]) {
    if (typeof t !== 'object' || t === null || !plainCounts(t, ['index', 'pages', 'bytes'])
      || typeof t.tableId !== 'string' || !HEX32_RE.test(t.tableId) || typeof t.sha256 !== 'string' || !HEX64_RE.test(t.sha256)) {
      return 'a table entry is malformed';
    }
    const { index, pages } = t as TableRef;
    if (index <= previous || index >= groups) return `table ${index} is out of order or beyond the disk's ${groups} page groups`;
    if (pages < 1 || pages > pagesPerTable) return `table ${index} has ${pages} pages (at most ${pagesPerTable})`;
    previous = index;
  }
  return undefined;
}

/** Put Blob once: an existing blob of that name stays (the first write wins). */
async function putOnce(vault: Vault, name: string, bytes: Buffer): Promise<void> {
  try {
    await vault.putNew(name, bytes);
  } catch (err) {
    if (!(err instanceof BlobAlreadyExistsError)) throw err;
  }
}

/** A staging or manifest blob's bytes (bounded), or undefined on 404. */
export async function getIfAny(vault: Vault, name: string): Promise<Buffer | undefined> {
  try {
    return await vault.getBytes(name, 0, undefined, { maxBytes: MAX_ENVELOPE_BYTES });
  } catch (err) {
    if (err instanceof BlobNotFoundError) return undefined;
    throw err;
  }
}
