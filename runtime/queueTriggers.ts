/**
 * Runs the app's queue-triggered functions locally as the Functions host's queue listener does in
 * Azure: one poller per function receives batches, hides each message while its handler runs, deletes
 * it on success, makes it visible again after `visibilityTimeout` on a throw, and moves it to
 * `<queue>-poison` (body unchanged) once it has been dequeued `maxDequeueCount` times.
 */
import type { LogLevel } from '@azure/functions';
import type { DequeuedMessageItem, QueueClient } from '@azure/storage-queue';
import { printable, redact } from '../core';
import type { LocalFunctionHost, QueueTriggerMetadata } from './localHost';
import { AppSettingsEnv, queueServiceFor } from './queueConnection';
import { appQueueSettings, MIN_POLLING_INTERVAL_MS, QueueHostSettings } from './queueSettings';
import { functionsByTrigger } from './registry';
import { resolveSchedule as resolveAppSettingRefs } from './timerSchedules';

export interface QueueTriggerOptions {
  /** Replace host.json's values (tests: a short visibility timeout). */
  settings?: Partial<QueueHostSettings>;
  /**
   * How long a received message stays hidden while its handler runs; renewed at half of it for as long
   * as the handler runs. The host's value (10 min) by default: a process killed mid-handler leaves the
   * message hidden that long, then it is delivered again.
   */
  processingVisibilityInMs?: number;
  log?: (level: LogLevel, message: string, source: string) => void;
}

export interface QueueTriggerInfo {
  /** The function's name. */
  name: string;
  /** The queue after `%SETTING%` substitution, when it resolved. */
  queueName?: string;
  /** Why this function is not polled (a missing setting or connection); the others still are. */
  problem?: string;
}

export interface QueueTriggers {
  triggers: QueueTriggerInfo[];
  settings: QueueHostSettings;
  /** Messages whose handlers are running now, across all queues. */
  readonly running: number;
  /** Stops polling and waits (up to timeoutInMs, default 30 s) for running handlers to finish. */
  stop(options?: { timeoutInMs?: number }): Promise<void>;
}

const HOST_PROCESSING_VISIBILITY_MS = 10 * 60 * 1000;
/** Azure's rules for queue names: 3–63 lowercase letters, digits and single inner hyphens. */
const QUEUE_NAME = /^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/;
/** The poison queue name needs room for "-poison". */
const MAX_TRIGGER_QUEUE_NAME = 63 - '-poison'.length;

export function poisonQueueName(queueName: string): string {
  return `${queueName}-poison`;
}

/** Starts a poller for every registered queue trigger whose queue and connection resolve. */
export function startQueueTriggers(host: LocalFunctionHost, env: AppSettingsEnv, options: QueueTriggerOptions = {}): QueueTriggers {
  const settings: QueueHostSettings = { ...appQueueSettings(), ...options.settings };
  // A handler's error text may carry a message body's text: never raw to a terminal.
  const log = options.log ?? ((level, message, source) => (level === 'warning' || level === 'error' ? console.warn(printable(`[${source}] ${message}`)) : undefined));
  const triggers: QueueTriggerInfo[] = [];
  const pollers: QueuePoller[] = [];
  for (const fn of functionsByTrigger('storageQueueTrigger')) {
    const name = fn.metadata.name;
    let queueName: string | undefined;
    try {
      queueName = resolveAppSettingRefs(String(fn.trigger.queueName ?? ''), env);
      if (!QUEUE_NAME.test(queueName) || queueName.length > MAX_TRIGGER_QUEUE_NAME) {
        throw new Error(`queue name "${queueName.slice(0, 70)}" is not a valid queue name (3 to ${MAX_TRIGGER_QUEUE_NAME} lowercase letters, digits, single hyphens)`);
      }
      const service = queueServiceFor(String(fn.trigger.connection || 'AzureWebJobsStorage'), env);
      // The service hides a received message for 1 s at least.
      const processingVisibilityInMs = Math.max(1000, options.processingVisibilityInMs ?? HOST_PROCESSING_VISIBILITY_MS);
      const poller = new QueuePoller(host, name, service.getQueueClient(queueName), service.getQueueClient(poisonQueueName(queueName)), settings, processingVisibilityInMs, log);
      pollers.push(poller);
      triggers.push({ name, queueName });
    } catch (err) {
      const problem = `not polled: ${redact((err as Error).message)}`;
      triggers.push({ name, ...(queueName ? { queueName } : {}), problem });
      log('warning', `queue trigger ${name} ${problem}`, 'queues');
    }
  }
  for (const poller of pollers) poller.start();
  return {
    triggers,
    settings,
    get running() {
      return pollers.reduce((n, p) => n + p.running, 0);
    },
    async stop(stopOptions = {}) {
      await Promise.all(pollers.map((p) => p.stop(stopOptions.timeoutInMs ?? 30_000)));
    },
  };
}

