// Property-based simulation of the GC protocol (FORMAT.md §26): random interleavings of backups, crashes, clock jumps,
// forgets, undeletes and prune steps, the invariant (§26.9) checked after every step, with the real decision code.
import fc from 'fast-check';
import { DEFAULT_GC_PARAMS, GcParams } from '../core/prune/protocol';
import { huntingScenarios, scenarios } from './harness/gc-actions';
import { Action, DAY, emptyStats, HOUR, Mutation, runScenario, Violation } from './harness/gc-model';

const RUNS = Number(process.env.PAGEWISE_SIM_RUNS ?? 2000);

function property(arb: fc.Arbitrary<Action[]>, params: GcParams, mutations: Mutation[], stats = emptyStats()) {
  return fc.property(arb, (list: Action[]) => { runScenario(list, params, new Set(mutations), stats); });
}

/** The hunting profile with every clock exact: skew only thins out the orderings these holes need. */
const exactClocks = huntingScenarios.map((list) => list.map((x) => ('skewMs' in x ? { ...x, skewMs: 0 } : x)));

/**
 * Runs a deliberately broken protocol until fast-check finds a violation, over fixed seeds 1, 2, … of `perSeed` runs each
 * within `budget` runs in all, and returns its message (or undefined). Deterministic; such a hole turns up about once
 * in 2,000–20,000 runs of the hunting profile, so the budget leaves a wide margin.
 */
function findCounterexample(params: GcParams, mutations: Mutation[], budget: number, perSeed = 5000): string | undefined {
  for (let seed = 1, spent = 0; spent < budget; seed++, spent += perSeed) {
    const details = fc.check(property(exactClocks, params, mutations), { numRuns: Math.min(perSeed, budget - spent), seed, endOnFailure: true });
    if (!details.failed) continue;
    const err = details.errorInstance;
    if (!(err instanceof Violation)) throw err; // a crash of the model is not a counterexample
    return err.message;
  }
  return undefined;
}

