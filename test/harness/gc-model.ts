// An in-memory model of a version-2 vault and of its actors (backups, forget, undelete, prune) driving the real GC decisions.
//
// Each actor advances one step at a time (one listing, one Put, one delete), so a scheduler can interleave them in any
// order and check the invariant (FORMAT.md §26.9) after every step. The decisions are the real ones: decide, sweepable,
// chooseRepack, marksToDelete (core/prune/decide.ts) and planExpired (core/prune/protocol.ts). What is modelled is the
// vault's objects and who writes or deletes them when — never the bytes.
import { chooseRepack, decide, generationName, GcSnapshot, GcVerdict, MarkFact, marksToDelete, sweepable } from '../../core/prune/decide';
import { GcParams, mayRelyOnExisting, planExpired } from '../../core/prune/protocol';
import { deltaStampMs, stampOf, v2names } from '../../core/repo/v2/names';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

const PAGES = 4;
const PAGES_PER_TABLE = 2;
const GROUPS = PAGES / PAGES_PER_TABLE;
const DISKS = 2;
const BLOCK_BYTES = 100;
const VALUES = ['a', 'b', 'c', 'd', 'e', null] as const; // page contents (one chunk per page); null = a hole

interface Rec { cid: string; hint: string }
interface Manifest { backupId: string; disk: number; tableIds: string[]; completedMs: number; content: (string | null)[] }
interface Plan { createdMs: number; blobCreatedMs: number; baseTables?: string[] | null; baseManifest?: string }
interface Staging { plan?: Plan; batches: Map<number, { createdMs: number; records: Map<number, Rec> }> }
interface Mark { markedAtMs: number; candidates: GcVerdict['candidates']; blocked: boolean }
/** A compacted index generation (§18.4): its shards (one holder entry per content ID) and, once complete, its covers. */
interface Generation { createdMs: number; complete: boolean; covers: Set<string>; entries: Map<string /* cid */, string /* packId */> }

/** The vault: what exists now. */
export class Vault {
  manifests = new Map<string, Manifest>();
  tombstones = new Map<string /* backupId */, { graceEndsMs: number; manifest: string; createdMs: number }>();
  tables = new Map<string, { createdMs: number; records: (Rec | null)[] }>();
  packs = new Map<string, { createdMs: number; blocks: Set<string> }>();
  deltas = new Map<string, { packId: string; createdMs: number; cids: string[] }>();
  staging = new Map<string /* backupId */, Staging>();
  marks = new Map<string, Mark>();
  generations = new Map<number, Generation>();

  /** The newest complete generation (§18.3), if any. */
  newestGeneration(): { gen: number; g: Generation } | undefined {
    let best: { gen: number; g: Generation } | undefined;
    for (const [gen, g] of this.generations) if (g.complete && (best === undefined || gen > best.gen)) best = { gen, g };
    return best;
  }
}

/**
 * Variants of the protocol: 'index-dedupe' is a legitimate writer (#15's, with the age rule); the others are broken on
 * purpose, to show the simulation finds what they break.
 */
export type Mutation = 'one-phase' | 'no-base-tables' | 'index-dedupe' | 'index-dedupe-unguarded' | 'table-reuse-unguarded'
  /** prune never compacts the index (#13's prune: deltas only) */
  | 'no-compaction'
  /** compaction keeps only packs the run's gather listed (not the packs created since): a holder's entries are dropped */
  | 'compact-listed-packs-only';

export interface Stats {
  manifests: number; backupsFailed: number; expired: number; forgets: number; undeletes: number; pruneRuns: number; blockedRuns: number;
  deleted: { manifests: number; tables: number; packs: number; deltas: number; stagingBlobs: number; marks: number; generations: number; coveredDeltas: number }; repacked: number;
  compactions: number;
}
export function emptyStats(): Stats {
  return { manifests: 0, backupsFailed: 0, expired: 0, forgets: 0, undeletes: 0, pruneRuns: 0, blockedRuns: 0,
    deleted: { manifests: 0, tables: 0, packs: 0, deltas: 0, stagingBlobs: 0, marks: 0, generations: 0, coveredDeltas: 0 }, repacked: 0, compactions: 0 };
}

