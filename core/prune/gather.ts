/**
 * Gather (docs/FORMAT.md §26): reads the vault into the GcSnapshot decide judges, in the protocol's one
 * order — marks, tombstones, manifests, then staging, then tables, packs, index generations, deltas — so
 * anything written meanwhile is seen as newer than the limits, never as unreferenced.
 */
import { forEachLimited } from '../concurrency';
import { isPagewiseError, throwIfAborted } from '../errors';
import type { BlobInfo, CallOptions } from '../repo/store/blob-store';
import type { Vault } from '../repo/vault';
import { BACKUP_ID_RE } from '../repo/backup-id';
import type { Keyring } from '../repo/v2/keyring';
import { readManifest2 } from '../repo/v2/manifest';
import { DELTA_NAME_RE, MANIFEST_NAME_RE } from '../repo/v2/names';
import { readTombstones, Tombstone } from '../retention/tombstones';
import { Generation, newestGeneration } from '../repo/v2/index-generation';
import type { GcSnapshot } from './decide';
import { ContentIds, GATHER_READS_AT_ONCE, problemOf, readDeltas, readGenerationEntries, readLiveTables, WantedTable } from './gather-content';
import { gatherStaging, stagingGroups } from './gather-staging';
import { PruneMark, readMarks } from './marks';
import type { GcParams } from './protocol';

const PACK_NAME_RE = /^packs\/([0-9a-f]{2})\/([0-9a-f]{32})\.pwp$/;
const TABLE_NAME_RE = /^tables\/([0-9a-f]{32})\.pwt$/;
const TOMBSTONE_NAME_RE = /^forgotten\/([0-9a-f]{32})\.pwe$/;
const GENERATION_BLOB_RE = /^index\/c\/(\d{8})\/(?:[0-9a-f]{2}\.pwx|filter\.pwf|covers\.pwe)$/;

/** A tombstoned version-1 backup of an upgraded vault: its manifest and every blob under its prefix. */
export interface V1Backup {
  backupId: string;
  manifest: string;
  hasManifest: boolean;
  graceEndsMs: number;
  /** every blob under backups/<id>/, the manifest included while it exists */
  blobs: { name: string; bytes: number }[];
}

export interface Gathered {
  snapshot: GcSnapshot;
  /** authenticated marks, oldest first */
  marks: { name: string; markedAtMs: number; body: PruneMark; bytes: number }[];
  /** readable tombstones by blob name */
  tombstones: Map<string, { nameTag: string; tombstone: Tombstone; bytes: number; graceEndsMs: number }>;
  /** tombstoned version-1 backups by manifest name */
  v1: Map<string, V1Backup>;
  /** size of every manifest listed (version 1 and 2) */
  manifestBytes: Map<string, number>;
  /** what could not be read or was not Pagewise's, each said once */
  problems: string[];
}

export interface GatherOptions {
  nowMs: number;
  params: GcParams;
  /** The least grace this prune grants, counted from each tombstone's Creation-Time (§26.2); default 0. */
  minGraceMs?: number;
  abortSignal?: AbortSignal;
}

async function listAll(vault: Vault, prefix: string, options: CallOptions): Promise<BlobInfo[]> {
  const out: BlobInfo[] = [];
  for await (const b of vault.listDetailed(prefix, options)) out.push(b);
  return out;
}

