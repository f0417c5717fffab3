/**
 * `pagewise prune` (docs/FORMAT.md §26): gather → decide → sweepable → sweep → repack → write this
 * run's mark → delete marks no longer needed → compact the index (#15). A dry run gathers and decides
 * only, and says what a real run would delete now.
 */
import { randomBytes } from 'node:crypto';
import { systemClock } from '../clock';
import { PagewiseError } from '../errors';
import { Vault } from '../repo/vault';
import { compactIndex, CompactReport } from '../repo/v2/index-compaction';
import { openKeyring } from '../repo/v2/keyring';
import { readVaultMarker } from '../repo/v2/marker';
import { v2names } from '../repo/v2/names';
import { chooseRepack, decide, GcVerdict, MarkFact, marksToDelete, sweepable } from './decide';
import { gather, Gathered } from './gather';
import { problemOf } from './gather-content';
import { markName, PruneMark, writeMark } from './marks';
import type { PruneOptions, PruneReport } from './prune-types';
import { DEFAULT_ABANDON_AFTER_MS, GcParams, resolveGcParams } from './protocol';
import { repackPacks, RepackResult } from './repack';
import { Deleter, emptyTally, sweep, SweepHooks } from './sweep';

export type { PruneOptions, PruneReport, PruneStep } from './prune-types';