type BackupPhase = 'choose' | 'plan' | 'batch' | 'tables' | 'check' | 'put' | 'done' | 'dead';
interface Backup {
  id: string; disk: number; phase: BackupPhase; legacyPlan: boolean; skewMs: number /* its clock − true time */;
  planCreatedMs: number; content: (string | null)[]; base?: { name: string; manifest: Manifest };
  batches: number[][]; batch: number; batchStep: 'start' | 'commit' | 'delta' | 'record';
  pending?: { packId?: string; blocks: string[]; records: Map<number, Rec> }; tableIds?: string[];
}
interface Prune {
  id: string; skewMs: number; nowMs: number; step: number; queue: (() => void)[];
  marks?: { name: string; fact: MarkFact; blocked: boolean }[];
  tombstones?: Map<string, { graceEndsMs: number; name: string }>;
  manifests?: { name: string; backupId: string; tableIds: string[] }[];
  staging?: GcSnapshot['staging']; stagingBlobs?: Map<string, string[]>;
  allTables?: GcSnapshot['allTables']; tables?: GcSnapshot['tables'];
  packs?: GcSnapshot['packs']; deltas?: GcSnapshot['deltas'];
  generation?: GcSnapshot['generation']; generations?: GcSnapshot['generations']; covered?: Set<string>;
}

export class Violation extends Error {}

/** One world: a vault, two disks whose pages change, the clock, and the actors in flight. */
export class World {
  readonly vault = new Vault();
  now = 1_000_000_000_000;
  readonly disks: (string | null)[][] = Array.from({ length: DISKS }, () => ['a', 'b', null, 'c']);
  readonly backups: Backup[] = [];
  readonly prunes: Prune[] = [];
  readonly log: string[] = [];
  private seq = 0;

  constructor(readonly params: GcParams, readonly mutations: ReadonlySet<Mutation> = new Set(), readonly stats: Stats = emptyStats()) {}

  private next(prefix: string): string { return `${prefix}${String(++this.seq).padStart(6, '0')}`; }
  /** A delta name as a writer makes it (§13): its own (skewed) clock's stamp; a fresh writerId keeps names unique. */
  private deltaName(writerClockMs: number): string { return v2names.delta(stampOf(new Date(writerClockMs)), (++this.seq).toString(16).padStart(16, '0')); }
  private note(s: string): void { this.log.push(`${((this.now - 1_000_000_000_000) / HOUR).toFixed(1)}h ${s}`); }

  // ---- environment ----------------------------------------------------------------------------------------------
  advanceClock(ms: number): void { this.now += ms; this.note(`clock +${(ms / HOUR).toFixed(2)}h`); }
  writeDisk(disk: number, page: number, value: number): void {
    this.disks[disk % DISKS][page % PAGES] = VALUES[value % VALUES.length];
  }

  // ---- forget / undelete -------------------------------------------------------------------------------------------
  forget(pick: number, graceMs: number): void {
    const names = [...this.vault.manifests.keys()].sort();
    if (names.length === 0) return;
    const name = names[pick % names.length];
    const m = this.vault.manifests.get(name)!;
    if (this.vault.tombstones.has(m.backupId)) return; // 409: the older tombstone stands
    this.vault.tombstones.set(m.backupId, { graceEndsMs: this.now + graceMs, manifest: name, createdMs: this.now });
    this.stats.forgets++;
    this.note(`forget ${m.backupId} grace ${(graceMs / HOUR).toFixed(1)}h`);
  }
  undelete(pick: number): void {
    const ids = [...this.vault.tombstones.keys()].sort();
    if (ids.length === 0) return;
    const id = ids[pick % ids.length];
    const t = this.vault.tombstones.get(id)!;
    if (!this.vault.manifests.has(t.manifest) || this.now >= t.graceEndsMs) return; // expired: refused
    this.vault.tombstones.delete(id);
    this.stats.undeletes++;
    this.note(`undelete ${id}`);
  }

  // ---- backups -----------------------------------------------------------------------------------------------------
  startBackup(disk: number, legacyPlan: boolean, skewMs = 0): void {
    const b: Backup = { id: this.next('B'), disk: disk % DISKS, phase: 'choose', legacyPlan, skewMs, planCreatedMs: 0, content: [], batches: [], batch: 0, batchStep: 'start' };
    this.backups.push(b);
  }
  activeBackups(): Backup[] { return this.backups.filter((b) => b.phase !== 'done' && b.phase !== 'dead'); }

  /** A crash of the backup's current activity: in-memory progress is lost; what was Put stays. */
  crashBackup(pick: number): void {
    const active = this.activeBackups();
    if (active.length === 0) return;
    const b = active[pick % active.length];
    if (b.phase === 'batch') { b.batchStep = 'start'; b.pending = undefined; }
    if (b.phase === 'check' || b.phase === 'put') b.phase = 'tables';
    this.note(`crash ${b.id} (${b.phase})`);
  }

  private fail(b: Backup, why: string, expired = false): void {
    b.phase = 'dead';
    if (expired) this.stats.expired++; else this.stats.backupsFailed++;
    this.note(`${b.id} fails: ${why}`);
  }

