/**
 * The restic reference: `restic backup <image file>` into a fresh local repository (and, for the
 * incremental case, a second backup of the changed image into the same repository). Used only where
 * restic is installed; with BENCH_INSTALL_RESTIC=1 the bench tries `apt-get install -y restic` first.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function findRestic(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v restic'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Returns restic's path, or a note saying why the reference is skipped. */
export function ensureRestic(log: (s: string) => void): { restic?: string; note?: string } {
  const found = findRestic();
  if (found) return { restic: found };
  if (process.env.BENCH_INSTALL_RESTIC !== '1') return { note: 'restic not installed (set BENCH_INSTALL_RESTIC=1 to apt-get install it)' };
  log('installing restic with apt-get (BENCH_INSTALL_RESTIC=1) ...');
  try {
    execFileSync('sh', ['-c', 'apt-get install -y restic >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y restic >/dev/null 2>&1)'], { stdio: 'ignore', timeout: 300_000 });
  } catch {
    // fall through
  }
  const after = findRestic();
  return after ? { restic: after } : { note: 'restic could not be installed with apt-get' };
}

export interface ResticResult {
  version: string;
  ms: number;
  peakRssBytes?: number;
  repoBytes?: number;
  cpuSeconds?: number;
}

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
async function timedBackup(restic: string, env: NodeJS.ProcessEnv, repo: string, version: string, image: string): Promise<ResticResult> {
  const useTime = existsSync('/usr/bin/time');
  const [cmd, args] = useTime ? ['/usr/bin/time', ['-v', restic, 'backup', '--quiet', image]] : [restic, ['backup', '--quiet', image]];
  const started = performance.now();
  const stderr = await new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(err) : reject(new Error(`restic backup exited ${code}: ${err.slice(0, 2000)}`))));
  });
  const ms = performance.now() - started;
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  const user = /User time \(seconds\): ([\d.]+)/.exec(stderr);
  const sys = /System time \(seconds\): ([\d.]+)/.exec(stderr);
  const du = execFileSync('du', ['-sb', repo]).toString().split('\t')[0];
  return {
    version,
    ms,
    peakRssBytes: rss ? Number(rss[1]) * 1024 : undefined,
    repoBytes: Number(du),
    cpuSeconds: user && sys ? Number(user[1]) + Number(sys[1]) : undefined,
  };
}

export async function resticBackup(restic: string, image: string): Promise<ResticResult> {
  return withRepo(restic, (env, repo, version) => timedBackup(restic, env, repo, version, image));
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