export async function gather(vault: Vault, keyring: Keyring, o: GatherOptions): Promise<Gathered> {
  const options: CallOptions = { abortSignal: o.abortSignal };
  const problems: string[] = [];
  const onProblem = (why: string) => problems.push(why);
  const step = () => throwIfAborted(o.abortSignal, 'the prune was cancelled');
  const ids = new ContentIds();

  const marks = await readMarks(vault, keyring, (name, why) => onProblem(`the mark ${name} is ignored: ${why}`));
  step();

  // Tombstones: sizes from one listing, bodies read by retention's reader.
  const tombstoneBlobs = new Map((await listAll(vault, 'forgotten/', options)).map((b) => [b.name, b]));
  const tombstones: Gathered['tombstones'] = new Map();
  for (const [nameTag, t] of await readTombstones(vault, keyring)) {
    const blob = tombstoneBlobs.get(t.name);
    if (t.tombstone && blob && TOMBSTONE_NAME_RE.test(t.name)) {
      tombstones.set(t.name, { nameTag, tombstone: t.tombstone, bytes: blob.contentLength, graceEndsMs: graceEnd(t.tombstone, blob.createdOn, o.minGraceMs ?? 0) });
    } else if (t.tombstone && !blob) continue; // written after the listing: its grace has not even begun for this run
    else onProblem(`the tombstone ${t.name.slice(0, 120)} is not read (${t.problem ?? 'not a tombstone name'}): its backup counts as kept`);
  }
  const tombstoneOf = new Map([...tombstones.values()].filter((t) => t.tombstone.formatVersion === 2).map((t) => [t.nameTag, t]));
  step();

  // Manifests (version 2), each read to learn its tables; a tombstoned version-1 backup by its prefix.
  const manifests: GcSnapshot['manifests'] = [];
  const manifestBytes = new Map<string, number>();
  const refs = new Map<string, WantedTable>();
  const manifestTables = new Map<string, string[] | undefined>();
  const finished = new Set<string>();
  const listedManifests = (await listAll(vault, 'manifests/', options)).filter((b) => {
    if (MANIFEST_NAME_RE.test(b.name)) return true;
    onProblem(`${b.name.slice(0, 120)} is no manifest name; prune leaves it`);
    return false;
  });
  await forEachLimited(listedManifests, GATHER_READS_AT_ONCE, async (b) => {
    const nameTag = MANIFEST_NAME_RE.exec(b.name)![3];
    finished.add(nameTag);
    manifestBytes.set(b.name, b.contentLength);
    const t = tombstoneOf.get(nameTag)?.tombstone;
    const graceEndsMs = tombstoneOf.get(nameTag)?.graceEndsMs;
    let entry: GcSnapshot['manifests'][number] = { name: b.name, backupId: t?.backupId ?? nameTag, tableIds: undefined, ...(graceEndsMs !== undefined ? { graceEndsMs } : {}) };
    try {
      const m = await readManifest2(vault, keyring, b.name);
      entry = { ...entry, backupId: m.backupId, tableIds: m.tables.map((r) => r.tableId) };
      // Only tables of manifests that may be kept are read; a grace-ended one's tables matter to nobody.
      if (graceEndsMs === undefined || graceEndsMs > o.nowMs) for (const ref of m.tables) if (!refs.get(ref.tableId)?.ref) refs.set(ref.tableId, { ref, pagesPerTable: m.pagesPerTable });
    } catch (err) {
      if (isPagewiseError(err, 'BackupNotFound')) return; // deleted since the listing (another prune): not there, not kept
      onProblem(problemOf(err));
    }
    manifestTables.set(b.name, entry.tableIds);
    manifests.push(entry);
  });
  const v1 = await gatherV1(vault, tombstones, options);
  for (const b of v1.values()) {
    if (!b.hasManifest) continue;
    manifests.push({ name: b.manifest, backupId: b.backupId, tableIds: [], graceEndsMs: b.graceEndsMs });
    manifestBytes.set(b.manifest, b.blobs.find((x) => x.name === b.manifest)!.bytes);
  }
  const tombstonesWithoutManifest = [...tombstones.entries()]
    .filter(([, t]) => (t.tombstone.formatVersion === 1 ? !v1.get(t.tombstone.manifest)?.hasManifest : !finished.has(t.nameTag)))
    .map(([name]) => name);
  for (const t of tombstones.values()) finished.add(t.nameTag); // a tombstone says the backup had a manifest
  manifests.sort((a, b) => (a.name < b.name ? -1 : 1));
  step();

  // Staging: in-flight backups' plans (their base tables) and batch records.
  const staging = await gatherStaging(vault, keyring, stagingGroups(await listAll(vault, 'staging/', options), onProblem), { nowMs: o.nowMs, params: o.params, finished, manifestTables, ids, onProblem, options });
  for (const s of staging) if (Array.isArray(s.baseTableIds)) for (const id of s.baseTableIds) if (!refs.has(id)) refs.set(id, {});
  step();

  // Tables, packs, deltas: listed in this order, then the live tables and every delta read.
  const allTables: GcSnapshot['allTables'] = new Map();
  for (const b of await listAll(vault, 'tables/', options)) {
    const m = TABLE_NAME_RE.exec(b.name);
    if (m) allTables.set(m[1], { createdMs: b.createdOn.getTime(), bytes: b.contentLength });
    else onProblem(`${b.name.slice(0, 120)} is no page-table name; prune leaves it`);
  }
  const packs: GcSnapshot['packs'] = new Map();
  for (const b of await listAll(vault, 'packs/', options)) {
    const m = PACK_NAME_RE.exec(b.name);
    if (m && m[2].startsWith(m[1])) packs.set(m[2], { createdMs: b.createdOn.getTime(), bytes: b.contentLength });
    else onProblem(`${b.name.slice(0, 120)} is no pack name; prune leaves it`);
  }
  // Index generations (#15): every one listed (old and incomplete ones are candidates), then the newest complete one's covers.
  const generations = listGenerationBlobs(await listAll(vault, 'index/c/', options), onProblem);
  let generation: Generation | undefined;
  let generationUnreadable = false;
  try {
    generation = await newestGeneration(vault, keyring);
  } catch (err) {
    onProblem(problemOf(err)); // a covers that does not authenticate is damage (§18.3): which deltas it covers is unknown
    generationUnreadable = true;
  }
  const covered = new Set(generation?.covers.deltas ?? []);
  step();
  const listedDeltas = (await listAll(vault, 'index/d/', options)).filter((b) => {
    if (DELTA_NAME_RE.test(b.name)) return true;
    onProblem(`${b.name.slice(0, 120)} is no index-delta name; prune leaves it`);
    return false;
  });
  step();
  const nameTags = new Set([...finished, ...staging.map((x) => x.nameTag)]);
  const tables = await readLiveTables(vault, keyring, refs, allTables, ids, onProblem, nameTags, options);
  step();
  const snapshotGeneration: GcSnapshot['generation'] = generationUnreadable
    ? { gen: 0, entries: undefined }
    : generation && (await readGenerationEntries(vault, keyring, generation, ids, onProblem, options));
  step();
  const deltas = [
    ...(await readDeltas(vault, keyring, listedDeltas.filter((b) => !covered.has(b.name)), ids, onProblem, options)),
    ...listedDeltas.filter((b) => covered.has(b.name)).map((b) => ({ name: b.name, packId: '', createdMs: b.createdOn.getTime(), bytes: b.contentLength, entries: [], covered: true })),
  ].sort((a, b) => (a.name < b.name ? -1 : 1));

  return {
    snapshot: { nowMs: o.nowMs, manifests, tombstonesWithoutManifest, tables, allTables, packs, deltas, staging, ...(snapshotGeneration ? { generation: snapshotGeneration } : {}), generations },
    marks,
    tombstones,
    v1,
    manifestBytes,
    problems,
  };
}

