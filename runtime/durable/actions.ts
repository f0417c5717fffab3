/**
 * Reads the action list an orchestrator episode returns (the durable-functions out-of-process
 * protocol) and turns it into work the runtime schedules. Every episode returns ALL actions since the
 * orchestration began, in the order the orchestrator first yielded them; `Task.all/any` arrive as
 * compound actions whose children are listed depth-first — the same order in which the replay code
 * numbers its tasks — so position i in the flattened list is one logical task across all episodes.
 */

/** The retry policy of `callActivityWithRetry` / `callSubOrchestratorWithRetry` (durable RetryOptions). */
export interface RetryPolicy {
  firstRetryIntervalInMilliseconds: number;
  maxNumberOfAttempts: number;
  backoffCoefficient?: number;
  maxRetryIntervalInMilliseconds?: number;
}

export type ScheduledWork =
  | { kind: 'activity'; name: string; input: unknown; retry?: RetryPolicy }
  | { kind: 'subOrchestration'; name: string; input: unknown; instanceId?: string; retry?: RetryPolicy }
  | { kind: 'timer'; fireAt: Date };

/** durable-functions ActionType numbers (lib/src/actions/ActionType.js). */
const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  CallSubOrchestratorWithRetry: 3,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
  CallEntity: 7,
  CallHttp: 8,
  SignalEntity: 9,
  WhenAny: 11,
  WhenAll: 12,
} as const;

interface RawAction {
  actionType: number;
  functionName?: string;
  input?: unknown;
  instanceId?: string;
  retryOptions?: RetryPolicy;
  fireAt?: Date;
  compoundActions?: RawAction[];
}

export class UnsupportedActionError extends Error {
  constructor(actionType: number) {
    super(`the local durable runtime does not support action type ${actionType} (activities, sub-orchestrations, timers and Task.all/any only)`);
    this.name = 'UnsupportedActionError';
  }
}

/**
 * Flattens the returned actions into atomic work, in task-numbering order. A task yielded once and
 * then again inside a later `Task.all/any` is the same object; it is listed once (it was scheduled once).
 */
export function flattenActions(actions: unknown): ScheduledWork[] {
  const seen = new Set<RawAction>();
  const out: ScheduledWork[] = [];
  const visit = (action: RawAction): void => {
    if (seen.has(action)) return;
    seen.add(action);
    switch (action.actionType) {
      case ActionType.WhenAll:
      case ActionType.WhenAny:
        for (const child of action.compoundActions ?? []) visit(child);
        return;
      case ActionType.CallActivity:
      case ActionType.CallActivityWithRetry:
        out.push({
          kind: 'activity',
          name: required(action.functionName),
          input: unwrapInput(action.input),
          ...(action.retryOptions ? { retry: retryPolicy(action.retryOptions) } : {}),
        });
        return;
      case ActionType.CallSubOrchestrator:
      case ActionType.CallSubOrchestratorWithRetry:
        out.push({
          kind: 'subOrchestration',
          name: required(action.functionName),
          input: action.input,
          ...(action.instanceId ? { instanceId: action.instanceId } : {}),
          ...(action.retryOptions ? { retry: retryPolicy(action.retryOptions) } : {}),
        });
        return;
      case ActionType.CreateTimer:
        out.push({ kind: 'timer', fireAt: new Date(action.fireAt as Date) });
        return;
      default:
        throw new UnsupportedActionError(action.actionType);
    }
  };
  const groups = Array.isArray(actions) ? actions : [];
  for (const group of groups) for (const action of Array.isArray(group) ? group : [group]) visit(action as RawAction);
  return out;
}

/** DTFx retry delay: first interval × coefficient^(failures-1), capped by the maximum interval. */
export function retryDelayInMs(policy: RetryPolicy, failuresSoFar: number): number {
  const coefficient = policy.backoffCoefficient ?? 1;
  const delay = policy.firstRetryIntervalInMilliseconds * Math.pow(coefficient, Math.max(0, failuresSoFar - 1));
  return policy.maxRetryIntervalInMilliseconds !== undefined && policy.maxRetryIntervalInMilliseconds > 0
    ? Math.min(delay, policy.maxRetryIntervalInMilliseconds)
    : delay;
}

function retryPolicy(options: RetryPolicy): RetryPolicy {
  return {
    firstRetryIntervalInMilliseconds: options.firstRetryIntervalInMilliseconds,
    maxNumberOfAttempts: options.maxNumberOfAttempts,
    ...(options.backoffCoefficient !== undefined ? { backoffCoefficient: options.backoffCoefficient } : {}),
    ...(options.maxRetryIntervalInMilliseconds !== undefined
      ? { maxRetryIntervalInMilliseconds: options.maxRetryIntervalInMilliseconds }
      : {}),
  };
}

/** durable-functions JSON-encodes string activity inputs (Utils.processInput); the host decodes them. */
function unwrapInput(input: unknown): unknown {
  if (typeof input !== 'string') return input;
  try {
    return JSON.parse(input);
  } catch {
    return input;
  }
}

function required(name: string | undefined): string {
  if (!name) throw new Error('action without a function name');
  return name;
}
