/**
 * The audit log (docs/FORMAT.md "Audit log"): who restored, downloaded, forgot, undeleted, pruned, or
 * started a backup or verification, and when — one small JSON blob per entry in the vault, and the
 * custom event PagewiseAudit. A write that fails is logged, never turned into a failure of what was done.
 */
import { randomBytes } from 'node:crypto';
import type { HttpResponse, InvocationContext } from '@azure/functions';
import { DAY_MS, forEachLimited, isPagewiseError, redact, Vault } from '../../core';
import { problemFromError } from '../problems';
import { readSettings } from '../settings';
import { trackCustomEvent } from '../telemetry';
import type { Principal } from './principal';

export const AUDIT_PREFIX = 'audit/v1/';
export const AUDIT_FORMAT = 'pagewise-audit';
export const AUDIT_VERSION = 1;
/** Entries one listing answers at most (then `truncated`). */
export const MAX_AUDIT_ENTRIES = 1000;
/** Days one listing may span: one prefix listing per day. */
export const MAX_AUDIT_DAYS = 92;
const MAX_TARGET_CHARS = 1024;

export type AuditAction = 'backup' | 'vm-backup' | 'verify' | 'restore' | 'download' | 'forget' | 'undelete' | 'prune';
export type AuditOutcome = 'accepted' | 'refused' | 'failed';

export interface AuditEntry {
  format: typeof AUDIT_FORMAT;
  version: typeof AUDIT_VERSION;
  at: string;
  who: { id: string; name: string; via: Principal['via']; roles: string[] };
  action: AuditAction;
  target: string;
  outcome: AuditOutcome;
  status?: number;
  instanceId?: string;
  detail?: string;
}

export interface AuditExtra {
  status?: number;
  instanceId?: string;
  detail?: string;
}

/** The outcome an HTTP status stands for. */
export function outcomeOf(status: number): AuditOutcome {
  return status < 400 ? 'accepted' : status < 500 ? 'refused' : 'failed';
}

export function auditBlobName(at: Date, random = randomBytes(8).toString('hex')): string {
  const iso = at.toISOString();
  return `${AUDIT_PREFIX}${iso.slice(0, 10)}/${iso}-${random}.json`;
}

/** Records one entry (vault blob + telemetry event); returns it. Throws only if the vault write fails. */
export async function audit(principal: Principal, action: AuditAction, target: string, outcome: AuditOutcome, extra: AuditExtra = {}, at = new Date()): Promise<AuditEntry> {
  const entry: AuditEntry = {
    format: AUDIT_FORMAT,
    version: AUDIT_VERSION,
    at: at.toISOString(),
    who: { id: principal.id, name: principal.name, via: principal.via, roles: [...principal.roles] },
    action,
    target: clipTarget(redact(target)),
    outcome,
    ...(extra.status !== undefined ? { status: extra.status } : {}),
    ...(extra.instanceId !== undefined ? { instanceId: extra.instanceId } : {}),
    ...(extra.detail !== undefined ? { detail: redact(extra.detail).slice(0, 512) } : {}),
  };
  trackCustomEvent({
    name: 'PagewiseAudit',
    properties: Object.fromEntries(
      Object.entries({ at: entry.at, whoId: entry.who.id, whoName: entry.who.name, via: entry.who.via, action, target: entry.target, outcome, status: entry.status, instanceId: entry.instanceId, detail: entry.detail })
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, String(v)]),
    ),
    measurements: {},
  });
  await Vault.open(readSettings().vault).putNew(auditBlobName(at), Buffer.from(JSON.stringify(entry), 'utf8'), 'application/json');
  return entry;
}

/**
 * Runs an audited request and records its outcome from the answer (or the error, then rethrown). The
 * instance started, if any, is read from a JSON answer's `instanceId`. A failed audit write is logged.
 */
export async function audited(
  context: InvocationContext,
  principal: Principal,
  action: AuditAction,
  target: string,
  run: () => Promise<HttpResponse>,
): Promise<HttpResponse> {
  let response: HttpResponse;
  try {
    response = await run();
  } catch (err) {
    const status = problemFromError(err).status ?? 500;
    await record(context, principal, action, target, { status, detail: isPagewiseError(err) ? err.code : err instanceof Error && 'title' in err ? String(err.title) : 'InternalError' });
    throw err;
  }
  const status = response.status ?? 200;
  await record(context, principal, action, target, { status, ...(await answerFacts(response)) });
  return response;
}

async function record(context: InvocationContext, principal: Principal, action: AuditAction, target: string, extra: AuditExtra & { status: number }): Promise<void> {
  try {
    await audit(principal, action, target, outcomeOf(extra.status), extra);
  } catch (err) {
    context.error(`audit: the entry for ${action} ${clipTarget(redact(target))} by ${principal.name} could not be written: ${redact(err instanceof Error ? err.message : String(err))}`);
  }
}

/** From a JSON answer: the instance started, or the problem's title. A streamed download is not read. */
async function answerFacts(response: HttpResponse): Promise<AuditExtra> {
  const type = response.headers.get('content-type') ?? '';
  if (!type.includes('json')) return {};
  try {
    const body = (await response.clone().json()) as { instanceId?: unknown; title?: unknown };
    return {
      ...(typeof body.instanceId === 'string' ? { instanceId: body.instanceId } : {}),
      ...(typeof body.title === 'string' ? { detail: body.title } : {}),
    };
  } catch {
    return {};
  }
}

function clipTarget(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > MAX_TARGET_CHARS ? `${clean.slice(0, MAX_TARGET_CHARS)}…` : clean;
}

export interface AuditListing {
  entries: AuditEntry[];
  truncated: boolean;
  /** Blobs under audit/ that are not entries this version reads (another format or version, unreadable). */
  skipped: number;
}

/** The entries of [since, until), oldest first, at most MAX_AUDIT_ENTRIES. */
export async function listAudit(since: Date, until: Date): Promise<AuditListing> {
  const vault = Vault.open(readSettings().vault);
  const names: string[] = [];
  let truncated = false;
  const from = since.toISOString();
  const to = until.toISOString();
  for (let day = Date.UTC(since.getUTCFullYear(), since.getUTCMonth(), since.getUTCDate()); day < until.getTime() && !truncated; day += DAY_MS) {
    for await (const name of vault.list(`${AUDIT_PREFIX}${new Date(day).toISOString().slice(0, 10)}/`)) {
      const at = name.slice(AUDIT_PREFIX.length + 11, AUDIT_PREFIX.length + 11 + 24);
      if (at < from || at >= to) continue;
      if (names.length >= MAX_AUDIT_ENTRIES) {
        truncated = true;
        break;
      }
      names.push(name);
    }
  }
  names.sort();
  const entries = new Map<string, AuditEntry>();
  let skipped = 0;
  await forEachLimited(names, 16, async (name) => {
    const entry = await vault.getJson<AuditEntry>(name).catch(() => undefined);
    if (entry?.format === AUDIT_FORMAT && entry.version === AUDIT_VERSION) entries.set(name, entry);
    else skipped++;
  });
  return { entries: names.filter((n) => entries.has(n)).map((n) => entries.get(n)!), truncated, skipped };
}