  private baseRecord(b: Backup, page: number): Rec | null | 'missing' {
    if (b.base === undefined) return null;
    const tableId = b.base.manifest.tableIds.find((t) => tableGroup(t) === Math.floor(page / PAGES_PER_TABLE));
    if (tableId === undefined) return null;
    const t = this.vault.tables.get(tableId);
    if (t === undefined) return 'missing';
    return t.records[page % PAGES_PER_TABLE];
  }

  private packHolds(packId: string, cid: string): boolean { return this.vault.packs.get(packId)?.blocks.has(cid) ?? false; }
  /** What a reader of the index (§18.3) finds for cid: the newest uncovered delta whose pack holds it, else the newest complete generation's entry. */
  private indexHolder(cid: string): string | undefined {
    const g = this.vault.newestGeneration();
    let best: string | undefined;
    for (const [name, d] of this.vault.deltas) if (!g?.g.covers.has(name) && d.cids.includes(cid) && this.packHolds(d.packId, cid) && (best === undefined || name > best)) best = name;
    if (best !== undefined) return this.vault.deltas.get(best)!.packId;
    const pk = g?.g.entries.get(cid);
    return pk !== undefined && this.packHolds(pk, cid) ? pk : undefined;
  }

  /** Advances one backup by up to `steps` steps (a quick backup runs many in a row), checking after each. */
  stepBackup(pick: number, steps: number, check: () => void): void {
    const active = this.activeBackups();
    if (active.length === 0) return;
    const b = active[pick % active.length];
    for (let i = 0; i < steps && b.phase !== 'done' && b.phase !== 'dead'; i++) { this.advance(b); check(); }
  }

  private advance(b: Backup): void {
    const v = this.vault;
    switch (b.phase) {
      case 'choose': {
        // The plan's time is read before the base is chosen (§26.3).
        b.planCreatedMs = this.now + b.skewMs; // the writer's clock
        b.content = [...this.disks[b.disk]];
        const mine = [...v.manifests.entries()].filter(([, m]) => m.disk === b.disk).sort((x, y) => y[1].completedMs - x[1].completedMs);
        const base = mine.find(([, m]) => !v.tombstones.has(m.backupId));
        if (base !== undefined) b.base = { name: base[0], manifest: base[1] };
        const changed = b.content.map((c, i) => (b.base === undefined ? c !== null : c !== b.base.manifest.content[i])).map((x, i) => (x ? i : -1)).filter((i) => i >= 0);
        const groups = new Map<number, number[]>();
        for (const p of changed) groups.set(Math.floor(p / PAGES_PER_TABLE), [...(groups.get(Math.floor(p / PAGES_PER_TABLE)) ?? []), p]);
        b.batches = [...groups.values()];
        b.phase = 'plan';
        this.note(`${b.id} chooses base ${b.base?.manifest.backupId ?? 'none'} on disk ${b.disk}, batches ${JSON.stringify(b.batches)}`);
        return;
      }
      case 'plan': {
        const st: Staging = v.staging.get(b.id) ?? { batches: new Map() };
        if (st.plan === undefined) {
          const baseTables = b.legacyPlan ? undefined : b.base === undefined ? null : [...b.base.manifest.tableIds];
          st.plan = { createdMs: b.planCreatedMs, blobCreatedMs: this.now, ...(baseTables !== undefined ? { baseTables } : {}), ...(b.base ? { baseManifest: b.base.name } : {}) };
        }
        v.staging.set(b.id, st);
        b.phase = b.batches.length > 0 ? 'batch' : 'tables';
        this.note(`${b.id} writes its plan`);
        return;
      }
      case 'batch': return this.advanceBatch(b);
      case 'tables': {
        const tableIds: string[] = [];
        const st = v.staging.get(b.id);
        if (st === undefined) return this.fail(b, 'its staging is gone');
        const changed = new Set(b.batches.flat());
        for (let g = 0; g < GROUPS; g++) {
          const pages = [...Array(PAGES_PER_TABLE).keys()].map((i) => g * PAGES_PER_TABLE + i);
          if (b.base !== undefined && !pages.some((p) => changed.has(p))) {
            const keep = b.base.manifest.tableIds.find((t) => tableGroup(t) === g);
            if (keep !== undefined) tableIds.push(keep);
            continue;
          }
          const records: (Rec | null)[] = [];
          for (const p of pages) {
            if (changed.has(p)) {
              const batch = b.batches.findIndex((x) => x.includes(p));
              const rec = st.batches.get(batch)?.records.get(p);
              if (st.batches.get(batch) === undefined) return this.fail(b, `batch record ${batch} is gone`);
              records.push(rec ?? null);
            } else {
              const r = this.baseRecord(b, p);
              if (r === 'missing') return this.fail(b, 'a base table is gone');
              records.push(r);
            }
          }
          if (records.every((r) => r === null)) continue;
          let id = `t${g}:${JSON.stringify(records)}`;
          const there = v.tables.get(id);
          // 409: the same table is there. Rely on it only if it is not older than the plan by more than L (§26.8):
          // an older one may be a candidate of a mark ≥ D old that a prune deletes between our check and our Put.
          const baseTables = b.base?.manifest.tableIds ?? [];
          if (there !== undefined && !baseTables.includes(id) && !this.mutations.has('table-reuse-unguarded') && !mayRelyOnExisting(there.createdMs, b.planCreatedMs, this.params)) {
            id = `${id}|${b.id}`; // the alternate name: tag("table|" + sha256 + "|" + nameTag)
          }
          if (!v.tables.has(id)) v.tables.set(id, { createdMs: this.now, records });
          tableIds.push(id);
        }
        b.tableIds = tableIds;
        b.phase = 'check';
        this.note(`${b.id} writes its tables`);
        return;
      }
      case 'check': {
        for (const t of b.tableIds!) {
          const table = v.tables.get(t);
          if (table === undefined) return this.fail(b, `table ${t} is gone (BackupIncomplete)`);
          for (const r of table.records) {
            if (r === null) continue;
            if (!this.packHolds(r.hint, r.cid) && this.indexHolder(r.cid) === undefined) return this.fail(b, `pack ${r.hint} of ${r.cid} was removed by prune (BackupIncomplete)`);
          }
        }
        b.phase = 'put';
        this.note(`${b.id} checks pass`);
        return;
      }
      case 'put': {
        // The expiry check sits right before the Put (§26.8): one step.
        if (planExpired(b.planCreatedMs, this.now + b.skewMs, this.params)) return this.fail(b, 'BackupExpired at finalize', true);
        const name = `m${b.disk}:${String(this.now).padStart(15, '0')}:${b.id}`;
        v.manifests.set(name, { backupId: b.id, disk: b.disk, tableIds: b.tableIds!, completedMs: this.now, content: b.content });
        b.phase = 'done';
        this.stats.manifests++;
        this.note(`${b.id} puts manifest ${name}`);
        return;
      }
      default: return;
    }
  }

