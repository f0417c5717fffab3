// The GC decision (FORMAT.md §26.4–§26.7): pure, no I/O, no clock of its own — the real prune and the simulation both run it.
import { deltaStampMs } from '../repo/v2/names';
import { GcParams, olderThan, planExpired } from './protocol';

export interface GcSnapshot {
  /** The run's clock, read once before its first listing (§26.1). */
  nowMs: number;
  /** Every version-2 manifest listed; tableIds undefined = unreadable; graceEndsMs set = tombstoned. */
  manifests: { name: string; backupId: string; tableIds: string[] | undefined /* unreadable */; graceEndsMs?: number /* tombstoned */ }[];
  /** Tombstone blob names whose manifest is gone. */
  tombstonesWithoutManifest: string[];
  /** The tables gather read (the live ones): contentIds undefined = unreadable. Zero chunks left out or all-zero IDs. */
  tables: Map<string, { createdMs: number; contentIds: string[] | undefined /* unreadable */ }>;
  /** Every table listed. */
  allTables: Map<string, { createdMs: number; bytes: number }>;
  /** Every existing pack. */
  packs: Map<string, { createdMs: number; bytes: number }>;
  /**
   * Every index delta listed (its name's stamp breaks holder ties); entries undefined = unreadable (then packId is whatever
   * gather knows, possibly ''). covered = the newest complete generation covers it (#15): not read (entries [], packId '').
   */
  deltas: { name: string; packId: string; createdMs: number; bytes: number; entries: { contentId: string; offset: number; storedLength: number }[] | undefined; covered?: boolean }[];
  /** The newest complete index generation (§18.3) gather read: one entry per content ID; entries undefined = a shard unreadable. */
  generation?: { gen: number; entries: { contentId: string; packId: string; offset: number; storedLength: number }[] | undefined };
  /** Every generation listed under index/c/ (complete or not): createdMs = its newest blob's Creation-Time. */
  generations?: { gen: number; createdMs: number; blobs: { name: string; bytes: number }[] }[];
  /**
   * Every staging prefix. planCreatedMs undefined = no readable plan. hasManifest = a manifest or a tombstone names
   * the backup. baseTableIds: the plan's baseTables, or its base manifest's tables when the plan predates them;
   * 'unknown' when neither can be read. contentIds: chunks of its batch records, 'unknown' if one cannot be read.
   */
  staging: { nameTag: string; createdMs: number; planCreatedMs?: number; hasManifest: boolean; baseTableIds?: string[] | null | 'unknown'; contentIds: string[] | 'unknown'; blobs: { name: string; bytes: number }[] }[];
}

export interface GcVerdict {
  keptManifests: string[]; graceEndedManifests: string[];
  liveTables: Set<string>; liveContentIds: Set<string>; holders: Map<string, string> /* contentId → packId */;
  /** generations: 8-digit numbers of index generations (§26.5, #15) */
  candidates: { packs: string[]; tables: string[]; deltas: string[]; staging: string[]; generations: string[] };
  /** Why tables/packs/deltas are not swept this run. */
  blocked?: string;
  /** Every existing pack: live bytes (blocks it holds as holder of a live content ID), size, creation time. */
  packUse: Map<string, { liveBytes: number; bytes: number; createdMs: number }>;
  /** The run's clock (the snapshot's). */
  nowMs: number;
  /** Live content IDs no existing pack holds through the index (damage found, reported; nothing to protect). */
  liveWithoutHolder: string[];
}

const ZERO_ID = '0'.repeat(64);

/** A generation's number as marks and blob names write it: 8 digits (`index/c/<gen>/`). */
export function generationName(gen: number): string {
  return String(gen).padStart(8, '0');
}