/**
 * Tombstoned version-1 backups (§12.4: forgotten whole): each one's prefix listed, so the sweep can
 * delete its manifest first and the rest after. A tombstone whose backup ID or manifest name is not
 * a version-1 backup's is told and left alone.
 */
async function gatherV1(vault: Vault, tombstones: Gathered['tombstones'], options: CallOptions): Promise<Map<string, V1Backup>> {
  const out = new Map<string, V1Backup>();
  for (const { tombstone: t, graceEndsMs } of tombstones.values()) {
    if (t.formatVersion !== 1 || !BACKUP_ID_RE.test(t.backupId) || t.manifest !== `backups/${t.backupId}/manifest.json`) continue;
    const blobs = (await listAll(vault, `backups/${t.backupId}/`, options)).map((b) => ({ name: b.name, bytes: b.contentLength }));
    out.set(t.manifest, { backupId: t.backupId, manifest: t.manifest, hasManifest: blobs.some((b) => b.name === t.manifest), graceEndsMs, blobs });
  }
  return out;
}


/**
 * When a tombstone's grace ends for this prune: its own `graceEndsAt`, but never before `minGraceMs` after
 * the service created its blob. The key that writes tombstones is also the backup identity's: a tombstone
 * may claim any times, the service's Creation-Time it cannot — so the prune app's minimum grace holds
 * whoever forgot (§26.2).
 */
function graceEnd(t: Tombstone, createdOn: Date, minGraceMs: number): number {
  return Math.max(Date.parse(t.graceEndsAt), createdOn.getTime() + minGraceMs);
}

/** The blobs under index/c/ by generation number (its newest Creation-Time its age); a name no generation has is told and left alone. */
function listGenerationBlobs(listed: BlobInfo[], onProblem: (why: string) => void): NonNullable<GcSnapshot['generations']> {
  const byGen = new Map<number, NonNullable<GcSnapshot['generations']>[number]>();
  for (const b of listed) {
    const m = GENERATION_BLOB_RE.exec(b.name);
    if (!m) {
      onProblem(`${b.name.slice(0, 120)} is no index-generation blob name; prune leaves it`);
      continue;
    }
    const gen = Number(m[1]);
    const entry = byGen.get(gen) ?? { gen, createdMs: -Infinity, blobs: [] };
    entry.createdMs = Math.max(entry.createdMs, b.createdOn.getTime());
    entry.blobs.push({ name: b.name, bytes: b.contentLength });
    byGen.set(gen, entry);
  }
  return [...byGen.values()].sort((a, b) => a.gen - b.gen);
}
