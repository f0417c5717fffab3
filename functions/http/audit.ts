/** GET /api/audit?since=&until= (admin): the audit log's entries of a time range, oldest first (docs/FORMAT.md "Audit log"). */
import { app, HttpRequest, HttpResponse } from '@azure/functions';
import { DAY_MS } from '../../core';
import { listAudit, MAX_AUDIT_DAYS } from '../auth/audit';
import { apiAuthLevel } from '../auth/authMode';
import { requireRole } from '../auth/principal';
import { ROUTE_ROLES } from '../auth/routeRoles';
import { problemFromError, ProblemError } from '../problems';
import { assertKnownQuery } from './responses';

const DEFAULT_DAYS = 7;

app.http('listAudit', {
  route: 'audit',
  methods: ['GET'],
  authLevel: apiAuthLevel(),
  handler: async (request, context) => {
    try {
      requireRole(request, ROUTE_ROLES.listAudit);
      assertKnownQuery(request, ['since', 'until']);
      const until = timeOf(request, 'until') ?? new Date();
      const since = timeOf(request, 'since') ?? new Date(until.getTime() - DEFAULT_DAYS * DAY_MS);
      if (since.getTime() >= until.getTime()) throw new ProblemError(400, 'BadQuery', 'since must be before until');
      if (until.getTime() - since.getTime() > MAX_AUDIT_DAYS * DAY_MS) throw new ProblemError(400, 'BadQuery', `a listing spans at most ${MAX_AUDIT_DAYS} days; narrow since/until`);
      const listing = await listAudit(since, until);
      return new HttpResponse({ status: 200, jsonBody: { since: since.toISOString(), until: until.toISOString(), ...listing }, headers: { 'Cache-Control': 'no-store' } });
    } catch (err) {
      return problemFromError(err, { context });
    }
  },
});

/** An ISO 8601 time (a date, or a date and time with a zone). */
function timeOf(request: HttpRequest, name: 'since' | 'until'): Date | undefined {
  const raw = request.query.get(name);
  if (raw === null) return undefined;
  const ok = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(raw) && !Number.isNaN(Date.parse(raw));
  if (!ok) throw new ProblemError(400, 'BadQuery', `${name} must be an ISO 8601 time such as 2026-12-01 or 2026-12-01T08:00:00Z, got ${JSON.stringify(raw.slice(0, 40))}`);
  return new Date(raw);
}
