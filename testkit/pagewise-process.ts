/**
 * Runs the `pagewise` command (`node bin/pagewise.js`, which uses ts-node when dist/ is absent) as a
 * child process, the way a user runs it. The parent's PAGEWISE_* settings are not inherited, so only
 * the given environment configures it. Used by the demo and by the tests that need a real process
 * (exit codes, signals, a kill mid-backup).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';

export const PAGEWISE_BIN = path.join(__dirname, '..', 'bin', 'pagewise.js');
/** Preload for spawned TypeScript: ts-node's output cached on disk, so a spawn does not transpile the CLI again. */
export const TS_NODE_CACHE = path.join(__dirname, 'ts-node-cache.js');

export interface PagewiseExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface PagewiseProcessOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Run under `ulimit -n` (through bash, which then execs node: signals still reach pagewise). */
  maxOpenFiles?: number;
}

export function startPagewise(args: string[], options: PagewiseProcessOptions = {}): { child: ChildProcess; done: Promise<PagewiseExit> } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('PAGEWISE_')) delete env[k];
  Object.assign(env, options.env ?? {});
  const [command, argv] =
    options.maxOpenFiles === undefined
      ? [process.execPath, ['--require', TS_NODE_CACHE, PAGEWISE_BIN, ...args]]
      : ['bash', ['-c', `ulimit -n ${Math.floor(options.maxOpenFiles)} && exec "$0" "$@"`, process.execPath, '--require', TS_NODE_CACHE, PAGEWISE_BIN, ...args]];
  const child = spawn(command, argv, { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<PagewiseExit>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}