export function decide(s: GcSnapshot, p: GcParams): GcVerdict {
  const now = s.nowMs;
  const L = p.abandonAfterMs;
  const problems: string[] = [];

  const keptManifests: string[] = [];
  const graceEndedManifests: string[] = [];
  const liveTables = new Set<string>();
  for (const m of s.manifests) {
    if (m.graceEndsMs !== undefined && now >= m.graceEndsMs) { graceEndedManifests.push(m.name); continue; }
    keptManifests.push(m.name);
    if (m.tableIds === undefined) problems.push(`the manifest ${m.name} cannot be read`);
    else for (const t of m.tableIds) liveTables.add(t);
  }

  const liveContentIds = new Set<string>();
  const stagingCandidates: string[] = [];
  for (const st of s.staging) {
    const readable = st.planCreatedMs !== undefined;
    const abandoned = readable ? planExpired(st.planCreatedMs!, now, p) : olderThan(st.createdMs, now, L);
    if (st.hasManifest || abandoned) { stagingCandidates.push(st.nameTag); continue; }
    // In flight: its references are live, and must be known.
    if (!readable) { problems.push(`the plan of the unfinished backup staging/${st.nameTag}/ cannot be read`); continue; }
    const base = st.baseTableIds === undefined ? 'unknown' : st.baseTableIds;
    if (base === 'unknown') problems.push(`the base of the unfinished backup staging/${st.nameTag}/ cannot be read`);
    else if (base !== null) for (const t of base) liveTables.add(t);
    if (st.contentIds === 'unknown') problems.push(`a batch record of the unfinished backup staging/${st.nameTag}/ cannot be read`);
    else for (const c of st.contentIds) if (c !== ZERO_ID) liveContentIds.add(c);
  }

  for (const t of liveTables) {
    const table = s.tables.get(t);
    if (table === undefined || table.contentIds === undefined) {
      problems.push(s.allTables.has(t) ? `the table ${t} cannot be read` : `the table ${t} a backup names is missing`);
      continue;
    }
    for (const c of table.contentIds) if (c !== ZERO_ID) liveContentIds.add(c);
  }

  // holder(c) (§26.4): the newest existing pack an index delta lists as holding c — by the pack's Creation-Time, then
  // (Creation-Time has whole seconds: a repack copy may share its source's) by the newest stamp of a delta naming c
  // in that pack, then by the greater packId. The greatest (creation, stamp, packId) over the delta entries.
  const holders = new Map<string, string>();
  const holderStamp = new Map<string, number>();
  const newer = (a: string, stampA: number, b: string, stampB: number): boolean => {
    const ca = s.packs.get(a)!.createdMs, cb = s.packs.get(b)!.createdMs;
    if (ca !== cb) return ca > cb;
    if (stampA !== stampB) return stampA > stampB;
    return a > b;
  };
  const consider = (contentId: string, packId: string, stamp: number) => {
    if (!liveContentIds.has(contentId) || !s.packs.has(packId)) return;
    const cur = holders.get(contentId);
    if (cur === undefined || newer(packId, stamp, cur, holderStamp.get(contentId)!)) {
      holders.set(contentId, packId);
      holderStamp.set(contentId, stamp);
    }
  };
  for (const d of s.deltas) {
    if (d.covered) continue;
    if (d.entries === undefined) { problems.push(`the index delta ${d.name} cannot be read`); continue; }
    const stamp = deltaStampMs(d.name) ?? -Infinity; // a name that does not parse sorts oldest
    for (const e of d.entries) consider(e.contentId, d.packId, stamp);
  }
  // Then the generation's one entry per content ID (§18.3: uncovered deltas are newer than any generation entry) — the
  // order compaction merges by, so the entry it keeps is the holder this rule picked: compaction never moves a holder.
  if (s.generation !== undefined && s.generation.entries === undefined) problems.push(s.generation.gen > 0 ? `a shard of the index generation ${generationName(s.generation.gen)} cannot be read` : 'the newest index generation cannot be read');
  for (const e of s.generation?.entries ?? []) if (!holders.has(e.contentId)) consider(e.contentId, e.packId, -Infinity);
  const liveWithoutHolder = [...liveContentIds].filter((c) => !holders.has(c)).sort();

  const packUse = new Map<string, { liveBytes: number; bytes: number; createdMs: number }>();
  for (const [id, pk] of s.packs) packUse.set(id, { liveBytes: 0, bytes: pk.bytes, createdMs: pk.createdMs });
  const counted = new Set<string>();
  const count = (contentId: string, packId: string, storedLength: number) => {
    const use = packUse.get(packId);
    if (use === undefined || holders.get(contentId) !== packId || counted.has(contentId)) return;
    counted.add(contentId);
    use.liveBytes += storedLength;
  };
  for (const e of s.generation?.entries ?? []) count(e.contentId, e.packId, e.storedLength);
  for (const d of s.deltas) for (const e of d.covered ? [] : d.entries ?? []) count(e.contentId, d.packId, e.storedLength);
  const referenced = new Set(holders.values());

  const blocked = problems.length > 0 ? `references unknown, no table, pack or delta is deleted: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ''}` : undefined;
  const candidates: GcVerdict['candidates'] = { packs: [], tables: [], deltas: [], staging: stagingCandidates.sort(), generations: [] };
  if (blocked === undefined) {
    for (const [id, pk] of s.packs) if (!referenced.has(id) && olderThan(pk.createdMs, now, L)) candidates.packs.push(id);
    for (const [id, t] of s.allTables) if (!liveTables.has(id) && olderThan(t.createdMs, now, L)) candidates.tables.push(id);
    const packCandidates = new Set(candidates.packs);
    for (const d of s.deltas) {
      if (olderThan(d.createdMs, now, L) && (d.covered === true || !s.packs.has(d.packId) || packCandidates.has(d.packId))) candidates.deltas.push(d.name);
    }
    // Generations numbered below the newest complete one (older complete ones, crashed incomplete ones): never it, never above it.
    const newest = s.generation?.gen;
    if (newest !== undefined) for (const g of s.generations ?? []) if (g.gen < newest && olderThan(g.createdMs, now, L)) candidates.generations.push(generationName(g.gen));
    candidates.packs.sort(); candidates.tables.sort(); candidates.deltas.sort(); candidates.generations.sort();
  }
  return {
    keptManifests, graceEndedManifests, liveTables, liveContentIds, holders, candidates, packUse, nowMs: now, liveWithoutHolder,
    ...(blocked !== undefined ? { blocked } : {}),
  };
}

