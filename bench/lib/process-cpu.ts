/** CPU time of processes and where they may run (Linux /proc and util-linux `taskset`): the benches that split a machine's cores. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** CPU milliseconds (user + system) process `pid` has used, all its threads (/proc/<pid>/stat, 10 ms ticks). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Pins every thread of process `pid` to CPU `cpu` (threads it starts later inherit it). Throws naming the
 * cause when the machine has no such CPU or `taskset` is missing, never runs unpinned silently.
 */
export function pinToCpu(pid: number, cpu: number): void {
  try {
    execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', String(cpu), String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`could not pin process ${pid} to CPU ${cpu} with taskset (util-linux): ${stderr || (err as Error).message}`);
  }
}
