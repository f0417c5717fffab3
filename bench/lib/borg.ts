/**
 * The borg reference (BorgBackup 1.x): `borg create` of image files into a fresh local repository, with
 * borg's defaults — lz4 and the buzhash chunker 19,23,21,4095 (min 512 KiB, max 8 MiB, ~2 MiB average) —
 * and again with `--compression zstd,3`. Encryption `repokey-blake2` (borg requires a mode; the size does
 * not depend on it). Used only where borg is installed; with BENCH_INSTALL_BORG=1 the bench tries
 * `apt-get install -y borgbackup` first.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCommand, timedRun, ToolRun } from './reference-tool';

export type BorgResult = ToolRun;

/** The borg settings measured: its defaults, and zstd level 3 (Pagewise's codec). */
export const BORG_MODES = {
  default: [] as string[],
  zstd3: ['--compression', 'zstd,3'],
} as const;
export type BorgMode = keyof typeof BORG_MODES;

/** Returns borg's path, or a note saying why the reference is skipped. */
export function ensureBorg(log: (s: string) => void): { borg?: string; note?: string } {
  const r = ensureCommand('borg', 'borgbackup', 'BENCH_INSTALL_BORG', log);
  return { borg: r.path, note: r.note };
}

/** Each image backed up in turn (one archive each) into one new repository; each run's repoBytes is the total so far. */
export async function borgSeries(borg: string, images: string[], mode: BorgMode = 'default', between?: (k: number) => Promise<void>): Promise<BorgResult[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pagewise-bench-borg-'));
  const repo = path.join(dir, 'repo');
  // Cache, config and keys inside the temporary directory: nothing is left in the user's home.
  const env = { ...process.env, BORG_PASSPHRASE: 'pagewise-bench', BORG_BASE_DIR: dir, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes', BORG_DISPLAY_PASSPHRASE: 'no' };
  try {
    const version = execFileSync(borg, ['--version'], { env }).toString().trim();
    execFileSync(borg, ['init', '--encryption=repokey-blake2', repo], { env, stdio: 'ignore' });
    const runs: BorgResult[] = [];
    for (const [k, image] of images.entries()) {
      if (k > 0 && between) await between(k);
      runs.push(await timedRun(borg, ['create', ...BORG_MODES[mode], `${repo}::image-${k}`, image], env, repo, `${version} (${mode === 'default' ? 'lz4, buzhash 19,23,21,4095' : 'zstd,3'})`));
    }
    return runs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function borgBackup(borg: string, image: string, mode: BorgMode = 'default'): Promise<BorgResult> {
  return (await borgSeries(borg, [image], mode))[0];
}
