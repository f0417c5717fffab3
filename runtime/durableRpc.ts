/**
 * The HTTP API that durable-functions' DurableClient speaks to the Durable extension (its "RPC base
 * URL" plus the webhook URLs), answered by the local runtime. Handlers that call `df.getClient()`
 * therefore use the real DurableClient unchanged: startNew, getStatus, getStatusBy, terminate and
 * purge travel over loopback HTTP to here.
 */
import type { ServerResponse } from 'node:http';
import { redact } from '../core';
import { redactDeep } from '../functions/http/views';
import { decodeSegment, RequestRefused } from './requestGuards';
import { functionsByTrigger } from './registry';
import { nestsTooDeep, TOO_DEEP } from '../functions/http/jsonDepth';
import type { DurableRuntime } from './durable/durableRuntime';
import type { InstanceStatus } from './durable/instanceStatus';
import type { RuntimeStatus } from './durable/instanceStore';

/** Instances per page of a listing; DurableClient follows `x-ms-continuation-token` for the rest. */
const LIST_PAGE_SIZE = 100;
export const RPC_PREFIX = '/durabletask/';
export const WEBHOOK_PREFIX = '/runtime/webhooks/durabletask/';

/** The durable client input binding data (durable-functions OrchestrationClientInputData). */
export interface ClientInputData {
  taskHubName: string;
  creationUrls: Record<string, string>;
  managementUrls: Record<string, string>;
  baseUrl: string;
  requiredQueryStringParameters: string;
  rpcBaseUrl: string;
}

/**
 * The binding data as the Functions host fills it: the webhook URLs carry the durable system key
 * (`code`, as in Azure; callers' copies of these links drop it), and the RPC base URL carries the
 * endpoint's own token as its first path segment (DurableClient keeps a base URL's path, not its query).
 */
export function clientInputData(origin: string, taskHubName: string, keys: { systemKey: string; rpcToken: string }): ClientInputData {
  const webhooks = `${origin}${WEBHOOK_PREFIX.slice(0, -1)}`;
  const query = `taskHub=${encodeURIComponent(taskHubName)}&connection=Storage&code=${encodeURIComponent(keys.systemKey)}`;
  const instance = `${webhooks}/instances/INSTANCEID`;
  return {
    taskHubName,
    creationUrls: {
      createNewInstancePostUri: `${webhooks}/orchestrators/{functionName}[/{instanceId}]?${query}`,
      createAndWaitOnNewInstancePostUri: `${webhooks}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&${query}`,
    },
    managementUrls: {
      id: 'INSTANCEID',
      statusQueryGetUri: `${instance}?${query}`,
      sendEventPostUri: `${instance}/raiseEvent/{eventName}?${query}`,
      terminatePostUri: `${instance}/terminate?reason={text}&${query}`,
      rewindPostUri: `${instance}/rewind?reason={text}&${query}`,
      purgeHistoryDeleteUri: `${instance}?${query}`,
      restartPostUri: `${instance}/restart?${query}`,
      suspendPostUri: `${instance}/suspend?reason={text}&${query}`,
      resumePostUri: `${instance}/resume?reason={text}&${query}`,
    },
    baseUrl: webhooks,
    requiredQueryStringParameters: query,
    rpcBaseUrl: `${origin}/${keys.rpcToken}${RPC_PREFIX}`,
  };
}

/** One call of the durable API, after its endpoint has checked the caller and read the body. */
export interface DurableCall {
  method: string;
  /** Path segments after the prefix, not yet decoded. */
  segments: string[];
  url: URL;
  continuationToken?: string;
  body: string;
}

export interface DurableAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/**
 * Answers a durable API call. `internal` is the in-process DurableClient's endpoint (whole documents);
 * `webhook` is the operators' API on `pagewise serve`, whose documents are redacted (an input's SAS
 * stays in the task hub) and whose failures say nothing of internals.
 */
