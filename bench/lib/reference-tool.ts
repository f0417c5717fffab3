/**
 * What the reference backup tools (restic, borg) share: finding or apt-installing the binary, and one timed
 * run under /usr/bin/time (wall, peak RSS, CPU) followed by the repository's size on disk.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export function findCommand(name: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The tool's path, or a note saying why its reference is skipped; with `installEnv`=1 in the environment
 * `apt-get install -y <pkg>` is tried first (after an `apt-get update` when the first try fails).
 */
export function ensureCommand(command: string, pkg: string, installEnv: string, log: (s: string) => void): { path?: string; note?: string } {
  const found = findCommand(command);
  if (found) return { path: found };
  if (process.env[installEnv] !== '1') return { note: `${command} not installed (set ${installEnv}=1 to apt-get install it)` };
  log(`installing ${pkg} with apt-get (${installEnv}=1) ...`);
  try {
    execFileSync('sh', ['-c', `apt-get install -y ${pkg} >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y ${pkg} >/dev/null 2>&1)`], { stdio: 'ignore', timeout: 300_000 });
  } catch {
    // fall through: reported below
  }
  const after = findCommand(command);
  return after ? { path: after } : { note: `${pkg} could not be installed with apt-get` };
}

export interface ToolRun {
  version: string;
  ms: number;
  peakRssBytes?: number;
  /** The repository's bytes on disk after the run (`du -sb`). */
  repoBytes?: number;
  cpuSeconds?: number;
}

/** Runs `command args` (under /usr/bin/time -v where present), then measures `repo`. Rejects on a non-zero exit. */
export async function timedRun(command: string, args: string[], env: NodeJS.ProcessEnv, repo: string, version: string): Promise<ToolRun> {
  const useTime = existsSync('/usr/bin/time');
  const [cmd, argv] = useTime ? ['/usr/bin/time', ['-v', command, ...args]] : [command, args];
  const started = performance.now();
  const stderr = await new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(err) : reject(new Error(`${command} ${args[0]} exited ${code}: ${err.slice(0, 2000)}`))));
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
