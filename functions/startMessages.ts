/**
 * The backup-start queue message (#17, docs/DURABLE.md "Start budget", body version 1): one per due disk
 * or VM of a timer firing. Its body is input like any request: checked against a strict schema; a disk's
 * SAS travels sealed, never in clear.
 */
import { createHash } from 'node:crypto';
import Ajv, { JSONSchemaType } from 'ajv';
import { PagewiseError, SEALED_SAS_RE } from '../core';
import type { ConsistencyLevel } from '../core';
import type { DiskRef, EngineOverrides } from '../orchestrations/contracts';
import { CONSISTENCY_LEVELS } from '../orchestrations/vmContracts';
import { engineOverrideProperties } from './engineOverrideSchema';
import { describeSchemaErrors } from './schemaErrors';

export const START_MESSAGE_VERSION = 1;
/** `start-<firing, UTC to the minute>-<24 hex of the disk's or VM's identity>`. */
export const START_ID_RE = /^start-\d{12}-[0-9a-f]{24}$/;
/** Queue messages are at most 64 KiB; ours are a few hundred bytes. */
export const MAX_START_MESSAGE_BYTES = 16 * 1024;

interface StartMessageBase {
  v: 1;
  startId: string;
  /** The timer firing, to the minute (ISO 8601): a VM backup's ID names it; the start gives up 24 h after it. */
  firedAt: string;
  /** Times this start found no free slot and was sent again (the queue's dequeue count stays 1 for those). */
  deferrals: number;
}

export interface DiskStartMessage extends StartMessageBase {
  kind: 'disk';
  /** The policy disk: URL without its SAS, the SAS sealed (functions/sealedRefs.ts). */
  source: Pick<DiskRef, 'url' | 'sealedSas'>;
  settings?: EngineOverrides;
}

export interface VmStartMessage extends StartMessageBase {
  kind: 'vm';
  vmId: string;
  full?: boolean;
  consistency?: ConsistencyLevel;
}

export type StartMessage = DiskStartMessage | VmStartMessage;

/** The firing to the minute, as start IDs and records name it. */
export const firingOf = (now: Date): string => now.toISOString().slice(0, 16).replace(/[-:T]/g, '');
export const firedAtOf = (now: Date): string => new Date(Math.floor(now.getTime() / 60_000) * 60_000).toISOString();

/** Deterministic per firing and disk or VM: a firing delivered twice enqueues the same starts. */
export function startIdFor(firedAt: Date, kind: 'disk' | 'vm', identity: string): string {
  return `start-${firingOf(firedAt)}-${createHash('sha256').update(`${kind}\n${identity.toLowerCase()}`).digest('hex').slice(0, 24)}`;
}

const base = {
  v: { type: 'integer', const: START_MESSAGE_VERSION },
  startId: { type: 'string', pattern: START_ID_RE.source },
  firedAt: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:00\\.000Z$' },
  deferrals: { type: 'integer', minimum: 0, maximum: 100_000 },
} as const;

const diskSchema: JSONSchemaType<DiskStartMessage> = {
  type: 'object',
  properties: {
    ...base,
    kind: { type: 'string', const: 'disk' },
    source: {
      type: 'object',
      properties: {
        // No query: a SAS in clear is refused (it is sealed into sealedSas).
        url: { type: 'string', minLength: 8, maxLength: 4096, pattern: '^https?://[^?#]+$' },
        sealedSas: { type: 'string', pattern: SEALED_SAS_RE.source, nullable: true },
      },
      required: ['url'],
      additionalProperties: false,
    },
    settings: { type: 'object', properties: engineOverrideProperties, required: [], additionalProperties: false, nullable: true },
  },
  required: ['v', 'startId', 'firedAt', 'deferrals', 'kind', 'source'],
  additionalProperties: false,
} as unknown as JSONSchemaType<DiskStartMessage>;

const vmSchema: JSONSchemaType<VmStartMessage> = {
  type: 'object',
  properties: {
    ...base,
    kind: { type: 'string', const: 'vm' },
    vmId: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^/subscriptions/' },
    full: { type: 'boolean', nullable: true },
    consistency: { type: 'string', enum: [...CONSISTENCY_LEVELS], nullable: true },
  },
  required: ['v', 'startId', 'firedAt', 'deferrals', 'kind', 'vmId'],
  additionalProperties: false,
} as unknown as JSONSchemaType<VmStartMessage>;

const ajv = new Ajv({ allErrors: true, verbose: true });
const validateDisk = ajv.compile(diskSchema);
const validateVm = ajv.compile(vmSchema);

/** The message as the queue carries it: base64 of its JSON (the Functions host's default messageEncoding). */
export function encodeStartMessage(message: StartMessage): string {
  return Buffer.from(JSON.stringify(message)).toString('base64');
}

/**
 * A trigger's message body (the host gives JSON parsed, or a string when it does not parse) checked
 * against the schema of its kind; a BadInput naming what is wrong otherwise.
 */
export function parseStartMessage(body: unknown): StartMessage {
  let value = body;
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    const text = body.toString();
    if (text.length > MAX_START_MESSAGE_BYTES) throw new PagewiseError('BadInput', `a backup-start message is ${text.length} bytes, more than ${MAX_START_MESSAGE_BYTES}`);
    try {
      value = JSON.parse(text);
    } catch {
      throw new PagewiseError('BadInput', 'a backup-start message is not JSON');
    }
  }
  const kind = (value as { kind?: unknown } | null)?.kind;
  const validate = kind === 'vm' ? validateVm : kind === 'disk' ? validateDisk : undefined;
  if (!validate) throw new PagewiseError('BadInput', 'a backup-start message must have "kind" "disk" or "vm"');
  if (!validate(value)) throw new PagewiseError('BadInput', `a backup-start message is invalid: ${describeSchemaErrors(validate.errors, '(message)').join('; ')}`);
  return value as StartMessage;
}

/** The ID a message that did not parse is recorded under: a digest of its body (the body itself may be hostile). */
export function invalidStartId(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body) ?? String(body);
  return `invalid-${createHash('sha256').update(text.slice(0, MAX_START_MESSAGE_BYTES)).digest('hex').slice(0, 24)}`;
}