export async function answerDurable(runtime: DurableRuntime, call: DurableCall, view: 'internal' | 'webhook'): Promise<DurableAnswer> {
  const { method, url } = call;
  try {
    const parts = call.segments.filter(Boolean).map(decodeSegment);
    const document = (s: InstanceStatus) => (view === 'webhook' ? redactDeep(wireStatus(s, url)) : wireStatus(s, url));
    if (parts[0] === 'orchestrators' && method === 'POST' && parts[1]) {
      if (!functionsByTrigger('orchestrationTrigger').some((f) => f.metadata.name === parts[1])) {
        return { status: 404, body: { message: 'no orchestrator function has this name' } };
      }
      if (parts[2] !== undefined) checkInstanceId(parts[2]);
      const input = call.body.trim() === '' ? undefined : parseJson(call.body);
      const result = await runtime.startNew(parts[1], { ...(parts[2] ? { instanceId: parts[2] } : {}), input });
      if (!result.created) {
        return { status: 409, body: { message: `an orchestration with instance ID ${result.instanceId} is already pending, running or completed` } };
      }
      return { status: 202, body: { id: result.instanceId } };
    }
    if (parts[0] === 'instances' && parts.length === 1 && method === 'GET') {
      const statuses = (url.searchParams.get('runtimeStatus') ?? '').split(',').filter(Boolean) as RuntimeStatus[];
      const all = (await runtime.listInstances({ runtimeStatus: statuses })).map(document);
      const from = Number(call.continuationToken ?? 0) || 0;
      const page = all.slice(from, from + LIST_PAGE_SIZE);
      const headers = from + LIST_PAGE_SIZE < all.length ? { 'x-ms-continuation-token': String(from + LIST_PAGE_SIZE) } : undefined;
      return { status: 200, body: page, ...(headers ? { headers } : {}) };
    }
    if (parts[0] === 'instances' && parts[1]) {
      const instanceId = checkInstanceId(parts[1]);
      if (parts.length === 2 && method === 'GET') {
        const status = await runtime.getStatus(instanceId, { showHistory: url.searchParams.get('showHistory') === 'true' });
        if (!status) return { status: 404, body: { message: `no instance ${instanceId}` } };
        const running = status.runtimeStatus === 'Pending' || status.runtimeStatus === 'Running';
        return { status: running ? 202 : 200, body: document(status) };
      }
      if (parts.length === 2 && method === 'DELETE') {
        // As the extension does: only a finished instance's history is purged.
        const status = await runtime.getStatus(instanceId);
        if (status && (status.runtimeStatus === 'Pending' || status.runtimeStatus === 'Running')) {
          return { status: 409, body: { message: `instance ${instanceId} is ${status.runtimeStatus}; terminate it before purging its history` } };
        }
        const removed = await runtime.purge(instanceId);
        return { status: removed ? 200 : 404, body: { instancesDeleted: removed ? 1 : 0 } };
      }
      if (parts.length === 3 && parts[2] === 'terminate' && method === 'POST') {
        const reason = (url.searchParams.get('reason') ?? 'terminated').slice(0, MAX_REASON_CHARS);
        const outcome = await runtime.terminate(instanceId, reason);
        return { status: outcome === 'terminated' ? 202 : outcome === 'notFound' ? 404 : 410, body: '' };
      }
    }
    return { status: 501, body: { message: `the local durable runtime does not implement ${method} ${url.pathname}` } };
  } catch (err) {
    if (err instanceof RequestRefused) return { status: err.status, body: { message: err.message } };
    if (view === 'webhook') throw err; // the server logs it (redacted) and answers a bare 500
    return { status: 500, body: { message: redact((err as Error).message) } };
  }
}

/** Longest instance ID accepted, and the characters Durable Functions forbids in one. */
const MAX_INSTANCE_ID_BYTES = 256;
const MAX_REASON_CHARS = 1024;

function checkInstanceId(id: string): string {
  // Bytes, not characters: the ID names a blob of the task hub (percent-encoded), and blob names have a limit.
  if (Buffer.byteLength(id, 'utf8') > MAX_INSTANCE_ID_BYTES || /[/\\#?\u0000-\u001f\u007f]/.test(id)) {
    throw new RequestRefused(400, 'BadInstanceId', `an instance ID is at most ${MAX_INSTANCE_ID_BYTES} bytes (UTF-8) without / \\ # ? or control characters`);
  }
  return id;
}

function parseJson(text: string): unknown {
  if (nestsTooDeep(text)) throw new RequestRefused(400, 'BadRequestBody', TOO_DEEP);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new RequestRefused(400, 'BadRequestBody', 'the request body is not JSON');
  }
}

export function writeDurableAnswer(res: ServerResponse, answer: DurableAnswer): void {
  const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'Content-Type': 'application/json', ...answer.headers });
  res.end(text);
}

/** The status document as the extension returns it (input/output always present). */
function wireStatus(status: InstanceStatus, url: URL): unknown {
  const { historyEvents, ...rest } = status;
  return {
    ...rest,
    input: url.searchParams.get('showInput') === 'false' ? null : status.input,
    historyEvents,
  };
}
