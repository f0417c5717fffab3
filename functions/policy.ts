/**
 * The backup policy: which disks the timer backs up, and on which UTC weekdays. JSON, from the app
 * setting PAGEWISE_BACKUP_POLICY or from a blob at PAGEWISE_POLICY_URL (on an allowed account).
 *
 *   { "disks": [ { "url": "https://acct.blob.core.windows.net/vhds/vm1.vhd", "days": ["Mon", "Thu"] } ] }
 *
 * A run is incremental on the disk's newest backup when it can be (issue #12); `"full": true` makes
 * every run of the disk full, `"fullOn": ["Sun"]` the runs on those UTC weekdays (e.g. a weekly full).
 *
 * `"retention": { "keepDaily": 7, "keepWeekly": 4, "graceDays": 14 }` (issue #13, docs/RETENTION.md): after
 * the run's backups, each policy disk's backups the rules do not keep are forgotten (soft-deleted for
 * `graceDays`, default 14), then the vault is pruned where the app's role allows it.
 *
 * `"vms": [ { "tag": { "name": "backup", "value": "nightly", "subscriptions": ["<guid>"] }, "fullOn": ["Sun"] } ]`
 * (#16): whole VMs through Compute — by `id`, `resourceGroup` ("/subscriptions/<guid>/resourceGroups/<rg>"),
 * `subscription` ("<guid>") or `tag`; each run backs up every VM the entry names now, once per VM. The
 * `retention` rules apply to those VMs' VM backups too (FORMAT §27.6): each VM backup they do not keep
 * is forgotten with all its disk backups.
 */
import Ajv, { JSONSchemaType } from 'ajv';
import { checkVmSelector, DAY_MS, MAX_TAG_TEXT, diskIdentityOf, KeepPolicy, MAX_TAG_SUBSCRIPTIONS, PagewiseError, parseKeepPolicy, parseStorageUrl, sourceBlobClient } from '../core';
import type { ConsistencyLevel, VmSelector } from '../core';
import { CONSISTENCY_LEVELS } from '../orchestrations/vmContracts';
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

/** The policy's retention rules (restic's --keep-* options; -1 = unlimited). */
export interface PolicyRetention {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** Keep every backup within this duration of the newest, e.g. "30d", "1y2m". */
  keepWithin?: string;
  /** Days a forgotten backup stays recoverable (pagewise undelete); default 14; 0 deletes at the next prune. */
  graceDays?: number;
}

/**
 * A policy entry of VMs (#16): exactly one selector — a VM's ARM ID, a resource group's ID, a
 * subscription GUID, or a tag (name=value, case-insensitive) within listed subscriptions — and when
 * and how its VMs are backed up.
 */
export interface PolicyVm extends VmSelector {
  days?: Weekday[];
  full?: boolean;
  fullOn?: Weekday[];
  consistency?: ConsistencyLevel;
}

export interface BackupPolicy {
  /** Page-blob disks; absent in a policy of VMs only (read as none). */
  disks: PolicyDisk[];
  vms?: PolicyVm[];
  retention?: PolicyRetention;
}

const keepCount = { type: 'integer', minimum: -1, maximum: 1_000_000, nullable: true } as const;

/** The policy as written: `disks` may be left out of a policy of VMs. */
type PolicyText = Omit<BackupPolicy, 'disks'> & { disks?: PolicyDisk[] };

/** A list of UTC weekdays (`days`, `fullOn` of disks and of VMs alike): each at most once. */
const weekdayList = { type: 'array', items: { type: 'string', enum: [...WEEKDAYS] }, maxItems: 7, uniqueItems: true, nullable: true } as const;

