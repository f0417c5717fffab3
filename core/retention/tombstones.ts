/**
 * Soft-delete tombstones `forgotten/<nameTag>.pwe` (docs/FORMAT.md §26.2): written once by forget,
 * deleted by undelete or by prune once the grace has ended. Read from the vault, so every one is bounded,
 * authenticated (envelope kind 4, its name in the AAD) and bound to its backup by the name's keyed tag.
 */
import { PagewiseError } from '../errors';
import { BACKUP_ID_RE } from '../repo/backup-id';
import { BlobAlreadyExistsError, BlobNotFoundError } from '../repo/store/blob-store';
import type { Vault } from '../repo/vault';
import { openJson, sealJson } from '../repo/v2/envelope';
import type { Keyring } from '../repo/v2/keyring';
import { HEX32_RE, MANIFEST_NAME_RE, v2names } from '../repo/v2/names';

export interface Tombstone {
  format: 'pagewise-tombstone';
  version: 2;
  backupId: string;
  /** The blob name of the forgotten manifest (version 1: `backups/<id>/manifest.json`). */
  manifest: string;
  formatVersion: 1 | 2;
  forgottenAt: string;
  graceEndsAt: string;
  reason: 'forget' | 'policy';
  /** The keep policy that forgot it, in words (≤ 200 characters). */
  rule?: string;
}

export const TOMBSTONE_PREFIX = 'forgotten/';
const TOMBSTONE_NAME_RE = /^forgotten\/([0-9a-f]{32})\.pwe$/;
/** A tombstone is a few hundred bytes; anything much larger is not one (read bounded). */
export const MAX_TOMBSTONE_BYTES = 4096;
const MAX_RULE_CHARS = 200;
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FIELDS = new Set(['format', 'version', 'backupId', 'manifest', 'formatVersion', 'forgottenAt', 'graceEndsAt', 'reason', 'rule']);

/** The blob name of a backup's tombstone. */
export function tombstoneName(keyring: Keyring, backupId: string): string {
  return v2names.tombstone(keyring.nameTag(backupId));
}

/** The version-1 manifest name of a backup (§26.2: what a version-1 backup's tombstone names). */
export function v1ManifestName(backupId: string): string {
  return `backups/${backupId}/manifest.json`;
}

/**
 * Why `t` is not a tombstone for the blob `name`, or undefined when it is one: every field of §26.2 and
 * nothing else, times in ISO form with graceEndsAt ≥ forgottenAt, the manifest named for this very
 * backup (its nameTag, or its version-1 ID), and the backup ID's nameTag equal to the name's.
 */
export function tombstoneProblem(keyring: Keyring, name: string, t: unknown): string | undefined {
  const o = (typeof t === 'object' && t !== null && !Array.isArray(t) ? t : undefined) as Record<string, unknown> | undefined;
  if (!o || o.format !== 'pagewise-tombstone' || o.version !== 2) return 'is not a version-2 Pagewise tombstone';
  const extra = Object.keys(o).find((k) => !FIELDS.has(k));
  if (extra !== undefined) return `has the unknown field ${JSON.stringify(extra.slice(0, 40))}`;
  if (typeof o.backupId !== 'string' || !BACKUP_ID_RE.test(o.backupId)) return 'names no valid backup ID';
  const nameTag = TOMBSTONE_NAME_RE.exec(name)?.[1];
  if (nameTag === undefined || keyring.nameTag(o.backupId) !== nameTag) return 'names another backup than its blob name does';
  if (o.formatVersion === 2) {
    if (typeof o.manifest !== 'string' || MANIFEST_NAME_RE.exec(o.manifest)?.[3] !== nameTag) return "names a manifest that is not this backup's";
  } else if (o.formatVersion === 1) {
    if (o.manifest !== v1ManifestName(o.backupId)) return "names a manifest that is not this backup's";
  } else {
    return 'has no formatVersion 1 or 2';
  }
  for (const f of ['forgottenAt', 'graceEndsAt'] as const) {
    const v = o[f];
    if (typeof v !== 'string' || !ISO_RE.test(v) || !Number.isFinite(Date.parse(v))) return `has no valid ${f}`;
  }
  if (Date.parse(o.graceEndsAt as string) < Date.parse(o.forgottenAt as string)) return 'has a grace that ends before the backup was forgotten';
  if (o.reason !== 'forget' && o.reason !== 'policy') return 'has no reason "forget" or "policy"';
  if (o.rule !== undefined && (typeof o.rule !== 'string' || o.rule.length > MAX_RULE_CHARS)) return `has a rule that is not a string of at most ${MAX_RULE_CHARS} characters`;
  return undefined;
}

