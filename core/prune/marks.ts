/** Prune marks `gc/marks/<stamp>-<pruneId>.pwe` (docs/FORMAT.md §26): what one prune run found unreferenced, written once, read back as the first phase of two. */
import { isPagewiseError, isTransient, PagewiseError } from '../errors';
import { BlobAlreadyExistsError } from '../repo/store/blob-store';
import type { Vault } from '../repo/vault';
import { openJson, sealJson } from '../repo/v2/envelope';
import type { Keyring } from '../repo/v2/keyring';
import { DELTA_NAME_RE, HEX16_RE, HEX32_RE, stampOf } from '../repo/v2/names';
import { getIfAny } from '../repo/v2/staging';

export const MARKS_PREFIX = 'gc/marks/';
const GENERATION_RE = /^\d{8}$/;
const MARK_NAME_RE = /^gc\/marks\/(\d{8}T\d{9}Z)-([0-9a-f]{16})\.pwe$/;

export interface MarkCandidates {
  packs: string[];
  tables: string[];
  deltas: string[];
  staging: string[];
  /** index generations (8 digits, #15); absent in marks written before #15 */
  generations?: string[];
}

/** The body of a mark (envelope kind 6, key K(index, e)). */
export interface PruneMark {
  format: 'pagewise-prune-mark';
  version: 2;
  pruneId: string;
  markedAt: string;
  abandonAfterMs: number;
  deleteAfterMs: number;
  candidates: MarkCandidates;
  /** present (true) only when the run was blocked: its mark then lists staging only, and is never the reference older marks are dropped for */
  blocked?: true;
}

export function markName(markedAt: Date, pruneId: string): string {
  return `${MARKS_PREFIX}${stampOf(markedAt)}-${pruneId}.pwe`;
}

/** Writes the mark once (If-None-Match) and returns its name; a 409 can only be this run's own retried Put (the pruneId is random). */
export async function writeMark(vault: Vault, keyring: Keyring, body: PruneMark): Promise<string> {
  checkMark(body, 'the mark to write', (why) => new RangeError(why));
  const name = markName(new Date(body.markedAt), body.pruneId);
  try {
    await vault.putNew(name, sealJson(keyring, 6, name, body));
  } catch (err) {
    if (!(err instanceof BlobAlreadyExistsError)) throw err;
  }
  return name;
}

/**
 * Every mark that authenticates and is well formed, oldest first. One that does not (damaged, written
 * under a key this keyring does not hold, a name that is no mark's) is left out, so it can never make
 * anything deletable, and told to `onProblem`.
 */
export async function readMarks(vault: Vault, keyring: Keyring, onProblem?: (name: string, why: string) => void): Promise<{ name: string; markedAtMs: number; body: PruneMark; bytes: number }[]> {
  const out: { name: string; markedAtMs: number; body: PruneMark; bytes: number }[] = [];
  for await (const { name, createdOn } of vault.listDetailed(MARKS_PREFIX)) {
    if (!MARK_NAME_RE.test(name)) {
      onProblem?.(name.slice(0, 200), 'its name is no prune mark name (gc/marks/<stamp>-<pruneId>.pwe)');
      continue;
    }
    try {
      const stored = await getIfAny(vault, name);
      if (!stored) continue; // deleted since the listing (another prune's clean-up)
      const body = openJson<PruneMark>(keyring, 6, name, stored);
      checkMark(body, `the mark ${name}`, (why) => new PagewiseError('Corrupt', why));
      if (markName(new Date(body.markedAt), body.pruneId) !== name) throw new PagewiseError('Corrupt', `the mark ${name} names another time or prune run than its blob name`);
      // The mark counts from the later of the time it states and the service's Creation-Time of its blob:
      // whoever holds the key (the backup identity too) could write a mark that claims an old time; the
      // service's clock cannot be claimed, so a forged mark proves nothing for D after it was written.
      out.push({ name, markedAtMs: Math.max(Date.parse(body.markedAt), createdOn.getTime()), body, bytes: stored.length });
    } catch (err) {
      if (isTransient(err) || !(isPagewiseError(err, 'Corrupt') || isPagewiseError(err, 'WrongKey'))) throw err;
      onProblem?.(name, err.message);
    }
  }
  return out.sort((a, b) => a.markedAtMs - b.markedAtMs);
}

/** Every field a later run relies on has its type (a mark decides deletions: nothing in it is taken unchecked). */
function checkMark(b: PruneMark, what: string, bad: (why: string) => Error): void {
  const strings = (v: unknown, re: RegExp) => Array.isArray(v) && v.every((x) => typeof x === 'string' && re.test(x));
  const ms = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (b?.format !== 'pagewise-prune-mark' || b.version !== 2) throw bad(`${what} is not a version-2 Pagewise prune mark`);
  if (typeof b.pruneId !== 'string' || !HEX16_RE.test(b.pruneId) || typeof b.markedAt !== 'string' || !Number.isFinite(Date.parse(b.markedAt))) throw bad(`${what} lacks its prune ID or time`);
  if (!ms(b.abandonAfterMs) || !ms(b.deleteAfterMs)) throw bad(`${what} lacks its parameters`);
  const c = b.candidates;
  if (typeof c !== 'object' || c === null || !strings(c.packs, HEX32_RE) || !strings(c.tables, HEX32_RE) || !strings(c.deltas, DELTA_NAME_RE) || !strings(c.staging, HEX32_RE)
    || (c.generations !== undefined && !strings(c.generations, GENERATION_RE))) {
    throw bad(`${what} has malformed candidates`);
  }
  if (b.blocked !== undefined && (b.blocked !== true || c.packs.length + c.tables.length + c.deltas.length + (c.generations?.length ?? 0) > 0)) throw bad(`${what} says blocked but is not a blocked run's mark`);
}
