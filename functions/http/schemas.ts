/** JSON schemas of the HTTP request bodies, compiled once with ajv (strict: no unknown fields). */
import Ajv, { ErrorObject, JSONSchemaType } from 'ajv';
import { engineOverrideProperties } from '../engineOverrideSchema';

export interface DiskRefBody {
  url: string;
}

export interface StartBackupBody {
  source: DiskRefBody;
  pageSize?: number;
  cacheBytes?: number;
  concurrency?: number;
  /** Back up a snapshot Pagewise takes first (a disk in use); deleted after the backup. */
  takeSnapshot?: boolean;
}

export interface StartRestoreBody {
  backupId: string;
  target: DiskRefBody;
  overwrite?: boolean;
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

const backupId = { type: 'string', pattern: '^(pw-[0-9a-f]{24}|[a-z0-9][a-z0-9-]{1,61}[a-z0-9])$' } as const;

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
  properties: { backupId, target: diskRef, overwrite: { type: 'boolean', nullable: true } },
  required: ['backupId', 'target'],
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

const ajv = new Ajv({ allErrors: true });

export const validators = {
  startBackup: ajv.compile(startBackup),
  startRestore: ajv.compile(startRestore),
  startVerification: ajv.compile(startVerification),
};

export function describeErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message ?? 'is invalid'}`.trim());
}
