/**
 * A JSON `HttpRequest` as the Functions host builds it, for invoking an HTTP function in-process. A string
 * body is sent as it is (malformed JSON cases); anything else is serialized.
 */
import { HttpRequest } from '@azure/functions';

export function jsonRequest(method: string, url: string, body?: unknown, params: Record<string, string> = {}): HttpRequest {
  const u = new URL(url, 'http://127.0.0.1:7071');
  return new HttpRequest({
    method,
    url: u.href,
    headers: { 'content-type': 'application/json' },
    query: Object.fromEntries(u.searchParams),
    params,
    ...(body !== undefined ? { body: { string: typeof body === 'string' ? body : JSON.stringify(body) } } : {}),
  });
}
