/**
 * The HTTP API that durable-functions' DurableClient speaks to the Durable extension (its "RPC base
 * URL" plus the webhook URLs), answered by the local runtime. Handlers that call `df.getClient()`
 * therefore use the real DurableClient unchanged: startNew, getStatus, getStatusBy, terminate and
 * purge travel over loopback HTTP to here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DurableRuntime, InstanceStatus } from './durableRuntime';
import type { RuntimeStatus } from './instanceStore';

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

export function clientInputData(origin: string, taskHubName: string): ClientInputData {
  const webhooks = `${origin}${WEBHOOK_PREFIX.slice(0, -1)}`;
  const query = `taskHub=${encodeURIComponent(taskHubName)}&connection=Storage`;
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
    rpcBaseUrl: `${origin}${RPC_PREFIX}`,
  };
}

/** Handles a request under RPC_PREFIX or WEBHOOK_PREFIX; false when the path is not ours. */
export async function handleDurableRpc(runtime: DurableRuntime, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const prefix = [RPC_PREFIX, WEBHOOK_PREFIX].find((p) => url.pathname.startsWith(p));
  if (!prefix) return false;
  const parts = url.pathname.slice(prefix.length).split('/').filter(Boolean).map(decodeURIComponent);
  const method = req.method ?? 'GET';
  try {
    if (parts[0] === 'orchestrators' && method === 'POST' && parts[1]) {
      const body = await readBody(req);
      const input = body.trim() === '' ? undefined : (JSON.parse(body) as unknown);
      const result = await runtime.startNew(parts[1], { ...(parts[2] ? { instanceId: parts[2] } : {}), input });
      if (!result.created) {
        return send(res, 409, { message: `an orchestration with instance ID ${result.instanceId} is already pending, running or completed` });
      }
      return send(res, 202, { id: result.instanceId });
    }
    if (parts[0] === 'instances' && parts.length === 1 && method === 'GET') {
      const statuses = (url.searchParams.get('runtimeStatus') ?? '').split(',').filter(Boolean) as RuntimeStatus[];
      const all = (await runtime.listInstances({ runtimeStatus: statuses })).map((s) => wireStatus(s, url));
      const from = Number(req.headers['x-ms-continuation-token'] ?? 0) || 0;
      const page = all.slice(from, from + LIST_PAGE_SIZE);
      const headers = from + LIST_PAGE_SIZE < all.length ? { 'x-ms-continuation-token': String(from + LIST_PAGE_SIZE) } : undefined;
      return send(res, 200, page, headers);
    }
    if (parts[0] === 'instances' && parts[1]) {
      const instanceId = parts[1];
      if (parts.length === 2 && method === 'GET') {
        const status = await runtime.getStatus(instanceId, { showHistory: url.searchParams.get('showHistory') === 'true' });
        if (!status) return send(res, 404, { message: `no instance ${instanceId}` });
        const running = status.runtimeStatus === 'Pending' || status.runtimeStatus === 'Running';
        return send(res, running ? 202 : 200, wireStatus(status, url));
      }
      if (parts.length === 2 && method === 'DELETE') {
        const removed = await runtime.purge(instanceId);
        return send(res, removed ? 200 : 404, { instancesDeleted: removed ? 1 : 0 });
      }
      if (parts[2] === 'terminate' && method === 'POST') {
        const outcome = await runtime.terminate(instanceId, url.searchParams.get('reason') ?? 'terminated');
        return send(res, outcome === 'terminated' ? 202 : outcome === 'notFound' ? 404 : 410, '');
      }
    }
    return send(res, 501, { message: `the local durable runtime does not implement ${method} ${url.pathname}` });
  } catch (err) {
    return send(res, 500, { message: (err as Error).message });
  }
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

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): true {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(text);
  return true;
}
