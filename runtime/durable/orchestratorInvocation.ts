/**
 * One orchestrator episode: calls the registered durable-functions handler with the history, as the
 * Durable extension does for out-of-process workers, and reads back what it decided.
 */
import { randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { redact } from '../../core';
import type { HistoryEvent } from './history';
import type { InstanceRecord } from './instanceStore';
import type { RegisteredFunction } from '../functionsCore';
import { findFunction } from '../registry';

/** Replay schema the runtime announces: V4, what current Durable extensions offer. */
export const UPPER_SCHEMA_VERSION = 3;
const OUT_OF_PROC_LABEL = '$OutOfProcData$:';

export type EpisodeOutcome =
  | { kind: 'running'; actions: unknown; customStatus?: unknown }
  | { kind: 'done'; output: unknown; customStatus?: unknown }
  | { kind: 'failed'; error: string; customStatus?: unknown };

interface OrchestratorState {
  isDone: boolean;
  actions: unknown;
  output?: unknown;
  error?: string;
  customStatus?: unknown;
}

export type RuntimeLog = (level: 'info' | 'warn' | 'error', message: string) => void;

/** The InvocationContext of an orchestrator or activity invocation (no extra bindings). */
export function durableContext(fn: RegisteredFunction, log: RuntimeLog): InvocationContext {
  return new InvocationContext({
    invocationId: randomUUID(),
    functionName: fn.metadata.name,
    logHandler: (level, ...args) => log(level === 'error' ? 'error' : level === 'warning' ? 'warn' : 'info', redact(args.join(' '))),
    options: { trigger: fn.trigger, extraInputs: [], extraOutputs: [] },
  });
}

export async function invokeOrchestrator(record: InstanceRecord, history: HistoryEvent[], log: RuntimeLog): Promise<EpisodeOutcome> {
  const fn = findFunction(record.name, 'orchestrationTrigger');
  const context = durableContext(fn, log);
  const trigger = {
    history,
    input: record.input,
    instanceId: record.instanceId,
    isReplaying: record.episodes > 0,
    parentInstanceId: record.parentInstanceId,
    upperSchemaVersion: UPPER_SCHEMA_VERSION,
    maximumShortTimerDuration: '6.00:00:00',
    longRunningTimerIntervalDuration: '3.00:00:00',
    defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
  };
  const result = await (fn.handler(trigger, context) as Promise<OrchestratorState>).then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  if (result.ok) {
    const state = result.value;
    return state.isDone
      ? { kind: 'done', output: state.output, customStatus: state.customStatus }
      : { kind: 'running', actions: state.actions, customStatus: state.customStatus };
  }
  // An orchestrator failure arrives as an error whose message ends in the state JSON.
  const message = result.error instanceof Error ? result.error.message : String(result.error);
  const at = message.indexOf(OUT_OF_PROC_LABEL);
  if (at === -1) return { kind: 'failed', error: redact(message) };
  const state = JSON.parse(message.slice(at + OUT_OF_PROC_LABEL.length)) as OrchestratorState;
  return { kind: 'failed', error: redact(state.error ?? message.slice(0, at).trim()), customStatus: state.customStatus };
}
