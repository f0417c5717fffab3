/** The vault as a caller sees it before working in it: made (`pagewise init`), and there. */
import { StorageLocation } from '../types';
import { Vault } from './vault';

/** Makes a vault: creates the container and writes the vault marker where absent (`pagewise init`). */
export async function initVault(vault: StorageLocation): Promise<{ containerCreated: boolean; markerWritten: boolean }> {
  return Vault.open(vault).init();
}

/** The vault's container exists (with its marker or not yet): what a caller checks before it starts work there. */
export async function vaultExists(vault: StorageLocation): Promise<boolean> {
  return (await Vault.open(vault).probe()) !== 'missing';
}
