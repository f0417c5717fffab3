/** What the durable runtime answers about an instance (the fields of durable-functions' DurableOrchestrationStatus), and how a start went. */
import type { InstanceRecord, RuntimeStatus } from './instanceStore';

export interface StartOptions {
  instanceId?: string;
  input?: unknown;
}

export interface StartResult {
  instanceId: string;
  /** false when an instance with that ID is already pending, running or completed (nothing started). */
  created: boolean;
}

/** Same fields as durable-functions' DurableOrchestrationStatus. */
export interface InstanceStatus {
  name: string;
  instanceId: string;
  createdTime: string;
  lastUpdatedTime: string;
  input: unknown;
  output: unknown;
  runtimeStatus: RuntimeStatus;
  customStatus: unknown;
  history?: unknown[];
  /** Events in this instance's history (a Pagewise addition, used to check history bounds). */
  historyEvents: number;
}

export function toStatus(record: InstanceRecord, historyEvents: number, history?: unknown[]): InstanceStatus {
  return {
    name: record.name,
    instanceId: record.instanceId,
    createdTime: record.createdTime,
    lastUpdatedTime: record.lastUpdatedTime,
    input: record.input,
    output: record.output,
    runtimeStatus: record.runtimeStatus,
    customStatus: record.customStatus,
    historyEvents,
    ...(history ? { history: JSON.parse(JSON.stringify(history)) as unknown[] } : {}),
  };
}
