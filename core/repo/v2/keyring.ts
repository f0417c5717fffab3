/** The version-2 keyring (docs/FORMAT.md §14): master keys by epoch, keys per purpose, and the key slots that wrap them. */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { PagewiseError } from '../../errors';
import { hmacSha256 } from '../../processor/async-crypto';
import { requireEpochOf } from './epoch';
import { keyId as keyIdOf, KEY_BYTES } from '../keys';
import { BlobAlreadyExistsError } from '../store/blob-store';
import type { Vault } from '../vault';
import type { VaultMarkerV2 } from './marker';
import { HEX16_RE, HEX32_RE, v2names } from './names';

export type KeyPurpose = 'data' | 'index' | 'table' | 'manifest' | 'staging' | 'content-id' | 'name';

/** Epochs are a u8 in every object header. */
export const MAX_EPOCH = 255;

export class Keyring {
  private readonly derived = new Map<string, Buffer>();

  private constructor(
    readonly vaultId: string,
    private readonly masters: readonly Buffer[],
  ) {}

  /** The highest epoch held: what a writer uses. */
  get epoch(): number {
    return this.masters.length - 1;
  }

  /** A new keyring: a random vault ID (unless given) and M_0. */
  static create(vaultId?: string): Keyring {
    const id = vaultId ?? randomBytes(16).toString('hex');
    if (!HEX32_RE.test(id)) throw new PagewiseError('BadInput', `a vault ID is 32 lower-case hex digits, not ${JSON.stringify(id).slice(0, 40)}`);
    return new Keyring(id, [randomBytes(KEY_BYTES)]);
  }

  /** The keyring a slot holds. */
  static fromMasters(vaultId: string, masters: Buffer[]): Keyring {
    if (masters.length < 1 || masters.length > MAX_EPOCH + 1 || masters.some((m) => m.length !== KEY_BYTES)) throw new RangeError('a keyring holds 1 to 256 keys of 32 bytes');
    return new Keyring(vaultId, masters);
  }

  /** K(purpose, e) of §14.1; content-id and name always at epoch 0. `epoch` defaults to the highest held. */
  key(purpose: KeyPurpose, epoch = this.epoch): Buffer {
    const e = purpose === 'content-id' || purpose === 'name' ? 0 : epoch;
    this.requireEpoch(e, `a ${purpose} key`);
    const id = `${purpose}|${e}`;
    let k = this.derived.get(id);
    if (!k) {
      k = Buffer.from(hkdfSync('sha256', this.masters[e], Buffer.from(this.vaultId, 'hex'), `pagewise/v2/${purpose}`, KEY_BYTES));
      this.derived.set(id, k);
    }
    return k;
  }

  /** Refuses an object of an epoch this keyring does not hold; `what` names the object. */
  requireEpoch(epoch: number, what: string): void {
    requireEpochOf(this.epoch, epoch, what);
  }

  /** tag(x) of §11: 32 hex digits. */
  tag(x: string): string {
    return createHmac('sha256', this.key('name')).update(x, 'utf8').digest().subarray(0, 16).toString('hex');
  }

  nameTag(backupId: string): string {
    return this.tag(`backup|${backupId}`);
  }

  diskTag(identity: string): string {
    return this.tag(`disk|${identity}`);
  }

  /** §15.3: HMAC(K_cid, chunk plaintext), 32 bytes. */
  contentId(plain: Buffer): Buffer {
    return createHmac('sha256', this.key('content-id')).update(plain).digest();
  }

  /** contentId computed off the event loop (as async-crypto's other whole-page work): for pages and large chunks. */
  contentIdAsync(plain: Buffer): Promise<Buffer> {
    return hmacSha256(this.key('content-id'), plain);
  }

  /** The marker's keyCheck (§12): tells an opener that its unwrapped keyring is this vault's. */
  keyCheck(): string {
    return createHmac('sha256', this.key('name')).update('pagewise/v2/key-check').digest().subarray(0, 16).toString('hex');
  }

  /** The slot plaintext of §14.2: epoch (u8), then M_0 … M_e. */
  slotPlaintext(): Buffer {
    return Buffer.concat([Buffer.from([this.epoch]), ...this.masters]);
  }
}