  private advanceBatch(b: Backup): void {
    const v = this.vault;
    const st = v.staging.get(b.id);
    if (st === undefined) return this.fail(b, 'its staging is gone');
    switch (b.batchStep) {
      case 'start': {
        if (planExpired(b.planCreatedMs, this.now + b.skewMs, this.params)) return this.fail(b, 'BackupExpired at a batch', true);
        if (st.batches.has(b.batch)) return this.nextBatch(b); // done before a crash
        const records = new Map<number, Rec>();
        const blocks: string[] = [];
        let packId: string | undefined;
        for (const p of b.batches[b.batch]) {
          const cid = b.content[p];
          if (cid === null) continue;
          const base = this.baseRecord(b, p);
          if (base === 'missing') return this.fail(b, 'a base table is gone');
          if (base !== null && base.cid === cid) { records.set(p, base); continue; }
          const earlier = [...records.values()].find((r) => r.cid === cid && r.hint === packId);
          if (earlier !== undefined) { records.set(p, earlier); continue; }
          if (this.mutations.has('index-dedupe') || this.mutations.has('index-dedupe-unguarded')) {
            // #15's writer: dedupe against the whole index, relying on an old pack only when allowed (§26.8 (c)).
            const holder = this.indexHolder(cid);
            const young = holder !== undefined && mayRelyOnExisting(v.packs.get(holder)!.createdMs, b.planCreatedMs, this.params);
            if (holder !== undefined && (young || this.mutations.has('index-dedupe-unguarded'))) { records.set(p, { cid, hint: holder }); continue; }
          }
          packId ??= this.next('P');
          blocks.push(cid);
          records.set(p, { cid, hint: packId });
        }
        b.pending = { packId, blocks, records };
        b.batchStep = packId !== undefined ? 'commit' : 'record';
        this.note(`${b.id} batch ${b.batch} starts${packId ? ` (pack ${packId})` : ''}`);
        return;
      }
      case 'commit': {
        v.packs.set(b.pending!.packId!, { createdMs: this.now, blocks: new Set(b.pending!.blocks) });
        b.batchStep = 'delta';
        this.note(`${b.id} commits ${b.pending!.packId}`);
        return;
      }
      case 'delta': {
        v.deltas.set(this.deltaName(this.now + b.skewMs), { packId: b.pending!.packId!, createdMs: this.now, cids: [...b.pending!.blocks] });
        b.batchStep = 'record';
        return;
      }
      case 'record': {
        if (!st.batches.has(b.batch)) st.batches.set(b.batch, { createdMs: this.now, records: b.pending!.records }); // else the first write wins
        this.note(`${b.id} batch ${b.batch} record`);
        return this.nextBatch(b);
      }
    }
  }
  private nextBatch(b: Backup): void {
    b.batch++;
    b.batchStep = 'start';
    b.pending = undefined;
    if (b.batch >= b.batches.length) b.phase = 'tables';
  }

