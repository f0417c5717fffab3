/** CPU time and scheduling priority of processes (Linux /proc): the benches that share a machine's cores between a client and its emulators. */
import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';

/** CPU milliseconds (user + system) process `pid` has used, all its threads (/proc/<pid>/stat, 10 ms ticks). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Gives every thread of process `pid` the niceness `nice` (Linux keeps it per thread; threads started later
 * inherit their creator's). Lowering needs no privilege. Throws naming the thread it could not set.
 */
export function setNiceness(pid: number, nice: number): void {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      setPriority(Number(tid), nice);
    } catch (err) {
      throw new Error(`could not set niceness ${nice} on thread ${tid} of process ${pid}: ${(err as Error).message}`);
    }
  }
}
