/**
 * Loads the Pagewise function app into the local durable runtime: installs the functions-core
 * stand-in, imports functions/index (every trigger, orchestrator and activity registers itself),
 * wires a runtime whose instance state lives in blob storage (Azurite locally) and polls the queues
 * of the queue-triggered functions (runtime/queueTriggers.ts). One runtime per task hub: the app holds
 * a lease on the hub (runtime/taskHubLease.ts) from before it starts until it stops.
 */
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { parseStorageUrl, protectContainer } from '../core';
import { installFunctionsCore } from './installFunctionsCore';
import { DurableRuntime } from './durable/durableRuntime';
import type { TimerService } from './durable/timers';
import { BlobInstanceStore } from './durable/instanceStore';
import { LocalFunctionHost, LocalHostOptions } from './localHost';
import { FencedInstanceStore } from './fencedInstanceStore';
import { takeTaskHubLease, TaskHubLease } from './taskHubLease';
import type { ResolvedAppSettings } from '../functions/settings';
import { QueueTriggerOptions, QueueTriggers, startQueueTriggers } from './queueTriggers';

export interface TaskHubLocation {
  /** Connection string of the storage account holding the task hub (e.g. the Azurite vault account). */
  connectionString: string;
  /** Container of instance state; default `pagewise-taskhub`. */
  container?: string;
}

export interface LocalAppOptions {
  taskHub: TaskHubLocation;
  /** App settings the functions read (PAGEWISE_VAULT_URL, PAGEWISE_USER_KEY, …), resolved once at start; default process.env. */
  appSettings?: Record<string, string | undefined>;
  /** Settings already resolved (the CLI's local engine): handed to the functions as they are, instead of appSettings. */
  settings?: ResolvedAppSettings;
  maxConcurrentActivities?: number;
  checkpointIntervalInMs?: number;
  /** Durable timers (default the wall clock; tests pass ManualTimers). */
  durableTimers?: TimerService;
  log?: LocalHostOptions['log'];
  /** The durable webhooks' system key (default: a random one). */
  systemKey?: string;
  /** What runs this app, named to a second runtime refused the task hub (default "a local Pagewise runtime"). */
  role?: string;
  /**
   * Poll the queues of the app's queue triggers (default on). Their `connection` (AzureWebJobsStorage)
   * resolves from the app settings; AzureWebJobsStorage defaults to the task hub's connection string.
   */
  queueTriggers?: false | QueueTriggerOptions;
}

export interface LocalApp {
  runtime: DurableRuntime;
  host: LocalFunctionHost;
  /** The queue pollers (undefined when turned off). */
  queues?: QueueTriggers;
  /** Instances a previous run left unfinished and this one resumed. */
  resumed: string[];
  /** The app's hold on its task hub (one runtime per task hub); released by stop(). */
  lease: TaskHubLease;
  stop(options?: LocalAppStopOptions): Promise<void>;
}

export interface LocalAppStopOptions {
  /** Abort the running activities with this reason (a signal stops the app) instead of waiting for them. */
  abortReason?: unknown;
}

export const DEFAULT_TASK_HUB_CONTAINER = 'pagewise-taskhub';

export async function startLocalApp(options: LocalAppOptions): Promise<LocalApp> {
  const container = BlobServiceClient.fromConnectionString(options.taskHub.connectionString).getContainerClient(
    options.taskHub.container ?? DEFAULT_TASK_HUB_CONTAINER,
  );
  // First of all: a runtime refused its task hub must not have touched the settings another app of this process reads.
  const leaseLog = (line: string) => (options.log ? options.log('warning', line, 'taskHub') : console.warn(line));
  const lease = await takeTaskHubLease(container, { role: options.role ?? 'a local Pagewise runtime', log: leaseLog });
  try {
    return await startOnLease(options, container, lease, leaseLog);
  } catch (err) {
    await lease.release();
    throw err;
  }
}

