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
import { isPagewiseError, printable, redact } from '../core';
import { MAX_BODY_BYTES } from '../functions/http/responses';
import { nestsTooDeep, TOO_DEEP } from '../functions/http/jsonDepth';
import { answerDurable, WEBHOOK_PREFIX, writeDurableAnswer } from './durableRpc';
import { LocalApp, LocalAppOptions, LocalAppStopOptions, startLocalApp } from './localApp';
import { functionsByTrigger } from './registry';
import {
  checkContentType,
  checkHost,
  checkOrigin,
  decodeSegment,
  EVENT_GRID_TYPES,
  JSON_TYPES,
  limitRequestTime,
  ownHosts,
  readLimitedBody,
  RequestRefused,
  requestUrl,
  sendRefusal,
} from './requestGuards';
import { defaultKeysDir, generateServeKeys, KeyLevel, keyOpens, LoginTokens, prepareKeysDir, removeKeysFile, ServeKeys, writeKeysFile } from './serveKeys';
import { DEFAULT_LOGIN_THROTTLE, LoginThrottle, Session, sessionCookieOf, SessionStore } from './serveSessions';
import { answerSignIn, isSignInPath, principalHeaders, requireOwnOrigin, SAFE_METHODS, withoutCallerIdentity } from './serveSignIn';
import { startTimerSchedules, TimerSchedule } from './timerSchedules';
import type { QueueTriggerInfo } from './queueTriggers';

export interface LocalServerOptions extends LocalAppOptions {
  port?: number;
  /** Loopback only: the API starts backups with the app's credentials. */
  host?: '127.0.0.1';
  /** Fire timer triggers on their schedules, as the Functions host does (default true). */
  timers?: boolean;
  /** Where the keys file is written (default ~/.pagewise/serve, a 0700 directory). */
  keysDir?: string;
  /** Failed sign-ins allowed per window and the delay each costs (default 10 a minute, 500 ms). */
  loginThrottle?: Partial<LoginThrottle>;
}

export interface LocalServer {
  url: string;
  port: number;
  app: LocalApp;
  /** The timer triggers and their next firing (or why they are not scheduled). */
  timers: TimerSchedule[];
  /** The queue triggers and the queue each polls (or why it is not polled). */
  queues: QueueTriggerInfo[];
  /** This run's keys, and the 0600 file holding them (removed at close). */
  keys: ServeKeys;
  keysFile: string;
  /** The reusable sign-in tokens per role (also in the keys file). */
  loginTokens: LoginTokens;
  /** `<url>/portal/#login=<one-time admin token>`: opens one admin session, once (printed at start). */
  signInUrl: string;
  close(options?: LocalAppStopOptions): Promise<void>;
}

/** Event Grid delivers batches of up to 1 MB; every other body is a few hundred bytes. */
const MAX_EVENT_GRID_BODY_BYTES = 1024 * 1024;
/** Event Grid's largest batch (maxEventsPerBatch). */
const MAX_EVENTS_PER_DELIVERY = 5000;
/** A streamed answer whose client has taken no byte for this long is cut (its backup is then closed). */
const STREAM_IDLE_MS = 120_000;
/** At most this many connections at once (each holds a descriptor). */
const MAX_CONNECTIONS = 128;

