/**
 * The local durable runtime: runs the orchestrators and activities registered through
 * `df.app.orchestration` / `df.app.activity` the way the Durable Functions host does. Each
 * orchestration "episode" hands the registered handler the whole history; the real durable-functions
 * replay code returns the actions it wants; the runtime appends the matching scheduled events, runs
 * the work (activities in a bounded pool, timers, sub-orchestrations) and feeds completions back as
 * new history events until the orchestrator is done. Instance records are checkpointed to an
 * InstanceStore (Azurite blobs) so a killed run resumes; activities are at-least-once, as in Azure.
 */
import { randomUUID } from 'node:crypto';
import { forEachLimited, redact } from '../../core';
import { flattenActions, retryDelayInMs, ScheduledWork } from './actions';
import { events, HistoryEvent, HistoryEventType, reviveHistory } from './history';
import { InstanceRecord, InstanceStore, isTerminal, RuntimeStatus, TaskRecord } from './instanceStore';
import { InstanceStatus, StartOptions, StartResult, toStatus } from './instanceStatus';
import { Checkpoints, LiveInstance } from './liveInstance';
import { TimerService, wallClockTimers } from './timers';
import { ActivityPool } from './activityPool';
import { durableContext, invokeOrchestrator, RuntimeLog } from './orchestratorInvocation';
import { findFunction } from '../registry';
import type { InvocationContext } from '@azure/functions';
import type { RegisteredFunction } from '../functionsCore';

