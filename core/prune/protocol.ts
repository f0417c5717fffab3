// The GC protocol's parameters and the one time rule writers and prune share (FORMAT.md §26.1).
import { PagewiseError } from '../errors';
import { DAY_MS as DAY } from '../units';

/** L: a backup whose plan is older than this may not run a batch nor finalize; its staging is garbage. */
export const DEFAULT_ABANDON_AFTER_MS = 7 * DAY;
/** D: an object is deleted only when a mark at least this old and the deleting run both found it unreferenced. */
export const DEFAULT_DELETE_AFTER_MS = 8 * DAY;
/** G: soft-delete grace of a forget unless asked otherwise. */
export const DEFAULT_GRACE_MS = 14 * DAY;
/** Repack until at most this fraction of the kept pack bytes is unused (restic's --max-unused). */
export const DEFAULT_MAX_UNUSED = 0.1;

export interface GcParams { abandonAfterMs: number; deleteAfterMs: number; maxUnused: number }

export const DEFAULT_GC_PARAMS: Readonly<GcParams> = Object.freeze({
  abandonAfterMs: DEFAULT_ABANDON_AFTER_MS, deleteAfterMs: DEFAULT_DELETE_AFTER_MS, maxUnused: DEFAULT_MAX_UNUSED,
});

/** BadInput unless deleteAfterMs > abandonAfterMs >= 0 and 0 <= maxUnused <= 1 (all finite). */
export function checkGcParams(p: GcParams): void {
  const { abandonAfterMs: l, deleteAfterMs: d, maxUnused: u } = p;
  if (!Number.isFinite(l) || l < 0) throw new PagewiseError('BadInput', `the abandonment limit must be a duration of 0 or more, not ${l} ms`);
  if (!Number.isFinite(d) || !(d > l)) {
    throw new PagewiseError('BadInput', `the deletion delay (${d} ms) must be longer than the abandonment limit (${l} ms): a backup a prune could not see must have expired before its second mark`);
  }
  if (!Number.isFinite(u) || u < 0 || u > 1) throw new PagewiseError('BadInput', `maxUnused must be a fraction from 0 to 1, not ${u}`);
}

/** The defaults with the given overrides, checked. */
export function resolveGcParams(p: Partial<GcParams> = {}): GcParams {
  const resolved: GcParams = {
    abandonAfterMs: p.abandonAfterMs ?? DEFAULT_ABANDON_AFTER_MS,
    deleteAfterMs: p.deleteAfterMs ?? DEFAULT_DELETE_AFTER_MS,
    maxUnused: p.maxUnused ?? DEFAULT_MAX_UNUSED,
  };
  checkGcParams(resolved);
  return resolved;
}

/** True when a backup planned at planCreatedMs may no longer run a batch or finalize (now − plan > L, strictly). */
export function planExpired(planCreatedMs: number, nowMs: number, p: Pick<GcParams, 'abandonAfterMs'>): boolean {
  return nowMs - planCreatedMs > p.abandonAfterMs;
}

/** "x is older than L" as every GC rule means it (strictly). */
export function olderThan(createdMs: number, nowMs: number, ageMs: number): boolean {
  return nowMs - createdMs > ageMs;
}

/**
 * Whether a writer may rely on an object it did not write and its base does not name — a table whose Put answered 409
 * (same content already there), a block found through the vault index — given that object's Creation-Time (§26.8):
 * only if it is not older than the plan by more than L. An older one may be a candidate of a mark at least D old, which
 * a prune can delete between the writer's finalize checks and its manifest Put; the writer then stores its own copy.
 */
export function mayRelyOnExisting(createdMs: number, planCreatedMs: number, p: Pick<GcParams, 'abandonAfterMs'>): boolean {
  return createdMs >= planCreatedMs - p.abandonAfterMs;
}