export async function pruneVault(o: PruneOptions): Promise<PruneReport> {
  const params = resolveGcParams(o.params);
  requireWritersLimit(params);
  const clock = o.clock ?? systemClock;
  const vault = Vault.open(o.vault);
  const marker = await readVaultMarker(vault);
  if (marker.version !== 2) throw new PagewiseError('BadInput', `${vault.display} is a version-1 vault: prune works on a version-2 vault; run pagewise upgrade first`);
  const keyring = await openKeyring(vault, marker, o.userKey);
  const pruneId = randomBytes(8).toString('hex');
  const nowMs = clock(); // once, before the first listing (§26.1): every decision of the run uses it
  const hooks: SweepHooks = { abortSignal: o.abortSignal, onProgress: o.onProgress, beforeMutation: o.beforeMutation };

  const g = await gather(vault, keyring, { nowMs, params, minGraceMs: o.minGraceMs, abortSignal: o.abortSignal });
  const v = decide(g.snapshot, params);
  const now = sweepable(v, g.marks.map((m) => ({ markedAtMs: m.markedAtMs, candidates: m.body.candidates })), nowMs, params);
  if (v.liveWithoutHolder.length > 0) g.problems.push(`${v.liveWithoutHolder.length} content IDs kept backups name are in no existing pack the index knows (damage: verify --read-data names the backups)`);
  const base = { pruneId, startedAt: new Date(nowMs).toISOString(), ...(v.blocked ? { blocked: v.blocked } : {}), problems: g.problems };

  if (o.dryRun) {
    return {
      ...base,
      dryRun: true,
      completedAt: new Date(clock()).toISOString(),
      kept: keptOf(v),
      deleted: emptyTally().deleted,
      pending: pendingOf(g, v, now, [], nowMs, params),
      repacked: { packs: 0, newPacks: 0, bytesCopied: 0 },
      bytesReclaimed: 0,
      ...packBytesAfter(g, v, new Set(), new Set(), undefined, 0),
      locked: [],
      wouldDelete: { manifests: v.graceEndedManifests, tables: now.tables, packs: now.packs, staging: now.staging, deltas: now.deltas, generations: now.generations },
      index: null,
    };
  }

  const d = new Deleter(vault, emptyTally(), hooks);
  await sweep(d, g, v, now, hooks);
  const lockedNames = new Set(d.tally.locked.map((l) => l.name));
  const packsGone = new Set(now.packs.filter((p) => !lockedNames.has(v2names.pack(p))));

  // f. repack: the chosen packs' holder blocks go into new packs; the sources join this run's mark.
  const choice = o.repack === false || v.blocked ? { packs: [] as string[] } : chooseRepack(v, params);
  const sources = choice.packs.filter((p) => !packsGone.has(p));
  let repacked: RepackResult | undefined;
  let newPackBytes = 0;
  if (sources.length > 0) {
    o.onProgress?.('repack', 0, sources.length);
    const chosen = new Set(sources);
    repacked = await repackPacks(vault, keyring, sources, (c) => chosen.has(v.holders.get(c) ?? ''), { abortSignal: o.abortSignal, beforeMutation: o.beforeMutation });
    for (const p of repacked.newPacks) newPackBytes += (await vault.properties(v2names.pack(p), { abortSignal: o.abortSignal })).contentLength;
    o.onProgress?.('repack', sources.length, sources.length);
  }

  // g. this run's mark: its candidates (those it deleted left out) and its repack's sources; then old marks.
  const stillThere = (list: string[], nameOf: (x: string) => string, swept: string[]) => {
    const sweptSet = new Set(swept);
    return list.filter((x) => !sweptSet.has(x) || lockedNames.has(nameOf(x)));
  };
  const stagingSwept = new Set(now.staging);
  const sourceSet = new Set(sources);
  const body: PruneMark = {
    format: 'pagewise-prune-mark', version: 2, pruneId, markedAt: new Date(nowMs).toISOString(), abandonAfterMs: params.abandonAfterMs, deleteAfterMs: params.deleteAfterMs,
    candidates: {
      packs: [...new Set([...stillThere(v.candidates.packs, v2names.pack, now.packs), ...sources])],
      tables: stillThere(v.candidates.tables, v2names.table, now.tables),
      // A repack source's deltas go with it: a kill between deleting the pack and its delta must not restart the delta's wait.
      deltas: [...new Set([...stillThere(v.candidates.deltas, (x) => x, now.deltas), ...g.snapshot.deltas.filter((x) => sourceSet.has(x.packId)).map((x) => x.name)])],
      staging: v.candidates.staging.filter((t) => !stagingSwept.has(t) || d.tally.locked.some((l) => l.name.startsWith(v2names.stagingPrefix(t)))),
      generations: v.candidates.generations.filter((x) => !now.generations.includes(x) || d.tally.locked.some((l) => l.name.startsWith(`index/c/${x}/`))),
    },
    ...(v.blocked !== undefined ? { blocked: true as const } : {}),
  };
  const mark = markName(new Date(nowMs), pruneId);
  o.onProgress?.('mark', 0, 1);
  await o.beforeMutation?.('mark', mark);
  await writeMark(vault, keyring, body);
  o.onProgress?.('mark', 1, 1);
  const facts = [...g.marks.map((m) => ({ name: m.name, markedAtMs: m.markedAtMs, blocked: m.body.blocked === true })), { name: mark, markedAtMs: nowMs, blocked: body.blocked === true }];
  const oldMarks = marksToDelete(facts, nowMs, params).filter((n) => n !== mark);
  const markBytes = new Map(g.marks.map((m) => [m.name, m.bytes]));
  for (const [k, name] of oldMarks.entries()) {
    o.onProgress?.('marks', k, oldMarks.length);
    if ((await d.delete('marks', name, markBytes.get(name) ?? 0)) === 'deleted') d.tally.deleted.marks++;
  }

  // h. compaction (§26.7 h, §26.11): after the mark, so a failed compaction loses no evidence. keepPack drops only what
  // this run deleted — a pack created after the gather is not in its listing but may be a holder.
  let index: CompactReport | null = null;
  if (!v.blocked && ((repacked?.deltas.length ?? 0) > 0 || hasUncoveredDelta(g, d.tally, now.deltas, packsGone))) {
    o.onProgress?.('index', 0, 1);
    await o.beforeMutation?.('index', 'index/c/');
    try {
      index = await compactIndex(vault, keyring, { keepPack: (p) => !packsGone.has(p), scratchDir: o.scratchDir, abortSignal: o.abortSignal });
      for (const u of index.deltasUnreadable) g.problems.push(`the index delta ${u.delta} is not compacted (it stays a delta): ${u.why}`);
    } catch (err) {
      // A finding (another prune compacting the same generation number, a damaged generation): the run's deletions
      // and mark stand; the next run compacts. Transient errors and bugs propagate.
      g.problems.push(`the index was not compacted: ${problemOf(err)}`);
    }
    o.onProgress?.('index', 1, 1);
  }

  return {
    ...base,
    dryRun: false,
    mark,
    completedAt: new Date(clock()).toISOString(),
    kept: keptOf(v),
    deleted: d.tally.deleted,
    pending: pendingOf(g, v, now, [{ markedAtMs: nowMs, candidates: body.candidates }], nowMs, params, sources),
    repacked: { packs: repacked ? sources.length : 0, newPacks: repacked?.newPacks.length ?? 0, bytesCopied: repacked?.bytesCopied ?? 0 },
    bytesReclaimed: d.tally.bytesReclaimed,
    ...packBytesAfter(g, v, packsGone, new Set(sources), repacked, newPackBytes),
    locked: d.tally.locked,
    index,
  };
}

