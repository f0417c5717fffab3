/**
 * The inputs of the activities that touch storage, checked by the activities themselves. An
 * orchestration can be started with any input through the durable webhook (the system key skips every
 * HTTP pre-check), so an activity trusts no field it did not check: the same schema rules as the HTTP
 * bodies (engine overrides, booleans that are booleans, backup IDs), nothing else.
 */
import Ajv, { JSONSchemaType } from 'ajv';
import { BACKUP_ID_RE, PagewiseError, SEALED_SAS_RE } from '../core';
import type { BackupActivityInput, DiskRef, PruneOrchestrationInput, RestoreOrchestrationInput, VerifyOrchestrationInput } from '../orchestrations/contracts';
import { engineOverrideProperties } from './engineOverrideSchema';
import { pruneRequestProperties } from './pruneRequestSchema';
import { describeSchemaErrors } from './schemaErrors';

type BlobRef = Pick<DiskRef, 'url' | 'sealedSas'>;
type RestoreActivityInput = Pick<RestoreOrchestrationInput, 'backupId' | 'overwrite'> & { target: BlobRef };
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

const restore: JSONSchemaType<RestoreActivityInput> = {
  type: 'object',
  properties: { backupId, target: plainRef, overwrite: { type: 'boolean', nullable: true } },
  required: ['backupId', 'target'],
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

export const restoreActivityInput = checker('restore', restore);
export const verifyActivityInput = checker('verify', verify);
export const backupActivityInput = checker('backup', backupStep);
export const pruneActivityInput = checker('prune', prune);
export const settledActivityInput = checker('backupsSettled', settled);
