/** Shared response shapes of the "start an operation" endpoints. */
import type { DurableClient } from 'durable-functions';
import { HttpRequest, HttpResponse } from '@azure/functions';
import { PagewiseError } from '../../core';
import type { StartOnceResult } from '../starter';
import { operationView, redactDeep } from './views';

/** Parses a JSON body; a body that is not JSON is the caller's error (400), not ours. */
export async function readJson(request: HttpRequest): Promise<unknown> {
  const text = await request.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new PagewiseError('BadInput', 'the request body is not JSON');
  }
}

/**
 * 202 Accepted with a Location for a started or still running operation; 200 with the operation's
 * view when it had already finished (a duplicate start changes nothing).
 */
export function startedResponse(
  request: HttpRequest,
  client: DurableClient,
  kind: 'backups' | 'restores' | 'verifications',
  id: string,
  started: StartOnceResult,
): HttpResponse {
  const origin = new URL(request.url).origin;
  const self = `${origin}/api/${kind}/${encodeURIComponent(id)}`;
  const finished = started.status && ['Completed', 'Failed', 'Terminated'].includes(started.status.runtimeStatus);
  if (finished) {
    return new HttpResponse({ status: 200, jsonBody: { duplicate: true, ...operationView(kind, id, started.status!) } });
  }
  const management = client.createHttpManagementPayload(started.instanceId);
  return new HttpResponse({
    status: 202,
    headers: { Location: self, 'Retry-After': '10' },
    jsonBody: redactDeep({
      id,
      instanceId: started.instanceId,
      duplicate: !started.started,
      runtimeStatus: started.status?.runtimeStatus ?? 'Pending',
      statusUri: self,
      // The durable webhooks for operators, without the system key Azure puts in them (`code`).
      management: {
        statusQueryGetUri: linkFor(management.statusQueryGetUri, origin),
        terminatePostUri: linkFor(management.terminatePostUri, origin),
      },
    }),
  });
}

/** A management link on the caller's origin (as createCheckStatusResponse does), without `code`. */
function linkFor(url: string, origin: string): string {
  const link = new URL(url);
  link.searchParams.delete('code');
  return `${origin}${link.pathname}${link.search}`;
}
