/** Which vault format a backup writes (docs/FORMAT.md §12): the entry points dispatch on it. */
import { PagewiseError } from '../errors';
import { planExists } from '../repo/backup-plan';
import { Keyring, openKeyring } from '../repo/v2/keyring';
import { createVaultV2, readVaultMarker, readVaultMarkerIfAny } from '../repo/v2/marker';
import { Vault } from '../repo/vault';

/** `upgraded`: a version-1 vault made version 2 (its version-1 backups stay, §12.4). */
export type VaultForBackup = { version: 1 } | { version: 2; keyring: Keyring; upgraded: boolean };

/**
 * Before a backup writes anything: a version-1 vault stays version 1 (full backups), a container with
 * no marker becomes a version-2 vault opened by this key, a version-2 vault is opened (WrongKey when
 * the key has no slot). A missing container is never created (a mistyped URL fails).
 */
export async function openVaultForBackup(vault: Vault, userKey: Buffer): Promise<VaultForBackup> {
  const marker = await readVaultMarkerIfAny(vault);
  if (marker === undefined) return { version: 2, keyring: await createVaultV2(vault, userKey), upgraded: false };
  if (marker.version === 1) {
    await vault.requireForBackup();
    return { version: 1 };
  }
  return { version: 2, keyring: await openKeyring(vault, marker, userKey), upgraded: marker.upgradedFrom === 1 };
}

/**
 * The format a planned backup is written in, for the steps after the plan: version 1 when its
 * version-1 plan exists (also in a vault upgraded since) or the vault is version 1, else version 2.
 */
export async function formatOfBackup(vault: Vault, backupId: string): Promise<1 | 2> {
  if (await planExists(vault, backupId)) return 1;
  const marker = await readVaultMarker(vault).catch((err) => {
    if (err instanceof PagewiseError && err.code === 'VaultNotFound') throw new PagewiseError('BackupNotFound', `backup ${backupId} has no plan in the vault ${vault.display}`);
    throw err;
  });
  return marker.version;
}