export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const host = options.host ?? '127.0.0.1';
  if (host !== '127.0.0.1') throw new Error('pagewise serve listens on 127.0.0.1 only');
  const keysDir = options.keysDir ?? defaultKeysDir();
  await prepareKeysDir(keysDir); // before anything starts: a directory others can enter is refused
  const keys = generateServeKeys();
  const app = await startLocalApp({ role: 'pagewise serve', ...options, systemKey: keys.systemKeys.durabletask_extension });
  const log = (line: string, source = 'serve') => (options.log ? options.log('warning', line, source) : process.stderr.write(`${printable(line)}\n`));
  let ctx: ServeContext | undefined;
  const server = createServer((req, res) => {
    if (!ctx) return void res.destroy();
    void answer(ctx, req, res).catch((err: unknown) => {
      log(`request failed: ${redact(err instanceof Error ? err.message : String(err))}`);
      sendRefusal(req, res, new RequestRefused(500, 'InternalError', 'the request failed unexpectedly; see the server log'));
    });
  });
  limitRequestTime(server);
  server.maxConnections = MAX_CONNECTIONS;
  let port: number;
  let keysFile: string;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, resolve);
    });
    port = (server.address() as AddressInfo).port;
    keysFile = await writeKeysFile(keysDir, port, keys);
  } catch (err) {
    // A port in use or an unwritable keys file: nothing is left running.
    if (server.listening) await closeServer(server);
    await app.stop();
    throw err;
  }
  const url = `http://${host}:${port}`;
  // A second runtime refused this task hub is told where to send its work instead.
  await app.lease.describe(`${options.role ?? 'pagewise serve'} at ${url}`).catch((err: unknown) => log(`task hub: naming this server on its lease failed: ${redact(String(err))}`));
  const sessions = new SessionStore(keys.loginTokens, { ...DEFAULT_LOGIN_THROTTLE, ...options.loginThrottle });
  const signInUrl = `${url}/portal/#login=${sessions.oneTimeToken}`;
  ctx = { app, keys, sessions, origin: url, hosts: ownHosts(port), log };
  const timers = options.timers === false ? undefined : startTimerSchedules(app.host, options.appSettings ?? process.env, (line) => log(line, 'timers'));
  return {
    url,
    port,
    app,
    timers: timers?.schedules ?? [],
    queues: app.queues?.triggers ?? [],
    keys,
    keysFile,
    loginTokens: keys.loginTokens,
    signInUrl,
    async close(stopOptions = {}) {
      timers?.stop();
      await closeServer(server);
      await removeKeysFile(keysFile);
      await app.stop(stopOptions);
    },
  };
}

export interface ServeContext {
  app: LocalApp;
  keys: ServeKeys;
  sessions: SessionStore;
  /** The bound origin: every URL handed out is built on it, never on the request's Host. */
  origin: string;
  hosts: Set<string>;
  log: (line: string) => void;
}

/** What a path of serve requires and how it is answered (as the Functions host lays them out). */
interface Route {
  level: KeyLevel;
  methods: string[];
  bodyTypes: string[];
  bodyLimit: number;
  handle(ctx: ServeContext, req: IncomingMessage, res: ServerResponse, url: URL, body: string, session?: Session): Promise<void>;
}

const ROUTES: Array<{ match: (path: string) => boolean } & Route> = [
  { match: (p) => p.startsWith('/api/'), level: 'function', methods: ['GET', 'POST', 'DELETE'], bodyTypes: JSON_TYPES, bodyLimit: MAX_BODY_BYTES, handle: answerApi },
  { match: (p) => p.startsWith(WEBHOOK_PREFIX), level: 'durabletask', methods: ['GET', 'POST', 'DELETE'], bodyTypes: JSON_TYPES, bodyLimit: MAX_BODY_BYTES, handle: answerDurableWebhook },
  { match: (p) => /^\/admin\/functions\/[^/]+$/.test(p), level: 'admin', methods: ['POST'], bodyTypes: JSON_TYPES, bodyLimit: MAX_BODY_BYTES, handle: answerAdmin },
  { match: (p) => p === '/runtime/webhooks/eventgrid', level: 'eventgrid', methods: ['POST'], bodyTypes: EVENT_GRID_TYPES, bodyLimit: MAX_EVENT_GRID_BODY_BYTES, handle: answerEventGrid },
];

/**
 * Every request: addressed to this server and not from another origin's page, a known path and
 * method, the key that path requires (before a byte of the body is read), a JSON body read under
 * its limit as it streams; then the route.
 */