/** Whether a delta this run listed, and did not delete, is not covered by the newest complete generation. */
function hasUncoveredDelta(g: Gathered, tally: { locked: { name: string }[] }, sweptDeltas: string[], packsGone: Set<string>): boolean {
  const locked = new Set(tally.locked.map((l) => l.name));
  const swept = new Set(sweptDeltas.filter((x) => !locked.has(x)));
  return g.snapshot.deltas.some((x) => !x.covered && !swept.has(x.name) && !(packsGone.has(x.packId) && !locked.has(x.name)));
}

function keptOf(v: GcVerdict): PruneReport['kept'] {
  return { manifests: v.keptManifests.length, packs: new Set(v.holders.values()).size, tables: v.liveTables.size };
}

/**
 * Candidates (and repack sources) not deleted this run, their bytes, and when the earliest of them may
 * go: D after the first mark that holds it (this run's, when written, holds them all).
 */
function pendingOf(g: Gathered, v: GcVerdict, now: GcVerdict['candidates'], extra: MarkFact[], nowMs: number, p: GcParams, sources: string[] = []): PruneReport['pending'] {
  const notNow = (list: string[], swept: string[]) => {
    const s = new Set(swept);
    return list.filter((x) => !s.has(x));
  };
  const packs = [...new Set([...notNow(v.candidates.packs, now.packs), ...sources])];
  const tables = notNow(v.candidates.tables, now.tables);
  const staging = notNow(v.candidates.staging, now.staging);
  const s = g.snapshot;
  const stagingBytes = new Map(s.staging.map((x) => [x.nameTag, x.blobs.reduce((n, b) => n + b.bytes, 0)]));
  const bytes = packs.reduce((n, x) => n + (s.packs.get(x)?.bytes ?? 0), 0) + tables.reduce((n, x) => n + (s.allTables.get(x)?.bytes ?? 0), 0) + staging.reduce((n, x) => n + (stagingBytes.get(x) ?? 0), 0);
  const first = new Map<string, number>();
  for (const m of [...g.marks.map((x) => ({ markedAtMs: x.markedAtMs, candidates: x.body.candidates })), ...extra]) {
    for (const [kind, list] of [['p', m.candidates.packs], ['t', m.candidates.tables], ['s', m.candidates.staging]] as const) {
      for (const x of list) first.set(`${kind}${x}`, Math.min(first.get(`${kind}${x}`) ?? Infinity, m.markedAtMs));
    }
  }
  let eligible = Infinity;
  const keys = [...packs.map((x) => `p${x}`), ...tables.map((x) => `t${x}`), ...staging.map((x) => `s${x}`)];
  for (const k of keys) eligible = Math.min(eligible, (first.get(k) ?? nowMs) + p.deleteAfterMs);
  return { packs: packs.length, tables: tables.length, staging: staging.length, bytes, ...(Number.isFinite(eligible) ? { eligibleAt: new Date(eligible).toISOString() } : {}) };
}

/** Pack bytes after the run: every pack left, and of them the bytes no live block fills (a repacked source is all unused: its blocks have a newer holder). */
function packBytesAfter(g: Gathered, v: GcVerdict, gone: Set<string>, repackedSources: Set<string>, repacked: RepackResult | undefined, newPackBytes: number): { bytesUnused: number; bytesTotal: number } {
  let total = newPackBytes;
  let unused = newPackBytes - (repacked?.bytesCopied ?? 0);
  for (const [packId, { bytes }] of g.snapshot.packs) {
    if (gone.has(packId)) continue;
    total += bytes;
    unused += repackedSources.has(packId) ? bytes : bytes - (v.packUse.get(packId)?.liveBytes ?? 0);
  }
  return { bytesUnused: unused, bytesTotal: total };
}

/**
 * Writers expire their plans after the default L (nothing in the vault records another value): a prune
 * with a shorter L would count a backup that may still finalize as abandoned and sweep what it relies on.
 * A longer L is only more careful.
 */
function requireWritersLimit(p: GcParams): void {
  if (p.abandonAfterMs < DEFAULT_ABANDON_AFTER_MS) {
    throw new PagewiseError('BadInput', `the abandonment limit (${p.abandonAfterMs} ms) may not be shorter than the ${DEFAULT_ABANDON_AFTER_MS} ms after which backups stop writing (docs/FORMAT.md §26.1)`);
  }
}
