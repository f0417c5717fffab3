// fast-check generators of scheduler actions for the GC simulation: a mixed profile and an adversarial one.
import fc from 'fast-check';
import { Action, DAY, HOUR, MINUTE } from './gc-model';

/** Clocks of writers and prunes off true time by up to 6 hours each: well inside the D − L margin (§26.1). */
const skewMs = fc.constantFrom(0, 0, 0, -6 * HOUR, 6 * HOUR);

const nat = fc.nat(1000);

/** Everything at once: two disks, pages changing, graces from none to 14 days, clock jumps from a minute to 15 days. */
const mixed: fc.Arbitrary<Action> = fc.oneof(
  { weight: 30, arbitrary: fc.record({ kind: fc.constant('backup' as const), pick: nat, steps: fc.constantFrom(1, 1, 20) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('start' as const), disk: fc.nat(1), legacy: fc.boolean(), skewMs }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('crash' as const), pick: nat }) },
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('prune' as const), pick: nat, mode: fc.constantFrom('step' as const, 'step' as const, 'gather' as const, 'all' as const) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('pruneStart' as const), skewMs }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pruneKill' as const), pick: nat }) },
  { weight: 7, arbitrary: fc.record({ kind: fc.constant('forget' as const), pick: nat, graceMs: fc.constantFrom(0, 0, HOUR, DAY, 14 * DAY) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('undelete' as const), pick: nat }) },
  { weight: 9, arbitrary: fc.record({ kind: fc.constant('write' as const), disk: fc.nat(1), page: fc.nat(3), value: fc.nat(5) }) },
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('clock' as const), ms: fc.constantFrom(MINUTE, HOUR, 6 * HOUR, DAY, 3 * DAY, 7 * DAY + HOUR, 8 * DAY, 9 * DAY, 15 * DAY) }) },
);

/**
 * Aimed at the protocol's edges: one disk, forgets without grace, clock jumps around L and D, prunes gathering in one
 * go and then deleting step by step while backups choose, plan, check and put in between.
 */
const adversarial: fc.Arbitrary<Action> = fc.oneof(
  { weight: 30, arbitrary: fc.record({ kind: fc.constant('backup' as const), pick: nat, steps: fc.constantFrom(1, 1, 1, 20) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('start' as const), disk: fc.constant(0), legacy: fc.boolean(), skewMs }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('crash' as const), pick: nat }) },
  { weight: 14, arbitrary: fc.record({ kind: fc.constant('prune' as const), pick: nat, mode: fc.constantFrom('step' as const, 'gather' as const, 'all' as const) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('pruneStart' as const), skewMs }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('forget' as const), pick: nat, graceMs: fc.constantFrom(0, 0, 0, HOUR) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('undelete' as const), pick: nat }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), disk: fc.constant(0), page: fc.nat(3), value: fc.nat(5) }) },
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('clock' as const), ms: fc.constantFrom(MINUTE, HOUR, DAY, 7 * DAY + HOUR, 8 * DAY + HOUR) }) },
);

/** Two backups of one disk making the same change from the same base write the same table (the §26.10 finding). */
const colliding: fc.Arbitrary<Action> = fc.oneof(
  { weight: 88, arbitrary: adversarial.filter((a) => a.kind !== 'write') },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), disk: fc.constant(0), page: fc.nat(3), value: fc.constantFrom(0, 1, 5) }) },
);

/** Few kinds of step, so the orderings that matter (choose, forget, gather, check, delete, put) come up often. */
const hunting: fc.Arbitrary<Action> = fc.oneof(
  { weight: 30, arbitrary: fc.record({ kind: fc.constant('backup' as const), pick: nat, steps: fc.constantFrom(1, 1, 1, 1, 20) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('start' as const), disk: fc.constant(0), legacy: fc.constant(false), skewMs }) },
  { weight: 25, arbitrary: fc.record({ kind: fc.constant('prune' as const), pick: nat, mode: fc.constantFrom('step' as const, 'gather' as const, 'all' as const) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('pruneStart' as const), skewMs }) },
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('forget' as const), pick: nat, graceMs: fc.constant(0) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('write' as const), disk: fc.constant(0), page: fc.nat(3), value: fc.nat(5) }) },
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('clock' as const), ms: fc.constantFrom(MINUTE, HOUR, DAY, 8 * DAY + HOUR) }) },
);

export const huntingScenarios = fc.array(hunting, { minLength: 20, maxLength: 80, size: 'max' });
export const adversarialScenarios = fc.array(adversarial, { minLength: 20, maxLength: 120, size: 'max' });
export const collidingScenarios = fc.array(colliding, { minLength: 20, maxLength: 120, size: 'max' });
export const scenarios: fc.Arbitrary<Action[]> = fc.oneof(
  fc.array(mixed, { minLength: 20, maxLength: 160, size: 'max' }),
  adversarialScenarios,
  collidingScenarios,
  huntingScenarios,
);
