/**
 * Where a disk may be written: never into a vault (a restore or upload there would overwrite a
 * manifest or segment and silently destroy another backup), never into the container that holds the
 * durable runtime's state, never onto a disk this process is backing up. Every blob write Pagewise
 * makes from user input (restore, upload) passes here before its first request that changes anything.
 *
 * Containers are compared by account and container name, case-insensitively and after URL decoding
 * (parseStorageUrl), whatever the host, port or scheme: one account answers on several endpoints
 * (http and https, a private link, localhost and 127.0.0.1), so the endpoint cannot tell them apart.
 */
import { PagewiseError } from '../errors';
import { isBeingBackedUp } from '../backup/running-backups';
import { ParsedBlobUrl, parseStorageUrl, targetBlobClient } from '../storage/clients';
import { translateTargetError } from '../storage/storage-errors';
import { StorageLocation } from '../types';
import { VAULT_MARKER } from '../repo/layout';

/** The containers this process keeps its own data in, by key, with what they are. */
const protectedContainers = new Map<string, string>();

function containerKey(parsed: { account: string; container: string }): string {
  return `${parsed.account.toLowerCase()}/${parsed.container.toLowerCase()}`;
}

/** Two URLs name the same container (account and container; endpoint, scheme and case aside). */
export function sameContainer(a: ParsedBlobUrl, b: ParsedBlobUrl): boolean {
  return containerKey(a) === containerKey(b);
}

/**
 * The secondary copy belongs on separate storage: the one check that a source disk is not in the vault
 * container (the engine before any request, the HTTP and Event Grid starts before an instance exists).
 */
export function assertSourceIsNotVault(source: ParsedBlobUrl, vault: ParsedBlobUrl): void {
  if (sameContainer(source, vault)) {
    throw new PagewiseError('BadInput', 'the vault must not be the container of the source disk: the secondary copy belongs on separate storage');
  }
}

/** Marks a container as the process's own (every vault opened, the local task hub). */
export function protectContainer(parsed: ParsedBlobUrl, role: 'the vault' | 'the durable task hub'): void {
  protectedContainers.set(containerKey(parsed), role);
}

/** Blob names of the vault layout (docs/FORMAT.md §2 and §13): never a disk's name, in any container. */
const VAULT_BLOB_RE = /^(pagewise-vault(-v2)?\.json|backups\/[^/]+\/(plan\.json|manifest\.json|(batches|segments|index)\/.*)|(packs|tables|manifests|staging|index|keys|forgotten)\/.+)$/;

function insideVault(what: string, parsed: ParsedBlobUrl, role = 'a vault'): PagewiseError {
  return new PagewiseError(
    'BadInput',
    `${what} lies inside ${role} (container ${parsed.account.toLowerCase()}/${parsed.container}): Pagewise never writes a disk there, it would destroy backups; choose another container`,
  );
}

/**
 * Refuses a page-blob write target inside a vault or the task hub, or onto a disk being backed up.
 * `vaults` are the vaults of the operation (also known to the process once opened). Last, the target's
 * container is asked for the vault marker: a vault this process does not know is still a vault (a
 * target whose credentials cannot read the marker gets no answer there, and the other checks stand).
 */
export async function assertDiskWriteTarget(target: StorageLocation, what: string, vaults: StorageLocation[] = []): Promise<void> {
  const parsed = parseStorageUrl(target.url, 'blob', what);
  const known = new Map(protectedContainers);
  for (const vault of vaults) known.set(containerKey(parseStorageUrl(vault.url, 'container', 'the vault URL')), 'the vault');
  const role = known.get(containerKey(parsed));
  if (role) throw insideVault(what, parsed, role);
  if (VAULT_BLOB_RE.test(parsed.blob ?? '')) throw insideVault(what, parsed);
  if (isBeingBackedUp(parsed)) {
    throw new PagewiseError('BadInput', `${what} is a disk that is being backed up right now; write it after that backup has finished`);
  }
  if (await holdsVaultMarker(target, parsed)) throw insideVault(what, parsed);
}

async function holdsVaultMarker(target: StorageLocation, parsed: ParsedBlobUrl): Promise<boolean> {
  const url = new URL(parsed.url.href);
  url.pathname = `${parsed.pathStyle ? `/${encodeURIComponent(parsed.account)}` : ''}/${encodeURIComponent(parsed.container)}/${VAULT_MARKER}`;
  const { client } = targetBlobClient({ ...target, url: url.href });
  return client.exists().catch(() => false);
}

/** The page-blob target exists already (a restore refuses one unless told to overwrite it); `what` names it in errors. */
export async function targetExists(target: StorageLocation, what: string): Promise<boolean> {
  const { client } = targetBlobClient(target);
  try {
    return await client.exists();
  } catch (err) {
    throw translateTargetError(err, what);
  }
}
