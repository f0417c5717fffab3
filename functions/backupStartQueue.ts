/**
 * Queue-fed backup starts (#17): the queue trigger `backupStartQueue` takes one start message (a due disk
 * or VM of a timer firing), takes start slots for its backup — one of the task hub's and, for a disk, one
 * of its storage account's — and starts the backup with them; without a free slot it sends the message
 * again, later. A failing start records its reason (functions/startRecords.ts) so that a message the host
 * moves to the poison queue is shown with it. Also the activity that releases a backup's slots.
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import Ajv, { JSONSchemaType } from 'ajv';
import { displayUrl, PagewiseError, parseStorageUrl, redact, StartSlots } from '../core';
import type { HeldSlot, SlotScope } from '../core';
import { Activities, Orchestrators } from '../orchestrations/contracts';
import type { ReleaseStartSlotsInput } from '../orchestrations/startSlots';
import { VmOrchestrators } from '../orchestrations/vmContracts';
import { prepareDiskBackup } from './backupStarts';
import { reportingPermanentFailures } from './permanentFailures';
import { describeSchemaErrors } from './schemaErrors';
import { assertAllowedAccount, readSettings } from './settings';
import { findStatus, isRestartable, startOnce } from './starter';
import { BACKUP_STARTS_QUEUE, HOST_STORAGE_CONNECTION, MAX_DEQUEUE_COUNT, START_MAX_WAIT_MS, startBudget, startsContainer, startsQueue } from './startBudget';
import { encodeStartMessage, invalidStartId, parseStartMessage, StartMessage } from './startMessages';
import { StartRecord, writeStartRecord } from './startRecords';
import { prepareVmBackup } from './vmBackupStarts';

const RUNNING = new Set(['Running', 'Pending', 'ContinuedAsNew']);

export interface StartOutcome {
  startId: string;
  /** started: this start began the backup; joined: its instance existed (running or done); deferred: no slot free, sent again. */
  outcome: 'started' | 'joined' | 'deferred';
  /** The backup's instance ID ('' for a start deferred before its disk was read). */
  instanceId: string;
  slots?: HeldSlot[];
}

/** The slots of the app's start budget, holders asked of the durable client. */
export function appStartSlots(client: df.DurableClient): StartSlots {
  return new StartSlots(startsContainer(), async (instanceId) => {
    const status = await findStatus(client, instanceId);
    return status !== undefined && RUNNING.has(status.runtimeStatus);
  });
}

interface Prepared {
  orchestrator: string;
  instanceId: string;
  input: object;
  scopes: SlotScope[];
}

const hubScope = (): SlotScope => ({ kind: 'hub', name: 'hub', size: startBudget().hub });

async function prepare(client: df.DurableClient, message: StartMessage): Promise<Prepared> {
  const budget = startBudget();
  const hub = hubScope();
  if (message.kind === 'vm') {
    // A VM counts against the task hub only: its disks are Compute exports, not one account's.
    const vm = await prepareVmBackup(client, { vmId: message.vmId, ...(message.full ? { full: true } : {}), ...(message.consistency ? { consistency: message.consistency } : {}) }, new Date(message.firedAt), 'timer');
    return { orchestrator: VmOrchestrators.backupVm, instanceId: vm.instanceId, input: vm.input, scopes: [hub] };
  }
  assertAllowedAccount(readSettings(), message.source.url, 'blob', 'policy disk');
  const account = parseStorageUrl(message.source.url, 'blob', 'policy disk').account.toLowerCase();
  const disk = await prepareDiskBackup(message.source, { ...(message.settings ? { settings: message.settings } : {}), trigger: 'timer' });
  return { orchestrator: Orchestrators.backupDisk, instanceId: disk.instanceId, input: disk.input, scopes: [{ kind: 'account', name: account, size: budget.perAccount }, hub] };
}

/** One start message: the backup started within the budget, joined, or deferred. Throws (after recording why) when it fails. */
export async function handleBackupStart(body: unknown, client: df.DurableClient, context: InvocationContext, now: () => Date = () => new Date()): Promise<StartOutcome> {
  const attempts = Number(context.triggerMetadata?.dequeueCount ?? 1) || 1;
  let message: StartMessage;
  try {
    message = parseStartMessage(body);
  } catch (err) {
    await recordFailure(context, { startId: invalidStartId(body), kind: 'unknown', target: '(invalid message)', attempts }, err);
    throw err;
  }
  const target = message.kind === 'disk' ? displayUrl(message.source.url) : message.vmId;
  try {
    const outcome = await startWithinBudget(client, message, now());
    if (outcome.outcome !== 'deferred') {
      await writeStartRecord(startsContainer(), { startId: message.startId, kind: message.kind, target, state: 'started', instanceId: outcome.instanceId, attempts });
    }
    context.log(`backup start ${message.startId} (${target}): ${outcome.outcome} ${outcome.instanceId}${outcome.outcome === 'deferred' ? `, deferral ${message.deferrals + 1}` : ''}`);
    return outcome;
  } catch (err) {
    await recordFailure(context, { startId: message.startId, kind: message.kind, target, attempts }, err);
    throw err;
  }
}

