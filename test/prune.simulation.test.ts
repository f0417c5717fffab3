// Property-based simulation of the GC protocol (FORMAT.md §26): random interleavings of backups, crashes, clock jumps,
// forgets, undeletes and prune steps, the invariant (§26.9) checked after every step, with the real decision code.
import fc from 'fast-check';
import { DEFAULT_GC_PARAMS, GcParams } from '../core/prune/protocol';
import { scenarios } from './harness/gc-actions';
import { Action, emptyStats, HOUR, Mutation, runScenario, Violation } from './harness/gc-model';

const RUNS = Number(process.env.PAGEWISE_SIM_RUNS ?? 2000);

function property(params: GcParams, mutations: Mutation[], stats = emptyStats()) {
  return fc.property(scenarios, (list: Action[]) => { runScenario(list, params, new Set(mutations), stats); });
}

/** Runs a mutated protocol and returns the counterexample fast-check finds (or undefined). */
function findCounterexample(params: GcParams, mutations: Mutation[], seed: number, numRuns: number): string | undefined {
  const details = fc.check(property(params, mutations), { numRuns, seed, endOnFailure: true });
  if (!details.failed) return undefined;
  const err = details.errorInstance;
  if (!(err instanceof Violation)) throw err; // a crash of the model is not a counterexample
  return err.message;
}

describe('GC protocol simulation (§26.9 invariant after every step)', () => {
  it(`holds over ${RUNS} random interleavings with the real decide/sweepable/chooseRepack/marksToDelete/planExpired`, () => {
    const stats = emptyStats();
    const seed = Number(process.env.PAGEWISE_SIM_SEED ?? Date.now() % 2 ** 31);
    try {
      fc.assert(property(DEFAULT_GC_PARAMS, [], stats), { numRuns: RUNS, seed });
    } catch (err) {
      throw new Error(`simulation failed with seed ${seed} (rerun: PAGEWISE_SIM_SEED=${seed}): ${(err as Error).message}`);
    }
    // The runs must have exercised what the invariant protects against: real deletions of every kind.
    expect(stats.manifests).toBeGreaterThan(RUNS);
    expect(stats.deleted.packs).toBeGreaterThan(0);
    expect(stats.deleted.tables).toBeGreaterThan(0);
    expect(stats.deleted.manifests).toBeGreaterThan(0);
    expect(stats.deleted.stagingBlobs).toBeGreaterThan(0);
    expect(stats.repacked).toBeGreaterThan(0);
    expect(stats.expired).toBeGreaterThan(0);
    console.log(`simulation: ${RUNS} runs, seed ${seed}: ${JSON.stringify(stats)}`);
  });

  it('catches one-phase deletion (sweep without a mark ≥ D old)', () => {
    const found = findCounterexample(DEFAULT_GC_PARAMS, ['one-phase'], 42, 20000);
    expect(found).toContain('kept manifest');
  });

  it('catches a deletion delay no longer than the abandonment limit (D ≤ L)', () => {
    const found = findCounterexample({ ...DEFAULT_GC_PARAMS, deleteAfterMs: HOUR }, [], 42, 20000);
    expect(found).toContain('kept manifest');
  });
});
