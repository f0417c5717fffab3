/**
 * A fault-injecting HTTP proxy for tests (loopback only). It sits between the Azure SDK clients and
 * Azurite and, on a seeded schedule, answers a share of requests with a fault instead of a clean
 * response: 503 with Retry-After (throttling), 500, a connection reset in the middle of a body, a body
 * truncated under a rewritten Content-Length (which HTTP alone cannot notice), or a latency spike.
 * Faults that would lose a write's response after the write happened are not injected: every write
 * fault happens before the request reaches Azurite. A HEAD has no body to cut: its Content-Length is
 * the resource's size, so a body fault drawn for a HEAD drops the connection before any answer instead
 * (rewriting that header would make the blob look smaller, which no network fault does).
 */
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { prng } from '../../testkit/prng';

export type FaultKind = 'throttle' | 'error500' | 'reset' | 'truncate' | 'latency';

export interface FaultProxyOptions {
  target: { host: string; port: number };
  seed: number;
  /** Share of requests that get a fault, 0..1. */
  rate: number;
  kinds?: FaultKind[];
  latencyInMs?: number;
  /** Only requests it accepts may get a fault (default: every request); the others pass clean. */
  faultIf?: (req: http.IncomingMessage) => boolean;
  /**
   * A HEAD it accepts is answered with its Content-Length (the blob's size) halved: a lying size header,
   * for tests that the size is cross-checked. Not one of the faults drawn at random; counted in `misreported`.
   */
  misreportSizeIf?: (req: http.IncomingMessage) => boolean;
  /**
   * A request it accepts reaches Azurite, but its answer is lost (the connection dropped instead): a write
   * that happened unbeknown to its client, whose retry finds the name taken (409). Counted in `lostReplies`.
   */
  loseReplyIf?: (req: http.IncomingMessage) => boolean;
  /**
   * A request it answers for gets that error reply instead of reaching Azurite (e.g. 409
   * BlobImmutableDueToPolicy for a DELETE: a stand-in for service features the emulator lacks). Counted in `replied`.
   */
  replyIf?: (req: http.IncomingMessage) => { status: number; code: string } | undefined;
}

export interface FaultProxy {
  port: number;
  /** Rewrites a URL of the target to go through the proxy. */
  via(url: string): string;
  /**
   * `retries`: requests re-sent by a client, counted as requests whose `x-ms-client-request-id` was
   * seen before (the Azure SDK keeps the ID across its retries; Pagewise's own re-reads get new IDs
   * and are not counted here).
   */
  stats: { requests: number; retries: number; faults: Record<FaultKind, number>; misreported: number; lostReplies: number; replied: number };
  stop(): Promise<void>;
}


const ALL: FaultKind[] = ['throttle', 'error500', 'reset', 'truncate', 'latency'];

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const random = prng(options.seed);
  const kinds = options.kinds ?? ALL;
  const seenIds = new Set<string>();
  const stats = { requests: 0, retries: 0, faults: { throttle: 0, error500: 0, reset: 0, truncate: 0, latency: 0 } as Record<FaultKind, number>, misreported: 0, lostReplies: 0, replied: 0 };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  /** Requests held by a latency fault: stop() drops them, so a long latency keeps no timer alive. */
  const held = new Set<NodeJS.Timeout>();

  const server = http.createServer((req, res) => {
    stats.requests++;
    const clientRequestId = req.headers['x-ms-client-request-id'];
    if (typeof clientRequestId === 'string') {
      if (seenIds.has(clientRequestId)) stats.retries++;
      else seenIds.add(clientRequestId);
    }
    const eligible = options.faultIf?.(req) ?? true;
    let fault: FaultKind | undefined = eligible && random() < options.rate ? kinds[Math.floor(random() * kinds.length)] : undefined;
    // Only a GET's body can be cut; a write's or a HEAD's connection is dropped before it is answered.
    if ((fault === 'reset' || fault === 'truncate') && req.method !== 'GET') fault = 'reset-before' as never;
    const misreport = req.method === 'HEAD' && fault === undefined && (options.misreportSizeIf?.(req) ?? false);
    const loseReply = fault === undefined && (options.loseReplyIf?.(req) ?? false);
    const errorReply = (status: number, code: string, headers: Record<string, string> = {}) => {
      req.resume();
      const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>injected by the fault proxy</Message></Error>`;
      res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-ms-error-code': code, ...headers });
      res.end(body);
    };
    const reply = options.replyIf?.(req);
    if (reply) {
      stats.replied++;
      return errorReply(reply.status, reply.code);
    }
    if (fault === 'throttle') {
      stats.faults.throttle++;
      return errorReply(503, 'ServerBusy', { 'retry-after': '1' });
    }
    if (fault === 'error500') {
      stats.faults.error500++;
      return errorReply(500, 'InternalError');
    }
    if ((fault as string) === 'reset-before') {
      stats.faults.reset++;
      req.resume();
      req.socket.destroy();
      return;
    }
    const forward = () => {
      const upstream = http.request(
        { host: options.target.host, port: options.target.port, method: req.method, path: req.url, headers: req.headers, agent },
        (up) => {
          const length = Number(up.headers['content-length'] ?? 0);
          if (fault === 'reset' && length > 1) {
            stats.faults.reset++;
            res.writeHead(up.statusCode ?? 502, up.headers);
            let sent = 0;
            up.on('data', (chunk: Buffer) => {
              if (sent + chunk.length >= length / 2) {
                res.write(chunk.subarray(0, Math.max(0, Math.floor(length / 2) - sent)));
                res.socket?.destroy();
                up.destroy();
              } else {
                sent += chunk.length;
                res.write(chunk);
              }
            });
            return;
          }
          if (fault === 'truncate' && length > 1) {
            stats.faults.truncate++;
            const keep = Math.floor(length / 2);
            res.writeHead(up.statusCode ?? 502, { ...up.headers, 'content-length': String(keep) });
            let sent = 0;
            up.on('data', (chunk: Buffer) => {
              const take = Math.max(0, Math.min(chunk.length, keep - sent));
              if (take > 0) res.write(chunk.subarray(0, take));
              sent += take;
            });
            up.on('end', () => res.end());
            return;
          }
          if (loseReply) {
            stats.lostReplies++;
            up.resume();
            up.on('end', () => res.socket?.destroy());
            return;
          }
          if (misreport && up.headers['content-length'] !== undefined) {
            stats.misreported++;
            res.writeHead(up.statusCode ?? 502, { ...up.headers, 'content-length': String(Math.floor(Number(up.headers['content-length']) / 2)) });
            up.resume();
            res.end();
            return;
          }
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.socket?.destroy());
      req.pipe(upstream);
    };
    if (fault === 'latency') {
      stats.faults.latency++;
      const timer = setTimeout(() => {
        held.delete(timer);
        forward();
      }, options.latencyInMs ?? 300);
      held.add(timer);
    } else forward();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    stats,
    via: (url) => url.replace(`//${options.target.host}:${options.target.port}/`, `//127.0.0.1:${port}/`),
    async stop() {
      for (const timer of held) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      agent.destroy();
    },
  };
}
