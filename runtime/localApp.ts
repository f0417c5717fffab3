/**
 * Loads the Pagewise function app into the local durable runtime: installs the functions-core
 * stand-in, imports functions/index (every trigger, orchestrator and activity registers itself),
 * and wires a runtime whose instance state lives in blob storage (Azurite locally).
 */
import { BlobServiceClient } from '@azure/storage-blob';
import { installFunctionsCore } from './installFunctionsCore';
import { DurableRuntime, TimerService } from './durableRuntime';
import { BlobInstanceStore } from './instanceStore';
import { LocalFunctionHost, LocalHostOptions } from './localHost';

export interface TaskHubLocation {
  /** Connection string of the storage account holding the task hub (e.g. the Azurite vault account). */
  connectionString: string;
  /** Container of instance state; default `pagewise-taskhub`. */
  container?: string;
}

export interface LocalAppOptions {
  taskHub: TaskHubLocation;
  /** App settings the functions read (PAGEWISE_VAULT_URL, PAGEWISE_USER_KEY, …); default process.env. */
  appSettings?: Record<string, string | undefined>;
  maxConcurrentActivities?: number;
  checkpointIntervalInMs?: number;
  /** Durable timers (default the wall clock; tests pass ManualTimers). */
  durableTimers?: TimerService;
  log?: LocalHostOptions['log'];
}

export interface LocalApp {
  runtime: DurableRuntime;
  host: LocalFunctionHost;
  /** Instances a previous run left unfinished and this one resumed. */
  resumed: string[];
  stop(): Promise<void>;
}

export const DEFAULT_TASK_HUB_CONTAINER = 'pagewise-taskhub';

export async function startLocalApp(options: LocalAppOptions): Promise<LocalApp> {
  installFunctionsCore();
  // Loaded after the stand-in is in place: registration happens at import time.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('../functions');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { useAppSettings } = require('../functions/settings') as typeof import('../functions/settings');
  useAppSettings(options.appSettings);

  const container = BlobServiceClient.fromConnectionString(options.taskHub.connectionString).getContainerClient(
    options.taskHub.container ?? DEFAULT_TASK_HUB_CONTAINER,
  );
  const runtime = new DurableRuntime({
    store: new BlobInstanceStore(container),
    ...(options.maxConcurrentActivities ? { maxConcurrentActivities: options.maxConcurrentActivities } : {}),
    ...(options.checkpointIntervalInMs ? { checkpointIntervalInMs: options.checkpointIntervalInMs } : {}),
    ...(options.durableTimers ? { timers: options.durableTimers } : {}),
  });
  const host = new LocalFunctionHost({ runtime, ...(options.log ? { log: options.log } : {}) });
  await host.start();
  const resumed = await runtime.resumeAll();
  return {
    runtime,
    host,
    resumed,
    async stop() {
      await runtime.stop();
      await host.stop();
      useAppSettings(undefined);
    },
  };
}