export interface KeySlotJson {
  format: 'pagewise-key-slot';
  version: 2;
  vaultId: string;
  keyId: string;
  epoch: number;
  createdAt: string;
  kdf: 'none';
  nonce: string;
  ciphertext: string;
  tag: string;
}

const MAX_SLOT_BYTES = 64 * 1024;

function slotKek(userKey: Buffer, vaultId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', userKey, Buffer.from(vaultId, 'hex'), 'pagewise/v2/slot-kek', KEY_BYTES));
}

function slotAad(vaultId: string, keyId: string, epoch: number): Buffer {
  return Buffer.from(`pagewise/v2/slot|${vaultId}|${keyId}|${epoch}`, 'ascii');
}

/** The slot of §14.2 for `userKey`, sealed but not written (creation also puts it into the marker, §12.1). */
export function sealKeySlot(keyring: Keyring, userKey: Buffer): KeySlotJson {
  const keyId = keyIdOf(userKey);
  const e = keyring.epoch;
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', slotKek(userKey, keyring.vaultId), nonce);
  cipher.setAAD(slotAad(keyring.vaultId, keyId, e));
  const ciphertext = Buffer.concat([cipher.update(keyring.slotPlaintext()), cipher.final()]);
  return {
    format: 'pagewise-key-slot', version: 2, vaultId: keyring.vaultId, keyId, epoch: e, createdAt: new Date().toISOString(), kdf: 'none',
    nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64'),
  };
}

/** Writes keys/<keyId>.<e>.json for `userKey` (If-None-Match); an existing slot is kept when it opens to the same keyring. */
export async function writeKeySlot(vault: Vault, keyring: Keyring, userKey: Buffer, slot: KeySlotJson = sealKeySlot(keyring, userKey)): Promise<void> {
  const name = v2names.keySlot(slot.keyId, slot.epoch);
  try {
    await vault.putNew(name, Buffer.from(JSON.stringify(slot)), 'application/json');
  } catch (err) {
    if (!(err instanceof BlobAlreadyExistsError)) throw err;
    // A retried write (or the same key racing itself): fine if the slot there holds this very keyring.
    const there = await openSlot(vault, name, keyring.vaultId, slot.keyId, slot.epoch, userKey);
    if (!there.slotPlaintext().equals(keyring.slotPlaintext())) {
      throw new PagewiseError('TargetExists', `the vault ${vault.display} already holds a different key slot ${name} for this key`);
    }
  }
}

/**
 * The keyring of `marker`'s vault, from `userKey`'s slot of the highest epoch; WrongKey when the key has none.
 * While keys/ holds no slot at all (a creation not finished, §12.1) the creator's slot inside the marker
 * opens it, and is then written to keys/ (the repair; skipped for an identity that may not write).
 */
export async function openKeyring(vault: Vault, marker: VaultMarkerV2, userKey: Buffer): Promise<Keyring> {
  const keyId = keyIdOf(userKey);
  let epoch = await highestSlotEpoch(vault, keyId);
  if (epoch === undefined && marker.firstSlot !== undefined) {
    if (await noSlotYet(vault)) {
      const first = await openFirstSlot(vault, marker, keyId, userKey);
      if (first) return first;
    } else {
      epoch = await highestSlotEpoch(vault, keyId); // a racer's copy may have landed between the two listings
    }
  }
  if (epoch === undefined) {
    throw new PagewiseError('WrongKey', `this key (key ID ${keyId}) has no slot in this vault ${vault.display}; use a key that was added to it`);
  }
  const keyring = await openSlot(vault, v2names.keySlot(keyId, epoch), marker.vaultId, keyId, epoch, userKey);
  checkKeyring(keyring, marker, v2names.keySlot(keyId, epoch));
  return keyring;
}

function checkKeyring(keyring: Keyring, marker: VaultMarkerV2, where: string): void {
  if (keyring.keyCheck() !== marker.keyCheck) {
    throw new PagewiseError('Corrupt', `the key slot ${where} opens to a keyring that is not this vault's (its key check differs from the marker's)`);
  }
}

async function noSlotYet(vault: Vault): Promise<boolean> {
  for await (const name of vault.list('keys/')) if (name.endsWith('.json')) return false;
  return true;
}

