/**
 * GET /api/starts (#17): the queued backup starts that failed — still being retried (`failing`) or given up
 * to the poison queue (`poisoned`) — each with its reason and attempts, and how many messages wait in the
 * start queue and its poison queue. Targets without SAS, reasons redacted (functions/startRecords.ts).
 */
import * as df from 'durable-functions';
import { HttpResponse } from '@azure/functions';
import { ProblemError } from '../problems';
import { BACKUP_STARTS_POISON_QUEUE, BACKUP_STARTS_QUEUE, startsContainer, startsQueue } from '../startBudget';
import { listStartRecords, MAX_LISTED_RECORDS, StartState } from '../startRecords';
import { answering, assertKnownQuery } from './responses';
import { apiAuthLevel } from '../auth/authMode';
import { requireRole } from '../auth/principal';
import { ROUTE_ROLES } from '../auth/routeRoles';

const STATES: readonly StartState[] = ['failing', 'poisoned', 'started'];

/** Messages in a queue (approximate, as the service counts them); 0 for a queue not made yet. */
async function waiting(name: string): Promise<number> {
  try {
    return (await startsQueue(undefined, name).getProperties()).approximateMessagesCount ?? 0;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return 0;
    throw err;
  }
}

df.app.client.http('listStarts', {
  route: 'starts',
  methods: ['GET'],
  authLevel: apiAuthLevel(),
  handler: answering(async (request) => {
    requireRole(request, ROUTE_ROLES.listStarts);
    assertKnownQuery(request, ['state']);
    const state = request.query.get('state');
    if (state !== null && !(STATES as readonly string[]).includes(state)) {
      throw new ProblemError(400, 'BadQuery', `state ${JSON.stringify(state.slice(0, 64))} is not supported (allowed: ${STATES.join(', ')})`);
    }
    const states: StartState[] = state ? [state as StartState] : ['failing', 'poisoned'];
    const starts = await listStartRecords(startsContainer(), { states, limit: MAX_LISTED_RECORDS });
    return new HttpResponse({
      status: 200,
      jsonBody: {
        starts,
        truncated: starts.length >= MAX_LISTED_RECORDS,
        queue: { name: BACKUP_STARTS_QUEUE, approximateMessages: await waiting(BACKUP_STARTS_QUEUE) },
        poisonQueue: { name: BACKUP_STARTS_POISON_QUEUE, approximateMessages: await waiting(BACKUP_STARTS_POISON_QUEUE) },
      },
    });
  }),
});