async function answer(ctx: ServeContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = requestUrl(req, ctx.origin);
    checkHost(req, ctx.hosts);
    checkOrigin(req, ctx.hosts);
    const method = req.method ?? 'GET';
    if (isSignInPath(url.pathname)) return await answerSignIn(ctx, req, res, url);
    if (method === 'GET' && PORTAL_ENTRIES.has(url.pathname)) return redirect(res, PORTAL_PATH);
    const route = ROUTES.find((r) => r.match(url.pathname));
    if (!route) throw new RequestRefused(404, 'NotFound', 'nothing is served at this path');
    if (!route.methods.includes(method)) throw new RequestRefused(405, 'MethodNotAllowed', `use ${route.methods.join(' or ')}`, { Allow: route.methods.join(', ') });
    const presented = headerValue(req, 'x-functions-key') ?? url.searchParams.get('code') ?? undefined;
    const keyed = keyOpens(ctx.keys, route.level, presented);
    // As App Service authentication does: a session cookie (API routes only) stands in for the key, and
    // a route registered `anonymous` needs neither. A valid key wins over a session (no principal: every role).
    const session = !keyed && route.level === 'function' ? ctx.sessions.find(sessionCookieOf(headerValue(req, 'cookie'))) : undefined;
    if (!keyed && !session && !(route.level === 'function' && isAnonymousFunction(ctx, method, url))) {
      throw new RequestRefused(401, 'Unauthorized', 'a valid key is required (x-functions-key header or code query parameter)');
    }
    // A browser sends the cookie with any request to this origin: a state change must also prove it came from this origin's page.
    if (session && !SAFE_METHODS.has(method)) requireOwnOrigin(req, ctx.hosts);
    url.searchParams.delete('code'); // never handed on, so never echoed
    checkContentType(req, route.bodyTypes);
    const body = await readLimitedBody(req, route.bodyLimit);
    await route.handle(ctx, req, res, url, body, session);
  } catch (err) {
    if (!(err instanceof RequestRefused)) throw err;
    sendRefusal(req, res, err);
  }
}

/** Where the portal's page is served (the `portal` function under the host's `api` prefix); `/` and `/portal/` lead there. */
const PORTAL_PATH = '/api/portal/';
const PORTAL_ENTRIES = new Set(['/', '/portal', '/portal/']);

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(302, { Location: location, 'Cache-Control': 'no-store' });
  res.end();
}

/** Whether the API function this request routes to is registered `authLevel: 'anonymous'` (the portal's files; every API route in entra mode). */
function isAnonymousFunction(ctx: ServeContext, method: string, url: URL): boolean {
  url.pathname.split('/').forEach(decodeSegment); // malformed percent-encoding is a 400 here, not a 500 in routing
  return ctx.app.host.httpFunctionFor(method, url)?.fn.trigger.authLevel === 'anonymous';
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The registered HTTP functions, with a URL on the bound origin and without the key. */
async function answerApi(ctx: ServeContext, req: IncomingMessage, res: ServerResponse, url: URL, body: string, session?: Session): Promise<void> {
  // Never handed on: the key, the cookie, and any principal the caller made up; then the session's own principal.
  const headers: Record<string, string> = { ...withoutCallerIdentity(req), ...(session ? principalHeaders(session) : {}) };
  headers.host = new URL(ctx.origin).host;
  url.pathname.split('/').forEach(decodeSegment); // malformed percent-encoding is a 400 here, not a 500 in routing
  const response = await ctx.app.host.dispatchHttp({ method: req.method ?? 'GET', url: url.href, headers, ...(body ? { body } : {}) });
  return writeResponse(res, response, ctx.log);
}

async function answerDurableWebhook(ctx: ServeContext, req: IncomingMessage, res: ServerResponse, url: URL, body: string): Promise<void> {
  const continuationToken = headerValue(req, 'x-ms-continuation-token');
  const segments = url.pathname.slice(WEBHOOK_PREFIX.length).split('/');
  writeDurableAnswer(res, await answerDurable(ctx.app.runtime, { method: req.method ?? 'GET', segments, url, body, ...(continuationToken ? { continuationToken } : {}) }, 'webhook'));
}

/** The Functions host's admin endpoint for non-HTTP functions: {"input": "<trigger payload JSON>"}. */
async function answerAdmin(ctx: ServeContext, _req: IncomingMessage, res: ServerResponse, url: URL, body: string): Promise<void> {
  const name = decodeSegment(url.pathname.slice('/admin/functions/'.length));
  const fn = [...functionsByTrigger('timerTrigger'), ...functionsByTrigger('eventGridTrigger')].find((f) => f.metadata.name === name);
  if (!fn) throw new RequestRefused(404, 'FunctionNotFound', 'no timer or Event Grid function has this name');
  const request = body.trim() === '' ? {} : parseJson(body);
  if (typeof request !== 'object' || request === null || Array.isArray(request)) throw badBody('the body must be a JSON object {"input": "…"}');
  const input = (request as { input?: unknown }).input ?? '';
  if (typeof input !== 'string') throw badBody('input must be a string (the trigger payload as JSON text)');
  const event = fn.trigger.type === 'eventGridTrigger' ? eventObject(parseJson(input)) : undefined;
  try {
    if (event) await ctx.app.host.invokeEventGrid(name, event);
    else await ctx.app.host.invokeTimer(name);
  } catch (err) {
    // The function ran and failed (a policy it cannot read): say so, as its log would, not "unexpected".
    if (!isPagewiseError(err)) throw err;
    throw new RequestRefused(500, 'FunctionFailed', `${name} failed: ${err.code}: ${err.message}`);
  }
  writeJson(res, 202, { invoked: name });
}

/** The Event Grid webhook the host exposes: an array (Event Grid schema) or one CloudEvent. */
async function answerEventGrid(ctx: ServeContext, _req: IncomingMessage, res: ServerResponse, url: URL, body: string): Promise<void> {
  const name = url.searchParams.get('functionName') ?? '';
  if (!functionsByTrigger('eventGridTrigger').some((f) => f.metadata.name === name)) {
    throw new RequestRefused(404, 'FunctionNotFound', 'functionName names no Event Grid function');
  }
  const parsed = parseJson(body);
  // 1 MiB of `{},` is 300,000 events, each a function invocation and a log line; Event Grid sends at most 5,000.
  if (Array.isArray(parsed) && parsed.length > MAX_EVENTS_PER_DELIVERY) throw badBody(`a delivery holds at most ${MAX_EVENTS_PER_DELIVERY} events (Event Grid's largest batch)`);
  const events = (Array.isArray(parsed) ? parsed : [parsed]).map(eventObject);
  for (const event of events) await ctx.app.host.invokeEventGrid(name, event);
  writeJson(res, 200, { delivered: events.length });
}

function parseJson(text: string): unknown {
  if (nestsTooDeep(text)) throw badBody(TOO_DEEP);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badBody('the request body is not JSON');
  }
}

