/** JSON schemas of the HTTP request bodies, compiled once with ajv (strict: no unknown fields). */
import Ajv, { ErrorObject, JSONSchemaType } from 'ajv';
import { engineOverrideProperties } from '../engineOverrideSchema';
import { pruneRequestProperties } from '../pruneRequestSchema';
import { describeSchemaErrors } from '../schemaErrors';
import { BACKUP_ID_RE } from '../../core';
import { managedDiskTargetSchema } from '../activityInputs';
import type { ManagedDiskTargetInput } from '../../orchestrations/contracts';

export interface DiskRefBody {
  url: string;
}

export interface StartBackupBody {
  source: DiskRefBody;
  pageSize?: number;
  cacheBytes?: number;
  concurrency?: number;
  /** Back up a snapshot Pagewise takes first (a disk in use); kept as the next backup's base. */
  takeSnapshot?: boolean;
  /** Force a full backup; otherwise incremental on the newest backup of the same disk when possible. */
  full?: boolean;
}

export interface StartRestoreBody {
  backupId: string;
  /** A page blob or file target; or `managedDisk` (#17 mdrestore): exactly one of the two. */
  target?: DiskRefBody;
  overwrite?: boolean;
  managedDisk?: ManagedDiskTargetInput;
}

export interface StartVerificationBody {
  backupId: string;
  readData?: boolean;
  source?: DiskRefBody;
}

const diskRef = {
  type: 'object',
  properties: { url: { type: 'string', minLength: 8, maxLength: 4096, pattern: '^https?://' } },
  required: ['url'],
  additionalProperties: false,
} as const;

// The engine's own rule, so an ID the CLI accepts is accepted here too.
const backupId = { type: 'string' as const, pattern: BACKUP_ID_RE.source };

const startBackup: JSONSchemaType<StartBackupBody> = {
  type: 'object',
  properties: {
    source: diskRef,
    ...engineOverrideProperties,
  },
  required: ['source'],
  additionalProperties: false,
};

const startRestore: JSONSchemaType<StartRestoreBody> = {
  type: 'object',
  properties: { backupId, target: { ...diskRef, nullable: true }, overwrite: { type: 'boolean', nullable: true }, managedDisk: { ...managedDiskTargetSchema, nullable: true } },
  required: ['backupId'],
  additionalProperties: false,
};

const startVerification: JSONSchemaType<StartVerificationBody> = {
  type: 'object',
  properties: {
    backupId,
    readData: { type: 'boolean', nullable: true },
    source: { ...diskRef, nullable: true },
  },
  required: ['backupId'],
  additionalProperties: false,
};

/** `POST /api/prunes`: every field optional (an empty body is `{}`). */
export interface StartPruneBody {
  dryRun?: boolean;
  /** 0…1: the fraction of pack bytes that may stay unused before repacking (default 0.1). */
  maxUnused?: number;
  /** Repack mostly unused packs (default true). */
  repack?: boolean;
}

const startPrune: JSONSchemaType<StartPruneBody> = {
  type: 'object',
  properties: pruneRequestProperties,
  required: [],
  additionalProperties: false,
};

// verbose: errors carry the parent schema and data, so a message can name the allowed fields.
const ajv = new Ajv({ allErrors: true, verbose: true });

export const validators = {
  startBackup: ajv.compile(startBackup),
  startRestore: ajv.compile(startRestore),
  startVerification: ajv.compile(startVerification),
  startPrune: ajv.compile(startPrune),
};

/** The body's schema errors, each naming where (a JSON pointer; "(body)" for the whole) and what is wrong. */
export function describeErrors(errors: ErrorObject[] | null | undefined): string[] {
  return describeSchemaErrors(errors, '(body)');
}
