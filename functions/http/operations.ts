/** HTTP API of restores and verifications: start (202 + status link) and read. */
import * as df from 'durable-functions';
import { createHash } from 'node:crypto';
import { HttpRequest, HttpResponse } from '@azure/functions';
import { displayUrl } from '../../core';
import { Orchestrators, RestoreOrchestrationInput, VerifyOrchestrationInput } from '../../orchestrations/contracts';
import { restoreInstanceId, verifyInstanceId } from '../../orchestrations/instanceIds';
import { problem, problemFromError } from '../problems';
import { assertAllowedAccount, readSettings } from '../settings';
import { findStatus, startOnce } from '../starter';
import { describeErrors, validators } from './schemas';
import { operationView } from './views';
import { readJson, startedResponse } from './responses';

/** A restore is identified by backup and target blob (query/SAS excluded: a new SAS is the same target). */
const targetKey = (url: string) => createHash('sha256').update(displayUrl(url).toLowerCase()).digest('hex').slice(0, 16);

df.app.client.http('startRestore', {
  route: 'restores',
  methods: ['POST'],
  authLevel: 'function',
  handler: async (request: HttpRequest, client: df.DurableClient): Promise<HttpResponse> => {
    try {
      const body = await readJson(request);
      if (!validators.startRestore(body)) {
        return problem(400, 'BadRequestBody', 'the request body does not match the schema', { errors: describeErrors(validators.startRestore.errors) });
      }
      assertAllowedAccount(readSettings(), body.target.url, 'blob', 'target.url');
      const instanceId = restoreInstanceId(body.backupId, targetKey(body.target.url));
      const input: RestoreOrchestrationInput = { backupId: body.backupId, target: body.target, overwrite: body.overwrite ?? false };
      const started = await startOnce(client, Orchestrators.restoreDisk, instanceId, input);
      return startedResponse(request, client, 'restores', instanceId, started);
    } catch (err) {
      return problemFromError(err);
    }
  },
});

df.app.client.http('startVerification', {
  route: 'verifications',
  methods: ['POST'],
  authLevel: 'function',
  handler: async (request: HttpRequest, client: df.DurableClient): Promise<HttpResponse> => {
    try {
      const body = await readJson(request);
      if (!validators.startVerification(body)) {
        return problem(400, 'BadRequestBody', 'the request body does not match the schema', { errors: describeErrors(validators.startVerification.errors) });
      }
      if (body.source) assertAllowedAccount(readSettings(), body.source.url, 'blob', 'source.url');
      const readData = body.readData ?? true;
      const instanceId = verifyInstanceId(body.backupId, readData);
      const input: VerifyOrchestrationInput = { backupId: body.backupId, readData, ...(body.source ? { source: body.source } : {}) };
      const started = await startOnce(client, Orchestrators.verifyBackup, instanceId, input);
      return startedResponse(request, client, 'verifications', instanceId, started);
    } catch (err) {
      return problemFromError(err);
    }
  },
});

for (const kind of ['restores', 'verifications'] as const) {
  df.app.client.http(kind === 'restores' ? 'getRestore' : 'getVerification', {
    route: `${kind}/{id}`,
    methods: ['GET'],
    authLevel: 'function',
    handler: async (request: HttpRequest, client: df.DurableClient): Promise<HttpResponse> => {
      try {
        const id = request.params.id ?? '';
        const prefix = kind === 'restores' ? 'restore-' : 'verify-';
        const status = id.startsWith(prefix) ? await findStatus(client, id) : undefined;
        if (!status) return problem(404, 'OperationNotFound', `no ${kind.slice(0, -1)} ${id}`);
        return new HttpResponse({ status: 200, jsonBody: operationView(kind, id, status) });
      } catch (err) {
        return problemFromError(err);
      }
    },
  });
}
