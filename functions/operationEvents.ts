/**
 * #18 telemetry: the operation events. Started is sent by the starter that started the instance
 * (functions/starter.ts, once: only the call that created it); Completed/Failed by the `reportOperation`
 * activity the orchestrator calls as it ends (orchestrations/operationReport.ts, functions/operationReports.ts).
 */
import { PagewiseError } from '../core';
import { OperationReportInput, Orchestrators } from '../orchestrations/contracts';
import { VmOrchestrators } from '../orchestrations/vmContracts';
import { subjectOf } from '../orchestrations/operationReport';
import { OPERATION_KINDS, OPERATION_TRIGGERS, OperationFigures, OperationKind, trackOperationEvent } from './telemetry';

/** The operation an orchestrator starts, for those telemetry follows (not their sub-orchestrations). */
const KIND_OF: Record<string, OperationKind> = {
  [Orchestrators.backupDisk]: 'backup',
  [VmOrchestrators.backupVm]: 'vm-backup',
  [Orchestrators.restoreDisk]: 'restore',
  [Orchestrators.restoreManagedDisk]: 'restore',
  [Orchestrators.verifyBackup]: 'verify',
  [Orchestrators.pruneVault]: 'prune',
};

/** Sends the Started event of an instance a starter has just created (nothing for other orchestrators). */
export function reportStarted(orchestrator: string, instanceId: string, input: unknown): void {
  const kind = KIND_OF[orchestrator];
  if (!kind) return;
  const subject = subjectOf(kind, input as Record<string, unknown> | undefined);
  // A VM's disk runs as its own backup orchestration: the VM backup is the operation.
  if (kind === 'backup' && (input as { vmCapture?: unknown } | undefined)?.vmCapture) return;
  trackOperationEvent(kind, 'Started', { instanceId, trigger: subject.trigger, disk: subject.disk, backupId: subject.backupId });
}

const MiB = 1024 * 1024;

/** The SPEC's metrics from an output's figures: a restore's pages are those it wrote, a verification's those it checked. */
export function operationFigures(figures: Record<string, number>): OperationFigures {
  const bytes = figures.bytesRead ?? figures.bytesWritten ?? figures.bytesChecked;
  const durationMs = figures.durationMs;
  return {
    ...(figures.bytesRead !== undefined ? { bytesRead: figures.bytesRead } : {}),
    ...(figures.bytesStored !== undefined ? { bytesStored: figures.bytesStored } : {}),
    ...(figures.bytesNew !== undefined ? { bytesNew: figures.bytesNew } : {}),
    ...(figures.cacheHighWaterBytes !== undefined ? { cacheHighWaterBytes: figures.cacheHighWaterBytes } : {}),
    ...((figures.pages ?? figures.pagesWritten ?? figures.pagesChecked) !== undefined ? { pages: figures.pages ?? figures.pagesWritten ?? figures.pagesChecked } : {}),
    ...(durationMs !== undefined ? { durationMs } : {}),
    ...(bytes !== undefined && durationMs ? { throughputMiBps: bytes / MiB / (durationMs / 1000) } : {}),
  };
}

const TEXT_LIMIT = 4096;

/** The activity input, checked: it comes from the task hub (a queue message), so its shape is not trusted. */
export function reportInput(value: unknown): OperationReportInput {
  const bad = (what: string) => new PagewiseError('BadInput', `the reportOperation activity's input is invalid: ${what}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('not an object');
  const v = value as Record<string, unknown>;
  if (!OPERATION_KINDS.includes(v.kind as OperationKind)) throw bad('unknown kind');
  if (v.phase !== 'Completed' && v.phase !== 'Failed') throw bad('phase must be Completed or Failed');
  if (!OPERATION_TRIGGERS.includes(v.trigger as never)) throw bad('unknown trigger');
  for (const key of ['instanceId', 'disk', 'backupId', 'reason', 'errorCode']) {
    const s = v[key];
    if (key === 'instanceId' ? typeof s !== 'string' || s === '' : s !== undefined && typeof s !== 'string') throw bad(`${key} must be a string`);
    if (typeof s === 'string' && s.length > TEXT_LIMIT) throw bad(`${key} is longer than ${TEXT_LIMIT} characters`);
  }
  const figures: Record<string, number> = {};
  if (v.figures !== undefined) {
    if (typeof v.figures !== 'object' || v.figures === null || Array.isArray(v.figures)) throw bad('figures must be an object');
    const entries = Object.entries(v.figures as Record<string, unknown>);
    if (entries.length > 64) throw bad('too many figures');
    for (const [k, n] of entries) if (typeof n === 'number' && Number.isFinite(n) && /^[A-Za-z][A-Za-z0-9]{0,63}$/.test(k)) figures[k] = n;
  }
  return { ...(v as unknown as OperationReportInput), figures };
}