/** No slot free: the message again, later, one deferral more — or, a day after its firing, a failure that says why. */
async function defer(message: StartMessage, fullScope: SlotScope, now: Date): Promise<void> {
  const waited = now.getTime() - Date.parse(message.firedAt);
  const scope = fullScope.kind === 'hub' ? `the task hub's ${fullScope.size}` : `storage account ${fullScope.name}'s ${fullScope.size}`;
  if (waited > START_MAX_WAIT_MS) {
    throw new PagewiseError('Locked', `no start slot came free in ${Math.round(waited / 3600_000)} h (all ${scope} slots busy); raise the budget or spread the policy's days`);
  }
  await startsQueue().sendMessage(encodeStartMessage({ ...message, deferrals: message.deferrals + 1 }), { visibilityTimeout: startBudget().deferSeconds });
}

async function startWithinBudget(client: df.DurableClient, message: StartMessage, now: Date): Promise<StartOutcome> {
  const slots = appStartSlots(client);
  // The task hub full: wait again at once, before reading the disk or the vault (most deliveries of a long queue end here).
  const hub = hubScope();
  if (!(await slots.hasRoom(hub))) {
    await defer(message, hub, now);
    return { startId: message.startId, instanceId: '', outcome: 'deferred' };
  }
  const { orchestrator, instanceId, input, scopes } = await prepare(client, message);
  const base = { startId: message.startId, instanceId };
  // Already there (a redelivered message, an unchanged disk's completed backup): nothing to take.
  const existing = await findStatus(client, instanceId);
  if (existing && !isRestartable(existing)) return { ...base, outcome: 'joined' };
  const taken = await slots.take(instanceId, scopes);
  if (!taken.taken) {
    await defer(message, taken.fullScope, now);
    return { ...base, outcome: 'deferred' };
  }
  try {
    const started = await startOnce(client, orchestrator, instanceId, { ...input, startSlots: taken.slots }, { restartFailed: true });
    // Lost a race to another start of the same instance: the slots are the running instance's only if it took them.
    if (!started.started && !(started.status && RUNNING.has(started.status.runtimeStatus))) await slots.release(taken.slots);
    return { ...base, outcome: started.started ? 'started' : 'joined', slots: taken.slots };
  } catch (err) {
    // The orchestration never started: nobody else would give the slots back.
    await slots.release(taken.slots);
    throw err;
  }
}

async function recordFailure(context: InvocationContext, record: Pick<StartRecord, 'startId' | 'kind' | 'target' | 'attempts'>, err: unknown): Promise<void> {
  const reason = redact(err instanceof Error ? err.message : String(err));
  const state = record.attempts >= MAX_DEQUEUE_COUNT ? 'poisoned' : 'failing';
  context.error(`backup start ${record.startId} (${record.target}) failed, attempt ${record.attempts} of ${MAX_DEQUEUE_COUNT}${state === 'poisoned' ? ' (moved to the poison queue)' : ''}: ${reason}`);
  try {
    await writeStartRecord(startsContainer(), { ...record, state, reason });
  } catch (recordErr) {
    context.error(`backup start ${record.startId}: its failure could not be recorded: ${redact(String(recordErr))}`);
  }
}

const slotSchema: JSONSchemaType<ReleaseStartSlotsInput> = {
  type: 'object',
  properties: {
    holder: { type: 'string', maxLength: 256 },
    slots: {
      type: 'array',
      maxItems: 2,
      items: {
        type: 'object',
        properties: {
          kind: { type: 'string', enum: ['hub', 'account'] },
          name: { type: 'string', pattern: '^[a-z0-9]{1,64}$' },
          index: { type: 'integer', minimum: 0, maximum: 999 },
          leaseId: { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' },
        },
        required: ['kind', 'name', 'index', 'leaseId'],
        additionalProperties: false,
      },
    },
  },
  required: ['holder', 'slots'],
  additionalProperties: false,
};
const validateRelease = new Ajv({ allErrors: true }).compile(slotSchema);

df.app.activity(Activities.releaseStartSlots, {
  extraInputs: [df.input.durableClient()],
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    if (!validateRelease(input)) throw new PagewiseError('BadInput', `the releaseStartSlots activity's input is invalid: ${describeSchemaErrors(validateRelease.errors, '(input)').join('; ')}`);
    await appStartSlots(df.getClient(context)).release(input.slots);
    return { released: input.slots.length };
  }),
});

df.app.client.storageQueue('backupStartQueue', {
  queueName: BACKUP_STARTS_QUEUE,
  connection: HOST_STORAGE_CONNECTION,
  handler: async (body: unknown, client: df.DurableClient, context: InvocationContext) => {
    await handleBackupStart(body, client, context);
  },
});
