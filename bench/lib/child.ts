/**
 * Runs the worker in a child process and measures it: peak RSS from `/usr/bin/time -v` (and the
 * worker's own maxRSS), CPU of the child and — when the storage emulator is a local process — of
 * Azurite over the same interval (from /proc), optionally with a V8 CPU profile of the child.
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { WorkerInput, WorkerOutput } from '../worker';

const TIME = '/usr/bin/time';
let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds used so far by a process (user + system), or undefined when it cannot be read. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** The pid of the Azurite process this process started (a direct child whose command line names azurite). */
export function findAzuritePid(): number | undefined {
  if (!existsSync('/proc')) return undefined;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes('azurite')) return Number(name);
    } catch {
      // the process went away
    }
  }
  return undefined;
}

export interface ChildRun {
  output: WorkerOutput;
  /** peak RSS of the child as /usr/bin/time reports it, bytes (undefined without /usr/bin/time) */
  timePeakRssBytes?: number;
  /** the larger of the two peak RSS figures */
  peakRssBytes: number;
  wallMs: number;
  azuriteCpuSeconds?: number;
  cpuProfile?: string;
}

export async function runWorker(buildDir: string, input: WorkerInput, opts: { azuritePid?: number; cpuProfDir?: string; tag?: string } = {}): Promise<ChildRun> {
  const inputFile = path.join(os.tmpdir(), `pagewise-bench-${process.pid}-${Date.now()}.json`);
  writeFileSync(inputFile, JSON.stringify(input), { mode: 0o600, flag: 'wx' }); // it holds the user key: never through a planted link
  const nodeArgs: string[] = [];
  if (opts.cpuProfDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`, `--cpu-prof-name=${opts.tag ?? 'worker'}.cpuprofile`, '--cpu-prof-interval=500');
  nodeArgs.push(path.join(buildDir, 'bench', 'worker.js'), inputFile);
  const useTime = existsSync(TIME);
  const [cmd, args] = useTime ? [TIME, ['-v', process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
  const az0 = processCpuSeconds(opts.azuritePid);
  const started = performance.now();
  const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (c) => resolve({ stdout: out, stderr: err, code: c }));
  });
  const wallMs = performance.now() - started;
  const az1 = processCpuSeconds(opts.azuritePid);
  try {
    require('node:fs').rmSync(inputFile, { force: true });
  } catch {
    // ignore
  }
  const line = stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
  if (code !== 0 || !line) throw new Error(`worker ${input.op} failed (exit ${code}): ${stderr.split('\n').filter((l) => !/^\s+\w.*:/.test(l) || /worker failed|Error/.test(l)).slice(0, 30).join('\n')}`);
  const output = JSON.parse(line.slice('BENCH_RESULT '.length)) as WorkerOutput;
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  const timePeakRssBytes = m ? Number(m[1]) * 1024 : undefined;
  return {
    output,
    timePeakRssBytes,
    peakRssBytes: Math.max(timePeakRssBytes ?? 0, output.maxRssBytes),
    wallMs,
    azuriteCpuSeconds: az0 !== undefined && az1 !== undefined ? az1 - az0 : undefined,
    cpuProfile: opts.cpuProfDir ? path.join(opts.cpuProfDir, `${opts.tag ?? 'worker'}.cpuprofile`) : undefined,
  };
}
