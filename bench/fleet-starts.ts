/**
 * Queue-fed starts of a fleet (#17): N small policy disks on Azurite, the timer fired once through the local
 * runtime and its queue poller, budget B. Prints time, start rate, the running high-water (exact, from the
 * orchestrations' histories) and deferrals; with --out writes a result summary. Rerun:
 *   npx ts-node --transpile-only bench/fleet-starts.ts [--disks 200] [--budget 8] [--out bench/results/fleet-starts-<date>.md]
 */
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { FLEET_DEFER_SECONDS, runFleet } from '../test/harness/fleet';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const disks = Number(arg('disks', '200'));
  const budget = Number(arg('budget', '8'));
  const out = arg('out', '');
  const cpu = process.cpuUsage();
  const r = await runFleet({ disks, budget });
  const used = process.cpuUsage(cpu);
  const revision = execSync('git rev-parse --short HEAD').toString().trim();
  const lines = [
    `# Fleet starts through the queue (#17): ${disks} disks of 1 MiB, budget ${budget}`,
    '',
    `Revision ${revision}, ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; Azurite and the local durable runtime in one process (4 activities at once), start deferral ${FLEET_DEFER_SECONDS} s; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} (1 / 5 / 15 min) at the end.`,
    `Command: \`npx ts-node --transpile-only bench/fleet-starts.ts --disks ${disks} --budget ${budget}\``,
    '',
    '| figure | value |',
    '| --- | --- |',
    `| backups completed / started instances / ExecutionStarted events / manifests | ${r.completed} / ${r.instances} / ${r.executionStarts} / ${r.manifests} |`,
    `| high-water of running backups (start → slot release, from histories) | ${r.highWater} (budget ${budget}) |`,
    `| wall time, timer fired → all ended and queue empty | ${r.seconds.toFixed(1)} s |`,
    `| CPU of this process (runtime, host, functions; Azurite is a child process) | ${((used.user + used.system) / 1e6).toFixed(1)} s |`,
    `| first start → last end | ${r.firstStartToLastEndSeconds.toFixed(1)} s |`,
    `| start rate (first to last start) | ${r.startRate.toFixed(2)} backups/s |`,
    `| deferrals (a start found no slot free, sent again) | ${r.deferrals} |`,
    `| left in queue / poison queue | ${r.queueLeft} / ${r.poisonLeft} |`,
    '',
    ...(r.failures.length ? ['Backups that did not complete:', '', ...r.failures.map((f) => `- ${f}`), ''] : []),
  ];
  console.log(lines.join('\n'));
  if (out) writeFileSync(out, lines.join('\n'));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
