/**
 * GET /api/operations (#18 portal): the durable instances of backups, VM backups, restores, verifications
 * and prunes — running ones with their live progress, failed ones with their reason — newest first.
 * `?status=running|failed|all` (default all), `?kind=backups|vm-backups|restores|verifications|prunes`,
 * `?top=1..200` (default 50). Sub-orchestrations (IDs with `:`) are parts of these, never listed themselves.
 */
import * as df from 'durable-functions';
import type { DurableClient, DurableOrchestrationStatus } from 'durable-functions';
import { HttpResponse } from '@azure/functions';
import { listBackups } from '../../core';
import { backupIdOfInstance, PRUNE_INSTANCE_RE, vmBackupIdOfInstance } from '../../orchestrations/instanceIds';
import { apiAuthLevel } from '../auth/authMode';
import { requireRole } from '../auth/principal';
import { ROUTE_ROLES } from '../auth/routeRoles';
import { ProblemError } from '../problems';
import { readSettings, readUserKey } from '../settings';
import { isRestartable } from '../starter';
import { answering, assertKnownQuery } from './responses';
import { OperationKind, OperationView, operationView, redactDeep, withLiveBackupProgress } from './views';
import { withLiveDiskProgress } from './vmBackups';

export const OPERATION_KINDS: readonly OperationKind[] = ['backups', 'vm-backups', 'restores', 'verifications', 'prunes'];
const STATUSES = ['running', 'failed', 'all'] as const;
type StatusFilter = (typeof STATUSES)[number];

export const DEFAULT_TOP = 50;
export const MAX_TOP = 200;

/** The runtime states each filter asks the task hub for (a terminated operation did not finish: a failure to an operator). */
const RUNTIME_STATES: Record<StatusFilter, df.OrchestrationRuntimeStatus[] | undefined> = {
  running: [df.OrchestrationRuntimeStatus.Pending, df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.ContinuedAsNew],
  failed: [df.OrchestrationRuntimeStatus.Failed, df.OrchestrationRuntimeStatus.Terminated],
  all: undefined,
};

export interface ListedOperation extends OperationView {
  kind: OperationKind;
  /** Why a failed or terminated operation did not finish (redacted). */
  reason?: string;
}

/** The kind and API ID of a top-level operation instance, or undefined for any other instance. */
export function operationOfInstance(instanceId: string): { kind: OperationKind; id: string } | undefined {
  if (instanceId.includes(':')) return undefined;
  const backupId = backupIdOfInstance(instanceId);
  if (backupId !== undefined) return { kind: 'backups', id: backupId };
  const vmBackupId = vmBackupIdOfInstance(instanceId);
  if (vmBackupId !== undefined) return { kind: 'vm-backups', id: vmBackupId };
  // Restores and verifications are named by their instance ID (HTTP: random or keyed; a schedule names its own).
  if (/^restore-[A-Za-z0-9_-]+$/.test(instanceId)) return { kind: 'restores', id: instanceId };
  if (/^verify-[A-Za-z0-9_-]+$/.test(instanceId)) return { kind: 'verifications', id: instanceId };
  if (PRUNE_INSTANCE_RE.test(instanceId)) return { kind: 'prunes', id: instanceId };
  return undefined;
}

function queryOf<T extends string>(value: string | null, allowed: readonly T[], name: string): T | undefined {
  if (value === null) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new ProblemError(400, 'BadQuery', `${name} ${JSON.stringify(value.slice(0, 64))} is not supported (allowed: ${allowed.join(', ')})`);
  return value as T;
}

function topOf(value: string | null): number {
  if (value === null) return DEFAULT_TOP;
  const top = /^[0-9]{1,4}$/.test(value) ? Number(value) : NaN;
  if (!(top >= 1 && top <= MAX_TOP)) throw new ProblemError(400, 'BadQuery', `top must be a whole number from 1 to ${MAX_TOP}`);
  return top;
}

df.app.client.http('listOperations', {
  route: 'operations',
  methods: ['GET'],
  authLevel: apiAuthLevel(),
  handler: answering(async (request, client) => {
    requireRole(request, ROUTE_ROLES.listOperations);
    assertKnownQuery(request, ['status', 'kind', 'top']);
    const status = queryOf(request.query.get('status'), STATUSES, 'status') ?? 'all';
    const kind = queryOf(request.query.get('kind'), OPERATION_KINDS, 'kind');
    const top = topOf(request.query.get('top'));
    const states = RUNTIME_STATES[status];
    const instances = (await client.getStatusBy(states ? { runtimeStatus: states } : {}))
      .map((s) => ({ status: s, op: operationOfInstance(s.instanceId) }))
      .filter((i): i is { status: DurableOrchestrationStatus; op: { kind: OperationKind; id: string } } => i.op !== undefined && (!kind || i.op.kind === kind));
    const current = await withoutSupersededFailures(instances);
    current.sort((a, b) => new Date(b.status.createdTime).getTime() - new Date(a.status.createdTime).getTime());
    const shown = current.slice(0, top);
    const operations = await Promise.all(shown.map(({ status: s, op }) => listedView(client, op.kind, op.id, s)));
    return new HttpResponse({ status: 200, jsonBody: { operations, truncated: current.length > top } });
  }),
});

/**
 * A failed backup orchestration of a backup the vault holds complete (finished since, by a retry or the CLI)
 * is no failure any more: dropped, as GET /api/backups drops it. The catalog is read only when there is one.
 */
async function withoutSupersededFailures<T extends { status: DurableOrchestrationStatus; op: { kind: OperationKind; id: string } }>(instances: T[]): Promise<T[]> {
  if (!instances.some((i) => i.op.kind === 'backups' && isRestartable(i.status))) return instances;
  const complete = new Set((await listBackups(readSettings().vault, { userKey: readUserKey() })).filter((b) => b.status === 'complete').map((b) => b.backupId));
  return instances.filter((i) => !(i.op.kind === 'backups' && isRestartable(i.status) && complete.has(i.op.id)));
}

async function listedView(client: DurableClient, kind: OperationKind, id: string, status: DurableOrchestrationStatus): Promise<ListedOperation> {
  const live = kind === 'vm-backups' ? status : await withLiveBackupProgress(client, status);
  const view = operationView(kind, id, live);
  if (kind === 'vm-backups' && status.runtimeStatus === 'Running') view.customStatus = redactDeep(await withLiveDiskProgress(client, status.customStatus));
  const reason = status.runtimeStatus === 'Failed' ? view.error : status.runtimeStatus === 'Terminated' ? `terminated${status.output ? `: ${String(status.output)}` : ''}` : undefined;
  return { kind, ...view, ...(reason !== undefined ? { reason: redactDeep(reason) } : {}) };
}
