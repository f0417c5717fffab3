/** The identity of the disk a source is (FORMAT.md §21.1): what groups its backups and finds an incremental's base. */
import { PagewiseError } from '../errors';
import type { DiskRef } from '../repo/v2/records';
import { ManagedDiskSource } from '../types';
import type { SourceIdentity } from './source-disk';

// Compute's sourceUniqueId is a GUID; an ARM disk ID is /subscriptions/…/resourceGroups/…/providers/Microsoft.Compute/disks/<name>.
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ARM_DISK_RE = /^\/subscriptions\/[0-9a-f-]{36}\/resourcegroups\/[^/\s]{1,90}\/providers\/microsoft\.compute\/disks\/[^/\s]{1,80}$/;
// The hosts a Compute grant hands out (md-….blob.storage.azure.net): their account name is per grant.
const GRANT_ACCOUNT_RE = /^md-/i;

/**
 * The disk a source is. A page blob (or a snapshot of one, through any URL form): `blob:<account>/<container>/<blob>`
 * with account and container lower case and the blob name decoded, case kept; never the snapshot, SAS or host.
 * A managed-disk snapshot (`managed` from Compute's creationData): `azure-disk:<sourceUniqueId>`, or
 * `azure-disk-id:<armDiskId>` when Compute gave no unique ID; never the grant's one-off host or container.
 */
export function diskIdentityOf(source: SourceIdentity, managed?: ManagedDiskSource): DiskRef {
  if (managed && (managed.sourceUniqueId !== undefined || managed.armDiskId !== undefined)) return managedDiskRef(managed);
  if (GRANT_ACCOUNT_RE.test(source.account)) {
    // Identity from a grant's URL would differ on every grant: each backup would be full, under a new disk.
    throw new PagewiseError('BadInput', 'the source is a managed-disk snapshot grant, but Compute\'s creationData (sourceUniqueId or sourceResourceId) was not passed: the disk it belongs to is unknown');
  }
  if (!source.account || !source.container || !source.blob) {
    throw new PagewiseError('BadInput', 'the source names no account, container and blob: it has no disk identity');
  }
  const account = source.account.toLowerCase();
  const container = source.container.toLowerCase();
  return { identity: `blob:${account}/${container}/${source.blob}`, kind: 'page-blob', account, container, blob: source.blob };
}

/** The identity of a managed disk from Compute's creationData alone (#17 sweeper: the disk a snapshot is of); BadInput without either ID. */
export function managedDiskIdentityOf(managed: ManagedDiskSource): DiskRef {
  if (managed.sourceUniqueId === undefined && managed.armDiskId === undefined) throw new PagewiseError('BadInput', 'Compute names neither the unique ID nor the ARM ID of the disk');
  return managedDiskRef(managed);
}

function managedDiskRef(managed: ManagedDiskSource): DiskRef {
  const armDiskId = managed.armDiskId === undefined ? undefined : checked(managed.armDiskId, ARM_DISK_RE, 'creationData.sourceResourceId (a disk\'s ARM ID)');
  if (managed.sourceUniqueId !== undefined) {
    const sourceUniqueId = checked(managed.sourceUniqueId, GUID_RE, 'creationData.sourceUniqueId (a GUID)');
    return { identity: `azure-disk:${sourceUniqueId}`, kind: 'managed-disk', sourceUniqueId, ...(armDiskId ? { armDiskId } : {}) };
  }
  return { identity: `azure-disk-id:${armDiskId}`, kind: 'managed-disk', armDiskId };
}

/** Lower case, and of the expected form: these strings name the disk in every manifest of it. */
function checked(value: string, form: RegExp, what: string): string {
  const lower = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (!form.test(lower)) throw new PagewiseError('BadInput', `the managed-disk snapshot's ${what} is not of the expected form`);
  return lower;
}
