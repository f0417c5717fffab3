/**
 * A local stand-in for the Functions host around the durable runtime: owns the loopback endpoint the
 * DurableClient talks to, and invokes registered HTTP, timer, Event Grid and queue handlers with real
 * `HttpRequest` / `InvocationContext` objects carrying the durable client input binding — the same
 * arguments the Functions host would pass.
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { HttpRequest, HttpResponse, HttpResponseInit, InvocationContext, LogLevel, Timer, TriggerMetadata } from '@azure/functions';
import * as df from 'durable-functions';
import { printable, redact } from '../core';
import type { RegisteredFunction } from './functionsCore';
import { DurableRuntime } from './durable/durableRuntime';
import { answerDurable, clientInputData, ClientInputData, RPC_PREFIX, WEBHOOK_PREFIX, writeDurableAnswer } from './durableRpc';
import { checkContentType, checkHost, checkOrigin, JSON_TYPES, limitRequestTime, ownHosts, readLimitedBody, RequestRefused, requestUrl, sendRefusal } from './requestGuards';
import { newKey, sameSecret } from './serveKeys';
import { findFunction, functionsByTrigger } from './registry';
import { problem } from '../functions/problems';

export interface LocalHostOptions {
  runtime: DurableRuntime;
  taskHubName?: string;
  /** The durable system key (default: a random one); `pagewise serve` passes its own. */
  systemKey?: string;
  /** Receives every log line of invoked handlers (default: warnings and errors to stderr). */
  log?: (level: LogLevel, message: string, functionName: string) => void;
}

/** Largest body the internal endpoint reads (orchestration inputs are a few KiB). */
const MAX_DURABLE_BODY_BYTES = 1024 * 1024;

export interface LocalHttpRequest {
  method: string;
  /** Absolute URL, e.g. http://127.0.0.1:7071/api/backups?disk=… */
  url: string;
  headers?: Record<string, string>;
  body?: string;
}

export class LocalFunctionHost {
  readonly runtime: DurableRuntime;
  readonly taskHubName: string;
  private readonly log: NonNullable<LocalHostOptions['log']>;
  /** The durable webhooks' system key (`code` in the binding's management URLs). */
  readonly systemKey: string;
  /** Opens the RPC paths of the internal endpoint; never leaves this process. */
  private readonly rpcToken = newKey();
  private server: Server | undefined;
  private origin: string | undefined;
  private port: number | undefined;

  constructor(options: LocalHostOptions) {
    this.runtime = options.runtime;
    // Activities that start orchestrations get the same client binding as triggers do.
    this.runtime.clientContext = (fn) => this.contextFor(fn);
    this.taskHubName = options.taskHubName ?? 'pagewise';
    this.systemKey = options.systemKey ?? newKey();
    this.log =
      options.log ??
      ((level, message, fn) => {
        if (level === 'warning' || level === 'error' || level === 'critical') console.warn(printable(`[${fn}] ${message}`)); // a request's text must not drive the terminal
      });
  }