async function startOnLease(options: LocalAppOptions, container: ContainerClient, lease: TaskHubLease, leaseLog: (line: string) => void): Promise<LocalApp> {
  installFunctionsCore();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { useAppSettings } = require('../functions/settings') as typeof import('../functions/settings');
  // As the Functions host needs it: the storage of triggers (queues) and of the task hub, one account.
  const withStorage = (env: Record<string, string | undefined>) => withDefault(env, 'AzureWebJobsStorage', options.taskHub.connectionString);
  const env = withStorage(options.settings ? options.settings.env ?? {} : options.appSettings ?? process.env);
  // Handed in before the functions load, so their start-up never resolves process.env instead.
  useAppSettings(options.settings ? { ...options.settings, env } : env);
  // Loaded after the stand-in is in place: registration happens at import time.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('../functions');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { useShutdownSignal } = require('../functions/shutdown') as typeof import('../functions/shutdown');

  // Instance state lives here: no restore or upload of this process may write into it.
  try {
    protectContainer(parseStorageUrl(container.url, 'container', 'the task hub container'), 'the durable task hub');
  } catch {
    // an endpoint parseStorageUrl does not know (a custom domain): no blob URL can name it either
  }
  const runtime = new DurableRuntime({
    store: new FencedInstanceStore(new BlobInstanceStore(container), lease),
    ...(options.maxConcurrentActivities ? { maxConcurrentActivities: options.maxConcurrentActivities } : {}),
    ...(options.checkpointIntervalInMs ? { checkpointIntervalInMs: options.checkpointIntervalInMs } : {}),
    ...(options.durableTimers ? { timers: options.durableTimers } : {}),
  });
  useShutdownSignal(runtime.shutdownSignal);
  const host = new LocalFunctionHost({ runtime, ...(options.log ? { log: options.log } : {}), ...(options.systemKey ? { systemKey: options.systemKey } : {}) });
  // Lost (broken, taken over, unrenewable): stop dead, as a killed process would, and abort the activities.
  void lease.lost.then((reason) => {
    leaseLog(reason.message);
    runtime.halt(reason);
  });
  await host.start();
  const resumed = await runtime.resumeAll();
  const queueLog = options.log;
  const queues =
    options.queueTriggers === false
      ? undefined
      : startQueueTriggers(host, env, { ...(queueLog ? { log: queueLog } : {}), ...options.queueTriggers });
  // …and take no more queue messages (one taken meanwhile fails to start its orchestration and comes again).
  if (queues) void lease.lost.then(() => queues.stop({ timeoutInMs: 0 }));
  return {
    runtime,
    host,
    ...(queues ? { queues } : {}),
    resumed,
    lease,
    async stop(stopOptions = {}) {
      try {
        // No new message is taken; the handlers running finish first (they start orchestrations).
        await queues?.stop();
        await runtime.stop(stopOptions);
        await host.stop();
        useAppSettings(undefined);
        useShutdownSignal(undefined);
      } finally {
        await lease.release(); // last: the final checkpoints are written under it
      }
    },
  };
}

/**
 * The settings with `key` defaulted to `value` while unset or blank — a live view, not a copy: a caller
 * that changes its settings after the start (tests, a reloaded policy setting) is still heard.
 */
function withDefault(env: Record<string, string | undefined>, key: string, value: string): Record<string, string | undefined> {
  const unset = (target: Record<string, string | undefined>) => !target[key]?.trim();
  return new Proxy(env, {
    get: (target, name) => (name === key && unset(target) ? value : Reflect.get(target, name)),
    has: (target, name) => name === key || Reflect.has(target, name),
    ownKeys: (target) => [...new Set([...Reflect.ownKeys(target), key])],
    getOwnPropertyDescriptor: (target, name) =>
      name === key && unset(target) ? { value, enumerable: true, configurable: true, writable: true } : Reflect.getOwnPropertyDescriptor(target, name),
  });
}
