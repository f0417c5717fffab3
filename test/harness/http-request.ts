/** A JSON `HttpRequest` as the Functions host builds it, for invoking an HTTP function in-process. */
import { HttpRequest } from '@azure/functions';

export function jsonRequest(method: string, url: string, body?: unknown, params: Record<string, string> = {}): HttpRequest {
  const u = new URL(url, 'http://127.0.0.1:7071');
  return new HttpRequest({
    method,
    url: u.href,
    headers: { 'content-type': 'application/json' },
    query: Object.fromEntries(u.searchParams),
    params,
    ...(body !== undefined ? { body: { string: JSON.stringify(body) } } : {}),
  });
}