export interface DurableRuntimeOptions {
  store: InstanceStore;
  /** Activities running at once across all instances (host.json maxConcurrentActivityFunctions). */
  maxConcurrentActivities?: number;
  /** Longest a running instance's progress stays only in memory before it is checkpointed. */
  checkpointIntervalInMs?: number;
  clock?: () => Date;
  /**
   * Where durable timers (createTimer, retry intervals) wait; default the wall clock. A test passes
   * ManualTimers to fire them in order without waiting (its clock is then the runtime's clock).
   */
  timers?: TimerService;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export class DurableRuntime {
  private readonly store: InstanceStore;
  private readonly checkpoints: Checkpoints;
  private readonly clock: () => Date;
  private readonly log: RuntimeLog;
  private readonly live = new Map<string, LiveInstance>();
  private readonly timerService: TimerService;
  private readonly timers = new Set<() => void>();
  /**
   * Builds the InvocationContext of an activity that has a durable client input binding (set by the
   * local host, which owns the client endpoint); other activities get a plain context.
   */
  clientContext?: (fn: RegisteredFunction) => InvocationContext;
  private readonly activities: ActivityPool;
  private halted = false;
  /** Aborted when the runtime stops on a signal: activities read it (functions/shutdown.ts). */
  private readonly shutdown = new AbortController();
  private readonly starting = new Set<string>();
  private episodesRunning = 0;
  /** Activities invoked since the runtime started (a figure for tests and the demo). */
  activityInvocations = 0;

  constructor(options: DurableRuntimeOptions) {
    this.store = options.store;
    this.activities = new ActivityPool(Math.max(1, options.maxConcurrentActivities ?? 4));
    const timers = options.timers;
    this.clock = options.clock ?? (timers ? () => timers.now() : () => new Date());
    this.timerService = timers ?? wallClockTimers(this.clock);
    this.log = options.log ?? ((level, message) => (level === 'info' ? undefined : console.warn(message)));
    this.checkpoints = new Checkpoints(this.store, options.checkpointIntervalInMs ?? 500, this.clock, this.log, () => this.halted);
  }

  /** Picks up every instance a previous (possibly killed) run left pending or running. */
  async resumeAll(): Promise<string[]> {
    const resumed: string[] = [];
    for (const record of await this.store.list()) {
      if (isTerminal(record.runtimeStatus) || this.live.has(record.instanceId)) continue;
      this.resume(record);
      resumed.push(record.instanceId);
    }
    return resumed;
  }

  async startNew(name: string, options: StartOptions = {}): Promise<StartResult> {
    findFunction(name, 'orchestrationTrigger');
    const instanceId = options.instanceId ?? randomUUID().replace(/-/g, '');
    const existing = this.live.get(instanceId)?.record ?? (await this.store.load(instanceId));
    if (existing && !(existing.runtimeStatus === 'Failed' || existing.runtimeStatus === 'Terminated')) {
      return { instanceId, created: false };
    }
    if (this.starting.has(instanceId)) return { instanceId, created: false };
    this.starting.add(instanceId);
    try {
      const record = this.newRecord(name, instanceId, options.input);
      if (existing) await this.store.save(record); // a failed or terminated run starts over
      else if (!(await this.store.create(record))) return { instanceId, created: false };
      this.activate(record);
      return { instanceId, created: true };
    } finally {
      this.starting.delete(instanceId);
    }
  }

  async getStatus(instanceId: string, options: { showHistory?: boolean } = {}): Promise<InstanceStatus | undefined> {
    const live = this.live.get(instanceId);
    if (live) return toStatus(live.record, live.history.length, options.showHistory ? live.history : undefined);
    const record = await this.store.load(instanceId);
    return record ? toStatus(record, record.history.length, options.showHistory ? record.history : undefined) : undefined;
  }

  async listInstances(filter: { runtimeStatus?: RuntimeStatus[]; prefix?: string } = {}): Promise<InstanceStatus[]> {
    const wanted = (status: RuntimeStatus | undefined) => status === undefined || !filter.runtimeStatus?.length || filter.runtimeStatus.includes(status);
    const byId = new Map<string, InstanceRecord>();
    if (this.store.entries) {
      // Instances this runtime runs (or ran) are listed from memory: only the others' records are read,
      // and of those only the ones whose stored status passes the filter.
      const others = (await this.store.entries(filter.prefix)).filter((e) => !this.live.has(e.instanceId) && wanted(e.runtimeStatus));
      await forEachLimited(others, 16, async ({ instanceId }) => {
        const record = await this.store.load(instanceId);
        if (record) byId.set(instanceId, record);
      });
    } else {
      for (const record of await this.store.list()) byId.set(record.instanceId, record);
    }
    for (const [id, live] of this.live) byId.set(id, live.record);
    return [...byId.values()]
      .filter((r) => wanted(r.runtimeStatus))
      .filter((r) => !filter.prefix || r.instanceId.startsWith(filter.prefix))
      .sort((a, b) => a.createdTime.localeCompare(b.createdTime))
      .map((r) => toStatus(r, this.live.get(r.instanceId)?.history.length ?? r.history.length));
  }

  /**
   * The instances this runtime has started or resumed since it began (running or ended), from memory: no
   * storage request. For a caller that waits on its own work (a test, a bench) and polls often.
   */
  localInstances(filter: { prefix?: string } = {}): InstanceStatus[] {
    return [...this.live.values()]
      .filter((i) => !filter.prefix || i.record.instanceId.startsWith(filter.prefix))
      .map((i) => toStatus(i.record, i.history.length));
  }

  /** Resolves when the instance reaches Completed, Failed or Terminated. */
  async waitForCompletion(instanceId: string, options: { timeoutInMs?: number } = {}): Promise<InstanceStatus> {
    const timeoutInMs = options.timeoutInMs ?? 60_000;
    const deadline = Date.now() + timeoutInMs;
    for (;;) {
      const status = await this.getStatus(instanceId);
      if (!status) throw new Error(`no orchestration instance ${instanceId}`);
      if (isTerminal(status.runtimeStatus)) return status;
      const live = this.live.get(instanceId);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`instance ${instanceId} still ${status.runtimeStatus} after ${timeoutInMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, live ? remaining : Math.min(remaining, 200));
        live?.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async terminate(instanceId: string, reason: string): Promise<'terminated' | 'notFound' | 'alreadyDone'> {
    const live = this.live.get(instanceId);
    const record = live?.record ?? (await this.store.load(instanceId));
    if (!record) return 'notFound';
    if (isTerminal(record.runtimeStatus)) return 'alreadyDone';
    this.finish(live ?? this.activate(record), 'Terminated', reason);
    return 'terminated';
  }

  async purge(instanceId: string): Promise<boolean> {
    const live = this.live.get(instanceId);
    if (live && !isTerminal(live.record.runtimeStatus)) throw new Error(`instance ${instanceId} is still running`);
    if (live) {
      // The final checkpoint of a just-finished instance would otherwise land after the removal and bring it back.
      if (live.checkpointTimer) clearTimeout(live.checkpointTimer);
      live.checkpointTimer = undefined;
      live.dirty = false;
      while (live.saving) await live.saving;
    }
    this.live.delete(instanceId);
    return this.store.remove(instanceId);
  }

  /**
   * Lets running activities and episodes finish, writes every instance's latest state, then stops.
   * Queued activities and pending timers are not lost: `resumeAll()` in the next run re-issues them.
   */
  async stop(options: { timeoutInMs?: number; abortReason?: unknown } = {}): Promise<void> {
    if (this.halted) return; // a halted runtime is gone; whatever it had in flight is abandoned
    this.activities.pause();
    // Stopped on a signal: running activities are aborted and their outcomes dropped, as if the
    // process had been killed: the next runtime's resumeAll() re-issues them.
    if (options.abortReason !== undefined) this.shutdown.abort(options.abortReason);
    // Like the host's graceful shutdown: wait for running work, but not forever.
    const deadline = Date.now() + (options.timeoutInMs ?? 30_000);
    while ((this.activities.active > 0 || this.episodesRunning > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const instance of this.live.values()) {
      if (instance.checkpointTimer) clearTimeout(instance.checkpointTimer);
      instance.checkpointTimer = undefined;
    }
    await Promise.all([...this.live.values()].map((i) => this.checkpoints.checkpoint(i)));
    this.halt();
  }

  /** Aborted when the runtime stops on a signal or loses its task hub: activities read it (functions/shutdown.ts). */
  get shutdownSignal(): AbortSignal {
    return this.shutdown.signal;
  }

  /**
   * Stops dead without a final checkpoint, as a killed process would: whatever was not checkpointed
   * is redone by the next runtime's `resumeAll()`.
   */
  halt(abortReason?: unknown): void {
    this.halted = true;
    // A runtime that lost its task hub: its running activities are told to stop too (their outcomes are dropped).
    if (abortReason !== undefined && !this.shutdown.signal.aborted) this.shutdown.abort(abortReason);
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    this.activities.close();
    for (const instance of this.live.values()) if (instance.checkpointTimer) clearTimeout(instance.checkpointTimer);
  }

  // ---- instance lifecycle -------------------------------------------------------------------

  private newRecord(name: string, instanceId: string, input: unknown, parent?: { record: InstanceRecord; taskId: number }): InstanceRecord {
    const now = this.clock().toISOString();
    return {
      instanceId,
      executionId: randomUUID(),
      name,
      input: input === undefined ? null : input,
      ...(parent
        ? { parentInstanceId: parent.record.instanceId, parentExecutionId: parent.record.executionId, parentTaskId: parent.taskId }
        : {}),
      runtimeStatus: 'Pending',
      createdTime: now,
      lastUpdatedTime: now,
      output: null,
      customStatus: null,
      history: [],
      tasks: [],
      nextTaskId: 0,
      episodes: 0,
    };
  }

  private activate(record: InstanceRecord): LiveInstance {
    const instance: LiveInstance = {
      record,
      history: reviveHistory(record.history),
      inbox: [],
      waiting: new Map(),
      running: false,
      dirty: false,
      waiters: [],
    };
    record.tasks.forEach((task, index) => {
      if (task.waiting !== 'none') instance.waiting.set(task.waitId, index);
    });
    this.live.set(record.instanceId, instance);
    this.scheduleEpisode(instance);
    return instance;
  }

  /** Re-attaches a stored instance and re-issues whatever it was waiting for when the last run died. */
  private resume(record: InstanceRecord): LiveInstance {
    const instance = this.activate(record);
    record.tasks.forEach((task) => {
      if (task.waiting === 'retryTimer') this.armTimer(instance, task.waitId, new Date(task.fireAt!));
      else if (task.waiting === 'work') this.dispatch(instance, task);
    });
    return instance;
  }

  private scheduleEpisode(instance: LiveInstance): void {
    if (this.halted || instance.running) return;
    const first = instance.record.episodes === 0 && instance.record.runtimeStatus === 'Pending';
    if (!first && instance.inbox.length === 0) return;
    instance.running = true;
    this.episodesRunning += 1;
    setImmediate(async () => {
      try {
        if (!this.halted && !isTerminal(instance.record.runtimeStatus)) await this.runEpisode(instance);
      } catch (err) {
        this.finish(instance, 'Failed', `local runtime error: ${redact((err as Error).message)}`);
      } finally {
        instance.running = false;
        this.episodesRunning -= 1;
      }
      this.scheduleEpisode(instance);
    });
  }

  /**
   * Completions that make the replay code number a new task (a retryable task failing — its retry
   * timer gets the next ID — or that timer firing) are replayed alone, so the runtime knows that ID
   * belongs to the retry and not to something the orchestrator yields in the same episode.
   */
  private takeInbox(instance: LiveInstance): HistoryEvent[] {
    const allocates = (e: HistoryEvent) => this.allocatesTaskId(instance, e);
    if (instance.inbox.length === 0) return [];
    if (allocates(instance.inbox[0])) return instance.inbox.splice(0, 1);
    const end = instance.inbox.findIndex(allocates);
    return instance.inbox.splice(0, end === -1 ? instance.inbox.length : end);
  }

  private allocatesTaskId(instance: LiveInstance, event: HistoryEvent): boolean {
    const id = event.TaskScheduledId ?? event.TimerId;
    const index = id === undefined ? undefined : instance.waiting.get(id);
    if (index === undefined) return false;
    const task = instance.record.tasks[index];
    if (event.EventType === HistoryEventType.TimerFired) return task.waiting === 'retryTimer';
    const failed =
      event.EventType === HistoryEventType.TaskFailed ||
      event.EventType === HistoryEventType.SubOrchestrationInstanceFailed;
    return failed && task.retry !== undefined;
  }

  private async runEpisode(instance: LiveInstance): Promise<void> {
    const { record } = instance;
    const now = this.clock();
    const fresh: HistoryEvent[] = [events.orchestratorStarted(now)];
    if (record.episodes === 0) fresh.push(events.executionStarted(now, record.name, record.input));
    const completions = this.takeInbox(instance).filter((e) => this.isAwaited(instance, e));
    if (record.episodes > 0 && completions.length === 0) return;
    fresh.push(...completions);
    const history = instance.history.concat(fresh);

    const outcome = await invokeOrchestrator(record, history, this.log);
    record.episodes += 1;
    record.runtimeStatus = 'Running';
    instance.history = history.map((e) => ({ ...e, IsPlayed: true }));
    if (outcome.customStatus !== undefined) record.customStatus = outcome.customStatus;

    if (outcome.kind === 'failed') return this.finish(instance, 'Failed', outcome.error);
    for (const event of completions) this.settle(instance, event, now);
    if (outcome.kind === 'done') return this.finish(instance, 'Completed', outcome.output);

    const work = flattenActions(outcome.actions);
    for (let i = record.tasks.length; i < work.length; i++) this.schedule(instance, work[i], now);
    instance.history.push(events.orchestratorCompleted(now));
    this.checkpoints.touch(instance);
  }

  /** false for a stale duplicate, e.g. the result of an activity redone after a restart. */
  private isAwaited(instance: LiveInstance, event: HistoryEvent): boolean {
    const id = event.TaskScheduledId ?? event.TimerId;
    return id !== undefined && instance.waiting.has(id);
  }

  // ---- scheduling work ---------------------------------------------------------------------

  private schedule(instance: LiveInstance, work: ScheduledWork, now: Date): void {
    const { record } = instance;
    const task: TaskRecord = {
      kind: work.kind,
      attempt: 1,
      waitId: record.nextTaskId++,
      waiting: 'work',
      ...(work.kind === 'timer'
        ? { fireAt: work.fireAt.toISOString() }
        : { name: work.name, input: work.input, ...(work.retry ? { retry: work.retry } : {}) }),
      ...(work.kind === 'subOrchestration'
        ? { childInstanceId: work.instanceId ?? `${record.instanceId}:${record.tasks.length}` }
        : {}),
    };
    record.tasks.push(task);
    instance.waiting.set(task.waitId, record.tasks.length - 1);
    instance.history.push(this.scheduledEvent(task, now));
    this.dispatch(instance, task);
  }

  private scheduledEvent(task: TaskRecord, now: Date): HistoryEvent {
    switch (task.kind) {
      case 'activity':
        return events.taskScheduled(now, task.waitId, task.name!, task.input);
      case 'subOrchestration':
        return events.subOrchestrationCreated(now, task.waitId, task.name!, task.childInstanceId!, task.input);
      case 'timer':
        return events.timerCreated(now, task.waitId, new Date(task.fireAt!));
    }
  }

  /** Applies what a completion means for the task it completes, including DTFx-style retries. */
  private settle(instance: LiveInstance, event: HistoryEvent, now: Date): void {
    const id = (event.TaskScheduledId ?? event.TimerId)!;
    const index = instance.waiting.get(id)!;
    const task = instance.record.tasks[index];
    instance.waiting.delete(id);
    const failed =
      event.EventType === HistoryEventType.TaskFailed ||
      event.EventType === HistoryEventType.SubOrchestrationInstanceFailed;
    if (failed && task.retry) {
      const fireAt = new Date(now.getTime() + retryDelayInMs(task.retry, task.attempt));
      this.wait(instance, index, 'retryTimer', fireAt.toISOString());
      instance.history.push(events.timerCreated(now, task.waitId, fireAt));
      this.armTimer(instance, task.waitId, fireAt);
    } else if (event.EventType === HistoryEventType.TimerFired && task.waiting === 'retryTimer') {
      if (task.attempt >= task.retry!.maxNumberOfAttempts) {
        task.waiting = 'none'; // the replay code now fails the task with the last error
        return;
      }
      task.attempt += 1;
      if (task.kind === 'subOrchestration') task.childInstanceId = `${task.childInstanceId!.split('#')[0]}#${task.attempt}`;
      this.wait(instance, index, 'work');
      instance.history.push(this.scheduledEvent(task, now));
      this.dispatch(instance, task);
    } else {
      task.waiting = 'none';
    }
  }

  private wait(instance: LiveInstance, index: number, waiting: 'work' | 'retryTimer', fireAt?: string): void {
    const task = instance.record.tasks[index];
    task.waitId = instance.record.nextTaskId++;
    task.waiting = waiting;
    if (fireAt) task.fireAt = fireAt;
    instance.waiting.set(task.waitId, index);
  }

  private dispatch(instance: LiveInstance, task: TaskRecord): void {
    const waitId = task.waitId;
    switch (task.kind) {
      case 'timer':
        return this.armTimer(instance, waitId, new Date(task.fireAt!));
      case 'activity':
        return this.enqueueActivity(instance, task.name!, task.input, waitId);
      case 'subOrchestration':
        void this.startChild(instance, task, waitId).catch((err) =>
          this.deliver(instance, events.subOrchestrationFailed(this.clock(), waitId, 'RuntimeError', redact(String(err)))),
        );
    }
  }

  private armTimer(instance: LiveInstance, timerId: number, fireAt: Date): void {
    const cancel = this.timerService.schedule(fireAt, () => {
      this.timers.delete(cancel);
      this.deliver(instance, events.timerFired(this.clock(), timerId, fireAt));
    });
    this.timers.add(cancel);
  }

  private enqueueActivity(instance: LiveInstance, name: string, input: unknown, waitId: number): void {
    this.activities.submit(async () => {
      const fn = findFunction(name, 'activityTrigger');
      this.activityInvocations += 1;
      try {
        const bindsClient = Object.values(fn.metadata.bindings).some((b) => b.direction === 'in' && /^(durableClient|orchestrationClient)$/.test(b.type));
        const context = bindsClient && this.clientContext ? this.clientContext(fn) : durableContext(fn, this.log);
        const result = await fn.handler(structuredClone(input), context);
        if (this.shutdown.signal.aborted) return;
        this.deliver(instance, events.taskCompleted(this.clock(), waitId, result));
      } catch (err) {
        if (this.shutdown.signal.aborted) return;
        const error = err instanceof Error ? err : new Error(String(err));
        this.deliver(instance, events.taskFailed(this.clock(), waitId, redact(error.message), redact(error.stack ?? '')));
      }
    });
  }

  private async startChild(parent: LiveInstance, task: TaskRecord, waitId: number): Promise<void> {
    const childId = task.childInstanceId!;
    const existing = this.live.get(childId)?.record ?? (await this.store.load(childId));
    const ours =
      existing?.parentInstanceId === parent.record.instanceId &&
      existing.parentExecutionId === parent.record.executionId &&
      existing.parentTaskId === waitId;
    if (existing && ours) {
      // Resuming after a crash: the child carries on by itself, or has already finished.
      if (isTerminal(existing.runtimeStatus)) this.notifyParent(existing);
      else if (!this.live.has(childId)) this.resume(existing);
      return;
    }
    const record = this.newRecord(task.name!, childId, task.input, { record: parent.record, taskId: waitId });
    if (existing) await this.store.save(record); // left by an earlier execution of the parent: start afresh
    else if (!(await this.store.create(record))) throw new Error(`sub-orchestration ${childId} exists already`);
    this.activate(record);
  }

  private deliver(instance: LiveInstance, event: HistoryEvent): void {
    if (this.halted || isTerminal(instance.record.runtimeStatus)) return;
    instance.inbox.push(event);
    this.scheduleEpisode(instance);
  }

  private finish(instance: LiveInstance, status: 'Completed' | 'Failed' | 'Terminated', output: unknown): void {
    const { record } = instance;
    const now = this.clock();
    record.runtimeStatus = status;
    record.output = output === undefined ? null : output;
    instance.history.push(events.orchestratorCompleted(now), events.executionCompleted(now, status, output));
    instance.inbox.length = 0;
    instance.waiting.clear();
    this.checkpoints.touch(instance, true);
    this.notifyParent(record);
    for (const wake of instance.waiters.splice(0)) wake();
  }

  private notifyParent(child: InstanceRecord): void {
    if (child.parentInstanceId === undefined || child.parentTaskId === undefined) return;
    const parent = this.live.get(child.parentInstanceId);
    if (!parent) return; // the parent resumes later and re-checks its children (startChild)
    const now = this.clock();
    this.deliver(
      parent,
      child.runtimeStatus === 'Completed'
        ? events.subOrchestrationCompleted(now, child.parentTaskId, child.output)
        : events.subOrchestrationFailed(now, child.parentTaskId, `sub-orchestration ${child.instanceId} ${child.runtimeStatus}`, String(child.output)),
    );
  }
}