  // ---- prune -------------------------------------------------------------------------------------------------------
  startPrune(skewMs = 0): void { this.prunes.push({ id: this.next('R'), skewMs, nowMs: 0, step: 0, queue: [] }); }
  killPrune(pick: number): void {
    if (this.prunes.length === 0) return;
    const [r] = this.prunes.splice(pick % this.prunes.length, 1);
    this.note(`prune ${r.id} killed at step ${r.step}`);
  }
  /** Advances one prune by one step, through its decision (gather), or to its end (all), checking after each step. */
  stepPrune(pick: number, mode: 'step' | 'gather' | 'all', check: () => void): void {
    if (this.prunes.length === 0) return;
    const r = this.prunes[pick % this.prunes.length];
    do {
      const done = this.advancePrune(r);
      check();
      if (done) { this.prunes.splice(this.prunes.indexOf(r), 1); return; }
    } while (mode === 'all' || (mode === 'gather' && r.step <= 8));
  }

  private advancePrune(r: Prune): boolean {
    const v = this.vault;
    const L = this.params.abandonAfterMs;
    switch (r.step++) {
      case 0: // the clock once, then marks
        r.nowMs = this.now + r.skewMs; // the prune's clock
        r.marks = [...v.marks.entries()].map(([name, m]) => ({ name, fact: { markedAtMs: m.markedAtMs, candidates: m.candidates }, blocked: m.blocked }));
        this.stats.pruneRuns++;
        this.note(`prune ${r.id} starts, now ${(r.nowMs - 1_000_000_000_000) / HOUR}h`);
        return false;
      case 1:
        r.tombstones = new Map([...v.tombstones.entries()].map(([id, t]) => [id, { graceEndsMs: t.graceEndsMs, name: `forgotten/${id}` }]));
        return false;
      case 2:
        r.manifests = [...v.manifests.entries()].map(([name, m]) => ({ name, backupId: m.backupId, tableIds: [...m.tableIds] }));
        return false;
      case 3: {
        r.staging = [];
        r.stagingBlobs = new Map();
        const listed = new Set(r.manifests!.map((m) => m.backupId));
        for (const [id, st] of v.staging) {
          const blobs = [...st.batches.keys()].map((n) => `staging/${id}/batches/${n}`);
          if (st.plan) blobs.push(`staging/${id}/plan`);
          r.stagingBlobs.set(id, blobs);
          const times = [...st.batches.values()].map((x) => x.createdMs).concat(st.plan ? [st.plan.blobCreatedMs] : []);
          let baseTableIds: string[] | null | 'unknown' | undefined;
          if (st.plan) {
            if (this.mutations.has('no-base-tables')) baseTableIds = null; // prune ignores what in-flight backups reuse
            else if (st.plan.baseTables !== undefined) baseTableIds = st.plan.baseTables;
            else if (st.plan.baseManifest === undefined) baseTableIds = null;
            else baseTableIds = v.manifests.get(st.plan.baseManifest)?.tableIds ?? 'unknown'; // a plan from before #13: read its base
          }
          r.staging.push({
            nameTag: id, createdMs: Math.min(...times), hasManifest: listed.has(id) || r.tombstones!.has(id),
            ...(st.plan ? { planCreatedMs: st.plan.createdMs } : {}), ...(baseTableIds !== undefined ? { baseTableIds } : {}),
            contentIds: [...st.batches.values()].flatMap((x) => [...x.records.values()].map((rec) => rec.cid)),
            blobs: blobs.map((name) => ({ name, bytes: 1000 })),
          });
        }
        return false;
      }
      case 4:
        r.allTables = new Map([...v.tables.entries()].map(([id, t]) => [id, { createdMs: t.createdMs, bytes: 100 + 64 * t.records.length }]));
        r.tables = new Map([...v.tables.entries()].map(([id, t]) => [id, { createdMs: t.createdMs, contentIds: t.records.filter((x): x is Rec => x !== null).map((x) => x.cid) }]));
        return false;
      case 5:
        r.packs = new Map([...v.packs.entries()].map(([id, p]) => [id, { createdMs: p.createdMs, bytes: BLOCK_BYTES * p.blocks.size + 40 }]));
        return false;
      case 6: { // index/c/: every generation listed, the newest complete one read (#15)
        r.generations = [...v.generations.entries()].map(([gen, g]) => ({ gen, createdMs: g.createdMs, blobs: [{ name: `index/c/${generationName(gen)}/00.pwx`, bytes: 100 }] }));
        const newest = v.newestGeneration();
        r.covered = new Set(newest?.g.covers ?? []);
        if (newest !== undefined) r.generation = { gen: newest.gen, entries: [...newest.g.entries].map(([contentId, packId]) => ({ contentId, packId, offset: 0, storedLength: BLOCK_BYTES })) };
        return false;
      }
      case 7:
        r.deltas = [...v.deltas.entries()].map(([name, d]) => (r.covered!.has(name)
          ? { name, packId: '', createdMs: d.createdMs, bytes: 16 + 64 * d.cids.length, entries: [], covered: true }
          : {
            name, packId: d.packId, createdMs: d.createdMs, bytes: 16 + 64 * d.cids.length,
            entries: d.cids.map((contentId, i) => ({ contentId, offset: i * BLOCK_BYTES, storedLength: BLOCK_BYTES })),
          }));
        return false;
      case 8: {
        this.planSweep(r, L);
        return false;
      }
      default: {
        const op = r.queue.shift();
        if (op === undefined) return true;
        op();
        return r.queue.length === 0;
      }
    }
  }