/** The message text as the handler gets it; undefined when it is not valid for the encoding. */
export function decodeMessageText(text: string, encoding: QueueHostSettings['messageEncoding']): string | undefined {
  if (encoding === 'none') return text;
  const compact = text.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return undefined;
  return Buffer.from(compact, 'base64').toString('utf8');
}

/** The message text a sender writes for `body` (what the Functions host expects with this encoding). */
export function encodeMessageText(body: string, encoding: QueueHostSettings['messageEncoding']): string {
  return encoding === 'none' ? body : Buffer.from(body, 'utf8').toString('base64');
}

function isQueueNotFound(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: string };
  return e?.statusCode === 404 || e?.code === 'QueueNotFound';
}

function isAbort(err: unknown): boolean {
  return (err as { name?: string })?.name === 'AbortError';
}

const seconds = (ms: number) => Math.ceil(ms / 1000);

class QueuePoller {
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly renewals = new Set<NodeJS.Timeout>();
  private loop: Promise<void> | undefined;
  /** The last receive problem logged (logged again only when it changes, or after a success). */
  private lastProblem: string | undefined;

  constructor(
    private readonly host: LocalFunctionHost,
    private readonly name: string,
    private readonly queue: QueueClient,
    private readonly poison: QueueClient,
    private readonly settings: QueueHostSettings,
    private readonly processingVisibilityInMs: number,
    private readonly log: NonNullable<QueueTriggerOptions['log']>,
  ) {}

