/**
 * `pagewise serve`: the Pagewise HTTP API on loopback, served by the same registered HTTP functions
 * Azure runs, with real `HttpRequest` objects, backed by the local durable runtime. Also answers
 * the paths a Functions host answers locally: the durable webhooks (status links in 202 responses),
 * `POST /admin/functions/{name}` (run a timer or Event Grid function) and the Event Grid webhook.
 * Timer triggers fire on their schedules (runtime/timerSchedules.ts).
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { HttpResponse } from '@azure/functions';
import { redact } from '../core';
import { handleDurableRpc, readBody } from './durableRpc';
import { LocalApp, LocalAppOptions, LocalAppStopOptions, startLocalApp } from './localApp';
import { findFunction } from './registry';
import { startTimerSchedules, TimerSchedule } from './timerSchedules';

export interface LocalServerOptions extends LocalAppOptions {
  port?: number;
  /** Loopback only: the API starts backups with the app's credentials. */
  host?: '127.0.0.1';
  /** Fire timer triggers on their schedules, as the Functions host does (default true). */
  timers?: boolean;
}

export interface LocalServer {
  url: string;
  port: number;
  app: LocalApp;
  /** The timer triggers and their next firing (or why they are not scheduled). */
  timers: TimerSchedule[];
  close(options?: LocalAppStopOptions): Promise<void>;
}

export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const host = options.host ?? '127.0.0.1';
  if (host !== '127.0.0.1') throw new Error('pagewise serve listens on 127.0.0.1 only');
  const app = await startLocalApp(options);
  const server = createServer((req, res) => {
    void route(app, req, res).catch((err: unknown) => {
      writeJson(res, 500, { type: 'about:blank', title: 'InternalError', status: 500, detail: redact(String(err)) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host}:${port}`;
  const log = (line: string) => (options.log ? options.log('warning', line, 'timers') : process.stderr.write(`${line}\n`));
  const timers = options.timers === false ? undefined : startTimerSchedules(app.host, options.appSettings ?? process.env, log);
  // Status links handed to callers point here; the durable client may keep using its own endpoint.
  return {
    url,
    port,
    app,
    timers: timers?.schedules ?? [],
    async close(stopOptions = {}) {
      timers?.stop();
      await closeServer(server);
      await app.stop(stopOptions);
    },
  };
}

async function route(app: LocalApp, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (await handleDurableRpc(app.runtime, req, res)) return;
  const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
  const body = await readBody(req);

  if (url.pathname.startsWith('/api/')) {
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v ?? '']));
    const response = await app.host.dispatchHttp({ method: req.method ?? 'GET', url: url.href, headers, ...(body ? { body } : {}) });
    return writeResponse(res, response);
  }

  // The Functions host's admin endpoint for non-HTTP functions: {"input": "<trigger payload JSON>"}.
  const admin = /^\/admin\/functions\/([^/]+)$/.exec(url.pathname);
  if (admin && req.method === 'POST') {
    const name = decodeURIComponent(admin[1]);
    const payload = body ? ((JSON.parse(body) as { input?: string }).input ?? '') : '';
    const fn = findFunction(name, triggerTypeOf(name));
    if (fn.trigger.type === 'timerTrigger') await app.host.invokeTimer(name);
    else await app.host.invokeEventGrid(name, JSON.parse(payload) as unknown);
    return writeJson(res, 202, { invoked: name });
  }

  // The Event Grid webhook the host exposes: an array (Event Grid schema) or one CloudEvent.
  if (url.pathname === '/runtime/webhooks/eventgrid' && req.method === 'POST') {
    const name = url.searchParams.get('functionName') ?? '';
    const parsed = JSON.parse(body) as unknown;
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) await app.host.invokeEventGrid(name, event);
    return writeJson(res, 200, { delivered: Array.isArray(parsed) ? parsed.length : 1 });
  }

  writeJson(res, 404, { type: 'about:blank', title: 'NotFound', status: 404, detail: `nothing at ${url.pathname}` });
}

function triggerTypeOf(name: string): 'timerTrigger' | 'eventGridTrigger' {
  try {
    findFunction(name, 'timerTrigger');
    return 'timerTrigger';
  } catch {
    return 'eventGridTrigger';
  }
}

async function writeResponse(res: ServerResponse, response: HttpResponse): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, key) => (headers[key] = value));
  const body = Buffer.from(await response.arrayBuffer());
  res.writeHead(response.status ?? 200, headers);
  res.end(body);
}

function writeJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': status >= 400 ? 'application/problem+json' : 'application/json' });
  res.end(JSON.stringify(body));
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}