describe('GC protocol simulation (§26.9 invariant after every step)', () => {
  it(`holds over ${RUNS} random interleavings with the real decide/sweepable/chooseRepack/marksToDelete/planExpired`, () => {
    const stats = emptyStats();
    const seed = Number(process.env.PAGEWISE_SIM_SEED ?? Date.now() % 2 ** 31);
    try {
      fc.assert(property(scenarios, DEFAULT_GC_PARAMS, [], stats), { numRuns: RUNS, seed });
    } catch (err) {
      throw new Error(`simulation failed with seed ${seed} (rerun: PAGEWISE_SIM_SEED=${seed}): ${(err as Error).message}`);
    }
    // The runs exercised what the invariant protects against: deletions of every kind, repacks, expiries, blocks.
    expect(stats.manifests).toBeGreaterThan(RUNS);
    expect(stats.deleted.manifests).toBeGreaterThan(0);
    expect(stats.deleted.tables).toBeGreaterThan(0);
    expect(stats.deleted.packs).toBeGreaterThan(0);
    expect(stats.deleted.deltas + stats.deleted.coveredDeltas).toBeGreaterThan(0);
    expect(stats.deleted.stagingBlobs).toBeGreaterThan(0);
    // #15: prune compacts the index; covered deltas and superseded generations go two-phase like the rest
    expect(stats.compactions).toBeGreaterThan(0);
    expect(stats.deleted.coveredDeltas).toBeGreaterThan(0);
    expect(stats.deleted.generations).toBeGreaterThan(0);
    expect(stats.deleted.marks).toBeGreaterThan(0);
    expect(stats.repacked).toBeGreaterThan(0);
    expect(stats.expired).toBeGreaterThan(0);
    expect(stats.undeletes).toBeGreaterThan(0);
    expect(stats.blockedRuns).toBeGreaterThan(0);
    console.log(`GC simulation: ${RUNS} runs, seed ${seed}: ${JSON.stringify(stats)}`);
  });

  it('has teeth: one-phase deletion (sweep without a mark ≥ D old) breaks the invariant', () => {
    expect(findCounterexample(DEFAULT_GC_PARAMS, ['one-phase'], 100_000)).toMatch(/kept manifest .* (names table|has no existing pack)/);
  });

  it(`without compaction (#13's prune, deltas only) it holds too (${Math.ceil(RUNS / 4)} runs), and deletes orphan deltas`, () => {
    const stats = emptyStats();
    const seed = Number(process.env.PAGEWISE_SIM_SEED ?? Date.now() % 2 ** 31);
    try {
      fc.assert(property(scenarios, DEFAULT_GC_PARAMS, ['no-compaction'], stats), { numRuns: Math.ceil(RUNS / 4), seed });
    } catch (err) {
      throw new Error(`simulation (no compaction) failed with seed ${seed}: ${(err as Error).message}`);
    }
    expect(stats.compactions).toBe(0);
    expect(stats.deleted.deltas).toBeGreaterThan(0);
  });

  describe('compaction keeps every pack its run did not delete (§26.11), not only those its gather listed', () => {
    // Found by the hunting profile (seed 11, shrunk): prune R4 gathers before B1 commits its packs and compacts after;
    // keeping only listed packs drops B1's holder entries from generation 2 while covering their deltas; B1's packs look
    // unreferenced, go two-phase, and B1's kept manifest loses its chunks.
    const replay: Action[] = [
      { kind: 'start', disk: 0, legacy: false }, { kind: 'start', disk: 0, legacy: false }, { kind: 'backup', pick: 0, steps: 1 },
      { kind: 'pruneStart' }, { kind: 'pruneStart' }, { kind: 'backup', pick: 189, steps: 20 }, { kind: 'prune', pick: 0, mode: 'gather' },
      { kind: 'backup', pick: 0, steps: 20 }, { kind: 'prune', pick: 339, mode: 'all' }, { kind: 'prune', pick: 0, mode: 'step' },
      { kind: 'clock', ms: 694800000 }, { kind: 'prune', pick: 0, mode: 'step' }, { kind: 'prune', pick: 0, mode: 'step' },
      { kind: 'prune', pick: 0, mode: 'step' }, { kind: 'prune', pick: 0, mode: 'step' }, { kind: 'pruneStart' },
      { kind: 'prune', pick: 0, mode: 'step' }, { kind: 'clock', ms: 694800000 }, { kind: 'clock', ms: 60000 },
      { kind: 'prune', pick: 0, mode: 'step' }, { kind: 'forget', pick: 127, graceMs: 0 }, { kind: 'backup', pick: 0, steps: 1 },
      { kind: 'backup', pick: 0, steps: 1 }, { kind: 'start', disk: 0, legacy: false }, { kind: 'prune', pick: 0, mode: 'step' },
      { kind: 'prune', pick: 0, mode: 'step' }, { kind: 'backup', pick: 0, steps: 1 }, { kind: 'backup', pick: 0, steps: 1 },
      { kind: 'backup', pick: 0, steps: 1 }, { kind: 'prune', pick: 0, mode: 'all' }, { kind: 'forget', pick: 813, graceMs: 0 },
      { kind: 'forget', pick: 3, graceMs: 0 }, { kind: 'prune', pick: 0, mode: 'step' }, { kind: 'prune', pick: 0, mode: 'step' },
      { kind: 'pruneStart' }, { kind: 'write', disk: 0, page: 0, value: 0 }, { kind: 'clock', ms: 60000 }, { kind: 'prune', pick: 0, mode: 'all' },
    ];

    it('keeping only the gather\'s packs, the invariant breaks', () => {
      expect(() => runScenario(replay, DEFAULT_GC_PARAMS, new Set(['compact-listed-packs-only']))).toThrow(/kept manifest m0:\S+:B000001: chunk a \(hint P000009\) has no existing pack holding it/);
    });

    it('keeping every pack not deleted by the run, it holds', () => {
      const stats = emptyStats();
      runScenario(replay, DEFAULT_GC_PARAMS, new Set(), stats);
      expect(stats.compactions).toBeGreaterThan(1);
    });
  });

  it('has teeth: a deletion delay no longer than the abandonment limit (D ≤ L) breaks the invariant', () => {
    const shortDelay = { ...DEFAULT_GC_PARAMS, deleteAfterMs: HOUR }; // D < L: checkGcParams would refuse it
    expect(findCounterexample(shortDelay, [], 100_000)).toMatch(/kept manifest .* (names table|has no existing pack)/);
  });

  it(`baseTables is defence in depth: with D > L, a prune that ignores it still keeps the invariant (${Math.ceil(RUNS / 4)} runs)`, () => {
    // §26.10 step 3: a base deleted under an in-flight backup was forgotten after the backup chose it, so the backup's
    // manifest exists (or it expired) before any second mark can condemn the base's objects.
    const seed = Number(process.env.PAGEWISE_SIM_SEED ?? Date.now() % 2 ** 31);
    try {
      fc.assert(property(huntingScenarios, DEFAULT_GC_PARAMS, ['no-base-tables']), { numRuns: Math.ceil(RUNS / 4), seed });
    } catch (err) {
      throw new Error(`simulation (no baseTables) failed with seed ${seed}: ${(err as Error).message}`);
    }
  });

  describe('a writer deduping against the whole vault index (#15): the same hole for blocks, the same rule', () => {
    // B1 stores chunk a in P; B1 is forgotten without grace; R1 deletes it and marks P; ≥ D later R2 gathers; a new
    // full backup finds a through the index in P, reuses it, passes its checks; R2 deletes P; the backup puts.
    const replay: Action[] = [
      { kind: 'start', disk: 0, legacy: false }, { kind: 'backup', pick: 0, steps: 20 },
      { kind: 'clock', ms: 8 * DAY + HOUR },
      { kind: 'forget', pick: 0, graceMs: 0 }, { kind: 'pruneStart' }, { kind: 'prune', pick: 0, mode: 'all' },
      { kind: 'clock', ms: 8 * DAY + HOUR },
      { kind: 'pruneStart' }, { kind: 'prune', pick: 0, mode: 'gather' },
      { kind: 'start', disk: 1, legacy: false }, { kind: 'backup', pick: 0, steps: 13 },
      { kind: 'prune', pick: 0, mode: 'all' },
      { kind: 'backup', pick: 0, steps: 1 },
    ];

    it('unguarded, the invariant breaks', () => {
      expect(() => runScenario(replay, DEFAULT_GC_PARAMS, new Set(['index-dedupe-unguarded']))).toThrow(/kept manifest m1:\S+ names table|kept manifest m1:\S+: chunk a .* has no existing pack/);
    });

    it(`with the age rule it holds, here and over ${Math.ceil(RUNS / 4)} random interleavings`, () => {
      const stats = emptyStats();
      runScenario(replay, DEFAULT_GC_PARAMS, new Set(['index-dedupe']), stats);
      expect(stats.manifests).toBe(2);
      const seed = Number(process.env.PAGEWISE_SIM_SEED ?? Date.now() % 2 ** 31);
      try {
        fc.assert(property(scenarios, DEFAULT_GC_PARAMS, ['index-dedupe']), { numRuns: Math.ceil(RUNS / 4), seed });
      } catch (err) {
        throw new Error(`simulation (index dedupe) failed with seed ${seed}: ${(err as Error).message}`);
      }
    });
  });

  describe('the hole the simulation found (§26.10): a table reused by 409 that a prune has condemned', () => {
    // B1 full; B2 makes a change and is forgotten without grace; prune R1 deletes it and marks its table T; ≥ D later
    // prune R2 gathers; B9 makes the same change from B1, computes T, finds it there (409), passes its checks; R2
    // deletes T; B9 puts a manifest naming T.
    const replay: Action[] = [
      { kind: 'start', disk: 0, legacy: false }, { kind: 'backup', pick: 0, steps: 20 },
      { kind: 'write', disk: 0, page: 0, value: 5 },
      { kind: 'start', disk: 0, legacy: false }, { kind: 'backup', pick: 0, steps: 20 },
      { kind: 'clock', ms: 8 * DAY + HOUR },
      { kind: 'forget', pick: 1, graceMs: 0 }, { kind: 'pruneStart' }, { kind: 'prune', pick: 0, mode: 'all' },
      { kind: 'clock', ms: 8 * DAY + HOUR },
      { kind: 'pruneStart' }, { kind: 'prune', pick: 0, mode: 'gather' },
      { kind: 'start', disk: 0, legacy: false }, { kind: 'backup', pick: 0, steps: 6 },
      { kind: 'prune', pick: 0, mode: 'all' },
      { kind: 'backup', pick: 0, steps: 1 },
    ];

    it('without the writer\'s age rule the invariant breaks', () => {
      expect(() => runScenario(replay, DEFAULT_GC_PARAMS, new Set(['table-reuse-unguarded']))).toThrow(/kept manifest m0:\S+:B\d+ names table t0:\[null,\{"cid":"b".*which is gone/);
    });

    it('with it, the backup stores its table under the alternate name and the invariant holds', () => {
      const stats = emptyStats();
      const w = runScenario(replay, DEFAULT_GC_PARAMS, new Set(), stats);
      expect(stats.manifests).toBe(3);
      expect(stats.deleted.tables).toBe(1); // T: condemned by R1's mark, deleted by R2
      const last = [...w.vault.manifests.values()].sort((a, b) => b.completedMs - a.completedMs)[0];
      expect(last.tableIds[0]).toMatch(/^t0:\[null,\{"cid":"b".*\|B\d+$/); // its own copy, under the alternate name
      expect(w.vault.tables.has(last.tableIds[0])).toBe(true);
      expect(w.vault.tables.has(last.tableIds[0].slice(0, last.tableIds[0].lastIndexOf('|')))).toBe(false);
    });
  });
});