/** A mark's candidates; `generations` is absent in marks written before #15 (read as none). */
export interface MarkFact { markedAtMs: number; candidates: Omit<GcVerdict['candidates'], 'generations'> & { generations?: string[] } }

/** The candidates of this run that some mark at least D old (markedAt ≤ now − D) also found unreferenced (§26.7). */
export function sweepable(v: GcVerdict, marks: MarkFact[], nowMs: number, p: GcParams): GcVerdict['candidates'] {
  const old = marks.filter((m) => m.markedAtMs <= nowMs - p.deleteAfterMs);
  const pick = (key: keyof GcVerdict['candidates']): string[] => {
    if (v.blocked !== undefined && key !== 'staging') return [];
    const seen = new Set<string>();
    for (const m of old) for (const x of m.candidates[key] ?? []) seen.add(x);
    return v.candidates[key].filter((x) => seen.has(x));
  };
  return { packs: pick('packs'), tables: pick('tables'), deltas: pick('deltas'), staging: pick('staging'), generations: pick('generations') };
}

/**
 * Restic's --max-unused (§26.7): among referenced packs older than L holding less than half live bytes, lowest live
 * fraction first, take packs while the unused bytes of the kept packs exceed maxUnused of the kept pack bytes.
 */
export function chooseRepack(v: GcVerdict, p: GcParams): { packs: string[]; liveBytes: number; unusedBytes: number } {
  const none = { packs: [], liveBytes: 0, unusedBytes: 0 };
  if (v.blocked !== undefined) return none;
  const candidates = new Set(v.candidates.packs);
  let total = 0;
  let unused = 0;
  const eligible: { id: string; live: number; bytes: number }[] = [];
  for (const [id, u] of v.packUse) {
    if (candidates.has(id)) continue;
    total += u.bytes;
    if (u.liveBytes === 0 || !olderThan(u.createdMs, v.nowMs, p.abandonAfterMs)) continue;
    unused += u.bytes - u.liveBytes;
    if (u.liveBytes < 0.5 * u.bytes) eligible.push({ id, live: u.liveBytes, bytes: u.bytes });
  }
  eligible.sort((a, b) => a.live / a.bytes - b.live / b.bytes || (b.bytes - b.live) - (a.bytes - a.live) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const chosen: string[] = [];
  let liveBytes = 0;
  let unusedBytes = 0;
  for (const e of eligible) {
    if (!(unused > p.maxUnused * total)) break;
    chosen.push(e.id);
    liveBytes += e.live;
    unusedBytes += e.bytes - e.live;
    unused -= e.bytes - e.live;
    total -= e.bytes - e.live;
  }
  return { packs: chosen, liveBytes, unusedBytes };
}

/**
 * Marks older than the newest unblocked mark that is itself at least D old (§26.7 g): that one is the evidence the next
 * runs use; dropping older evidence only delays deletions, never allows one. A blocked run's mark (no pack, table or
 * delta candidates) is never that reference, so a blocked spell does not reset the clock of everything.
 */
export function marksToDelete(marks: { name: string; markedAtMs: number; blocked?: boolean }[], nowMs: number, p: GcParams): string[] {
  let newestOld = -Infinity;
  for (const m of marks) if (!m.blocked && m.markedAtMs <= nowMs - p.deleteAfterMs && m.markedAtMs > newestOld) newestOld = m.markedAtMs;
  return marks.filter((m) => m.markedAtMs < newestOld).map((m) => m.name).sort();
}
