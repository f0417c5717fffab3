/** Shared response shapes of the "start an operation" endpoints. */
import type { DurableClient } from 'durable-functions';
import { HttpRequest, HttpResponse, InvocationContext } from '@azure/functions';
import type { ValidateFunction } from 'ajv';
import { PagewiseError } from '../../core';
import { ProblemError, problemFromError } from '../problems';
import { describeErrors } from './schemas';
import { nestsTooDeep, TOO_DEEP } from './jsonDepth';
import type { StartOnceResult } from '../starter';
import { OperationKind, operationView, redactDeep } from './views';

/**
 * Largest request body accepted (bytes). Every valid body is a few hundred bytes (URLs are at most 4096
 * characters); anything near this is a mistake or an attack, refused before it is parsed.
 */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * The JSON body, checked against its schema; otherwise a 400 problem listing what is wrong (413 if too large).
 * `emptyAs`: what an empty body stands for, on a route whose every field is optional.
 */
export async function validBody<T>(request: HttpRequest, validate: ValidateFunction<T>, emptyAs?: T): Promise<T> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) throw tooLarge(declared);
  const text = await request.text();
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_BODY_BYTES) throw tooLarge(bytes);
  if (emptyAs !== undefined && text.trim() === '') return emptyAs;
  if (nestsTooDeep(text)) throw new PagewiseError('BadInput', TOO_DEEP);
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    throw new PagewiseError('BadInput', 'the request body is not JSON');
  }
  if (!validate(body)) {
    const errors = describeErrors(validate.errors);
    throw new ProblemError(400, 'BadRequestBody', `the request body does not match the schema: ${errors.join('; ')}`, { errors });
  }
  return body;
}

/**
 * Refuses query parameters the route does not know: a mistyped filter (`?disc=`) must not silently
 * answer for everything, nor a misplaced option (`?overwrite=true`) be ignored. `code` is the function key.
 */
export function assertKnownQuery(request: HttpRequest, known: readonly string[]): void {
  for (const name of new Set(request.query.keys())) {
    if (name === 'code' || known.includes(name)) continue;
    const shown = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
    throw new ProblemError(400, 'BadQuery', `unknown query parameter ${shown} (allowed: ${known.length > 0 ? known.join(', ') : 'none'})`);
  }
}

function tooLarge(bytes: number): ProblemError {
  return new ProblemError(413, 'PayloadTooLarge', `the request body is ${bytes} bytes; at most ${MAX_BODY_BYTES} bytes are accepted`);
}

type ClientHandler = (request: HttpRequest, client: DurableClient, context: InvocationContext) => Promise<HttpResponse>;

/**
 * Wraps a handler so that whatever it throws becomes a redacted problem response; an unexpected one (500)
 * is logged with the invocation ID (and the instance ID an error was tagged with: withInstanceId), which
 * the response body names.
 */
export function answering(handler: ClientHandler): ClientHandler {
  return (request, client, context) => handler(request, client, context).catch((err: unknown) => problemFromError(err, { context }));
}

/**
 * 202 Accepted with a Location for a started or still running operation; 200 with the operation's
 * view when it had already finished (a duplicate start changes nothing).
 */
export function startedResponse(
  request: HttpRequest,
  client: DurableClient,
  kind: OperationKind,
  id: string,
  started: StartOnceResult,
): HttpResponse {
  const origin = new URL(request.url).origin;
  const self = `${origin}/api/${kind}/${encodeURIComponent(id)}`;
  const finished = started.status && ['Completed', 'Failed', 'Terminated'].includes(started.status.runtimeStatus);
  if (finished) {
    // A completed backup of this disk state already exists: this start made nothing new.
    const alreadyExisted = kind === 'backups' && started.status!.runtimeStatus === 'Completed';
    return new HttpResponse({ status: 200, jsonBody: { duplicate: true, ...(alreadyExisted ? { alreadyExisted } : {}), ...operationView(kind, id, started.status!) } });
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
        // showInput=false: the status webhook would otherwise echo the input, and with it the SAS.
        statusQueryGetUri: linkFor(management.statusQueryGetUri, origin, { showInput: 'false' }),
        terminatePostUri: linkFor(management.terminatePostUri, origin),
      },
    }),
  });
}

/** A management link on the caller's origin (as createCheckStatusResponse does), without `code`. */
function linkFor(url: string, origin: string, extra: Record<string, string> = {}): string {
  const link = new URL(url);
  link.searchParams.delete('code');
  for (const [name, value] of Object.entries(extra)) link.searchParams.set(name, value);
  return `${origin}${link.pathname}${link.search}`;
}
