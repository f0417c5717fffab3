/**
 * The snapshot sweeper's Compute view over ARM (#17): snapshots listed per subscription or resource group
 * through the real `@azure/arm-compute` client; revoke and delete are the capture half's own (tag-checked).
 */
import type { Snapshot } from '@azure/arm-compute';
import { PagewiseError } from '../errors';
import { assertResourceGroupName, assertSubscriptionId, isCaptureId } from './arm-ids';
import type { ArmVmCompute } from './arm-vm-compute';
import type { SnapshotSweepCompute, SweepScope, SweptSnapshot } from './snapshot-sweep';

/** Snapshots one scope lists at most: a bound on one sweep's memory, not a quota (narrow the scope past it). */
export const MAX_SWEPT_PER_SCOPE = 100_000;

/** A Compute snapshot as the sweeper sees it; undefined for one without an ID of a snapshot's form. */
export function sweptSnapshotOf(s: Snapshot): SweptSnapshot | undefined {
  if (!s.id || !isCaptureId(s.id) || !/\/snapshots\//i.test(s.id)) return undefined;
  const created = s.timeCreated instanceof Date ? s.timeCreated.toISOString() : typeof s.timeCreated === 'string' ? s.timeCreated : undefined;
  return {
    id: s.id,
    tags: { ...(s.tags ?? {}) },
    ...(created ? { timeCreated: created } : {}),
    activeSas: s.diskState === 'ActiveSAS',
    ...(s.creationData?.sourceUniqueId ? { sourceUniqueId: s.creationData.sourceUniqueId } : {}),
    ...(s.creationData?.sourceResourceId ? { sourceResourceId: s.creationData.sourceResourceId } : {}),
  };
}

/** The sweeper's view of an ArmVmCompute. */
export function armSnapshotSweep(compute: ArmVmCompute): SnapshotSweepCompute {
  return {
    async listSnapshots(scope: SweepScope) {
      const subscriptionId = assertSubscriptionId(scope.subscriptionId);
      const client = await compute.ctx.compute(subscriptionId);
      const pages = scope.resourceGroup === undefined ? client.snapshots.list() : client.snapshots.listByResourceGroup(assertResourceGroupName(scope.resourceGroup));
      const out: SweptSnapshot[] = [];
      for await (const s of pages) {
        if (out.length >= MAX_SWEPT_PER_SCOPE) throw new PagewiseError('LimitExceeded', `more than ${MAX_SWEPT_PER_SCOPE} snapshots in subscription ${subscriptionId}${scope.resourceGroup ? ` group ${scope.resourceGroup}` : ''}: sweep it by resource group`);
        const swept = sweptSnapshotOf(s);
        if (swept) out.push(swept);
      }
      return out;
    },
    revokeCaptureRead: (id) => compute.revokeCaptureRead(id),
    deleteSnapshot: (id) => compute.deleteSnapshot(id),
  };
}
