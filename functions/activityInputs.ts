/**
 * The inputs of the activities that touch storage, checked by the activities themselves. An
 * orchestration can be started with any input through the durable webhook (the system key skips every
 * HTTP pre-check), so an activity trusts no field it did not check: the same schema rules as the HTTP
 * bodies (engine overrides, booleans that are booleans, backup IDs), nothing else.
 */
import Ajv, { JSONSchemaType } from 'ajv';
import { BACKUP_ID_RE, MAX_SOURCE_DISK_BYTES, PagewiseError, RESTORE_OPERATION_RE, RESTORE_PLAN_VERSION, SEALED_SAS_RE } from '../core';
import type { RestorePlan } from '../core';
import type { BackupActivityInput, DiskRef, ManagedDiskPlanInput, PruneOrchestrationInput, RecordVerificationInput, RestorePlanInput, RestoreStepInput, RestoreWindowInput, VerifyOrchestrationInput, VerifyWindowInput } from '../orchestrations/contracts';
import { engineOverrideProperties } from './engineOverrideSchema';
import { pruneRequestProperties } from './pruneRequestSchema';
import { describeSchemaErrors } from './schemaErrors';

type BlobRef = Pick<DiskRef, 'url' | 'sealedSas'>;
type VerifyActivityInput = Pick<VerifyOrchestrationInput, 'backupId' | 'readData'> & { source?: BlobRef };
/**
 * What the backup activities receive (plan, batch and finalize add their own fields). `batchIndex` is
 * the name orchestrations of earlier versions gave `planPosition`: their scheduled activities still run.
 */
type BackupStepInput = BackupActivityInput & { planPosition?: number; batchIndex?: number; startedAt?: string; alreadyComplete?: boolean };

const url = { type: 'string', minLength: 8, maxLength: 4096, pattern: '^https?://' } as const;
const backupId = { type: 'string', pattern: BACKUP_ID_RE.source } as const;
const planPosition = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, nullable: true } as const;
/** A write target or a compared source: a URL only (a Compute grant is a backup source's alone). */
const sealedSas = { type: 'string', pattern: SEALED_SAS_RE.source, nullable: true } as const;
const plainRef = { type: 'object', properties: { url, sealedSas }, required: ['url'], additionalProperties: false } as const;
const armId = { type: 'string', maxLength: 1024, pattern: '^/subscriptions/', nullable: true } as const;
/** What Compute said of a granted snapshot (covered by the grant's seal, checked again by the activity). */
const managedDisk = {
  type: 'object',
  properties: { sourceUniqueId: { type: 'string', maxLength: 64, nullable: true }, armDiskId: armId, snapshotResourceId: armId },
  required: [],
  additionalProperties: false,
  nullable: true,
} as const;
const sourceRef: JSONSchemaType<DiskRef> = {
  type: 'object',
  properties: { url, sealedSas, grantedBy: { type: 'string', enum: ['compute'], nullable: true }, grantSeal: { type: 'string', maxLength: 256, nullable: true }, managedDisk },
  required: ['url'],
  additionalProperties: false,
};

const verify: JSONSchemaType<VerifyActivityInput> = {
  type: 'object',
  properties: { backupId, readData: { type: 'boolean', nullable: true }, source: { ...plainRef, nullable: true } },
  required: ['backupId'],
  additionalProperties: false,
};

const backupStep: JSONSchemaType<BackupStepInput> = {
  type: 'object',
  properties: {
    backupId,
    source: sourceRef,
    expectedEtag: { type: 'string', maxLength: 256, nullable: true },
    settings: { type: 'object', properties: engineOverrideProperties, required: [], additionalProperties: false, nullable: true },
    planPosition,
    batchIndex: planPosition,
    startedAt: { type: 'string', maxLength: 64, nullable: true },
    alreadyComplete: { type: 'boolean', nullable: true },
    vmCapture: { type: 'boolean', nullable: true },
  },
  required: ['backupId', 'source'],
  additionalProperties: false,
};

type PruneActivityInput = Omit<PruneOrchestrationInput, 'retry'>;

const prune: JSONSchemaType<PruneActivityInput> = {
  type: 'object',
  properties: pruneRequestProperties,
  required: [],
  additionalProperties: false,
};