/**
 * Writes the tombstone (If-None-Match): 'already' when the backup has one (forgotten before: the older
 * one and its grace stand). The writer checks its own tombstone as a reader would.
 */
export async function writeTombstone(vault: Vault, keyring: Keyring, t: Tombstone): Promise<'written' | 'already'> {
  const name = tombstoneName(keyring, t.backupId);
  const problem = tombstoneProblem(keyring, name, t);
  if (problem) throw new PagewiseError('BadInput', `the tombstone of backup ${t.backupId} ${problem}`);
  try {
    await vault.putNew(name, sealJson(keyring, 4, name, t));
    return 'written';
  } catch (err) {
    if (err instanceof BlobAlreadyExistsError) return 'already';
    throw err;
  }
}

/** One tombstone read: authenticated and checked (`tombstone`), or why not (`problem`). */
export interface TombstoneRead {
  name: string;
  tombstone?: Tombstone;
  problem?: string;
}

/** Reads and checks the tombstone at `name` (a listed name): never throws Corrupt, says why instead. */
export async function readTombstoneAt(vault: Vault, keyring: Keyring, name: string): Promise<TombstoneRead | undefined> {
  const shown = name.length > 120 ? `${name.slice(0, 120)}…` : name;
  if (!TOMBSTONE_NAME_RE.test(name)) return { name, problem: `${shown} was not written by Pagewise: its name is no tombstone name (forgotten/<nameTag>.pwe)` };
  let stored: Buffer;
  try {
    stored = await vault.getBytes(name, 0, undefined, { maxBytes: MAX_TOMBSTONE_BYTES });
  } catch (err) {
    if (err instanceof BlobNotFoundError) return undefined; // undeleted or swept since the listing
    if (err instanceof PagewiseError && err.code === 'Corrupt') return { name, problem: `the tombstone ${err.message}` }; // too large, or damaged in transit
    throw err;
  }
  let body: unknown;
  try {
    body = openJson<unknown>(keyring, 4, name, stored);
  } catch (err) {
    if (err instanceof PagewiseError && (err.code === 'Corrupt' || err.code === 'WrongKey')) return { name, problem: err.message };
    throw err;
  }
  const problem = tombstoneProblem(keyring, name, body);
  return problem ? { name, problem: `the tombstone ${shown} ${problem}` } : { name, tombstone: body as Tombstone };
}

/**
 * Every tombstone of the vault by nameTag (one listing of forgotten/, then one bounded GET each). A name
 * that is no tombstone name is keyed by the name itself, with its problem: nothing is dropped silently.
 */
export async function readTombstones(vault: Vault, keyring: Keyring): Promise<Map<string, TombstoneRead>> {
  const out = new Map<string, TombstoneRead>();
  for await (const name of vault.list(TOMBSTONE_PREFIX)) {
    const read = await readTombstoneAt(vault, keyring, name);
    if (read) out.set(TOMBSTONE_NAME_RE.exec(name)?.[1] ?? name, read);
  }
  return out;
}

/**
 * nameTags that have a tombstone, from names alone (no key, no GET): what chooseBase skips. Unverified on
 * purpose: a forged one only makes the next backup of its disk a full one.
 */
export async function tombstonedNameTags(vault: Vault): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const name of vault.list(TOMBSTONE_PREFIX)) {
    const tag = TOMBSTONE_NAME_RE.exec(name)?.[1];
    if (tag !== undefined && HEX32_RE.test(tag)) out.add(tag);
  }
  return out;
}

/** Deletes the backup's tombstone (undelete; needs the delete right). Locked when an immutability policy holds it. */
export async function removeTombstone(vault: Vault, keyring: Keyring, backupId: string): Promise<'removed' | 'not-forgotten'> {
  const name = tombstoneName(keyring, backupId);
  const outcome = await vault.delete(name);
  if (outcome === 'locked') {
    throw new PagewiseError('Locked', `the tombstone ${name} of backup ${backupId} cannot be deleted: an immutability policy or legal hold on the vault holds it, so the backup stays forgotten`);
  }
  return outcome === 'deleted' ? 'removed' : 'not-forgotten';
}
