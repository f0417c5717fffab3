/** Version-2 manifests (docs/FORMAT.md §20.3): written last and once, found by disk (newest first) or by backup. */
import type { Vault } from '../vault';
import type { Keyring } from './keyring';
import type { ManifestV2 } from './records';

export async function writeManifest2(vault: Vault, keyring: Keyring, body: ManifestV2): Promise<string> {
  void vault; void keyring; void body;
  throw new Error('not yet');
}

export async function readManifest2(vault: Vault, keyring: Keyring, blobName: string): Promise<ManifestV2> {
  void vault; void keyring; void blobName;
  throw new Error('not yet');
}

export async function* manifestsOfDisk(vault: Vault, keyring: Keyring, identity: string): AsyncGenerator<{ name: string; manifest?: ManifestV2; problem?: string }> {
  void vault; void keyring; void identity;
  throw new Error('not yet');
}

export async function findManifest2(vault: Vault, keyring: Keyring, backupId: string): Promise<{ name: string; manifest: ManifestV2 } | undefined> {
  void vault; void keyring; void backupId;
  throw new Error('not yet');
}

export async function* allManifestNames(vault: Vault): AsyncGenerator<string> {
  void vault;
  throw new Error('not yet');
}
