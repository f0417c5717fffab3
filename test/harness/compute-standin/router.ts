/**
 * The routes the stand-in answers: the SDK's URL templates (@azure/arm-compute 24.1.0, api/<group>/operations.js;
 * @azure/arm-resourcegraph 5.0.0) with the operation name a test sees in calls() (e.g. 'snapshots.grantAccess').
 */
export interface Route {
  method: string;
  op: string;
  re: RegExp;
  names: string[];
}

const P = '/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute';
const S = '/subscriptions/{subscriptionId}/providers/Microsoft.Compute';
const RP = `${P}/restorePointCollections/{restorePointCollectionName}/restorePoints`;
const DRP = `${RP}/{vmRestorePointName}/diskRestorePoints`;

const TABLE: [string, string, string][] = [
  ['GET', `${P}/virtualMachines/{vmName}`, 'virtualMachines.get'],
  ['PUT', `${P}/virtualMachines/{vmName}`, 'virtualMachines.createOrUpdate'],
  ['GET', `${P}/virtualMachines`, 'virtualMachines.list'],
  ['GET', `${S}/virtualMachines`, 'virtualMachines.listAll'],
  ['GET', `${P}/disks/{diskName}`, 'disks.get'],
  ['PUT', `${P}/disks/{diskName}`, 'disks.createOrUpdate'],
  ['DELETE', `${P}/disks/{diskName}`, 'disks.delete'],
  ['POST', `${P}/disks/{diskName}/beginGetAccess`, 'disks.grantAccess'],
  ['POST', `${P}/disks/{diskName}/endGetAccess`, 'disks.revokeAccess'],
  ['GET', `${P}/snapshots/{snapshotName}`, 'snapshots.get'],
  ['PUT', `${P}/snapshots/{snapshotName}`, 'snapshots.createOrUpdate'],
  ['DELETE', `${P}/snapshots/{snapshotName}`, 'snapshots.delete'],
  ['GET', `${P}/snapshots`, 'snapshots.listByResourceGroup'],
  ['GET', `${S}/snapshots`, 'snapshots.list'],
  ['POST', `${P}/snapshots/{snapshotName}/beginGetAccess`, 'snapshots.grantAccess'],
  ['POST', `${P}/snapshots/{snapshotName}/endGetAccess`, 'snapshots.revokeAccess'],
  ['GET', `${P}/restorePointCollections/{restorePointCollectionName}`, 'restorePointCollections.get'],
  ['PUT', `${P}/restorePointCollections/{restorePointCollectionName}`, 'restorePointCollections.createOrUpdate'],
  ['DELETE', `${P}/restorePointCollections/{restorePointCollectionName}`, 'restorePointCollections.delete'],
  ['GET', `${P}/restorePointCollections`, 'restorePointCollections.list'],
  ['GET', `${S}/restorePointCollections`, 'restorePointCollections.listAll'],
  ['GET', `${RP}/{restorePointName}`, 'restorePoints.get'],
  ['PUT', `${RP}/{restorePointName}`, 'restorePoints.create'],
  ['DELETE', `${RP}/{restorePointName}`, 'restorePoints.delete'],
  ['GET', `${DRP}/{diskRestorePointName}`, 'diskRestorePoint.get'],
  ['GET', `${DRP}`, 'diskRestorePoint.listByRestorePoint'],
  ['POST', `${DRP}/{diskRestorePointName}/beginGetAccess`, 'diskRestorePoint.grantAccess'],
  ['POST', `${DRP}/{diskRestorePointName}/endGetAccess`, 'diskRestorePoint.revokeAccess'],
  ['GET', `${S}/locations/{location}/operations/{operationId}`, 'operations.poll'],
  ['POST', '/providers/Microsoft.ResourceGraph/resources', 'resourceGraph.resources'],
];

export const ROUTES: Route[] = TABLE.map(([method, template, op]) => {
  const names: string[] = [];
  const source = template
    .split(/(\{[A-Za-z]+\})/)
    .map((part) => {
      const m = /^\{([A-Za-z]+)\}$/.exec(part);
      if (!m) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(m[1]);
      return '([^/]+)';
    })
    .join('');
  return { method, op, re: new RegExp(`^${source}$`, 'i'), names };
});

/** The route of a request path, with its decoded parameters; undefined when none matches. */
export function route(method: string, pathname: string): { route: Route; params: Record<string, string> } | undefined {
  for (const r of ROUTES) {
    if (r.method !== method) continue;
    const m = r.re.exec(pathname);
    if (!m) continue;
    const params: Record<string, string> = {};
    try {
      r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])));
    } catch {
      return undefined;
    }
    return { route: r, params };
  }
  return undefined;
}
