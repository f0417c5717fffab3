/**
 * A fleet run (#17): N small policy disks on Azurite, the timer fired once through the local runtime with
 * its queue poller and a start budget; waits until every backup has ended and the queue is drained, then
 * measures from the orchestrations' own histories. Shared by test/fleet.test.ts and bench/fleet-starts.ts.
 */
import * as df from 'durable-functions';
import { forEachLimited, initVault, listBackups } from '../../core';
import type { ScheduledRun } from '../../functions/scheduledBackups';
import { Activities } from '../../orchestrations/contracts';
import { startLocalApp } from '../../runtime/localApp';
import { findFunction } from '../../runtime/registry';
import { HistoryEventType } from '../../runtime/durable/history';
import { KiB, MiB, startEnv } from './env';

/**
 * The test's start deferral (production: 60 s). A waiting start is tried again this often; with ~190 waiting,
 * 1 s meant ~190 handler runs a second competing with the backups for the CPU, while a freed slot is still
 * taken within about deferral ÷ waiting starts (tens of ms) — only the last few starts wait up to it.
 */
export const FLEET_DEFER_SECONDS = 5;

export interface FleetOptions {
  disks: number;
  diskBytes?: number;
  budget: number;
  perAccount?: number;
  deferSeconds?: number;
  /** Give up waiting after this long (the run is reported as it stands). */
  timeoutMs?: number;
  /** Leave the vault container empty: the first backups make the vault (docs/FORMAT.md §12.1), racing. */
  emptyVault?: boolean;
}

export interface FleetResult {
  run: ScheduledRun;
  /** Backup orchestrations (`backup-…`, not their range children) and how they ended. */
  instances: number;
  completed: number;
  /** Instances that did not complete: ID, status and output (the failure's message). */
  failures: string[];
  /** ExecutionStarted events across them: one per instance when none ran twice. */
  executionStarts: number;
  /** Complete backups in the vault (manifests). */
  manifests: number;
  /** Most backups between their start and their slot release at once, from the histories (exact, no sampling). */
  highWater: number;
  /** Start messages still in the queue and in its poison queue at the end. */
  queueLeft: number;
  poisonLeft: number;
  /** Deferrals logged by the start handler (starts that found no slot free). */
  deferrals: number;
  seconds: number;
  /** Backups started per second, first start to last. */
  startRate: number;
  firstStartToLastEndSeconds: number;
}

interface Span {
  start: number;
  end: number;
}

