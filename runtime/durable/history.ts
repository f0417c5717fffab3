/**
 * The history events the local runtime records, in the exact field layout the durable-functions replay
 * code reads (`EventType`, `EventId`, `Timestamp` as a Date, `TaskScheduledId`, `TimerId`, `Result`…).
 * Event type numbers are DTFx's `EventType` enum, which durable-functions mirrors in HistoryEventType.
 */
export enum HistoryEventType {
  ExecutionStarted = 0,
  ExecutionCompleted = 1,
  ExecutionFailed = 2,
  ExecutionTerminated = 3,
  TaskScheduled = 4,
  TaskCompleted = 5,
  TaskFailed = 6,
  SubOrchestrationInstanceCreated = 7,
  SubOrchestrationInstanceCompleted = 8,
  SubOrchestrationInstanceFailed = 9,
  TimerCreated = 10,
  TimerFired = 11,
  OrchestratorStarted = 12,
  OrchestratorCompleted = 13,
  EventSent = 14,
  EventRaised = 15,
}

export interface HistoryEvent {
  EventType: HistoryEventType;
  EventId: number;
  IsPlayed: boolean;
  Timestamp: Date;
  IsProcessed?: boolean;
  Name?: string;
  Input?: string;
  InstanceId?: string;
  Result?: string;
  Reason?: string;
  Details?: string;
  TaskScheduledId?: number;
  TimerId?: number;
  FireAt?: Date;
  OrchestrationStatus?: string;
}

const base = (type: HistoryEventType, at: Date, eventId = -1): HistoryEvent => ({
  EventType: type,
  EventId: eventId,
  IsPlayed: false,
  Timestamp: at,
});

export const events = {
  orchestratorStarted: (at: Date) => base(HistoryEventType.OrchestratorStarted, at),
  orchestratorCompleted: (at: Date) => base(HistoryEventType.OrchestratorCompleted, at),
  executionStarted: (at: Date, name: string, input: unknown) => ({
    ...base(HistoryEventType.ExecutionStarted, at),
    Name: name,
    Input: serialize(input),
  }),
  executionCompleted: (at: Date, status: 'Completed' | 'Failed' | 'Terminated', result: unknown) => ({
    ...base(HistoryEventType.ExecutionCompleted, at),
    OrchestrationStatus: status,
    Result: serialize(result),
  }),
  taskScheduled: (at: Date, id: number, name: string, input: unknown) => ({
    ...base(HistoryEventType.TaskScheduled, at, id),
    Name: name,
    Input: serialize(input),
  }),
  taskCompleted: (at: Date, taskScheduledId: number, result: unknown) => ({
    ...base(HistoryEventType.TaskCompleted, at),
    TaskScheduledId: taskScheduledId,
    Result: serialize(result),
  }),
  taskFailed: (at: Date, taskScheduledId: number, reason: string, details: string) => ({
    ...base(HistoryEventType.TaskFailed, at),
    TaskScheduledId: taskScheduledId,
    Reason: reason,
    Details: details,
  }),
  timerCreated: (at: Date, id: number, fireAt: Date) => ({
    ...base(HistoryEventType.TimerCreated, at, id),
    FireAt: fireAt,
  }),
  timerFired: (at: Date, timerId: number, fireAt: Date) => ({
    ...base(HistoryEventType.TimerFired, at),
    TimerId: timerId,
    FireAt: fireAt,
  }),
  subOrchestrationCreated: (at: Date, id: number, name: string, instanceId: string, input: unknown) => ({
    ...base(HistoryEventType.SubOrchestrationInstanceCreated, at, id),
    Name: name,
    InstanceId: instanceId,
    Input: serialize(input),
  }),
  subOrchestrationCompleted: (at: Date, taskScheduledId: number, result: unknown) => ({
    ...base(HistoryEventType.SubOrchestrationInstanceCompleted, at),
    TaskScheduledId: taskScheduledId,
    Result: serialize(result),
  }),
  subOrchestrationFailed: (at: Date, taskScheduledId: number, reason: string, details: string) => ({
    ...base(HistoryEventType.SubOrchestrationInstanceFailed, at),
    TaskScheduledId: taskScheduledId,
    Reason: reason,
    Details: details,
  }),
};

/** Payloads travel as JSON text in history, as in DTFx; `undefined` becomes `null` so replay can parse it. */
export function serialize(value: unknown): string {
  return JSON.stringify(value === undefined ? null : value);
}

/** Restores `Date` fields after a JSON round trip (the replay code compares Timestamps as Dates). */
export function reviveHistory(raw: unknown[]): HistoryEvent[] {
  return raw.map((e) => {
    const event = e as HistoryEvent & { Timestamp: Date | string; FireAt?: Date | string };
    return {
      ...event,
      Timestamp: new Date(event.Timestamp),
      ...(event.FireAt !== undefined ? { FireAt: new Date(event.FireAt) } : {}),
    };
  });
}
