/** What the HTTP API shows of an orchestration: redacted, with links, without durable internals. */
import type { DurableOrchestrationStatus } from 'durable-functions';
import { displayUrl, redact } from '../../core';

/** Deep copy with every string redacted (SAS signatures, keys) — statuses echo inputs that may hold a SAS. */
export function redactDeep<T>(value: T): T {
  return JSON.parse(redact(JSON.stringify(value ?? null))) as T;
}

export interface OperationView {
  id: string;
  instanceId: string;
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

export function operationView(kind: 'backups' | 'restores' | 'verifications', id: string, status: DurableOrchestrationStatus): OperationView {
  const input = (status.input ?? {}) as { source?: { url?: string }; target?: { url?: string } };
  const failed = status.runtimeStatus === 'Failed';
  return redactDeep({
    id,
    instanceId: status.instanceId,
    runtimeStatus: status.runtimeStatus,
    customStatus: status.customStatus ?? null,
    createdTime: new Date(status.createdTime).toISOString(),
    lastUpdatedTime: new Date(status.lastUpdatedTime).toISOString(),
    ...(input.source?.url ? { source: displayUrl(input.source.url) } : {}),
    ...(input.target?.url ? { target: displayUrl(input.target.url) } : {}),
    ...(failed ? { error: String(status.output ?? 'failed') } : status.output != null ? { output: status.output } : {}),
    links: { self: `/api/${kind}/${encodeURIComponent(id)}` },
  });
}