  private planSweep(r: Prune, L: number): void {
    const v = this.vault;
    const p = this.params;
    const snapshot: GcSnapshot = {
      nowMs: r.nowMs,
      manifests: r.manifests!.map((m) => ({ name: m.name, backupId: m.backupId, tableIds: m.tableIds, ...(r.tombstones!.has(m.backupId) ? { graceEndsMs: r.tombstones!.get(m.backupId)!.graceEndsMs } : {}) })),
      tombstonesWithoutManifest: [...r.tombstones!.entries()].filter(([id]) => !r.manifests!.some((m) => m.backupId === id)).map(([, t]) => t.name),
      tables: r.tables!, allTables: r.allTables!, packs: r.packs!, deltas: r.deltas!, staging: r.staging!,
      ...(r.generation ? { generation: r.generation } : {}), generations: r.generations!,
    };
    const verdict = decide(snapshot, p);
    if (verdict.blocked) this.stats.blockedRuns++;
    const marks = r.marks!.map((m) => m.fact);
    const sweep = this.mutations.has('one-phase') ? verdict.candidates : sweepable(verdict, marks, r.nowMs, p);
    const q = r.queue;
    const del = (what: keyof Stats['deleted'], name: string, f: () => boolean) => q.push(() => { if (f()) { this.stats.deleted[what]++; this.note(`prune ${r.id} deletes ${name}`); } });
    // a. grace-ended manifests, then their tombstones; orphan tombstones
    for (const name of verdict.graceEndedManifests) {
      const id = r.manifests!.find((m) => m.name === name)!.backupId;
      del('manifests', name, () => v.manifests.delete(name));
      q.push(() => { v.tombstones.delete(id); });
    }
    for (const name of snapshot.tombstonesWithoutManifest) q.push(() => { v.tombstones.delete(name.slice('forgotten/'.length)); });
    // b. tables, c. packs (then their deltas), d. orphan deltas, e. staging (batch records, plan last)
    for (const t of sweep.tables) del('tables', t, () => v.tables.delete(t));
    const deltaDone = new Set<string>();
    for (const pk of sweep.packs) {
      del('packs', pk, () => v.packs.delete(pk));
      for (const d of r.deltas!.filter((x) => x.packId === pk)) { deltaDone.add(d.name); del('deltas', d.name, () => v.deltas.delete(d.name)); }
    }
    for (const d of sweep.deltas) if (!deltaDone.has(d)) del(r.covered!.has(d) ? 'coveredDeltas' : 'deltas', d, () => v.deltas.delete(d));
    // d′. generations below the newest complete one: covers first (it becomes incomplete), then its shards
    for (const gen of sweep.generations) {
      const n = Number(gen);
      q.push(() => { const g = v.generations.get(n); if (g) g.complete = false; });
      del('generations', `index/c/${gen}/`, () => v.generations.delete(n));
    }
    for (const id of sweep.staging) {
      for (const blob of r.stagingBlobs!.get(id) ?? []) {
        del('stagingBlobs', blob, () => {
          const st = v.staging.get(id);
          if (st === undefined) return false;
          if (blob.endsWith('/plan')) { const had = st.plan !== undefined; delete st.plan; if (st.batches.size === 0) v.staging.delete(id); return had; }
          const had = st.batches.delete(Number(blob.split('/').pop()));
          if (st.plan === undefined && st.batches.size === 0) v.staging.delete(id);
          return had;
        });
      }
    }
    // f. repack: live holder blocks of the chosen packs into one new pack, commit, then its delta
    const repack = chooseRepack(verdict, p);
    if (repack.packs.length > 0) {
      const blocks = [...verdict.holders.entries()].filter(([, pk]) => repack.packs.includes(pk)).map(([cid]) => cid);
      const newPack = this.next('P');
      q.push(() => { v.packs.set(newPack, { createdMs: this.now, blocks: new Set(blocks) }); this.stats.repacked += repack.packs.length; this.note(`prune ${r.id} repacks ${repack.packs.join(',')} into ${newPack}`); });
      q.push(() => { v.deltas.set(this.deltaName(this.now + r.skewMs), { packId: newPack, createdMs: this.now, cids: blocks }); });
    }
    // g. the mark, then old marks
    const deleted = new Set([...sweep.packs, ...sweep.tables, ...sweep.deltas, ...sweep.staging, ...sweep.generations]);
    const candidates: GcVerdict['candidates'] = {
      packs: [...new Set([...verdict.candidates.packs, ...repack.packs])].filter((x) => !deleted.has(x)),
      tables: verdict.candidates.tables.filter((x) => !deleted.has(x)),
      deltas: verdict.candidates.deltas.filter((x) => !deleted.has(x)),
      staging: verdict.candidates.staging.filter((x) => !deleted.has(x)),
      generations: verdict.candidates.generations.filter((x) => !deleted.has(x)),
    };
    const markName = `gc/marks/${String(r.nowMs).padStart(15, '0')}-${r.id}`;
    q.push(() => { v.marks.set(markName, { markedAtMs: r.nowMs, candidates, blocked: verdict.blocked !== undefined }); });
    const all = [...r.marks!.map((m) => ({ name: m.name, markedAtMs: m.fact.markedAtMs, blocked: m.blocked })), { name: markName, markedAtMs: r.nowMs, blocked: verdict.blocked !== undefined }];
    for (const name of marksToDelete(all, r.nowMs, p)) del('marks', name, () => v.marks.delete(name));
    // h. compaction (§26.7 h, §26.11), when a listed delta it did not delete is uncovered or it repacked
    const gone = new Set(sweep.packs);
    const uncovered = r.deltas!.some((x) => !x.covered && !sweep.deltas.includes(x.name) && !gone.has(x.packId));
    if (!verdict.blocked && !this.mutations.has('no-compaction') && (uncovered || repack.packs.length > 0)) this.queueCompaction(r, gone);
    this.note(`prune ${r.id} decides: sweep ${JSON.stringify(sweep)}, repack ${JSON.stringify(repack.packs)}${verdict.blocked ? `, blocked: ${verdict.blocked}` : ''}`);
  }