function eventObject(event: unknown): object {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) throw badBody('an event must be a JSON object');
  return event;
}

function badBody(detail: string): RequestRefused {
  return new RequestRefused(400, 'BadRequestBody', detail);
}

/**
 * A function's response on the socket. A buffered body (JSON, problems) is written at once; a stream body
 * (a file download) is piped chunk by chunk, waiting for 'drain' so memory holds at most a chunk or two.
 * A read failure midway cannot change the status already sent: the socket is destroyed, so the client
 * sees a body shorter than its Content-Length (never a silently truncated "success"), and it is logged.
 * A client that goes away cancels the stream, which releases what the handler holds (its cancel()).
 */
export async function writeResponse(res: ServerResponse, response: HttpResponse, log: (line: string) => void): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, key) => (headers[key] = value));
  if (!isStreamBody(response)) {
    const body = Buffer.from(await response.arrayBuffer());
    res.writeHead(response.status ?? 200, headers);
    res.end(body);
    return;
  }
  const reader = response.body!.getReader();
  let clientGone = false;
  const onClose = () => {
    if (res.writableFinished) return;
    clientGone = true;
    void reader.cancel(new Error('the client closed the connection')).catch(() => undefined);
  };
  res.on('close', onClose);
  // A client that left while the handler was still working (reading the file's first chunk) has already
  // closed: no 'close' is coming, so the stream is cancelled now — else it would hold its backup for ever.
  if (res.destroyed) {
    res.off('close', onClose);
    void reader.cancel(new Error('the client closed the connection')).catch(() => undefined);
    return;
  }
  // A client that takes nothing for this long is cut: a stalled download must not hold its backup open for ever.
  res.setTimeout(STREAM_IDLE_MS, () => res.destroy());
  res.writeHead(response.status ?? 200, headers);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (clientGone) return;
      if (!res.write(value)) await drained(res);
    }
    res.end();
  } catch (err) {
    if (!clientGone) log(`response stream failed after the headers were sent; connection closed: ${redact(err instanceof Error ? err.message : String(err))}`);
    res.destroy();
  } finally {
    res.off('close', onClose);
  }
}

/**
 * JSON answers (every route but a download) are a few KiB: buffered, sent with their length. Any other
 * body (application/octet-stream of a file) is streamed.
 */
function isStreamBody(response: HttpResponse): boolean {
  const type = response.headers.get('content-type') ?? '';
  return response.body !== null && type !== '' && !/^application\/(problem\+)?json\b/i.test(type);
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    if (res.destroyed) done(); // closed already: no event will come
  });
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