/** The greatest number of spans open at one instant (an end at t closes before a start at t opens). */
export function maxOverlap(spans: Span[]): number {
  const points = spans.flatMap((s) => [[s.start, 1] as const, [s.end, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, delta] of points) {
    open += delta;
    most = Math.max(most, open);
  }
  return most;
}

export async function runFleet(options: FleetOptions): Promise<FleetResult> {
  const env = await startEnv();
  const diskBytes = options.diskBytes ?? 1 * MiB;
  const names = Array.from({ length: options.disks }, (_, i) => `fleet-${String(i).padStart(5, '0')}.vhd`);
  let deferrals = 0;
  try {
    // Made first, as an operator does (`pagewise init --key-file`); the first backups make it safely too (emptyVault).
    if (!options.emptyVault) await initVault(env.vault, { userKey: env.userKey });
    await forEachLimited(names, 16, async (name) => {
      const i = Number(name.slice(6, 11));
      await env.makeDisk(name, diskBytes, [{ offset: (i % (diskBytes / (64 * KiB))) * 64 * KiB, length: 64 * KiB, kind: 'random', seed: 1000 + i }]);
    });
    const app = await startLocalApp({
      taskHub: { connectionString: env.az.accounts.vault.connectionString },
      appSettings: {
        ...env.appSettings(),
        PAGEWISE_BACKUP_POLICY: JSON.stringify({ disks: names.map((n) => ({ url: env.sourceUrl(n) })) }),
        PAGEWISE_MAX_RUNNING_BACKUPS: String(options.budget),
        PAGEWISE_MAX_RUNNING_PER_ACCOUNT: String(options.perAccount ?? options.budget),
        PAGEWISE_START_DEFER_SECONDS: String(options.deferSeconds ?? FLEET_DEFER_SECONDS),
      },
      queueTriggers: { settings: { maxPollingIntervalInMs: 500 } },
      log: (_level, message) => {
        if (/^backup start .*: deferred/.test(message)) deferrals++;
      },
    });
    const queue = env.az.accounts.vault.queueService.getQueueClient('pagewise-backup-starts');
    const poison = env.az.accounts.vault.queueService.getQueueClient('pagewise-backup-starts-poison');
    try {
      const began = Date.now();
      // Loaded once the app is (its module registers the timer with the runtime's functions core).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { runScheduledBackups } = require('../../functions/scheduledBackups') as typeof import('../../functions/scheduledBackups');
      const timer = findFunction('scheduledBackups', 'timerTrigger');
      const context = app.host.contextFor(timer);
      const run = await runScheduledBackups(df.getClient(context), context, new Date());
      const deadline = began + (options.timeoutMs ?? 15 * 60_000);
      // Polled from the runtime's memory (this runtime starts every backup); the storage listing is read once, at the end.
      const running = () => app.runtime.localInstances({ prefix: 'backup-' }).filter((s) => !s.instanceId.includes(':'));
      const backups = async () => (await app.runtime.listInstances({ prefix: 'backup-' })).filter((s) => !s.instanceId.includes(':'));
      const messages = async (q: typeof queue) => ((await q.exists()) ? (await q.getProperties()).approximateMessagesCount ?? 0 : 0);
      for (;;) {
        const ended = running().filter((s) => ['Completed', 'Failed', 'Terminated'].includes(s.runtimeStatus)).length;
        if ((ended >= options.disks && (await messages(queue)) === 0) || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      const seconds = (Date.now() - began) / 1000;
      const all = await backups();
      const spans: Span[] = [];
      let executionStarts = 0;
      for (const s of all) {
        const history = ((await app.runtime.getStatus(s.instanceId, { showHistory: true }))?.history ?? []) as Array<{ EventType: number; Name?: string; Timestamp: Date | string }>;
        const started = history.filter((e) => e.EventType === HistoryEventType.ExecutionStarted);
        executionStarts += started.length;
        const release = history.find((e) => e.EventType === HistoryEventType.TaskScheduled && e.Name === Activities.releaseStartSlots);
        if (started.length > 0 && release) spans.push({ start: new Date(started[0].Timestamp).getTime(), end: new Date(release.Timestamp).getTime() });
      }
      const firstStart = Math.min(...spans.map((s) => s.start));
      const lastStart = Math.max(...spans.map((s) => s.start));
      const lastEnd = Math.max(...spans.map((s) => s.end));
      return {
        run,
        instances: all.length,
        completed: all.filter((s) => s.runtimeStatus === 'Completed').length,
        failures: all.filter((s) => s.runtimeStatus !== 'Completed').map((s) => `${s.instanceId} ${s.runtimeStatus}: ${String(typeof s.output === 'string' ? s.output : JSON.stringify(s.output)).slice(0, 500)}`),
        executionStarts,
        manifests: (await listBackups(env.vault)).length,
        highWater: spans.length === all.length ? maxOverlap(spans) : Number.NaN,
        queueLeft: await messages(queue),
        poisonLeft: await messages(poison),
        deferrals,
        seconds,
        startRate: spans.length > 1 ? (spans.length - 1) / ((lastStart - firstStart) / 1000) : 0,
        firstStartToLastEndSeconds: (lastEnd - firstStart) / 1000,
      };
    } finally {
      await app.stop();
    }
  } finally {
    await env.stop();
  }
}