  /**
   * compactIndex as §18.3 orders it, one step per listing or Put: the newest complete generation and index/d/, then
   * packs/, then the shards (an incomplete generation, numbered above every one present), then covers last.
   */
  private queueCompaction(r: Prune, gone: Set<string>): void {
    const v = this.vault;
    let base: { gen: number; g: Generation } | undefined;
    let deltas: [string, { packId: string; createdMs: number; cids: string[] }][] = [];
    let packs = new Map<string, number>();
    let gen = 0;
    const listedAtGather = new Set(r.packs!.keys());
    r.queue.push(() => { base = v.newestGeneration(); deltas = [...v.deltas.entries()]; });
    r.queue.push(() => { packs = new Map([...v.packs.entries()].map(([id, pk]) => [id, pk.createdMs])); });
    r.queue.push(() => {
      const keep = (pk: string) => packs.has(pk) && !gone.has(pk) && (!this.mutations.has('compact-listed-packs-only') || listedAtGather.has(pk));
      // holder per content ID (§26.4): uncovered deltas by (Creation-Time, stamp, packId), then the generation's entry
      const best = new Map<string, { pk: string; created: number; stamp: number }>();
      for (const [name, d] of deltas) {
        if (base?.g.covers.has(name) || !keep(d.packId)) continue;
        const stamp = deltaStampMs(name) ?? -Infinity;
        for (const cid of d.cids) {
          const cur = best.get(cid);
          const created = packs.get(d.packId)!;
          if (cur === undefined || created > cur.created || (created === cur.created && (stamp > cur.stamp || (stamp === cur.stamp && d.packId > cur.pk)))) best.set(cid, { pk: d.packId, created, stamp });
        }
      }
      const entries = new Map([...best].map(([cid, x]) => [cid, x.pk]));
      for (const [cid, pk] of base?.g.entries ?? []) if (!entries.has(cid) && keep(pk)) entries.set(cid, pk);
      gen = Math.max(0, ...v.generations.keys()) + 1;
      v.generations.set(gen, { createdMs: this.now, complete: false, covers: new Set(deltas.map(([name]) => name)), entries });
      this.note(`prune ${r.id} writes the shards of generation ${gen} (${entries.size} entries over ${deltas.length} deltas)`);
    });
    r.queue.push(() => {
      const g = v.generations.get(gen);
      if (g === undefined) return;
      g.createdMs = this.now;
      g.complete = true;
      this.stats.compactions++;
      this.note(`prune ${r.id} completes generation ${gen}`);
    });
  }

