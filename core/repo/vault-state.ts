/** The vault as a caller sees it before working in it: made (`pagewise init`), and there. */
import { StorageLocation } from '../types';
import { Vault } from './vault';
import { ensureVaultV2, upgradeVault } from './v2/marker';

/**
 * Makes a vault (`pagewise init`): creates the container where absent. With a user key, a container
 * without a marker becomes a version-2 vault with that key's slot (an existing version-2 vault is
 * opened, so a key without a slot fails WrongKey); without a key no marker is written. A version-1
 * vault is left as it is.
 */
export async function initVault(location: StorageLocation, options: { userKey?: Buffer } = {}): Promise<{ containerCreated: boolean; markerWritten: boolean }> {
  const vault = Vault.open(location);
  const { containerCreated } = await vault.init();
  if (!options.userKey) return { containerCreated, markerWritten: false };
  const before = await vault.markerVersion();
  if (before === 1) return { containerCreated, markerWritten: false };
  const { created } = await ensureVaultV2(vault, options.userKey);
  return { containerCreated, markerWritten: created };
}

/** The vault's container exists (with its marker or not yet): what a caller checks before it starts work there. */
export async function vaultExists(vault: StorageLocation): Promise<boolean> {
  return (await Vault.open(vault).probe()) !== 'missing';
}

/** `pagewise upgrade`: a version-1 vault becomes version 2 (§12.2); a version-2 one only checks the key has a slot. */
export async function upgradeVaultAt(location: StorageLocation, userKey: Buffer): Promise<{ upgraded: boolean }> {
  return upgradeVault(Vault.open(location), userKey);
}
