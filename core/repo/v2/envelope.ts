/** The encrypted JSON envelope `PWE2` (docs/FORMAT.md §20.4) of plans, batch records, manifests, tombstones and index covers. */
import { PagewiseError } from '../../errors';
import { nestsTooDeep } from '../../json-depth';
import { MAX_VAULT_JSON_BYTES, MAX_VAULT_JSON_DEPTH } from '../../limits';
import { Keyring, KeyPurpose } from './keyring';
import { seal, sealedHeader, unseal } from './sealed-object';

/** 1 plan, 2 batch record, 3 manifest, 4 tombstone, 5 index covers, 6 prune mark (§26), 7 VM manifest (§27), 8 verification record (§28). */
export type EnvelopeKind = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;

const MAGIC = Buffer.from('PWE2');
const HEADER_BYTES = 20;
const TAG_BYTES = 16;
export const ENVELOPE_OVERHEAD = HEADER_BYTES + TAG_BYTES;
/** The largest stored envelope a reader takes: the JSON bound of version 1 plus the envelope. */
export const MAX_ENVELOPE_BYTES = MAX_VAULT_JSON_BYTES + ENVELOPE_OVERHEAD;

const KIND_NAMES: Record<EnvelopeKind, string> = { 1: 'plan', 2: 'batch record', 3: 'manifest', 4: 'tombstone', 5: 'index covers', 6: 'prune mark', 7: 'VM manifest', 8: 'verification record' };

function purposeOf(kind: EnvelopeKind): KeyPurpose {
  return kind === 3 || kind === 7 ? 'manifest' : kind === 5 || kind === 6 ? 'index' : 'staging';
}

function aad(header: Buffer, blobName: string): Buffer {
  return Buffer.concat([header, Buffer.from(blobName, 'utf8')]);
}

/** Seals `value` as JSON for the blob `blobName` under the keyring's current epoch. */
export function sealJson(keyring: Keyring, kind: EnvelopeKind, blobName: string, value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  if (json.length > MAX_VAULT_JSON_BYTES) throw new PagewiseError('LimitExceeded', `the ${KIND_NAMES[kind]} ${blobName} would be ${json.length} bytes, over the ${MAX_VAULT_JSON_BYTES} a reader takes`);
  const header = sealedHeader(MAGIC, keyring.epoch, kind);
  return seal(keyring.key(purposeOf(kind)), header, aad(header, blobName), json);
}

/** Opens an envelope read from `blobName`: Corrupt on any failure (wrong kind, moved, damaged, too large or too deep). */
export function openJson<T>(keyring: Keyring, kind: EnvelopeKind, blobName: string, stored: Buffer): T {
  const what = `the ${KIND_NAMES[kind]} ${blobName}`;
  const bad = (why: string) => new PagewiseError('Corrupt', `${what} ${why}`);
  if (stored.length < ENVELOPE_OVERHEAD || !stored.subarray(0, 4).equals(MAGIC)) throw bad('is truncated or is not a Pagewise encrypted document');
  if (stored.length > MAX_ENVELOPE_BYTES) throw bad(`is larger than the ${MAX_ENVELOPE_BYTES} bytes Pagewise reads of it`);
  if (stored[4] !== 2) throw bad(`has unknown envelope version ${stored[4]}`);
  if (stored[6] !== kind) throw bad(`is a document of kind ${stored[6]}, not a ${KIND_NAMES[kind]} (${kind})`);
  if (stored[7] !== 0) throw bad('has a non-zero reserved byte');
  keyring.requireEpoch(stored[5], what);
  const header = stored.subarray(0, HEADER_BYTES);
  let text: string;
  try {
    text = unseal(keyring.key(purposeOf(kind), stored[5]), stored, aad(header, blobName)).toString('utf8');
  } catch {
    throw bad('fails authentication (damaged, moved from another name, or written under another vault key)');
  }
  if (nestsTooDeep(text, MAX_VAULT_JSON_DEPTH)) throw bad(`is nested deeper than the ${MAX_VAULT_JSON_DEPTH} levels a Pagewise document has`);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw bad('is not valid JSON');
  }
}
