// GC protocol parameters and the abandonment rule (docs/FORMAT.md §26.1). Stand-in written against SPEC13's signature until branch gcmodel lands its module (theirs wins on merge).
import { PagewiseError } from '../errors';

const DAY = 24 * 60 * 60 * 1000;
export const DEFAULT_ABANDON_AFTER_MS = 7 * DAY;
export const DEFAULT_DELETE_AFTER_MS = 8 * DAY;
export const DEFAULT_GRACE_MS = 14 * DAY;
export const DEFAULT_MAX_UNUSED = 0.1;

export interface GcParams {
  abandonAfterMs: number;
  deleteAfterMs: number;
  maxUnused: number;
}

/** BadInput unless deleteAfterMs > abandonAfterMs >= 0 and 0 <= maxUnused <= 1. */
export function checkGcParams(p: GcParams): void {
  if (!(p.abandonAfterMs >= 0) || !(p.deleteAfterMs > p.abandonAfterMs)) throw new PagewiseError('BadInput', `the deletion delay (${p.deleteAfterMs} ms) must be longer than the abandonment limit (${p.abandonAfterMs} ms), which must not be negative`);
  if (!(p.maxUnused >= 0 && p.maxUnused <= 1)) throw new PagewiseError('BadInput', `maxUnused is a fraction from 0 to 1, not ${p.maxUnused}`);
}

/** A plan older than L (strictly) may not run a batch nor finalize (§26.1). */
export function planExpired(planCreatedMs: number, nowMs: number, p: Pick<GcParams, 'abandonAfterMs'>): boolean {
  return nowMs - planCreatedMs > p.abandonAfterMs;
}
