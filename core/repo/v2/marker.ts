/** The vault marker and version dispatch (docs/FORMAT.md §12): which format a vault is, and making or upgrading a version-2 vault. */
import { PagewiseError } from '../../errors';
import { VAULT_MARKER } from '../layout';
import { BlobAlreadyExistsError, BlobNotFoundError } from '../store/blob-store';
import type { Vault } from '../vault';
import { Keyring, openKeyring, sealKeySlot, writeKeySlot } from './keyring';
import { HEX32_RE, V2_MARKER } from './names';

export type VaultMarker = { version: 1 } | VaultMarkerV2;

export interface VaultMarkerV2 {
  version: 2;
  vaultId: string;
  createdAt: string;
  keyCheck: string;
  upgradedFrom?: 1;
  /** The creator's epoch-0 key slot (§12.1), checked only when used (keyring.ts openKeyring). */
  firstSlot?: object;
}

/** The marker that decides the format (§12.3), or undefined when the container has none. */
export async function readVaultMarkerIfAny(vault: Vault): Promise<VaultMarker | undefined> {
  for (const name of [V2_MARKER, VAULT_MARKER]) {
    let json: unknown;
    try {
      json = await vault.getJson<unknown>(name, { maxBytes: 64 * 1024 });
    } catch (err) {
      if (err instanceof BlobNotFoundError) continue;
      throw err;
    }
    return parseMarker(json, name, vault.display);
  }
  return undefined;
}

/** The marker that decides the format (§12.3): pagewise-vault-v2.json first, then pagewise-vault.json. */
export async function readVaultMarker(vault: Vault): Promise<VaultMarker> {
  const marker = await readVaultMarkerIfAny(vault);
  if (!marker) throw new PagewiseError('VaultNotFound', `${vault.display} has no vault marker (${VAULT_MARKER}): it is no Pagewise vault yet (pagewise init makes one)`);
  return marker;
}

/** A marker's fields checked (a hostile vault cannot hand on a malformed one). */
export function parseMarker(json: unknown, name: string, display: string): VaultMarker {
  const m = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  if (m.format !== 'pagewise-vault') {
    throw new PagewiseError('BadInput', `${display} is not a Pagewise vault: its ${name} has format ${String(JSON.stringify(m.format)).slice(0, 40)}`);
  }
  if (m.version === 1 && name === VAULT_MARKER) return { version: 1 };
  if (m.version !== 2) {
    throw new PagewiseError('BadInput', `${display} holds a ${name} of version ${String(JSON.stringify(m.version)).slice(0, 20)}: written by a newer Pagewise (this one reads vault versions 1 and 2)`);
  }
  const upgraded = name === V2_MARKER;
  if (typeof m.vaultId !== 'string' || !HEX32_RE.test(m.vaultId) || typeof m.createdAt !== 'string' || typeof m.keyCheck !== 'string' || !HEX32_RE.test(m.keyCheck) || (upgraded ? m.upgradedFrom !== 1 : m.upgradedFrom !== undefined)) {
    throw new PagewiseError('Corrupt', `the vault marker ${name} of ${display} lacks a well-formed vaultId, createdAt, keyCheck or upgradedFrom`);
  }
  if (m.firstSlot !== undefined && (typeof m.firstSlot !== 'object' || m.firstSlot === null || Array.isArray(m.firstSlot))) {
    throw new PagewiseError('Corrupt', `the vault marker ${name} of ${display} holds a firstSlot that is not a key slot object`);
  }
  return { version: 2, vaultId: m.vaultId, createdAt: m.createdAt, keyCheck: m.keyCheck, ...(upgraded ? { upgradedFrom: 1 as const } : {}), ...(m.firstSlot !== undefined ? { firstSlot: m.firstSlot } : {}) };
}

/**
 * Makes `vault` (an existing container with no marker) a version-2 vault opened by `userKey`, or opens it
 * when another start made it first (§12.1). The marker, Put with If-None-Match, is the one step that
 * decides: it carries the creator's sealed slot, so a loser (or the start after a crash) opens the
 * winner's keyring from it at once; the slot in keys/ is a copy written after, by whoever gets there.
 */
export async function createVaultV2(vault: Vault, userKey: Buffer): Promise<Keyring> {
  return (await ensureVaultV2(vault, userKey)).keyring;
}

/** createVaultV2, saying whether this call wrote the marker. */
export async function ensureVaultV2(vault: Vault, userKey: Buffer): Promise<{ keyring: Keyring; created: boolean }> {
  const existing = await readVaultMarkerIfAny(vault);
  if (existing?.version === 1) throw new PagewiseError('BadInput', `${vault.display} is a version-1 vault; pagewise upgrade makes it a version-2 vault`);
  if (existing) return { keyring: await openKeyring(vault, existing, userKey), created: false };
  const { keyring, wrote } = await writeMarkerAndSlot(vault, userKey, VAULT_MARKER, (marker) => {
    if (marker.version === 1) throw new PagewiseError('BadInput', `${vault.display} is a version-1 vault; pagewise upgrade makes it a version-2 vault`);
  });
  return { keyring, created: wrote };
}

/** §12.2: writes pagewise-vault-v2.json and a slot for `userKey` into a version-1 vault; an already version-2 vault is left as it is. */
export async function upgradeVault(vault: Vault, userKey: Buffer): Promise<{ upgraded: boolean }> {
  const marker = await readVaultMarker(vault);
  if (marker.version === 2) {
    await openKeyring(vault, marker, userKey); // says WrongKey now rather than at the first backup
    return { upgraded: false };
  }
  const { wrote } = await writeMarkerAndSlot(vault, userKey, V2_MARKER, () => undefined);
  return { upgraded: wrote };
}

/** The keyring of a version-2 vault; BadInput for a version-1 vault, WrongKey for a key without a slot. */
export async function openVaultKeyring(vault: Vault, userKey: Buffer): Promise<Keyring> {
  const marker = await readVaultMarker(vault);
  if (marker.version !== 2) throw new PagewiseError('BadInput', `${vault.display} is a version-1 vault (pagewise upgrade makes it version 2)`);
  return openKeyring(vault, marker, userKey);
}

async function writeMarkerAndSlot(vault: Vault, userKey: Buffer, name: string, refuse: (existing: VaultMarker) => void): Promise<{ keyring: Keyring; wrote: boolean }> {
  const keyring = Keyring.create();
  const firstSlot = sealKeySlot(keyring, userKey);
  const body = { format: 'pagewise-vault', version: 2, vaultId: keyring.vaultId, createdAt: new Date().toISOString(), keyCheck: keyring.keyCheck(), ...(name === V2_MARKER ? { upgradedFrom: 1 } : {}), firstSlot };
  try {
    await vault.putNew(name, Buffer.from(JSON.stringify(body)), 'application/json');
  } catch (err) {
    if (!(err instanceof BlobAlreadyExistsError)) throw err;
    const existing = await readVaultMarker(vault);
    refuse(existing);
    if (existing.version !== 2) throw new PagewiseError('Corrupt', `${vault.display}: ${name} exists but the vault does not read as version 2`);
    return { keyring: await openKeyring(vault, existing, userKey), wrote: false };
  }
  await writeKeySlot(vault, keyring, userKey, firstSlot);
  return { keyring, wrote: true };
}