/** The backup orchestrations a scheduled run waits for: `backup-<backup ID>` instance IDs only (BACKUP_ID_RE's forms), at most one per policy disk. */
const settled: JSONSchemaType<{ instanceIds: string[]; queuedRun?: { run: string; starts: number } }> = {
  type: 'object',
  properties: {
    instanceIds: { type: 'array', maxItems: 1000, items: { type: 'string', pattern: '^(vm)?backup-[a-z0-9][a-z0-9-]{2,62}$' } },
    // #17 B: a queued run — its firing (yyyymmddhhmm) and how many starts it enqueued.
    queuedRun: {
      type: 'object',
      properties: { run: { type: 'string', pattern: '^\\d{12}$' }, starts: { type: 'integer', minimum: 0, maximum: 1_000_000 } },
      required: ['run', 'starts'],
      additionalProperties: false,
      nullable: true,
    },
  },
  required: ['instanceIds'],
  additionalProperties: false,
};

const ajv = new Ajv({ allErrors: true, verbose: true });

/** A checker of one activity's input: the input typed, or a BadInput naming what is wrong (a permanent failure). */
function checker<T>(what: string, schema: JSONSchemaType<T>): (input: unknown) => T {
  const validate = ajv.compile(schema);
  return (input) => {
    if (!validate(input)) {
      throw new PagewiseError('BadInput', `the ${what} activity's input is invalid: ${describeSchemaErrors(validate.errors, '(input)').join('; ')}`);
    }
    return input;
  };
}

export const verifyActivityInput = checker('verify', verify);
export const backupActivityInput = checker('backup', backupStep);
export const pruneActivityInput = checker('prune', prune);
export const settledActivityInput = checker('backupsSettled', settled);

// #17 R — the restore steps' inputs. The plan comes back from the plan activity through the orchestrator,
// but a range sub-orchestration can be started with any input (the durable webhook): every field is checked,
// and core checks the plan against the request and the target's marks before a byte is written.
type BlobTarget = Omit<DiskRef, 'grantedBy' | 'grantSeal' | 'managedDisk'>;
const operationId = { type: 'string', maxLength: 200, pattern: RESTORE_OPERATION_RE.source } as const;
const count = (max: number) => ({ type: 'integer', minimum: 0, maximum: max }) as const;
const MAX_PAGES = MAX_SOURCE_DISK_BYTES / 512;
const restorePlan: JSONSchemaType<RestorePlan> = {
  type: 'object',
  properties: {
    version: { type: 'integer', const: RESTORE_PLAN_VERSION },
    operationId,
    backupId,
    kind: { type: 'string', enum: ['blob', 'file', 'managedDisk'] },
    display: { type: 'string', minLength: 1, maxLength: 4096 },
    overwrite: { type: 'boolean' },
    diskBytes: count(MAX_SOURCE_DISK_BYTES),
    pageSize: { type: 'integer', minimum: 512, maximum: MAX_SOURCE_DISK_BYTES },
    pageCount: count(MAX_PAGES),
    windowPages: { type: 'integer', minimum: 1, maximum: MAX_PAGES },
    windowCount: count(MAX_PAGES),
    entryCount: count(MAX_PAGES),
    entryBytes: count(MAX_SOURCE_DISK_BYTES),
    partial: { type: 'string', maxLength: 4096, nullable: true },
    replaces: {
      type: 'object',
      properties: { dev: count(Number.MAX_SAFE_INTEGER), ino: count(Number.MAX_SAFE_INTEGER) },
      required: ['dev', 'ino'],
      additionalProperties: false,
      nullable: true,
    },
    dataBytes: { ...count(MAX_SOURCE_DISK_BYTES), nullable: true },
  },
  required: ['version', 'operationId', 'backupId', 'kind', 'display', 'overwrite', 'diskBytes', 'pageSize', 'pageCount', 'windowPages', 'windowCount', 'entryCount', 'entryBytes'],
  additionalProperties: false,
};

const restorePlanInput: JSONSchemaType<Omit<RestorePlanInput, 'target'> & { target: BlobTarget }> = {
  type: 'object',
  properties: { backupId, target: plainRef, overwrite: { type: 'boolean', nullable: true }, operationId },
  required: ['backupId', 'target', 'operationId'],
  additionalProperties: false,
};

