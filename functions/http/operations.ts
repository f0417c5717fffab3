/** HTTP API of restores and verifications: start (202 + status link) and read. */
import * as df from 'durable-functions';
import { createHash } from 'node:crypto';
import { HttpResponse } from '@azure/functions';
import { displayUrl } from '../../core';
import { Orchestrators, RestoreOrchestrationInput, VerifyOrchestrationInput } from '../../orchestrations/contracts';
import { restoreInstanceId, verifyInstanceId } from '../../orchestrations/instanceIds';
import { problem } from '../problems';
import { assertAllowedAccount, readSettings } from '../settings';
import { checkBackupReadable, checkRestoreTarget } from '../prechecks';
import { findStatus, isRestartable, startOnce } from '../starter';
import { validators } from './schemas';
import { operationView } from './views';
import { answering, startedResponse, validBody } from './responses';

/** A restore is identified by backup and target blob (query/SAS excluded: a new SAS is the same target). */
const targetKey = (url: string) => createHash('sha256').update(displayUrl(url).toLowerCase()).digest('hex').slice(0, 16);

df.app.client.http('startRestore', {
  route: 'restores',
  methods: ['POST'],
  authLevel: 'function',
  handler: answering(async (request, client) => {
    const body = await validBody(request, validators.startRestore);
    const settings = readSettings();
    assertAllowedAccount(settings, body.target.url, 'blob', 'target.url');
    const instanceId = restoreInstanceId(body.backupId, targetKey(body.target.url));
    if (await isNew(client, instanceId)) {
      // A target in the vault or on a disk being backed up (400), unknown backup (404), wrong key or
      // incomplete backup (409), existing target (409): say so now.
      await checkRestoreTarget(settings, client, body.target.url, body.overwrite ?? false);
      await checkBackupReadable(settings, body.backupId);
    }
    const input: RestoreOrchestrationInput = { backupId: body.backupId, target: body.target, overwrite: body.overwrite ?? false };
    const started = await startOnce(client, Orchestrators.restoreDisk, instanceId, input);
    return startedResponse(request, client, 'restores', instanceId, started);
  }),
});

df.app.client.http('startVerification', {
  route: 'verifications',
  methods: ['POST'],
  authLevel: 'function',
  handler: answering(async (request, client) => {
    const body = await validBody(request, validators.startVerification);
    const settings = readSettings();
    if (body.source) assertAllowedAccount(settings, body.source.url, 'blob', 'source.url');
    const readData = body.readData ?? true;
    const instanceId = verifyInstanceId(body.backupId, readData);
    if (await isNew(client, instanceId)) await checkBackupReadable(settings, body.backupId);
    const input: VerifyOrchestrationInput = { backupId: body.backupId, readData, ...(body.source ? { source: body.source } : {}) };
    const started = await startOnce(client, Orchestrators.verifyBackup, instanceId, input);
    return startedResponse(request, client, 'verifications', instanceId, started);
  }),
});

/** No instance yet (or a failed one that may start again): a start would run the operation. */
async function isNew(client: df.DurableClient, instanceId: string): Promise<boolean> {
  const existing = await findStatus(client, instanceId);
  return !existing || isRestartable(existing);
}

for (const kind of ['restores', 'verifications'] as const) {
  const prefix = kind === 'restores' ? 'restore-' : 'verify-';
  df.app.client.http(kind === 'restores' ? 'getRestore' : 'getVerification', {
    route: `${kind}/{id}`,
    methods: ['GET'],
    authLevel: 'function',
    handler: answering(async (request, client) => {
      const id = request.params.id ?? '';
      const status = id.startsWith(prefix) ? await findStatus(client, id) : undefined;
      if (!status) return problem(404, 'OperationNotFound', `no ${kind.slice(0, -1)} ${id}`);
      return new HttpResponse({ status: 200, jsonBody: operationView(kind, id, status) });
    }),
  });
}
