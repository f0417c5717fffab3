/**
 * HTTP API of restores and verifications: start (202 + status link) and read. Each start is a new
 * operation unless it carries the Idempotency-Key of an earlier one (functions/http/idempotency.ts).
 */
import * as df from 'durable-functions';
import { HttpRequest, HttpResponse } from '@azure/functions';
import { ManagedDiskRestoreInput, ManagedDiskTargetInput, Orchestrators, RestoreOrchestrationInput, VerifyOrchestrationInput } from '../../orchestrations/contracts';
import { newDiskId, targetDiskId } from '../../core';
import { problem, ProblemError } from '../problems';
import { vmCompute } from '../vmCompute';
import { assertAllowedAccount, readSettings, readUserKey } from '../settings';
import { sealRef } from '../sealedRefs';
import { checkBackupReadable, checkRestoreTarget } from '../prechecks';
import { findStatus, startOnce } from '../starter';
import { assertSameRequest, idempotencyKeyOf, isOperationId, operationInstanceId, requestFingerprint as requestFingerprintOf } from './idempotency';
import { validators } from './schemas';
import { operationView, withLiveBackupProgress } from './views';
import { answering, assertKnownQuery, startedResponse, validBody } from './responses';

df.app.client.http('startRestore', {
  route: 'restores',
  methods: ['POST'],
  authLevel: 'function',
  handler: answering(async (request, client) => {
    assertKnownQuery(request, []); // a misplaced ?overwrite=true must not be silently ignored
    const body = await validBody(request, validators.startRestore);
    const settings = readSettings();
    if (body.managedDisk) return startManagedDiskRestore(request, client, body.backupId, body.managedDisk, body.target !== undefined || body.overwrite !== undefined);
    if (!body.target) throw new ProblemError(400, 'BadRequestBody', '(body) is missing the required field "target" (or "managedDisk", a restore to a new managed disk)');
    const target = body.target;
    assertAllowedAccount(settings, target.url, 'blob', 'target.url');
    const input: RestoreOrchestrationInput = { backupId: body.backupId, target, overwrite: body.overwrite ?? false };
    return startOperation(request, client, 'restore', input, async () => {
      // A target in the vault or on a disk being backed up (400), unknown backup (404), wrong key or
      // incomplete backup (409), existing target (409): say so now.
      await checkRestoreTarget(settings, client, target.url, input.overwrite ?? false);
      await checkBackupReadable(settings, body.backupId);
    });
  }),
});

/**
 * #17 mdrestore: a restore to a new managed disk. Its names by core's strict ARM rules (400), a disk of that
 * name (409: never overwritten, no `overwrite`), the backup unreadable: all said before anything is started.
 */
function startManagedDiskRestore(request: HttpRequest, client: df.DurableClient, backupId: string, managedDisk: ManagedDiskTargetInput, withTargetFields: boolean): Promise<HttpResponse> {
  if (withTargetFields) throw new ProblemError(400, 'BadRequestBody', 'a managedDisk restore takes neither target nor overwrite: it creates a new disk and never overwrites one');
  targetDiskId(managedDisk);
  const input: ManagedDiskRestoreInput = { backupId, managedDisk };
  return startOperation(request, client, 'restore', input, async () => {
    await newDiskId(vmCompute(), managedDisk);
    await checkBackupReadable(readSettings(), backupId);
  });
}

df.app.client.http('startVerification', {
  route: 'verifications',
  methods: ['POST'],
  authLevel: 'function',
  handler: answering(async (request, client) => {
    assertKnownQuery(request, []);
    const body = await validBody(request, validators.startVerification);
    const settings = readSettings();
    if (body.source) assertAllowedAccount(settings, body.source.url, 'blob', 'source.url');
    const input: VerifyOrchestrationInput = { backupId: body.backupId, readData: body.readData ?? true, ...(body.source ? { source: body.source } : {}) };
    return startOperation(request, client, 'verify', input, () => checkBackupReadable(settings, body.backupId));
  }),
});

/**
 * Starts a restore or verification as a new operation; with an Idempotency-Key, the operation that
 * key started (same request) is answered instead, and the pre-checks run only for a new one.
 */
async function startOperation(
  request: HttpRequest,
  client: df.DurableClient,
  kind: 'restore' | 'verify',
  input: RestoreOrchestrationInput | VerifyOrchestrationInput | ManagedDiskRestoreInput,
  precheck: () => Promise<void>,
): Promise<HttpResponse> {
  const key = idempotencyKeyOf(request);
  const requestFingerprint = requestFingerprintOf(input);
  const instanceId = operationInstanceId(kind, key);
  const route = kind === 'restore' ? 'restores' : 'verifications';
  const existing = key === undefined ? undefined : await findStatus(client, instanceId);
  if (existing) {
    assertSameRequest(kind, existing.input, requestFingerprint);
    return startedResponse(request, client, route, instanceId, { instanceId, started: false, status: existing });
  }
  await precheck();
  const orchestrator = 'managedDisk' in input ? Orchestrators.restoreManagedDisk : kind === 'restore' ? Orchestrators.restoreDisk : Orchestrators.verifyBackup;
  // A keyed operation that failed stays failed under its key: a retry of the request is a new key.
  const started = await startOnce(client, orchestrator, instanceId, { ...sealedInput(input), requestFingerprint, trigger: 'http' }, { restartFailed: false });
  if (!started.started && started.status) assertSameRequest(kind, started.status.input, requestFingerprint); // lost a race on the key
  return startedResponse(request, client, route, instanceId, started);
}

/** The operation's input as it may enter the task hub: its target's or source's SAS sealed. */
function sealedInput(input: RestoreOrchestrationInput | VerifyOrchestrationInput | ManagedDiskRestoreInput): RestoreOrchestrationInput | VerifyOrchestrationInput | ManagedDiskRestoreInput {
  if ('managedDisk' in input) return input; // names only: no SAS
  const userKey = readUserKey();
  if ('target' in input) return { ...input, target: sealRef(input.target, userKey) };
  return input.source ? { ...input, source: sealRef(input.source, userKey) } : input;
}

for (const kind of ['restores', 'verifications'] as const) {
  df.app.client.http(kind === 'restores' ? 'getRestore' : 'getVerification', {
    route: `${kind}/{id}`,
    methods: ['GET'],
    authLevel: 'function',
    handler: answering(async (request, client) => {
      assertKnownQuery(request, []);
      const id = request.params.id ?? '';
      // Only an ID this API hands out is looked up: anything else (a 10 KB path, control characters) never reaches the task hub.
      const status = isOperationId(kind === 'restores' ? 'restore' : 'verify', id) ? await findStatus(client, id) : undefined;
      if (!status) return problem(404, 'OperationNotFound', `no ${kind.slice(0, -1)} ${id.length > 80 ? `${id.slice(0, 80)}…` : id}`);
      // #17: a fanned-out operation's root counts a range's windows only when it ends: the running ranges' are added.
      return new HttpResponse({ status: 200, jsonBody: operationView(kind, id, await withLiveBackupProgress(client, status)) });
    }),
  });
}
