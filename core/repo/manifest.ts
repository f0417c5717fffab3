/**
 * The manifest (docs/FORMAT.md §8): written last, in one atomic Put Blob, authenticated with a MAC
 * keyed from the user key. Its presence is what makes a backup complete and restorable.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { PagewiseError } from '../errors';
import { assertKeyMatches, manifestMacKey, WrappedKey } from './keys';
import { SourceIdentity } from '../source/source-disk';
import { layout } from './layout';
import { Vault } from './vault';
import type { CallOptions } from './store/blob-store';

export interface ManifestBody {
  backupId: string;
  createdAt: string;
  completedAt: string;
  source: SourceIdentity;
  diskBytes: number;
  pageSize: number;
  pageCount: number;
  pagesPerSegment: number;
  encryption: { algorithm: 'AES-256-GCM'; keyId: string; wrappedDataKey: WrappedKey };
  references: string[];
  segments: Array<{ index: number; blob: string; blocks: number; bytes: number }>;
  index: Array<{ segment: number; blob: string; entries: number; bytes: number; sha256: string }>;
  stats: {
    allocatedBytes: number;
    bytesRead: number;
    bytesStored: number;
    storedBlocks: number;
    dataPages: number;
    zeroPages: number;
    dedupedPages: number;
  };
}

export interface ManifestEnvelope {
  format: 'pagewise-manifest';
  version: 1;
  mac: string;
  body: ManifestBody;
}

/** RFC 8785 canonical JSON for the value kinds a manifest holds (no floats). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function manifestMac(userKey: Buffer, body: ManifestBody): string {
  return createHmac('sha256', manifestMacKey(userKey)).update(canonicalJson(body)).digest('hex');
}

export async function writeManifest(vault: Vault, userKey: Buffer, body: ManifestBody): Promise<void> {
  const envelope: ManifestEnvelope = { format: 'pagewise-manifest', version: 1, mac: manifestMac(userKey, body), body };
  await vault.putJson(layout.manifest(body.backupId), envelope);
}

/** Reads a manifest without a key (listing); structure checked, MAC not. */
export async function readManifestUnverified(vault: Vault, backupId: string, options?: CallOptions): Promise<ManifestEnvelope> {
  const name = layout.manifest(backupId);
  if (!(await vault.exists(name, options))) {
    const started = await vault.exists(layout.plan(backupId), options);
    throw new PagewiseError(
      started ? 'BackupIncomplete' : 'BackupNotFound',
      started
        ? `backup ${backupId} is incomplete (it has no manifest) and cannot be restored; run the backup again to resume it`
        : `backup ${backupId} does not exist in the vault ${vault.display}`,
    );
  }
  const envelope = await vault.getJson<ManifestEnvelope>(name, options);
  if (envelope?.format !== 'pagewise-manifest' || typeof envelope.body !== 'object' || envelope.body === null) {
    throw new PagewiseError('Corrupt', `the manifest of backup ${backupId} is not a Pagewise manifest`);
  }
  if (envelope.version !== 1) {
    throw new PagewiseError('Corrupt', `the manifest of backup ${backupId} has format version ${String(JSON.stringify(envelope.version)).slice(0, 20)}; this Pagewise reads version 1`);
  }
  if (envelope.body.backupId !== backupId) throw new PagewiseError('Corrupt', `the manifest of backup ${backupId} names another backup`);
  const wrong = wrongField(envelope);
  if (wrong) throw new PagewiseError('Corrupt', `the manifest of backup ${backupId} is not a Pagewise manifest: its ${wrong} has the wrong type`);
  return envelope;
}

/** The first field a reader relies on (before or after the MAC check) that has the wrong type, if any. */
function wrongField(envelope: ManifestEnvelope): string | undefined {
  const b = envelope.body as unknown as Record<string, unknown>;
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const checks: Array<[string, boolean]> = [
    ['mac', typeof envelope.mac === 'string'],
    ['createdAt', typeof b.createdAt === 'string'],
    ['completedAt', typeof b.completedAt === 'string'],
    ['source', isObject(b.source) && typeof b.source.url === 'string' && ['string', 'undefined'].includes(typeof b.source.snapshot)],
    ['encryption', isObject(b.encryption) && typeof b.encryption.keyId === 'string'],
    ['stats', isObject(b.stats) && Number.isSafeInteger(b.stats.bytesStored)],
    ...(['diskBytes', 'pageSize', 'pageCount', 'pagesPerSegment'] as const).map((k): [string, boolean] => [k, Number.isSafeInteger(b[k])]),
    ...(['references', 'segments', 'index'] as const).map((k): [string, boolean] => [k, Array.isArray(b[k])]),
  ];
  return checks.find(([, ok]) => !ok)?.[0];
}

/** Reads a manifest and checks its MAC with the user key: a wrong key and a tampered manifest differ. */
export async function readManifest(vault: Vault, backupId: string, userKey: Buffer, options?: CallOptions): Promise<ManifestBody> {
  return verifyManifest(await readManifestUnverified(vault, backupId, options), userKey);
}

/** The body of a manifest whose MAC the user key verifies (WrongKey for another key, Corrupt when tampered). */
export function verifyManifest(envelope: ManifestEnvelope, userKey: Buffer): ManifestBody {
  const { backupId } = envelope.body;
  const { keyId: expected } = envelope.body.encryption ?? {};
  assertKeyMatches(userKey, backupId, String(expected));
  const want = Buffer.from(manifestMac(userKey, envelope.body), 'hex');
  const got = Buffer.from(String(envelope.mac), 'hex');
  if (want.length !== got.length || !timingSafeEqual(want, got)) {
    throw new PagewiseError('Corrupt', `the manifest of backup ${backupId} fails authentication: it was modified`);
  }
  return envelope.body;
}

/** Whether backup `backupId` is complete: its manifest exists (its MAC is checked when it is read). */
export function manifestExists(vault: Vault, backupId: string): Promise<boolean> {
  return vault.exists(layout.manifest(backupId));
}
