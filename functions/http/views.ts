/** What the HTTP API shows of an orchestration: redacted, with links, without durable internals. */
import type { DurableClient, DurableOrchestrationStatus } from 'durable-functions';
import { displayUrl, redact, SECRET_FIELD } from '../../core';
import { withLiveProgress } from '../../orchestrations/progress';
import { findStatus } from '../starter';

/** Deep copy with every string redacted (SAS signatures, keys) — statuses echo inputs that may hold a SAS. */
export function redactDeep<T>(value: T): T {
  // Walks the value rather than redacting its JSON text: a SAS inside a string that holds JSON (a
  // history event's input) is escaped there, and a text pattern would cut the escape, not the secret.
  const walk = (v: unknown, name?: string): unknown => {
    if (typeof v === 'string') return name !== undefined && SECRET_FIELD.test(name) ? 'REDACTED' : redact(v);
    if (Array.isArray(v)) return v.map((item) => walk(item));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, walk(item, k)]));
    return v;
  };
  return walk(JSON.parse(JSON.stringify(value ?? null))) as T;
}

export interface OperationView {
  id: string;
  instanceId: string;
  /** The backup a restore or verification reads. */
  backupId?: string;
  runtimeStatus: string;
  customStatus: unknown;
  createdTime: string;
  lastUpdatedTime: string;
  source?: string;
  target?: string;
  output?: unknown;
  error?: string;
  links: { self: string };
}

export type OperationKind = 'backups' | 'restores' | 'verifications' | 'prunes' | 'vm-backups';

export function operationView(kind: OperationKind, id: string, status: DurableOrchestrationStatus): OperationView {
  const input = readInput(status.input);
  const failed = status.runtimeStatus === 'Failed';
  return redactDeep({
    id,
    instanceId: status.instanceId,
    ...(kind !== 'backups' && input.backupId ? { backupId: input.backupId } : {}),
    runtimeStatus: status.runtimeStatus,
    customStatus: status.customStatus ?? null,
    createdTime: new Date(status.createdTime).toISOString(),
    lastUpdatedTime: new Date(status.lastUpdatedTime).toISOString(),
    ...(input.source ? { source: displayUrl(input.source) } : {}),
    ...(input.target ? { target: displayUrl(input.target) } : {}),
    ...(failed ? { error: String(status.output ?? 'failed') } : status.output != null ? { output: status.output } : {}),
    links: { self: `/api/${kind}/${encodeURIComponent(id)}` },
  });
}

/**
 * The fields a view shows of an instance's input, strings only: an instance may have been started with
 * any input (the durable webhook), and one odd field must not make every listing fail.
 */
function readInput(input: unknown): { backupId?: string; source?: string; target?: string } {
  const record = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});
  const text = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
  const fields = { backupId: text(record(input).backupId), source: text(record(record(input).source).url), target: text(record(record(input).target).url) };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

/**
 * A running backup's (or fanned-out restore's or verification's, #17) status with its progress as of now:
 * the root publishes batches (windows) only as its range sub-orchestrations end, so the running ranges'
 * own progress is added (orchestrations/progress.ts).
 */
export async function withLiveBackupProgress(client: DurableClient, status: DurableOrchestrationStatus): Promise<DurableOrchestrationStatus> {
  if (status.runtimeStatus !== 'Running') return status;
  const customStatusOf = async (instanceId: string) => (await findStatus(client, instanceId))?.customStatus;
  return { ...status, customStatus: await withLiveProgress(status.customStatus, customStatusOf) } as DurableOrchestrationStatus;
}
