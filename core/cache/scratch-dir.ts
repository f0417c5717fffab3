/**
 * The private directory a scratch cache lives in: `pagewise-scratch-<pid>-<random>` under the scratch
 * dir (default: the OS temp dir), mode 0700, removed when the cache is disposed or, failing that, when
 * the process exits. A process killed outright leaves its directory behind with plaintext pages in it;
 * the next cache created under the same parent sweeps such directories — only ours by name, owned by
 * this user, whose process is gone, never following a link.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isRegisteredForExit, removeAtExit } from '../exit-cleanup';
import { assertUnsharedDir } from '../shared-dir';

export const SCRATCH_DIR_PREFIX = 'pagewise-scratch-';
/** mkdtemp appends six characters to the prefix. */
const SCRATCH_DIR_NAME = /^pagewise-scratch-(\d+)-[A-Za-z0-9]{6}$/;

export interface ScratchDir {
  path: string;
  remove(): Promise<void>;
}

/**
 * One sweep per parent and process (per start); every cache under that parent waits for it, so the
 * sweep never sees a directory this process is still creating.
 */
const sweeps = new Map<string, Promise<unknown>>();

export async function createScratchDir(parent: string = os.tmpdir()): Promise<ScratchDir> {
  const where = path.resolve(parent);
  await fs.mkdir(where, { recursive: true, mode: 0o700 });
  await assertUnsharedDir(where, 'the scratch directory'); // else another user could swap our directory for theirs
  if (!sweeps.has(where)) sweeps.set(where, sweepStaleScratchDirs(where).catch(() => undefined));
  await sweeps.get(where);
  const dir = await fs.mkdtemp(path.join(where, `${SCRATCH_DIR_PREFIX}${process.pid}-`));
  const forget = removeAtExit(dir);
  await fs.chmod(dir, 0o700); // mkdtemp's mode already; said explicitly, whatever the platform
  return {
    path: dir,
    async remove() {
      await fs.rm(dir, { recursive: true, force: true });
      forget();
    },
  };
}

/** Removes the scratch directories under `parent` that killed processes left; returns their names. */
export async function sweepStaleScratchDirs(parent: string): Promise<string[]> {
  const names = await fs.readdir(parent).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const match = SCRATCH_DIR_NAME.exec(name);
    if (!match) continue;
    const dir = path.join(parent, name);
    const pid = Number(match[1]);
    // Our own pid: a directory this process does not hold is from an earlier process with the same pid
    // (containers reuse pids). Another live pid: possibly in use, left alone.
    if (pid === process.pid ? isRegisteredForExit(dir) : isAlive(pid)) continue;
    const stat = await fs.lstat(dir).catch(() => undefined);
    if (!stat?.isDirectory()) continue; // a link (lstat does not follow it) or anything else is not ours
    if (process.getuid && stat.uid !== process.getuid()) continue;
    // fs.rm removes links found inside rather than following them.
    await fs.rm(dir, { recursive: true, force: true }).then(
      () => removed.push(name),
      () => undefined,
    );
  }
  return removed;
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}
