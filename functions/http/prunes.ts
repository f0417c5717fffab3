/**
 * HTTP API of prunes (issue #13): `POST /api/prunes` starts the prune orchestration (202 + status link),
 * `GET /api/prunes/{id}` reads it — its report is the output once done. Registered only where the app's
 * role may delete (functions/index.ts).
 */
import { randomBytes } from 'node:crypto';
import * as df from 'durable-functions';
import { HttpResponse } from '@azure/functions';
import { Orchestrators, PruneOrchestrationInput } from '../../orchestrations/contracts';
import { PRUNE_INSTANCE_RE } from '../../orchestrations/instanceIds';
import { problem } from '../problems';
import { findStatus, startOnce } from '../starter';
import { validators } from './schemas';
import { operationView } from './views';
import { answering, assertKnownQuery, startedResponse, validBody } from './responses';
import { apiAuthLevel } from '../auth/authMode';
import { requireRole } from '../auth/principal';
import { ROUTE_ROLES } from '../auth/routeRoles';
import { audited } from '../auth/audit';

df.app.client.http('startPrune', {
  route: 'prunes',
  methods: ['POST'],
  authLevel: apiAuthLevel(),
  handler: answering(async (request, client, context) => {
    const who = requireRole(request, ROUTE_ROLES.startPrune);
    assertKnownQuery(request, []);
    const body = await validBody(request, validators.startPrune, {});
    const input: PruneOrchestrationInput = body;
    return audited(context, who, 'prune', `the vault${body.dryRun ? ' (dry run)' : ''}`, async () => {
      const instanceId = `prune-${randomBytes(8).toString('hex')}`;
      const started = await startOnce(client, Orchestrators.pruneVault, instanceId, input, { restartFailed: false });
      return startedResponse(request, client, 'prunes', instanceId, started);
    });
  }),
});

df.app.client.http('getPrune', {
  route: 'prunes/{id}',
  methods: ['GET'],
  authLevel: apiAuthLevel(),
  handler: answering(async (request, client) => {
    requireRole(request, ROUTE_ROLES.getPrune);
    assertKnownQuery(request, []);
    const id = request.params.id ?? '';
    // Only an ID this API hands out is looked up: anything else never reaches the task hub.
    const status = PRUNE_INSTANCE_RE.test(id) ? await findStatus(client, id) : undefined;
    if (!status) return problem(404, 'OperationNotFound', `no prune ${id.length > 80 ? `${id.slice(0, 80)}…` : id}`);
    return new HttpResponse({ status: 200, jsonBody: operationView('prunes', id, status) });
  }),
});
