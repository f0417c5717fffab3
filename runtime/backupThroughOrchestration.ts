/**
 * The demo/CLI entry point for an orchestrated backup: runs `backupDiskOrchestrator` (plan → batch
 * sub-orchestrations → finalize) in the local durable runtime, with the same activities Azure runs.
 * Instance state is checkpointed in the task-hub container, so calling this again after a crash
 * resumes the unfinished orchestration instead of starting another backup.
 */
import { abortedError, allowedEndpointOf, displayUrl, PagewiseError, parseStorageUrl, whileBackingUp } from '../core';
import type { StorageLocation } from '../core';
import { BackupOrchestrationOutput, EngineOverrides, RetrySettings } from '../orchestrations/contracts';
import { withLiveProgress } from '../orchestrations/progress';
import type { InstanceStatus } from './durable/instanceStatus';
import { startLocalApp, TaskHubLocation } from './localApp';

export interface OrchestratedBackupOptions {
  /** Source page blob: a URL with a SAS (orchestration inputs must not carry connection strings). */
  source: StorageLocation;
  vault: StorageLocation;
  userKey: Buffer;
  taskHub: TaskHubLocation;
  settings?: EngineOverrides;
  /** Local directory for the activities' scratch caches (an app setting of the local app, not an input). */
  scratchDir?: string;
  backupId?: string;
  retry?: RetrySettings;
  maxConcurrentActivities?: number;
  timeoutInMs?: number;
  /**
   * Stops waiting, aborts the running activities (their scratch is removed) and checkpoints the
   * instances: calling this again resumes. Rejects with the signal's reason (an Aborted error).
   */
  abortSignal?: AbortSignal;
  /** Called with the root instance's status while it runs (customStatus: phase and live progress, see orchestrations/progress.ts). */
  onStatus?: (status: InstanceStatus) => void;
}

export interface OrchestratedBackupResult {
  backupId: string;
  instanceId: string;
  runtimeStatus: string;
  output?: BackupOrchestrationOutput;
  error?: string;
  /** History events per orchestration instance of this backup (root and every range). */
  historyEvents: Record<string, number>;
  activityInvocations: number;
  /** false when an instance already existed (resumed after a crash, or already completed). */
  started: boolean;
  /** true when the instance had already completed: this call ran nothing. */
  alreadyCompleted: boolean;
}

export async function runBackupThroughOrchestration(options: OrchestratedBackupOptions): Promise<OrchestratedBackupResult> {
  // Between its activities too, the disk is being backed up: nothing of this process may write onto it.
  return whileBackingUp(options.source, () => runOrchestration(options));
}

async function runOrchestration(options: OrchestratedBackupOptions): Promise<OrchestratedBackupResult> {
  const source = parseStorageUrl(options.source.url, 'blob', 'the source disk URL');
  if (!source.hasSas) throw new PagewiseError('BadInput', 'an orchestrated backup needs a source URL with a SAS');
  // The app allows exactly the endpoints this process may use for these two locations (checked here).
  const endpoints = [allowedEndpointOf(options.source, 'blob', 'the source disk URL'), allowedEndpointOf(options.vault, 'container', 'the vault URL')];
  const app = await startLocalApp({
    taskHub: options.taskHub,
    role: 'pagewise backup --engine local',
    maxConcurrentActivities: options.maxConcurrentActivities ?? 4,
    // One backup per command: the app's queued work (scheduled starts) is for a long-running host.
    queueTriggers: false,
    // Handed in as an object: the functions get exactly these, not strings parsed back.
    settings: {
      settings: {
        vault: options.vault,
        allowedEndpoints: new Set(endpoints),
        engine: options.scratchDir ? { scratchDir: options.scratchDir } : {},
      },
      userKey: options.userKey,
    },
  });
  try {
    // The same starter as POST /api/backups: validation, the backup ID of the state read now (the plan
    // is pinned to it), the instance ID, and the SAS sealed before it enters the task hub.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { startDiskBackup } = require('../functions/backupStarts') as typeof import('../functions/backupStarts');
    const started = await startDiskBackup(app.host.durableClient(), { url: options.source.url }, {
      ...(options.backupId ? { backupId: options.backupId } : {}),
      ...(options.settings ? { settings: options.settings } : {}),
      ...(options.retry ? { retry: options.retry } : {}),
      trigger: 'cli',
    });
    const { backupId, instanceId } = started;
    const created = started.started;
    // An instance that had already completed is a backup that already existed: nothing runs now.
    const alreadyCompleted = !created && (await app.runtime.getStatus(instanceId))?.runtimeStatus === 'Completed';
    const customStatusOf = async (id: string) => (await app.runtime.getStatus(id))?.customStatus;
    const report = async () => {
      const s = await app.runtime.getStatus(instanceId);
      if (s) options.onStatus!({ ...s, customStatus: await withLiveProgress(s.customStatus, customStatusOf) });
    };
    const progress = options.onStatus ? setInterval(() => void report().catch(() => undefined), 500) : undefined;
    let status: InstanceStatus;
    try {
      status = await untilAborted(app.runtime.waitForCompletion(instanceId, { timeoutInMs: options.timeoutInMs ?? 3_600_000 }), options.abortSignal);
    } finally {
      if (progress) clearInterval(progress);
    }
    options.onStatus?.(status);
    const family = await app.runtime.listInstances({ prefix: instanceId });
    return {
      backupId,
      instanceId,
      runtimeStatus: status.runtimeStatus,
      ...(status.runtimeStatus === 'Completed'
        ? { output: status.output as BackupOrchestrationOutput }
        : { error: `backup of ${displayUrl(options.source.url)} ${status.runtimeStatus}: ${String(status.output)}` }),
      historyEvents: Object.fromEntries(family.map((s) => [s.instanceId, s.historyEvents])),
      activityInvocations: app.runtime.activityInvocations,
      started: created,
      alreadyCompleted,
    };
  } finally {
    await app.stop(options.abortSignal?.aborted ? { abortReason: abortedError(options.abortSignal) } : {});
  }
}

/** `work`, or the signal's Aborted error as soon as it is aborted. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortedError(signal));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