/** The marker's firstSlot when it is `keyId`'s (else undefined: another key made the vault), unsealed and written to keys/. */
async function openFirstSlot(vault: Vault, marker: VaultMarkerV2, keyId: string, userKey: Buffer): Promise<Keyring | undefined> {
  const slot = marker.firstSlot as Partial<KeySlotJson>;
  if (slot.keyId !== keyId) return undefined;
  const where = `firstSlot of the vault marker`;
  const keyring = unsealSlot(slot, where, vault.display, marker.vaultId, keyId, 0, userKey);
  checkKeyring(keyring, marker, where);
  try {
    await writeKeySlot(vault, keyring, userKey, slot as KeySlotJson);
  } catch (err) {
    if (!isWriteRefused(err)) throw err;
  }
  return keyring;
}

/** A read-only identity (403): it may still open the vault; the next writer does the repair. */
function isWriteRefused(err: unknown): boolean {
  return (err instanceof PagewiseError && err.code === 'AccessDenied') || (typeof err === 'object' && err !== null && (err as { statusCode?: unknown }).statusCode === 403);
}

/** The highest epoch `keyId` has a slot of, or undefined. */
export async function highestSlotEpoch(vault: Vault, keyId: string): Promise<number | undefined> {
  let highest: number | undefined;
  const prefix = v2names.keySlotPrefix(keyId);
  for await (const name of vault.list(prefix)) {
    const m = /^(\d{1,3})\.json$/.exec(name.slice(prefix.length));
    if (!m) continue;
    const e = Number(m[1]);
    if (e <= MAX_EPOCH && (highest === undefined || e > highest)) highest = e;
  }
  return highest;
}

async function openSlot(vault: Vault, name: string, vaultId: string, keyId: string, epoch: number, userKey: Buffer): Promise<Keyring> {
  const slot = await vault.getJson<Partial<KeySlotJson>>(name, { maxBytes: MAX_SLOT_BYTES });
  return unsealSlot(slot, `key slot ${name}`, vault.display, vaultId, keyId, epoch, userKey);
}

/** A slot's fields checked and its keyring unwrapped under `userKey`; Corrupt naming `where` otherwise. */
function unsealSlot(slot: Partial<KeySlotJson> | null, where: string, display: string, vaultId: string, keyId: string, epoch: number, userKey: Buffer): Keyring {
  const bad = (why: string) => new PagewiseError('Corrupt', `the ${where} in the vault ${display} ${why}`);
  if (typeof slot !== 'object' || slot === null || slot.format !== 'pagewise-key-slot') throw bad('is not a Pagewise key slot');
  if (slot.version !== 2) throw bad(`has version ${JSON.stringify(slot.version)?.slice(0, 20)}; this Pagewise reads key-slot version 2`);
  if (slot.kdf !== 'none') throw bad(`uses the key derivation ${JSON.stringify(slot.kdf)?.slice(0, 40)}, which this Pagewise does not know`);
  if (slot.vaultId !== vaultId || slot.keyId !== keyId || slot.epoch !== epoch || !HEX16_RE.test(keyId)) throw bad('belongs to another vault, key or epoch than its name and the marker say');
  if (typeof slot.nonce !== 'string' || typeof slot.ciphertext !== 'string' || typeof slot.tag !== 'string') throw bad('lacks its nonce, ciphertext or tag');
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', slotKek(userKey, vaultId), Buffer.from(slot.nonce, 'base64'));
    decipher.setAAD(slotAad(vaultId, keyId, epoch));
    decipher.setAuthTag(Buffer.from(slot.tag, 'base64'));
    plain = Buffer.concat([decipher.update(Buffer.from(slot.ciphertext, 'base64')), decipher.final()]);
  } catch {
    throw bad('fails authentication (damaged, or copied from another vault, key or epoch)');
  }
  if (plain.length !== 1 + KEY_BYTES * (epoch + 1) || plain[0] !== epoch) throw bad(`does not hold the ${epoch + 1} master keys of epoch ${epoch}`);
  const masters: Buffer[] = [];
  for (let e = 0; e <= epoch; e++) masters.push(Buffer.from(plain.subarray(1 + e * KEY_BYTES, 1 + (e + 1) * KEY_BYTES)));
  return Keyring.fromMasters(vaultId, masters);
}

