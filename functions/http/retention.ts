/**
 * HTTP API of soft deletion (issue #13): `DELETE /api/backups/{id}` forgets a backup — a tombstone, no
 * blob deleted, so the backup role may do it — and answers 202 with the end of its grace;
 * `POST /api/backups/{id}/undelete` takes the tombstone away while the grace lasts (delete right: not
 * registered in the backup role). Thin: validate, call core, shape the answer.
 */
import * as df from 'durable-functions';
import { HttpRequest, HttpResponse } from '@azure/functions';
import { DAY_MS, forgetBackups, listBackups, PagewiseError, undeleteBackups, validateBackupId } from '../../core';
import { problem, ProblemError } from '../problems';
import { readSettings, readUserKey } from '../settings';
import { answering, assertKnownQuery } from './responses';
import { apiAuthLevel } from '../auth/authMode';
import { requireRole } from '../auth/principal';
import { ROUTE_ROLES } from '../auth/routeRoles';
import { audited } from '../auth/audit';

const MAX_GRACE_DAYS = 3650;

/** `?graceDays=N` (whole days, 0 … 3650); absent: core's default grace. */
function graceMsOf(request: HttpRequest): number | undefined {
  const raw = request.query.get('graceDays');
  if (raw === null) return undefined;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) > MAX_GRACE_DAYS) {
    throw new ProblemError(400, 'BadQuery', `graceDays must be a whole number of days from 0 to ${MAX_GRACE_DAYS}, got ${JSON.stringify(raw.slice(0, 16))}`);
  }
  return Number(raw) * DAY_MS;
}

/** The grace end of a backup forgotten earlier, as the catalog lists it. */
async function deletedState(backupId: string): Promise<{ forgottenAt: string; graceEndsAt: string } | undefined> {
  const listed = (await listBackups(readSettings().vault, { userKey: readUserKey() })).find((b) => b.backupId === backupId);
  return listed?.status === 'complete' ? listed.deleted : undefined;
}

export function registerRetentionRoutes(o: { undelete: boolean }): void {
  df.app.client.http('forgetBackup', {
    route: 'backups/{id}',
    methods: ['DELETE'],
    authLevel: apiAuthLevel(),
    handler: answering(async (request, _client, context) => {
      const who = requireRole(request, ROUTE_ROLES.forgetBackup);
      assertKnownQuery(request, ['graceDays']);
      const backupId = validateBackupId(request.params.id ?? '');
      const graceMs = graceMsOf(request);
      return audited(context, who, 'forget', backupId, () => forget(backupId, graceMs, o.undelete));
    }),
  });

  if (!o.undelete) return;
  df.app.client.http('undeleteBackup', {
    route: 'backups/{id}/undelete',
    methods: ['POST'],
    authLevel: apiAuthLevel(),
    handler: answering(async (request, _client, context) => {
      const who = requireRole(request, ROUTE_ROLES.undeleteBackup);
      assertKnownQuery(request, []);
      const backupId = validateBackupId(request.params.id ?? '');
      return audited(context, who, 'undelete', backupId, () => undelete(backupId));
    }),
  });
}

async function forget(backupId: string, graceMs: number | undefined, undeletable: boolean): Promise<HttpResponse> {
  const settings = readSettings();
  const report = await forgetBackups({ vault: settings.vault, userKey: readUserKey(), backupIds: [backupId], ...(graceMs !== undefined ? { graceMs } : {}) });
  const forgotten = report.forgotten.find((f) => f.backupId === backupId);
  const links = { self: `/api/backups/${backupId}`, ...(undeletable ? { undelete: `/api/backups/${backupId}/undelete` } : {}) };
  if (forgotten) return new HttpResponse({ status: 202, jsonBody: { backupId, graceEndsAt: forgotten.graceEndsAt, alreadyForgotten: false, links } });
  // Forgotten before: the older tombstone stands, with its own grace.
  const earlier = report.alreadyForgotten.includes(backupId) ? await deletedState(backupId) : undefined;
  if (earlier) return new HttpResponse({ status: 202, jsonBody: { backupId, graceEndsAt: earlier.graceEndsAt, alreadyForgotten: true, links } });
  // Not forgotten because of what the vault holds (an untrusted tombstone, the manifest gone meanwhile).
  const why = report.problems?.find((p) => p.backupId === backupId);
  if (why) return problem(409, 'NotForgotten', why.problem);
  throw new PagewiseError('BackupNotFound', `no backup ${backupId}`);
}

async function undelete(backupId: string): Promise<HttpResponse> {
  const settings = readSettings();
  const result = await undeleteBackups({ vault: settings.vault, userKey: readUserKey(), backupIds: [backupId] });
  if (result.restored.includes(backupId)) return new HttpResponse({ status: 200, jsonBody: { backupId, restored: true } });
  if (result.expired.includes(backupId)) {
    return problem(409, 'BackupExpired', `backup ${backupId} was forgotten and its grace has ended: prune may already have deleted it`);
  }
  // Not forgotten: a live backup needs no undelete (200, nothing changed); an unknown one is 404.
  const listed = (await listBackups(settings.vault, { userKey: readUserKey() })).find((b) => b.backupId === backupId);
  if (listed) return new HttpResponse({ status: 200, jsonBody: { backupId, restored: false, notForgotten: true } });
  throw new PagewiseError('BackupNotFound', `no backup ${backupId}`);
}
