/**
 * Verification records `verified/<nameTag>/<inv>-<rand>.pwe` (docs/FORMAT.md §28): when each backup was
 * last verified and how it came out. Written once per finished verification (orchestration, CLI), read as
 * the newest per backup (`lastVerified` of the catalog); authenticated and bound to the backup by its nameTag.
 */
import { randomBytes } from 'node:crypto';
import { forEachLimited } from '../concurrency';
import { isPagewiseError, PagewiseError } from '../errors';
import { redact } from '../redact';
import { BACKUP_ID_RE } from '../repo/backup-id';
import { BlobInfo, BlobNotFoundError } from '../repo/store/blob-store';
import { keyringIfAny } from '../repo/v2/catalog2';
import { openJson, sealJson } from '../repo/v2/envelope';
import type { Keyring } from '../repo/v2/keyring';
import { invertedTime } from '../repo/v2/names';
import { Vault } from '../repo/vault';
import { BackupListing, LastVerified, StorageLocation } from '../types';
import { RecordRead, rememberedKeyring, rememberedRecord, rememberRecord, vaultKeyOf } from './record-cache';

export interface VerificationRecord extends LastVerified {
  format: 'pagewise-verification';
  version: 1;
  backupId: string;
}

export const VERIFIED_PREFIX = 'verified/';
const RECORD_NAME_RE = /^verified\/([0-9a-f]{32})\/(\d{13})-([0-9a-f]{8})\.pwe$/;
export const MAX_RECORD_BYTES = 8192;
export const MAX_RECORD_PROBLEMS = 10;
export const MAX_RECORD_PROBLEM_CHARS = 500;
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const INSTANCE_ID_RE = /^[A-Za-z0-9:._-]{1,200}$/;
const FIELDS = new Set(['format', 'version', 'backupId', 'at', 'ok', 'by', 'instanceId', 'readData', 'problems']);
const READS_IN_FLIGHT = 16;

export const recordPrefix = (keyring: Keyring, backupId: string) => `${VERIFIED_PREFIX}${keyring.nameTag(backupId)}/`;

/** A verification's outcome as a record keeps it: problems capped in count and length, redacted. */
export function verificationRecord(backupId: string, outcome: Omit<LastVerified, 'problems'> & { problems?: string[] }): VerificationRecord {
  const problems = (outcome.problems ?? []).slice(0, MAX_RECORD_PROBLEMS).map((p) => {
    const text = redact(p);
    return text.length > MAX_RECORD_PROBLEM_CHARS ? `${text.slice(0, MAX_RECORD_PROBLEM_CHARS - 1)}…` : text;
  });
  return {
    format: 'pagewise-verification',
    version: 1,
    backupId,
    at: outcome.at,
    ok: outcome.ok,
    by: outcome.by,
    ...(outcome.instanceId ? { instanceId: outcome.instanceId } : {}),
    readData: outcome.readData,
    ...(!outcome.ok && problems.length > 0 ? { problems } : {}),
  };
}

/** Why `r` is not a record for the blob `name` (§28), or undefined when it is one. */
export function recordProblem(keyring: Keyring, name: string, r: unknown): string | undefined {
  const o = (typeof r === 'object' && r !== null && !Array.isArray(r) ? r : undefined) as Record<string, unknown> | undefined;
  if (!o || o.format !== 'pagewise-verification' || o.version !== 1) return 'is not a version-1 Pagewise verification record';
  const extra = Object.keys(o).find((k) => !FIELDS.has(k));
  if (extra !== undefined) return `has the unknown field ${JSON.stringify(extra.slice(0, 40))}`;
  if (typeof o.backupId !== 'string' || !BACKUP_ID_RE.test(o.backupId)) return 'names no valid backup ID';
  const parts = RECORD_NAME_RE.exec(name);
  if (!parts || keyring.nameTag(o.backupId) !== parts[1]) return 'names another backup than its blob name does';
  if (typeof o.at !== 'string' || !ISO_RE.test(o.at) || invertedTime(o.at) !== parts[2]) return 'has no valid time, or not the one its name says';
  if (typeof o.ok !== 'boolean' || typeof o.readData !== 'boolean') return 'has no ok or readData flag';
  if (o.by !== 'schedule' && o.by !== 'http' && o.by !== 'cli') return 'has no by "schedule", "http" or "cli"';
  if (o.instanceId !== undefined && (typeof o.instanceId !== 'string' || !INSTANCE_ID_RE.test(o.instanceId))) return 'has an invalid instanceId';
  if (o.problems !== undefined) {
    const p = o.problems;
    if (!Array.isArray(p) || p.length > MAX_RECORD_PROBLEMS || p.some((x) => typeof x !== 'string' || x.length > MAX_RECORD_PROBLEM_CHARS)) {
      return `has problems that are not at most ${MAX_RECORD_PROBLEMS} texts of at most ${MAX_RECORD_PROBLEM_CHARS} characters`;
    }
  }
  return undefined;
}

/**
 * Writes the record (a new name, If-None-Match), then deletes the backup's older ones, best effort.
 * `no-keyring`: a pure version-1 vault, or a key without a slot — nothing written (the caller says so).
 */