  /**
   * Starts the loopback endpoint of the durable client API (127.0.0.1 only). It is no open door: the
   * RPC paths need the token only this process's client binding holds, the webhooks the system key.
   */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => void this.answerInternal(req, res));
    limitRequestTime(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.origin = `http://127.0.0.1:${this.port}`;
  }

  private async answerInternal(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = requestUrl(req, this.origin!);
      const hosts = ownHosts(this.port!);
      checkHost(req, hosts);
      checkOrigin(req, hosts);
      const segments = url.pathname.split('/');
      // `/<rpcToken>/durabletask/…` for the DurableClient; the webhook paths with the system key.
      const rpc = segments[2] === RPC_PREFIX.slice(1, -1) && sameSecret(segments[1] ?? '', this.rpcToken);
      const webhook = url.pathname.startsWith(WEBHOOK_PREFIX) && sameSecret(url.searchParams.get('code') ?? '', this.systemKey);
      if (!rpc && !webhook) throw new RequestRefused(401, 'Unauthorized', 'a valid key is required');
      checkContentType(req, JSON_TYPES);
      const body = await readLimitedBody(req, MAX_DURABLE_BODY_BYTES);
      const call = {
        method: req.method ?? 'GET',
        segments: rpc ? segments.slice(3) : url.pathname.slice(WEBHOOK_PREFIX.length).split('/'),
        url,
        body,
        ...(typeof req.headers['x-ms-continuation-token'] === 'string' ? { continuationToken: req.headers['x-ms-continuation-token'] } : {}),
      };
      writeDurableAnswer(res, await answerDurable(this.runtime, call, rpc ? 'internal' : 'webhook'));
    } catch (err) {
      if (!(err instanceof RequestRefused)) this.log('error', `durable endpoint: ${redact(err instanceof Error ? err.message : String(err))}`, 'durableEndpoint');
      sendRefusal(req, res, err instanceof RequestRefused ? err : new RequestRefused(500, 'InternalError', 'the request failed unexpectedly'));
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  clientData(): ClientInputData {
    if (!this.origin) throw new Error('LocalFunctionHost.start() was not called');
    return clientInputData(this.origin, this.taskHubName, { systemKey: this.systemKey, rpcToken: this.rpcToken });
  }

  /** An InvocationContext as the host builds it, with the durable client binding data filled in. */
  contextFor(fn: RegisteredFunction, triggerMetadata?: TriggerMetadata): InvocationContext {
    const inputs = Object.entries(fn.metadata.bindings)
      .filter(([, b]) => b.direction === 'in' && !/trigger$/i.test(b.type))
      .map(([name, b]) => ({ ...b, name }));
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: fn.metadata.name,
      logHandler: (level, ...args) => this.log(level, args.map(String).join(' '), fn.metadata.name),
      ...(triggerMetadata ? { triggerMetadata } : {}),
      options: { trigger: fn.trigger, extraInputs: inputs as never, extraOutputs: [] },
    });
    for (const input of inputs) {
      if (input.type === 'durableClient' || input.type === 'orchestrationClient') context.extraInputs.set(input.name, this.clientData());
    }
    return context;
  }

  /**
   * A DurableClient on this host, as a trigger's client binding gives it: in-process starters (the
   * CLI's local engine, the demo) start orchestrations through the same starter functions as HTTP.
   */
  durableClient(): df.DurableClient {
    const binding = df.input.durableClient();
    const context = new InvocationContext({ invocationId: randomUUID(), functionName: 'localStarter', options: { trigger: { type: 'localStarter', name: 'starter' }, extraInputs: [binding], extraOutputs: [] } });
    context.extraInputs.set(binding, this.clientData());
    return df.getClient(context);
  }

  async invokeHttp(functionName: string, request: HttpRequest): Promise<HttpResponse> {
    const fn = findFunction(functionName, 'httpTrigger');
    const result = (await fn.handler(request, this.contextFor(fn))) as HttpResponse | HttpResponseInit | undefined;
    return result instanceof HttpResponse ? result : new HttpResponse(result ?? { status: 204 });
  }

  /** The registered HTTP function a method and URL route to (as the host routes `/api/<route>`), with its route parameters. */
  httpFunctionFor(method: string, url: URL): { fn: RegisteredFunction; params: Record<string, string> } | undefined {
    const path = url.pathname.replace(/^\/api\//, '');
    for (const fn of functionsByTrigger('httpTrigger')) {
      const methods = (fn.trigger.methods as string[] | undefined) ?? ['GET', 'POST'];
      if (!methods.includes(method.toUpperCase())) continue;
      const params = matchRoute(String(fn.trigger.route ?? fn.metadata.name), path);
      if (params) return { fn, params };
    }
    return undefined;
  }

  /** Routes a request to the registered HTTP function whose route and method match (like the host). */
  async dispatchHttp(init: LocalHttpRequest): Promise<HttpResponse> {
    const url = new URL(init.url);
    const found = this.httpFunctionFor(init.method, url);
    if (found) {
      const { fn, params } = found;
      const request = new HttpRequest({
        method: init.method.toUpperCase(),
        url: init.url,
        headers: init.headers ?? {},
        query: Object.fromEntries(url.searchParams),
        params,
        ...(init.body !== undefined ? { body: { string: init.body } } : {}),
      });
      return this.invokeHttp(fn.metadata.name, request);
    }
    // The path is the caller's: shown capped, as every problem document is built (redacted).
    const shown = url.pathname.length > 80 ? `${url.pathname.slice(0, 80)}…` : url.pathname;
    return problem(404, 'NotFound', `no function serves ${init.method} ${shown}`);
  }

  async invokeTimer(functionName: string, timer?: Timer): Promise<unknown> {
    const fn = findFunction(functionName, 'timerTrigger');
    if (!timer) {
      const now = new Date().toISOString();
      timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: now, next: now, lastUpdated: now } };
    }
    return fn.handler(timer, this.contextFor(fn));
  }

  /** Delivers one Event Grid event (Event Grid or CloudEvents schema) as the trigger would. */
  async invokeEventGrid(functionName: string, event: unknown): Promise<unknown> {
    const fn = findFunction(functionName, 'eventGridTrigger');
    return fn.handler(event, this.contextFor(fn));
  }

  /**
   * Delivers one queue message as the queue trigger does: a string body is handed over JSON-parsed
   * when it parses (else as the string), like the Node worker; anything else as it is. `metadata`
   * fills `context.triggerMetadata` (defaults: a new id, first dequeue, inserted now, 7 days to live).
   */
  async invokeQueue(functionName: string, body: unknown, metadata: Partial<QueueTriggerMetadata> = {}): Promise<unknown> {
    const fn = findFunction(functionName, 'storageQueueTrigger');
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const now = Date.now();
    const triggerMetadata: QueueTriggerMetadata = {
      id: randomUUID(),
      dequeueCount: 1,
      insertionTime: new Date(now).toISOString(),
      expirationTime: new Date(now + 7 * 24 * 3600 * 1000).toISOString(),
      nextVisibleTime: new Date(now).toISOString(),
      popReceipt: randomUUID(),
      ...metadata,
      queueTrigger: text ?? '',
    };
    return fn.handler(typeof body === 'string' ? parsedLikeTheWorker(body) : body, this.contextFor(fn, { ...triggerMetadata }));
  }
}

