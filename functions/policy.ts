/**
 * The backup policy: which disks the timer backs up, and on which UTC weekdays. JSON, from the app
 * setting PAGEWISE_BACKUP_POLICY or from a blob at PAGEWISE_POLICY_URL (on an allowed account).
 *
 *   { "disks": [ { "url": "https://acct.blob.core.windows.net/vhds/vm1.vhd", "days": ["Mon", "Thu"] } ] }
 *
 * A run is incremental on the disk's newest backup when it can be (issue #12); `"full": true` makes
 * every run of the disk full, `"fullOn": ["Sun"]` the runs on those UTC weekdays (e.g. a weekly full).
 */
import Ajv, { JSONSchemaType } from 'ajv';
import { PagewiseError, sourceBlobClient } from '../core';
import { engineOverrideProperties } from './engineOverrideSchema';
import { describeSchemaErrors } from './schemaErrors';
import { PagewiseSettings, PolicySource, assertAllowedAccount } from './settings';

export const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export interface PolicyDisk {
  url: string;
  /** UTC weekdays on which the disk is backed up; every scheduled run when absent. */
  days?: Weekday[];
  pageSize?: number;
  cacheBytes?: number;
  concurrency?: number;
  /** Back up a snapshot Pagewise takes first (a disk in use); kept as the base of the next backup. */
  takeSnapshot?: boolean;
  /** Every run of this disk is a full backup. */
  full?: boolean;
  /** UTC weekdays on which the run is a full backup (the others are incremental when they can be). */
  fullOn?: Weekday[];
}

export interface BackupPolicy {
  disks: PolicyDisk[];
}

const schema: JSONSchemaType<BackupPolicy> = {
  type: 'object',
  properties: {
    disks: {
      type: 'array',
      maxItems: 1000,
      items: {
        type: 'object',
        properties: {
          url: { type: 'string', maxLength: 4096, pattern: '^https?://' },
          days: { type: 'array', items: { type: 'string', enum: [...WEEKDAYS] }, nullable: true },
          ...engineOverrideProperties,
          fullOn: { type: 'array', items: { type: 'string', enum: [...WEEKDAYS] }, maxItems: 7, nullable: true },
        },
        required: ['url'],
        additionalProperties: false,
      },
    },
  },
  required: ['disks'],
  additionalProperties: false,
};

/** A policy of 1,000 disks with long SAS URLs is well under this. */
export const MAX_POLICY_BYTES = 8 * 1024 * 1024;

const validate = new Ajv({ allErrors: true, verbose: true }).compile(schema);

export function parsePolicy(text: string): BackupPolicy {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PagewiseError('BadInput', 'the backup policy is not JSON');
  }
  if (!validate(value)) {
    throw new PagewiseError('BadInput', `the backup policy is invalid: ${describeSchemaErrors(validate.errors, '(policy)').join('; ')}`);
  }
  return value;
}

/** The disks due on the UTC weekday of `now`. */
export function disksDue(policy: BackupPolicy, now: Date): PolicyDisk[] {
  const today = WEEKDAYS[now.getUTCDay()];
  return policy.disks.filter((d) => !d.days || d.days.includes(today));
}

/** Whether the run at `now` of a due disk is a forced full backup (`full`, or today among `fullOn`). */
export function fullDue(disk: PolicyDisk, now: Date): boolean {
  return disk.full === true || (disk.fullOn?.includes(WEEKDAYS[now.getUTCDay()]) ?? false);
}

/** Reads the policy from the setting, else from the policy blob (SAS in the URL, else managed identity). */
export async function loadPolicy(source: PolicySource, settings: PagewiseSettings): Promise<BackupPolicy> {
  if (source.inline) return parsePolicy(source.inline);
  if (!source.url) throw new PagewiseError('BadInput', 'no backup policy: set PAGEWISE_BACKUP_POLICY or PAGEWISE_POLICY_URL');
  assertAllowedAccount(settings, source.url, 'blob', 'PAGEWISE_POLICY_URL');
  // The same checked, guarded client as every storage request (SAS in the URL, else managed identity).
  const { client } = sourceBlobClient({ url: source.url }, 'PAGEWISE_POLICY_URL');
  // Whoever can write the policy blob must not be able to make the app read gigabytes into memory.
  const { contentLength = 0, etag } = await client.getProperties();
  if (contentLength > MAX_POLICY_BYTES) {
    throw new PagewiseError('BadInput', `the backup policy at PAGEWISE_POLICY_URL is ${contentLength} bytes; at most ${MAX_POLICY_BYTES} bytes are read`);
  }
  if (contentLength === 0) return parsePolicy('');
  return parsePolicy((await client.downloadToBuffer(0, contentLength, { conditions: etag ? { ifMatch: etag } : {} })).toString('utf8'));
}
