/**
 * Thin hooks onto the local durable runtime (runtime/, built separately): `backup --engine local` runs
 * the backup as the durable orchestration (plan → batch sub-orchestrations → finalize, state
 * checkpointed so a rerun resumes), and `pagewise serve` exposes the HTTP API on loopback. The runtime
 * is loaded only when asked for, so the plain CLI starts without durable-functions.
 */
import { asAlreadyExisted, BackupResult, chunkingToText, PagewiseError, StorageLocation } from '../core';
import type { ResolvedSettings } from './options';

export const ENGINES = ['inline', 'local'] as const;
export type Engine = (typeof ENGINES)[number];

export const TASKHUB_ENV = 'PAGEWISE_TASKHUB_CONNECTION_STRING';

export function parseEngine(text: string | undefined): Engine {
  const engine = (text ?? 'inline') as Engine;
  if (!ENGINES.includes(engine)) throw new PagewiseError('BadInput', `--engine "${text}" is not one of ${ENGINES.join(', ')}`);
  return engine;
}

/** The task hub's storage: PAGEWISE_TASKHUB_CONNECTION_STRING, else the vault's connection string. */
export function taskHubConnectionString(env: Record<string, string | undefined>, vault?: StorageLocation): string {
  const cs = env[TASKHUB_ENV]?.trim() || vault?.connectionString || env.PAGEWISE_VAULT_CONNECTION_STRING?.trim();
  if (!cs) {
    throw new PagewiseError('BadInput', `the local engine keeps its state in blob storage: set ${TASKHUB_ENV} (or PAGEWISE_VAULT_CONNECTION_STRING)`);
  }
  return cs;
}

export interface LocalBackupResult extends BackupResult {
  engine: 'local';
  instanceId: string;
  activityInvocations: number;
  /** Events in each orchestration instance's history (root and range sub-orchestrations). */
  historyEvents: Record<string, number>;
  /** Batch activities that may run at once; each has its own scratch cache of cacheCapacityBytes. */
  maxConcurrentActivities: number;
  resumed: boolean;
}

const MAX_CONCURRENT_ACTIVITIES = 4;


export async function backupWithLocalEngine(args: {
  source: StorageLocation;
  vault: StorageLocation;
  userKey: Buffer;
  backupId?: string;
  settings: ResolvedSettings;
  takeSnapshot?: boolean;
  /** Force a full backup (the plan's choice otherwise). */
  full?: boolean;
  env: Record<string, string | undefined>;
  /** Stops the runtime and aborts its running activities (their scratch is removed); a rerun resumes. */
  abortSignal?: AbortSignal;
  onBatches?: (done: number, total: number) => void;
}): Promise<LocalBackupResult> {
  const { runBackupThroughOrchestration } = await import('../runtime/backupThroughOrchestration');
  const run = await runBackupThroughOrchestration({
    source: args.source,
    vault: args.vault,
    userKey: args.userKey,
    taskHub: { connectionString: taskHubConnectionString(args.env, args.vault) },
    settings: {
      pageSize: args.settings.pageSize,
      cacheBytes: args.settings.cacheBytes,
      concurrency: args.settings.concurrency,
      chunking: chunkingToText(args.settings.chunking),
      codec: args.settings.codec,
      vaultDedupe: args.settings.vaultDedupe,
      ...(args.takeSnapshot ? { takeSnapshot: true } : {}),
      ...(args.full ? { full: true } : {}),
    },
    ...(args.settings.scratchDir ? { scratchDir: args.settings.scratchDir } : {}),
    ...(args.backupId ? { backupId: args.backupId } : {}),
    maxConcurrentActivities: MAX_CONCURRENT_ACTIVITIES,
    ...(args.abortSignal ? { abortSignal: args.abortSignal } : {}),
    onStatus: (status) => {
      const custom = status.customStatus as { batchesDone?: number; batchesTotal?: number } | null;
      if (custom && typeof custom.batchesTotal === 'number') args.onBatches?.(custom.batchesDone ?? 0, custom.batchesTotal);
    },
  });
  if (run.runtimeStatus !== 'Completed' || !run.output) {
    throw new PagewiseError('BackupIncomplete', run.error ?? `the backup orchestration ended ${run.runtimeStatus}`);
  }
  // The orchestration's result covers its whole run; an instance that had completed before ran nothing now.
  const result = run.alreadyCompleted ? asAlreadyExisted(run.output.result) : run.output.result;
  return {
    ...result,
    engine: 'local',
    instanceId: run.instanceId,
    activityInvocations: run.activityInvocations,
    historyEvents: run.historyEvents,
    maxConcurrentActivities: MAX_CONCURRENT_ACTIVITIES,
    resumed: !run.started && !run.alreadyCompleted,
  };
}
