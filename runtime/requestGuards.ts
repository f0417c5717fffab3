/**
 * What a loopback HTTP endpoint of Pagewise checks before it routes a request: that it was addressed to
 * this server (Host: no DNS rebinding), not sent by another origin's page (Origin / Sec-Fetch-Site: no
 * CSRF), declares JSON when it carries a body, and that the body stays under a limit WHILE it streams.
 * Each refusal is a RequestRefused with its status; nothing is buffered past the limit.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { problemBody } from '../functions/problems';

export class RequestRefused extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

export const JSON_TYPES = ['application/json'];
export const EVENT_GRID_TYPES = ['application/json', 'application/cloudevents+json', 'application/cloudevents-batch+json'];
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The host:port names a request may carry for a server bound to 127.0.0.1:<port>. */
export function ownHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
}

/**
 * The request's URL on the bound origin. Only origin-form targets (`/path?query`) are accepted: an
 * absolute-form target (`http://elsewhere/…`) or `//host/…` would otherwise move the URL's origin.
 */
export function requestUrl(req: IncomingMessage, origin: string): URL {
  const target = req.url ?? '';
  if (!target.startsWith('/') || target.startsWith('//')) throw new RequestRefused(400, 'BadRequestTarget', 'the request target must be a path');
  return new URL(`${origin}${target}`);
}

/** 421 unless the Host header names this server (a rebound DNS name does not). */
export function checkHost(req: IncomingMessage, hosts: Set<string>): void {
  const host = (req.headers.host ?? '').toLowerCase();
  if (!hosts.has(host)) throw new RequestRefused(421, 'MisdirectedRequest', 'the Host header does not name this server');
}

/** 403 for a request a browser sends on behalf of another site's page. */
export function checkOrigin(req: IncomingMessage, hosts: Set<string>): void {
  const origin = req.headers.origin;
  const fetchSite = req.headers['sec-fetch-site'];
  const foreign = origin !== undefined && !(origin.startsWith('http://') && hosts.has(origin.slice('http://'.length).toLowerCase()));
  if (foreign || fetchSite === 'cross-site' || fetchSite === 'same-site') {
    throw new RequestRefused(403, 'CrossOriginRefused', 'requests from another origin are refused');
  }
}

export function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/** 415 unless a request that may carry a body declares one of the JSON types (UTF-8), or has no body and no type. */
export function checkContentType(req: IncomingMessage, accepted: string[]): void {
  if (!BODY_METHODS.has(req.method ?? '')) return;
  const header = req.headers['content-type'];
  if (header === undefined && !hasBody(req)) return;
  const [type, ...params] = (header ?? '').split(';').map((p) => p.trim().toLowerCase());
  const charset = params.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  if (!accepted.includes(type) || (charset !== undefined && charset !== 'utf-8')) {
    throw new RequestRefused(415, 'UnsupportedMediaType', `the request body must be ${accepted.join(' or ')} (UTF-8)`, { Accept: accepted.join(', ') });
  }
}

/**
 * The body as text, counted while it streams: past `limit` bytes the request is refused with 413 at
 * once (a declared Content-Length before a byte is read), the rest is never read, and the connection
 * is closed after the answer (see closeAfter).
 */
export function readLimitedBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  const tooLarge = () => new RequestRefused(413, 'PayloadTooLarge', `the request body is larger than ${limit} bytes`, { Connection: 'close' });
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > limit) {
        stop();
        req.pause();
        chunks.length = 0;
        return reject(tooLarge());
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onError = (err: Error) => {
      stop();
      reject(err);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/**
 * Ends the connection once the answer is out, without reading what the client still sends: FIN first
 * (so the answer is read before anything else happens), then the socket is destroyed shortly after.
 */
export function closeAfter(req: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => {
    const socket = req.socket;
    socket.end();
    setTimeout(() => socket.destroy(), 200).unref();
  });
}

/** Safe URL decoding of a path segment: malformed percent-encoding is the caller's 400, not a 500. */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new RequestRefused(400, 'BadRequestTarget', 'the request path has malformed percent-encoding');
  }
}

/**
 * Writes a refusal as a problem document. A refused request whose body was not read (a 413, or a 401
 * before the body) also loses its connection: Node would otherwise read and discard the rest.
 */
export function sendRefusal(req: IncomingMessage, res: ServerResponse, refused: RequestRefused): void {
  if (res.headersSent) return void res.destroy();
  const close = refused.headers.Connection === 'close' || (hasBody(req) && !req.readableEnded);
  if (close) closeAfter(req, res);
  res.writeHead(refused.status, { 'Content-Type': 'application/problem+json', ...refused.headers, ...(close ? { Connection: 'close' } : {}) });
  res.end(JSON.stringify(problemBody(refused.status, refused.title, refused.message)));
}

/** Slow or endless requests are cut off (slowloris): headers within 10 s, the whole request within 30 s. */
export function limitRequestTime(server: Server): void {
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxHeadersCount = 100;
}