const schema: JSONSchemaType<PolicyText> = {
  type: 'object',
  properties: {
    disks: {
      type: 'array',
      maxItems: 1000,
      nullable: true,
      items: {
        type: 'object',
        properties: {
          url: { type: 'string', maxLength: 4096, pattern: '^https?://' },
          days: weekdayList,
          ...engineOverrideProperties,
          fullOn: weekdayList,
        },
        required: ['url'],
        additionalProperties: false,
      },
    },
    vms: {
      type: 'array',
      maxItems: 1000,
      nullable: true,
      items: {
        type: 'object',
        properties: {
          id: { type: 'string', maxLength: 1024, nullable: true },
          resourceGroup: { type: 'string', maxLength: 1024, nullable: true },
          subscription: { type: 'string', maxLength: 64, nullable: true },
          tag: {
            type: 'object',
            properties: {
              name: { type: 'string', minLength: 1, maxLength: MAX_TAG_TEXT },
              value: { type: 'string', minLength: 1, maxLength: MAX_TAG_TEXT },
              subscriptions: { type: 'array', minItems: 1, maxItems: MAX_TAG_SUBSCRIPTIONS, items: { type: 'string', maxLength: 64 } },
            },
            required: ['name', 'value', 'subscriptions'],
            additionalProperties: false,
            nullable: true,
          },
          days: weekdayList,
          full: { type: 'boolean', nullable: true },
          fullOn: weekdayList,
          consistency: { type: 'string', enum: [...CONSISTENCY_LEVELS], nullable: true },
        },
        required: [],
        additionalProperties: false,
      },
    },
    retention: {
      type: 'object',
      properties: {
        keepLast: keepCount,
        keepHourly: keepCount,
        keepDaily: keepCount,
        keepWeekly: keepCount,
        keepMonthly: keepCount,
        keepYearly: keepCount,
        keepWithin: { type: 'string', minLength: 1, maxLength: 32, nullable: true },
        graceDays: { type: 'integer', minimum: 0, maximum: 3650, nullable: true },
      },
      required: [],
      additionalProperties: false,
      nullable: true,
    },
  },
  // `disks` or `vms`, or both (checked in parsePolicy, with a message naming them).
  required: [],
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
  if (value.disks === undefined && value.vms === undefined) throw new PagewiseError('BadInput', 'the backup policy is invalid: it names neither "disks" nor "vms"');
  // Each VM entry names exactly one selector, each well formed (ARM IDs, GUIDs, tag text a query may hold).
  value.vms?.forEach((vm, i) => checkVmSelector(vm, `the backup policy's vms[${i}]`));
  const policy: BackupPolicy = { ...value, disks: value.disks ?? [] };
  if (policy.retention) retentionOf(policy); // its rules checked now (an empty set, a bad duration), not at the first forget
  return policy;
}

/** The policy's keep rules as core takes them and its grace (absent: core's default); undefined when the policy has no retention. */
export function retentionOf(policy: BackupPolicy): { keep: KeepPolicy; graceMs?: number } | undefined {
  const r = policy.retention;
  if (!r) return undefined;
  const raw = {
    ...(r.keepLast != null ? { last: r.keepLast } : {}),
    ...(r.keepHourly != null ? { hourly: r.keepHourly } : {}),
    ...(r.keepDaily != null ? { daily: r.keepDaily } : {}),
    ...(r.keepWeekly != null ? { weekly: r.keepWeekly } : {}),
    ...(r.keepMonthly != null ? { monthly: r.keepMonthly } : {}),
    ...(r.keepYearly != null ? { yearly: r.keepYearly } : {}),
    ...(r.keepWithin != null ? { within: r.keepWithin } : {}),
  };
  let keep: KeepPolicy;
  try {
    keep = parseKeepPolicy(raw);
  } catch (err) {
    throw new PagewiseError('BadInput', `the backup policy's retention is invalid: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { keep, ...(r.graceDays != null ? { graceMs: r.graceDays * DAY_MS } : {}) };
}

/** The disk identity (FORMAT.md §21.1) of a policy disk's page-blob URL: what its backups are listed under. */
export function policyDiskIdentity(url: string): string {
  const parsed = parseStorageUrl(url, 'blob', 'policy disk');
  return diskIdentityOf({ url, account: parsed.account, container: parsed.container, blob: parsed.blob ?? '', snapshot: '', etag: '' }).identity;
}

/** The entries whose `days` (every day when absent) hold the UTC weekday of `now`. */
function dueOn<T extends { days?: Weekday[] }>(entries: T[], now: Date): T[] {
  const today = WEEKDAYS[now.getUTCDay()];
  return entries.filter((e) => !e.days || e.days.includes(today));
}

/** The disks due on the UTC weekday of `now`. */
export function disksDue(policy: BackupPolicy, now: Date): PolicyDisk[] {
  return dueOn(policy.disks, now);
}

/** The VM entries due on the UTC weekday of `now`. */
export function vmsDue(policy: BackupPolicy, now: Date): PolicyVm[] {
  return dueOn(policy.vms ?? [], now);
}

/** Whether the run at `now` of a due disk (or VM entry) is a forced full backup (`full`, or today among `fullOn`). */
export function fullDue(disk: Pick<PolicyDisk, 'full' | 'fullOn'>, now: Date): boolean {
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