  // ---- the invariant (FORMAT.md §26.9) -----------------------------------------------------------------------------
  checkInvariant(): void {
    const v = this.vault;
    // the index as §18.3 defines it: the newest complete generation and the deltas it does not cover
    const indexed = new Map<string, boolean>();
    const g = v.newestGeneration();
    for (const [name, d] of v.deltas) if (!g?.g.covers.has(name)) for (const cid of d.cids) if (this.packHolds(d.packId, cid)) indexed.set(cid, true);
    for (const [cid, pk] of g?.g.entries ?? []) if (this.packHolds(pk, cid)) indexed.set(cid, true);
    for (const [name, m] of v.manifests) {
      const t = v.tombstones.get(m.backupId);
      if (t !== undefined && this.now >= t.graceEndsMs) continue; // not kept
      for (const id of m.tableIds) {
        const table = v.tables.get(id);
        if (table === undefined) throw new Violation(`kept manifest ${name} names table ${id}, which is gone`);
        for (const r of table.records) {
          if (r === null || this.packHolds(r.hint, r.cid) || indexed.get(r.cid)) continue;
          throw new Violation(`kept manifest ${name}: chunk ${r.cid} (hint ${r.hint}) has no existing pack holding it`);
        }
      }
    }
  }
}

function tableGroup(tableId: string): number { return Number(tableId.slice(1, tableId.indexOf(':'))); }

/** One scheduler action, interpreted against the world's current state (so every generated sequence is valid). */
export type Action =
  | { kind: 'backup'; pick: number; steps: number } | { kind: 'start'; disk: number; legacy: boolean; skewMs?: number } | { kind: 'crash'; pick: number }
  | { kind: 'prune'; pick: number; mode: 'step' | 'gather' | 'all' } | { kind: 'pruneStart'; skewMs?: number } | { kind: 'pruneKill'; pick: number }
  | { kind: 'forget'; pick: number; graceMs: number } | { kind: 'undelete'; pick: number }
  | { kind: 'write'; disk: number; page: number; value: number } | { kind: 'clock'; ms: number };

/** Runs a sequence of actions, checking the invariant after every step; throws Violation with the log's tail. */
export function runScenario(actions: Action[], params: GcParams, mutations: ReadonlySet<Mutation> = new Set(), stats?: Stats): World {
  const w = new World(params, mutations, stats);
  const check = () => w.checkInvariant();
  try {
    for (const x of actions) {
      switch (x.kind) {
        case 'backup': w.stepBackup(x.pick, x.steps, check); break;
        case 'start': if (w.activeBackups().length < 3) w.startBackup(x.disk, x.legacy, x.skewMs ?? 0); break;
        case 'crash': w.crashBackup(x.pick); break;
        case 'prune': w.stepPrune(x.pick, x.mode, check); break;
        case 'pruneStart': if (w.prunes.length < 2) w.startPrune(x.skewMs ?? 0); break;
        case 'pruneKill': w.killPrune(x.pick); break;
        case 'forget': w.forget(x.pick, x.graceMs); break;
        case 'undelete': w.undelete(x.pick); break;
        case 'write': w.writeDisk(x.disk, x.page, x.value); break;
        case 'clock': w.advanceClock(x.ms); break;
      }
      check();
    }
  } catch (err) {
    if (err instanceof Violation) err.message += `\n  last steps:\n    ${w.log.slice(-60).join('\n    ')}`;
    throw err;
  }
  return w;
}
