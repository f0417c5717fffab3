/**
 * Read access to a managed-disk snapshot through the Compute API (`beginGrantAccess`), using the
 * app's managed identity. Behind a small interface: Compute is a cloud API that cannot run locally,
 * so tests hand the Event Grid handler their own SnapshotAccess.
 */
import { DefaultAzureCredential } from '@azure/identity';

export interface SnapshotRef {
  subscriptionId: string;
  resourceGroup: string;
  snapshotName: string;
}

export interface SnapshotAccess {
  /** A read SAS URL of the snapshot's VHD, valid for `durationInSeconds`. */
  grantRead(snapshot: SnapshotRef, durationInSeconds: number): Promise<string>;
}

/** The production SnapshotAccess: @azure/arm-compute with DefaultAzureCredential (managed identity). */
export class ComputeSnapshotAccess implements SnapshotAccess {
  private readonly credential = new DefaultAzureCredential();

  async grantRead(snapshot: SnapshotRef, durationInSeconds: number): Promise<string> {
    // Loaded lazily: the Compute SDK is large and only snapshot events need it.
    const { ComputeManagementClient } = await import('@azure/arm-compute');
    const client = new ComputeManagementClient(this.credential, snapshot.subscriptionId);
    const access = await client.snapshots.beginGrantAccessAndWait(snapshot.resourceGroup, snapshot.snapshotName, {
      access: 'Read',
      durationInSeconds,
    });
    if (!access.accessSAS) throw new Error(`Compute granted no SAS for snapshot ${snapshot.snapshotName}`);
    return access.accessSAS;
  }
}

let current: SnapshotAccess | undefined;

/** The SnapshotAccess the Event Grid handler uses (Compute unless one was provided). */
export function snapshotAccess(): SnapshotAccess {
  current ??= new ComputeSnapshotAccess();
  return current;
}

/** Replaces the Compute client (local runs and tests, where there is no Azure Compute). */
export function useSnapshotAccess(access: SnapshotAccess): void {
  current = access;
}
