/** ARM's wire conventions as the stand-in answers them: JSON replies, `{ error: { code, message } }` errors. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** An ARM error reply (thrown by handlers, answered by the server). */
export class ArmError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
  reply(): Reply {
    return { status: this.status, headers: this.headers, body: { error: { code: this.code, message: this.message } } };
  }
}

export const notFound = (type: string, id: string): ArmError =>
  new ArmError(404, 'ResourceNotFound', `The Resource '${type}/${id.split('/').pop()}' under resource group '${id.split('/')[4] ?? ''}' was not found.`);
export const conflict = (code: string, message: string): ArmError => new ArmError(409, code, message);
export const badRequest = (code: string, message: string): ArmError => new ArmError(400, code, message);

/** A request body: JSON of at most 1 MiB (an ARM body is small), `undefined` when empty. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 1 << 20) throw badRequest('RequestEntityTooLarge', 'The request body exceeds 1 MiB.');
    parts.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw badRequest('InvalidRequestContent', 'The request content was invalid and could not be deserialized.');
  }
}

export function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { 'x-ms-request-id': cryptoId(), ...reply.headers };
  if (reply.body === undefined) {
    res.writeHead(reply.status, { ...headers, 'content-length': '0' });
    res.end();
    return;
  }
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

let seq = 0;
function cryptoId(): string {
  return `standin-${process.pid}-${++seq}`;
}

/** An object body field, or a 400 naming it. */
export function objectAt(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw badRequest('InvalidRequestContent', `${what} must be a JSON object.`);
  return value as Record<string, unknown>;
}

export function tagsOf(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  const tags = objectAt(value, 'tags');
  for (const [k, v] of Object.entries(tags)) if (typeof v !== 'string') throw badRequest('InvalidParameter', `The value of tag '${k}' must be a string.`);
  return tags as Record<string, string>;
}