/** A step's target: a URL, or a managed disk's write grant the plan activity sealed (functions/compute.ts grantedSource; opened only with its seal). */
const grantRef = {
  type: 'object',
  properties: { url, sealedSas, grantedBy: { type: 'string', enum: ['compute'], nullable: true }, grantSeal: { type: 'string', pattern: '^[0-9a-f]{64}$', nullable: true } },
  required: ['url'],
  additionalProperties: false,
} as const;
type StepTarget = Omit<DiskRef, 'managedDisk'>;
const stepProperties = { backupId, target: grantRef, plan: restorePlan } as const;
const restoreStep: JSONSchemaType<Omit<RestoreStepInput, 'target'> & { target: StepTarget }> = {
  type: 'object',
  properties: stepProperties,
  required: ['backupId', 'target', 'plan'],
  additionalProperties: false,
};
const restoreWindow: JSONSchemaType<Omit<RestoreWindowInput, 'target'> & { target: StepTarget }> = {
  type: 'object',
  properties: { ...stepProperties, window: count(MAX_PAGES) },
  required: ['backupId', 'target', 'plan', 'window'],
  additionalProperties: false,
};

export const restorePlanActivityInput = checker('planRestore', restorePlanInput);

// #17 mdrestore: a managed-disk restore's plan input (core checks every ARM name again: core/vm/arm-ids.ts).
const armName = { type: 'string', minLength: 1, maxLength: 90 } as const;
const managedDiskTargetSchema = {
  type: 'object',
  properties: {
    subscriptionId: armName,
    resourceGroup: armName,
    name: armName,
    location: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9]+$' },
    sku: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_]+$', nullable: true },
    zone: { type: 'string', minLength: 1, maxLength: 8, pattern: '^[0-9]+$', nullable: true },
  },
  required: ['subscriptionId', 'resourceGroup', 'name', 'location'],
  additionalProperties: false,
} as const;
export { managedDiskTargetSchema };
const managedDiskPlanInput: JSONSchemaType<ManagedDiskPlanInput> = {
  type: 'object',
  properties: { backupId, managedDisk: managedDiskTargetSchema, operationId },
  required: ['backupId', 'managedDisk', 'operationId'],
  additionalProperties: false,
};
export const managedDiskPlanActivityInput = checker('planManagedDiskRestore', managedDiskPlanInput);
export const restoreStepActivityInput = checker('restore step', restoreStep);
export const restoreWindowActivityInput = checker('restoreWindow', restoreWindow);

// #17 V: a verify window's input (the plan's facts it needs, and its window).
type VerifyWindowActivityInput = Omit<VerifyWindowInput, 'source'> & { source?: BlobRef };
const wholeNumber = (minimum: number) => ({ type: 'integer', minimum, maximum: Number.MAX_SAFE_INTEGER }) as const;
const verifyWindowSchema: JSONSchemaType<VerifyWindowActivityInput> = {
  type: 'object',
  properties: {
    backupId,
    readData: { type: 'boolean' },
    windowPages: wholeNumber(1),
    window: wholeNumber(0),
    // Core reads it only if it is a manifest name of this backup (its name tag and its contents).
    manifestName: { type: 'string', maxLength: 256, pattern: '^manifests/[0-9a-f]{32}/[0-9]{13}-[0-9a-f]{32}\\.pwm$', nullable: true },
    source: { ...plainRef, nullable: true },
  },
  required: ['backupId', 'readData', 'windowPages', 'window'],
  additionalProperties: false,
};
export const verifyWindowActivityInput = checker('verify window', verifyWindowSchema);

// #18 verifysched: a verification's record (docs/FORMAT.md §28) — every field checked, as core checks the record again.
const recordVerification: JSONSchemaType<RecordVerificationInput> = {
  type: 'object',
  properties: {
    backupId,
    instanceId: { type: 'string', pattern: '^[A-Za-z0-9:._-]{1,200}$' },
    by: { type: 'string', enum: ['schedule', 'http', 'cli'] },
    at: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$' },
    ok: { type: 'boolean' },
    readData: { type: 'boolean' },
    problems: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 100_000 }, nullable: true },
  },
  required: ['backupId', 'instanceId', 'by', 'at', 'ok', 'readData'],
  additionalProperties: false,
};
export const recordVerificationActivityInput = checker('recordVerification', recordVerification);
