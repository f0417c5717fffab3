/**
 * A directory where Pagewise puts something private — scratch pages, a restore's partial file, a key —
 * must be one no other user can rearrange: in a directory others may write without the sticky bit (or
 * one another user owns), they can rename our file away and put theirs (or a link) in its place between
 * our check and our use, and read or swap what we wrote. The sticky bit (/tmp) or owner-only write
 * closes that; the parent is checked, not every ancestor. Group-writable is allowed (user-private groups).
 */
import { promises as fs, Stats, statSync } from 'node:fs';
import { PagewiseError } from './errors';

const POSIX = process.platform !== 'win32';

function refuseIfShared(dir: string, stat: Stats, what: string): void {
  if (!POSIX) return;
  if (!stat.isDirectory()) throw new PagewiseError('BadInput', `${what} ${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) {
    throw new PagewiseError('BadInput', `${what} ${dir} belongs to another user (uid ${stat.uid}), who could replace files in it; use a directory of your own`);
  }
  if ((stat.mode & 0o002) !== 0 && (stat.mode & 0o1000) === 0) {
    const mode = (stat.mode & 0o7777).toString(8).padStart(4, '0');
    throw new PagewiseError('BadInput', `${what} ${dir} has mode ${mode}: others may write it without the sticky bit and replace files in it; use a private directory (or chmod o-w or +t)`);
  }
}

function cannotUse(dir: string, what: string, err: unknown): PagewiseError {
  return new PagewiseError('BadInput', `${what} ${dir} cannot be used (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
}

/** Throws BadInput unless `dir` (links followed) is a directory only this user (or root) can rearrange. */
export async function assertUnsharedDir(dir: string, what: string): Promise<void> {
  let stat: Stats;
  try {
    stat = await fs.stat(dir);
  } catch (err) {
    throw cannotUse(dir, what, err);
  }
  refuseIfShared(dir, stat, what);
}

/** The same, synchronously (option checks before any work). */
export function assertUnsharedDirSync(dir: string, what: string): void {
  let stat: Stats;
  try {
    stat = statSync(dir);
  } catch (err) {
    throw cannotUse(dir, what, err);
  }
  refuseIfShared(dir, stat, what);
}
