/**
 * What a process remembers of verification records (docs/FORMAT.md §28.1) so that reading `lastVerified`
 * — every catalog request, every portal poll — costs one listing: each record's outcome by its blob's
 * identity (name, creation time, last-modified, length: a record is written once, never changed), and the
 * keyring for at most KEYRING_TTL_MS (a new epoch or a removed slot is seen after that, or at once when a
 * record does not open with the remembered one).
 */
import { keyId } from '../repo/keys';
import { keyringIfAny } from '../repo/v2/catalog2';
import type { Keyring } from '../repo/v2/keyring';
import type { BlobInfo } from '../repo/store/blob-store';
import type { Vault } from '../repo/vault';
import { displayUrl } from '../redact';
import type { StorageLocation } from '../types';

export const KEYRING_TTL_MS = 60_000;
/** Records remembered at most (a few hundred bytes each); over it the memory starts afresh. */
export const MAX_REMEMBERED_RECORDS = 20_000;

export interface RecordRead<R> {
  record?: R;
  problem?: string;
}

const keyrings = new Map<string, { atMs: number; keyring: Promise<Keyring | undefined> }>();
const records = new Map<string, RecordRead<unknown>>();

/** Which vault, opened with which key: the key's public ID (FORMAT §14.2), never the key. */
export function vaultKeyOf(location: StorageLocation, userKey: Buffer): string {
  return `${displayUrl(location.url)}|${keyId(userKey)}`;
}

/** The keyring of `vault` under `userKey`: remembered when found and younger than KEYRING_TTL_MS, `fresh` to reopen. */
export function rememberedKeyring(vaultKey: string, vault: Vault, userKey: Buffer, fresh = false): { keyring: Promise<Keyring | undefined>; remembered: boolean } {
  const now = Date.now();
  const had = keyrings.get(vaultKey);
  if (!fresh && had && now - had.atMs < KEYRING_TTL_MS) return { keyring: had.keyring, remembered: true };
  const mine = { atMs: now, keyring: keyringIfAny(vault, userKey) };
  keyrings.set(vaultKey, mine);
  // Only a keyring found is kept: a vault without one yet (before its first backup) gets one any moment,
  // and its records must show at once, not a minute later. A failed open is not kept either.
  const forget = () => {
    if (keyrings.get(vaultKey) === mine) keyrings.delete(vaultKey);
  };
  mine.keyring.then((keyring) => keyring ?? forget(), forget);
  return { keyring: mine.keyring, remembered: false };
}

const recordKey = (vaultKey: string, blob: BlobInfo) => `${vaultKey}|${blob.name}|${blob.createdOn.getTime()}|${blob.lastModified.getTime()}|${blob.contentLength}`;

/** The remembered read of a listed record blob, if any. */
export function rememberedRecord<R>(vaultKey: string, blob: BlobInfo): RecordRead<R> | undefined {
  return records.get(recordKey(vaultKey, blob)) as RecordRead<R> | undefined;
}

/** Remembers a record's read: a trusted record or why it is not one (both fixed by the blob's bytes). */
export function rememberRecord<R>(vaultKey: string, blob: BlobInfo, read: RecordRead<R>): void {
  if (records.size >= MAX_REMEMBERED_RECORDS) records.clear();
  records.set(recordKey(vaultKey, blob), read);
}

/** Forgets everything (tests that count requests start cold). */
export function forgetRememberedRecords(): void {
  keyrings.clear();
  records.clear();
}
