/**
 * #18 telemetry: an operation's Completed/Failed events come from an activity (`reportOperation`) the
 * wrapped orchestrator calls as it ends — the orchestrator itself does no I/O, and an activity's result
 * is in the history, so a replay never reports twice. What is reported (kind, disk, figures, reason) is
 * read here from the orchestration's input and output: pure, deterministic.
 */
import type { OrchestrationContext, OrchestrationHandler, Task } from 'durable-functions';
import { Activities, OperationReportInput, OperationReportKind, OperationTrigger } from './contracts';
import { retryOptions } from './retry';

/** What an orchestration's input says of its operation (also what a starter's Started event says). */
export interface OperationSubject {
  kind: OperationReportKind;
  trigger: OperationTrigger;
  disk?: string;
  backupId?: string;
}

type Input = Record<string, unknown> | undefined;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const urlOf = (ref: unknown): string | undefined => str((ref as { url?: unknown } | undefined)?.url);

/** The trigger an input names, or the one its shape implies (inputs written before #18 name none). */
export function triggerOf(input: Input): OperationTrigger {
  const named = str(input?.trigger);
  if (named === 'http' || named === 'timer' || named === 'queue' || named === 'eventgrid' || named === 'cli') return named;
  if (input?.settle) return 'eventgrid';
  if (Array.isArray(input?.startSlots)) return 'timer'; // a queued start is a scheduled one (start messages come from the timer)
  return 'http';
}

/** The operation an orchestration's input describes: disk (URL without SAS, or the VM's ID) and backup. */
export function subjectOf(kind: OperationReportKind, input: Input): OperationSubject {
  const trigger = triggerOf(input);
  const managed = input?.managedDisk as { name?: unknown; resourceGroup?: unknown } | undefined;
  const disk =
    kind === 'vm-backup'
      ? str(input?.vmId)
      : kind === 'restore'
        ? urlOf(input?.target) ?? (managed ? `managed disk ${String(managed.resourceGroup)}/${String(managed.name)}` : undefined)
        : urlOf(input?.source);
  const backupId = str(input?.backupId) ?? str(input?.vmBackupId);
  return { kind, trigger, ...(disk ? { disk } : {}), ...(backupId ? { backupId } : {}) };
}

/** The numbers of an output worth a measurement: its top-level finite numbers (counts, bytes, durations). */
export function figuresOf(kind: OperationReportKind, output: unknown): Record<string, number> {
  const out = (output ?? {}) as Record<string, unknown>;
  if (kind === 'prune') return pruneFigures(out);
  // A backup's figures are its engine result's; a VM backup's the sum over its disks.
  const source = kind === 'backup' && typeof out.result === 'object' && out.result !== null ? (out.result as Record<string, unknown>) : out;
  const figures: Record<string, number> = {};
  for (const [k, v] of Object.entries(source)) if (typeof v === 'number' && Number.isFinite(v)) figures[k] = v;
  if (kind === 'vm-backup' && Array.isArray(out.disks)) {
    const disks = out.disks as Array<Record<string, unknown>>;
    figures.disks = disks.length;
    figures.disksFailed = disks.filter((d) => d.state === 'failed').length;
    figures.bytesRead = disks.reduce((s, d) => s + (typeof d.bytesRead === 'number' ? d.bytesRead : 0), 0);
    figures.bytesStored = disks.reduce((s, d) => s + (typeof d.bytesStored === 'number' ? d.bytesStored : 0), 0);
  }
  return figures;
}

/** A prune's report (core PruneReport) flattened: what it deleted, repacked, left pending, and how long it took. */
function pruneFigures(report: Record<string, unknown>): Record<string, number> {
  const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const count = (v: unknown): number | undefined => (Array.isArray(v) ? v.length : num(v));
  const part = (key: string) => (typeof report[key] === 'object' && report[key] !== null ? (report[key] as Record<string, unknown>) : {});
  const deleted = part('deleted');
  const repacked = part('repacked');
  const pending = part('pending');
  const started = typeof report.startedAt === 'string' ? Date.parse(report.startedAt) : NaN;
  const completed = typeof report.completedAt === 'string' ? Date.parse(report.completedAt) : NaN;
  const figures: Record<string, number | undefined> = {
    dryRun: typeof report.dryRun === 'boolean' ? Number(report.dryRun) : undefined,
    blocked: typeof report.blocked === 'string' ? 1 : 0,
    bytesReclaimed: num(report.bytesReclaimed),
    bytesUnused: num(report.bytesUnused),
    bytesTotal: num(report.bytesTotal),
    manifestsDeleted: count(deleted.manifests),
    packsDeleted: count(deleted.packs),
    tablesDeleted: count(deleted.tables),
    deltasDeleted: count(deleted.deltas),
    generationsDeleted: count(deleted.generations),
    packsRepacked: num(repacked.packs),
    bytesCopied: num(repacked.bytesCopied),
    packsPending: num(pending.packs),
    bytesPending: num(pending.bytes),
    problems: count(report.problems),
    durationMs: Number.isFinite(completed - started) ? completed - started : undefined,
  };
  return Object.fromEntries(Object.entries(figures).filter((e): e is [string, number] => e[1] !== undefined));
}

/** Longest failure reason reported (a customEvents property holds 8192 characters). */
export const MAX_REASON_CHARS = 1000;

/** A failure's reason and code: `Code: message` from a permanent failure (activityOutcome.ts), else what kind of failure. */
export function failureOf(err: unknown): { reason: string; errorCode: string } {
  const message = err instanceof Error ? err.message : String(err);
  const coded = /^([A-Z][A-Za-z]{2,40}): /.exec(message);
  const errorCode = coded?.[1] ?? (/failed verification/.test(message) ? 'VerificationFailed' : /^Activity function '[^']+' failed/.test(message) ? 'ActivityFailed' : 'OrchestrationFailed');
  return { reason: message.length > MAX_REASON_CHARS ? `${message.slice(0, MAX_REASON_CHARS)}…` : message, errorCode };
}

function* report(context: OrchestrationContext, input: OperationReportInput): Generator<Task, void, unknown> {
  try {
    yield context.df.callActivityWithRetry(Activities.reportOperation, retryOptions(), input);
  } catch {
    // Telemetry that could not be sent is not the operation's failure.
  }
}

/**
 * Wraps a top-level orchestrator: Completed (with its figures) or Failed (reason, error code) reported
 * through the activity as it ends. `skip`: inputs that are not an operation of their own (a VM's disk).
 */
export function reportingOperation(kind: OperationReportKind, handler: OrchestrationHandler, skip: (input: Input) => boolean = () => false): OrchestrationHandler {
  return function* (context: OrchestrationContext) {
    const input = context.df.getInput() as Input;
    if (skip(input)) return yield* handler(context);
    const subject = { instanceId: context.df.instanceId, ...subjectOf(kind, input) };
    let output: unknown;
    try {
      output = yield* handler(context);
    } catch (err) {
      yield* report(context, { ...subject, phase: 'Failed', ...failureOf(err) });
      throw err;
    }
    yield* report(context, { ...subject, phase: 'Completed', figures: figuresOf(kind, output) });
    return output;
  };
}
