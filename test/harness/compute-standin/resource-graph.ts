/**
 * Resource Graph's `POST /providers/Microsoft.ResourceGraph/resources` for the one query form Pagewise
 * sends (VMs by tag): `resources | where type =~ 'microsoft.compute/virtualmachines' | where tags['<name>']
 * =~ '<value>' | project id`. Any other query is a 400 — the stand-in is no KQL engine.
 */
import { badRequest, objectAt, Reply } from './arm-http';
import type { Vm } from './resources';

const VM_BY_TAG = /^\s*resources\s*\|\s*where\s+type\s*=~\s*'microsoft\.compute\/virtualmachines'\s*\|\s*where\s+tags\['([^'\\]+)'\]\s*=~\s*'([^'\\]*)'\s*\|\s*project\s+id\s*$/i;

export function resourceGraphQuery(body: unknown, vms: Iterable<Vm>): Reply {
  const b = objectAt(body, 'The request body');
  const subscriptions = b.subscriptions;
  if (!Array.isArray(subscriptions) || subscriptions.length === 0 || !subscriptions.every((s) => typeof s === 'string')) {
    throw badRequest('BadRequest', 'subscriptions must be a non-empty list of subscription IDs.');
  }
  const m = typeof b.query === 'string' ? VM_BY_TAG.exec(b.query) : null;
  if (!m) throw badRequest('InvalidQuery', "The stand-in answers only: resources | where type =~ 'microsoft.compute/virtualmachines' | where tags['<name>'] =~ '<value>' | project id");
  const [, name, value] = m;
  const subs = new Set(subscriptions.map((s: string) => s.toLowerCase()));
  const data = [...vms]
    .filter((vm) => subs.has(vm.id.split('/')[2].toLowerCase()))
    .filter((vm) => vm.tags[name] !== undefined && vm.tags[name].toLowerCase() === value.toLowerCase())
    .map((vm) => ({ id: vm.id }));
  return { status: 200, body: { totalRecords: data.length, count: data.length, resultTruncated: 'false', data, facets: [] } };
}