  get running(): number {
    return this.inFlight.size;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(timeoutInMs: number): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => (timer = setTimeout(r, timeoutInMs)))]);
      clearTimeout(timer);
    }
    // A handler still running now is abandoned: its message reappears when its visibility runs out.
    for (const timer of this.renewals) clearInterval(timer);
    this.renewals.clear();
  }

  private async run(): Promise<void> {
    let delay = 0;
    while (!this.stopped) {
      if (this.inFlight.size > this.settings.newBatchThreshold) {
        await Promise.race([...this.inFlight, this.stopped$]);
        continue;
      }
      // Received as stop began: still handled (and awaited by stop), not left hidden for the processing visibility.
      const messages = await this.receive();
      if (messages.length > 0) {
        delay = 0;
        for (const message of messages) this.track(this.process(message));
        continue;
      }
      // An empty queue: poll again after 100 ms, doubling up to maxPollingInterval (with some jitter).
      delay = Math.min(this.settings.maxPollingIntervalInMs, Math.max(MIN_POLLING_INTERVAL_MS, delay * 2));
      if (!this.stopped) await this.sleep(delay * (0.8 + 0.2 * Math.random()));
    }
  }

  private async receive(): Promise<DequeuedMessageItem[]> {
    try {
      const batch = Math.min(this.settings.batchSize, 32);
      const response = await this.queue.receiveMessages({
        numberOfMessages: batch,
        visibilityTimeout: seconds(this.processingVisibilityInMs),
        abortSignal: this.abort.signal,
      });
      this.lastProblem = undefined;
      return response.receivedMessageItems;
    } catch (err) {
      // No queue yet: nothing to do (the host does not create trigger queues either).
      if (!isQueueNotFound(err) && !isAbort(err) && !this.stopped) {
        const problem = redact((err as Error).message ?? String(err));
        if (problem !== this.lastProblem) this.log('warning', `queue trigger ${this.name}: receiving from ${this.queue.name} failed: ${problem}`, 'queues');
        this.lastProblem = problem;
      }
      return [];
    }
  }

  private track(work: Promise<void>): void {
    const done = work.finally(() => this.inFlight.delete(done));
    this.inFlight.add(done);
  }

  /** Resolves at stop; one per poller (a listener per wait would pile up on the signal). */
  private readonly stopped$ = new Promise<void>((resolve) => this.abort.signal.addEventListener('abort', () => resolve(), { once: true }));

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const signal = this.abort.signal;
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** One message, start to end; never throws (a failed delete or release only delays the message). */
  private async process(message: DequeuedMessageItem): Promise<void> {
    let popReceipt = message.popReceipt;
    const what = `queue trigger ${this.name}: message ${message.messageId}`;
    try {
      // Dequeued more often than allowed (a previous process died mid-handler): poisoned unseen, as by the host.
      if (message.dequeueCount > this.settings.maxDequeueCount) return await this.moveToPoison(message, popReceipt, 'dequeued more often than maxDequeueCount');
      const text = decodeMessageText(message.messageText, this.settings.messageEncoding);
      if (text === undefined) return await this.moveToPoison(message, popReceipt, `its text is not valid ${this.settings.messageEncoding}`);
      let renewing: Promise<void> | undefined;
      const renewal = setInterval(() => {
        renewing = this.queue
          .updateMessage(message.messageId, popReceipt, message.messageText, seconds(this.processingVisibilityInMs))
          .then((r) => void (popReceipt = r.popReceipt ?? popReceipt))
          .catch((err: unknown) => this.log('warning', `${what}: keeping it hidden failed: ${redact(String((err as Error).message ?? err))}`, 'queues'));
      }, Math.max(500, this.processingVisibilityInMs / 2));
      this.renewals.add(renewal);
      let failure: unknown;
      try {
        await this.host.invokeQueue(this.name, text, this.metadata(message, popReceipt, text));
      } catch (err) {
        failure = err;
      } finally {
        clearInterval(renewal);
        this.renewals.delete(renewal);
      }
      await renewing; // its pop receipt is the one that deletes or releases the message
      if (failure === undefined) {
        await this.queue.deleteMessage(message.messageId, popReceipt);
        return;
      }
      const reason = redact(failure instanceof Error ? failure.message : String(failure));
      this.log('warning', `${what} failed (dequeue ${message.dequeueCount} of ${this.settings.maxDequeueCount}): ${reason}`, 'queues');
      if (message.dequeueCount >= this.settings.maxDequeueCount) return await this.moveToPoison(message, popReceipt, `it failed ${message.dequeueCount} times`);
      await this.queue.updateMessage(message.messageId, popReceipt, message.messageText, seconds(this.settings.visibilityTimeoutInMs));
    } catch (err) {
      this.log('warning', `${what}: ${redact(String((err as Error).message ?? err))} (it is delivered again when its visibility runs out)`, 'queues');
    }
  }

  /** Copies the message text unchanged to `<queue>-poison`, then deletes the original. */
  private async moveToPoison(message: DequeuedMessageItem, popReceipt: string, why: string): Promise<void> {
    await this.poison.createIfNotExists();
    await this.poison.sendMessage(message.messageText);
    await this.queue.deleteMessage(message.messageId, popReceipt);
    this.log('error', `queue trigger ${this.name}: message ${message.messageId} moved to ${this.poison.name}: ${why}`, 'queues');
  }

  private metadata(message: DequeuedMessageItem, popReceipt: string, text: string): QueueTriggerMetadata {
    return {
      id: message.messageId,
      dequeueCount: message.dequeueCount,
      insertionTime: message.insertedOn.toISOString(),
      expirationTime: message.expiresOn.toISOString(),
      nextVisibleTime: message.nextVisibleOn.toISOString(),
      popReceipt,
      queueTrigger: text,
    };
  }
}