/** `context.triggerMetadata` of a queue trigger (the names the Node worker gives them; times ISO 8601). */
export interface QueueTriggerMetadata {
  id: string;
  dequeueCount: number;
  insertionTime: string;
  expirationTime: string;
  nextVisibleTime: string;
  popReceipt: string;
  /** The message body as text (after base64 decoding). */
  queueTrigger: string;
}

/** As @azure/functions' fromRpcTypedData treats a string: JSON when it parses, else the string. */
function parsedLikeTheWorker(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Matches a Functions route template (`backups/{id}`) against a path; the parameters, or undefined. */
export function matchRoute(template: string, path: string): Record<string, string> | undefined {
  const want = template.split('/').filter(Boolean);
  const got = path.split('/').filter(Boolean);
  const params: Record<string, string> = {};
  // A catch-all last segment (`portal/{*path}`) takes the rest of the path, possibly nothing.
  const catchAll = /^\{\*(\w+)\}$/.exec(want[want.length - 1] ?? '');
  if (catchAll) {
    if (got.length < want.length - 1) return undefined;
    params[catchAll[1]] = got.slice(want.length - 1).map((g) => decodeURIComponent(g)).join('/');
    want.pop();
    got.length = want.length;
  }
  if (want.length !== got.length) return undefined;
  for (let i = 0; i < want.length; i++) {
    const m = /^\{(\w+)(?::[^}]*)?\??\}$/.exec(want[i]);
    if (m) params[m[1]] = decodeURIComponent(got[i]);
    else if (want[i].toLowerCase() !== got[i].toLowerCase()) return undefined;
  }
  return params;
}