export async function writeVerificationRecord(location: StorageLocation, userKey: Buffer, record: VerificationRecord): Promise<{ written?: string; skipped?: 'no-keyring' }> {
  const vault = Vault.open(location);
  const keyring = await keyringIfAny(vault, userKey);
  if (!keyring) return { skipped: 'no-keyring' };
  const prefix = recordPrefix(keyring, record.backupId);
  const name = `${prefix}${invertedTime(record.at)}-${randomBytes(4).toString('hex')}.pwe`;
  const problem = recordProblem(keyring, name, record);
  if (problem) throw new PagewiseError('BadInput', `the verification record of backup ${record.backupId} ${problem}`);
  await vault.putNew(name, sealJson(keyring, 8, name, record), 'application/octet-stream');
  // Older records of this backup: superseded. A role that may not delete (or a locked blob) leaves them.
  for await (const older of vault.list(prefix)) {
    if (older <= name) continue;
    try {
      await vault.delete(older);
    } catch {
      break; // no delete right (the backup role), or storage trouble: the records stay, readers take the newest
    }
  }
  return { written: name };
}

/** The newest record of each given backup (by ID), and the records not trusted (each named, why). */
export interface LastVerifiedRead {
  byBackup: Map<string, LastVerified>;
  problems: string[];
  /** false: no keyring opened (no key, a key without a slot, a version-1 vault) — nothing is known, not "never". */
  readable: boolean;
}

/**
 * Reads the newest record of each backup named: one listing of `verified/` (with each blob's times), and a
 * bounded GET only of a record this process has not read yet (record-cache.ts: a record never changes);
 * the keyring remembered for a minute. Without a keyring (no key, a key without a slot, a version-1 vault)
 * nothing is known.
 */
export async function readLastVerified(location: StorageLocation, userKey: Buffer | undefined, backupIds: Iterable<string>): Promise<LastVerifiedRead> {
  if (!userKey) return { byBackup: new Map(), problems: [], readable: false };
  const vault = Vault.open(location);
  const vaultKey = vaultKeyOf(location, userKey);
  const ids = [...backupIds];
  const first = rememberedKeyring(vaultKey, vault, userKey);
  const read = await readWith(vault, vaultKey, await first.keyring, ids);
  // A record the remembered keyring cannot open (written under a newer epoch): reopen the keyring, once.
  if (read.wrongKey && first.remembered) return readWith(vault, vaultKey, await rememberedKeyring(vaultKey, vault, userKey, true).keyring, ids);
  return read;
}

async function readWith(vault: Vault, vaultKey: string, keyring: Keyring | undefined, backupIds: string[]): Promise<LastVerifiedRead & { wrongKey?: boolean }> {
  const out: LastVerifiedRead & { wrongKey?: boolean } = { byBackup: new Map(), problems: [], readable: false };
  if (!keyring) return out;
  out.readable = true;
  const wanted = new Map(backupIds.map((id) => [keyring.nameTag(id), id]));
  const newest = new Map<string, BlobInfo>();
  for await (const blob of vault.listDetailed(VERIFIED_PREFIX)) {
    const tag = RECORD_NAME_RE.exec(blob.name)?.[1];
    // Listed in name order: the first of a nameTag is its newest (smallest <inv>).
    if (tag !== undefined && wanted.has(tag) && !newest.has(tag)) newest.set(tag, blob);
  }
  await forEachLimited(newest, READS_IN_FLIGHT, async ([tag, blob]) => {
    let read = rememberedRecord<VerificationRecord>(vaultKey, blob);
    if (!read) {
      const fresh = await readRecordAt(vault, keyring, blob.name);
      if (fresh.wrongKey) out.wrongKey = true;
      else if (!fresh.gone) rememberRecord(vaultKey, blob, fresh);
      read = fresh;
    }
    if (read.problem) out.problems.push(read.problem);
    else if (read.record && read.record.backupId === wanted.get(tag)) {
      const { format: _f, version: _v, backupId: _b, ...last } = read.record;
      out.byBackup.set(read.record.backupId, last);
    }
  });
  return out;
}

async function readRecordAt(vault: Vault, keyring: Keyring, name: string): Promise<RecordRead<VerificationRecord> & { gone?: boolean; wrongKey?: boolean }> {
  try {
    const stored = await vault.getBytes(name, 0, undefined, { maxBytes: MAX_RECORD_BYTES });
    const body = openJson<unknown>(keyring, 8, name, stored);
    const problem = recordProblem(keyring, name, body);
    return problem ? { problem: `the verification record ${name} ${problem}` } : { record: body as VerificationRecord };
  } catch (err) {
    if (err instanceof BlobNotFoundError) return { gone: true }; // superseded and deleted since the listing
    if (isPagewiseError(err, 'WrongKey')) return { problem: (err as PagewiseError).message, wrongKey: true };
    if (isPagewiseError(err, 'Corrupt')) return { problem: (err as PagewiseError).message };
    throw err;
  }
}

/** The listings with `lastVerified` on each complete backup that has a trusted record; `readable` and `problems` as readLastVerified's. */
export async function withLastVerified(
  location: StorageLocation,
  userKey: Buffer | undefined,
  listings: BackupListing[],
): Promise<{ backups: BackupListing[]; readable: boolean; problems: string[] }> {
  const complete = listings.filter((b) => b.status === 'complete' && !b.locked).map((b) => b.backupId);
  const { byBackup, readable, problems } = await readLastVerified(location, userKey, complete);
  const backups = listings.map((b) => (b.status === 'complete' && byBackup.has(b.backupId) ? { ...b, lastVerified: byBackup.get(b.backupId)! } : b));
  return { backups, readable, problems };
}
