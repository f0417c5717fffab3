/**
 * The restic reference: `restic backup <image file>` into a fresh local repository (and, for the
 * incremental case, a second backup of the changed image into the same repository). Used only where
 * restic is installed; with BENCH_INSTALL_RESTIC=1 the bench tries `apt-get install -y restic` first.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCommand, findCommand, timedRun, ToolRun } from './reference-tool';

export function findRestic(): string | undefined {
  return findCommand('restic');
}

/** Returns restic's path, or a note saying why the reference is skipped. */
export function ensureRestic(log: (s: string) => void): { restic?: string; note?: string } {
  const r = ensureCommand('restic', 'restic', 'BENCH_INSTALL_RESTIC', log);
  return { restic: r.path, note: r.note };
}

export type ResticResult = ToolRun;

/** One restic repository in a temporary directory, removed afterwards. */
async function withRepo<T>(restic: string, fn: (env: NodeJS.ProcessEnv, repo: string, version: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pagewise-bench-restic-'));
  const repo = path.join(dir, 'repo');
  const passwordFile = path.join(dir, 'password');
  writeFileSync(passwordFile, 'pagewise-bench\n', { mode: 0o600 });
  const env = { ...process.env, RESTIC_PASSWORD_FILE: passwordFile, RESTIC_REPOSITORY: repo, RESTIC_CACHE_DIR: path.join(dir, 'cache') };
  try {
    const version = execFileSync(restic, ['version'], { env }).toString().trim();
    execFileSync(restic, ['init', '--quiet'], { env, stdio: 'ignore' });
    return await fn(env, repo, version);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One timed `restic backup <image>` into the repository `env` names (a second one of the same path has the first as parent). */
function timedBackup(restic: string, env: NodeJS.ProcessEnv, repo: string, version: string, image: string): Promise<ResticResult> {
  return timedRun(restic, ['backup', '--quiet', image], env, repo, version);
}

export async function resticBackup(restic: string, image: string): Promise<ResticResult> {
  return withRepo(restic, (env, repo, version) => timedBackup(restic, env, repo, version, image));
}

/** Each image backed up in turn into one repository (a fleet of clones): each run's repoBytes is the total so far. */
export async function resticSeries(restic: string, images: string[]): Promise<ResticResult[]> {
  return withRepo(restic, async (env, repo, version) => {
    const runs: ResticResult[] = [];
    for (const image of images) runs.push(await timedBackup(restic, env, repo, version, image));
    return runs;
  });
}

/**
 * restic's incremental of the same two images Pagewise backs up: `image` backed up, then changed in
 * place by `change` (its second state), then backed up again into the same repository. restic finds
 * the file changed and re-reads all of it (its chunks dedupe against the first backup); both timed.
 */
export async function resticIncremental(restic: string, image: string, change: () => Promise<void>): Promise<{ first: ResticResult; second: ResticResult }> {
  return withRepo(restic, async (env, repo, version) => {
    const first = await timedBackup(restic, env, repo, version, image);
    await change();
    const second = await timedBackup(restic, env, repo, version, image);
    return { first, second };
  });
}
