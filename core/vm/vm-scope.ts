/**
 * Which VMs a policy selector names: one VM by ID, every VM of a resource group or subscription
 * (Compute list), or every VM carrying a tag in some subscriptions (Azure Resource Graph, through
 * VmCompute.vmIdsByTag — @azure/arm-resourcegraph on the same ARM context). Policy text
 * is trusted no more than a request: IDs are parsed strictly, tag text never reaches a query unchecked,
 * and every ID an answer holds must be a VM inside the selector's scope.
 */
import { assertSubscriptionId, parseResourceGroupId, parseVmId, vmIdOf } from './arm-ids';
import type { VmCompute } from './compute';
import { PagewiseError } from '../errors';
import { checkTagText } from './tag-text';

export interface VmTagSelector {
  name: string;
  value: string;
  /** Subscription GUIDs Resource Graph searches (a query needs its scopes). */
  subscriptions: string[];
}

/** Exactly one of these: a VM, a resource group ID, a subscription GUID, or a tag within subscriptions. */
export interface VmSelector {
  id?: string;
  resourceGroup?: string;
  subscription?: string;
  tag?: VmTagSelector;
}

/** Tag text a selector takes: what ArmVmCompute.vmIdsByTag puts in its Resource Graph query (core/vm/arm-capture.ts). */
/** Subscriptions of one tag selector: Resource Graph takes at most 1,000 per request; a policy needs far fewer. */
export const MAX_TAG_SUBSCRIPTIONS = 100;
/** VMs one selector may name (pages of Resource Graph, lists of Compute): a bound, not a quota. */
export const MAX_VMS_PER_SELECTOR = 5000;

const SELECTOR_KEYS = ['id', 'resourceGroup', 'subscription', 'tag'] as const;

/** A one-line name of a selector for messages (no tag value shown beyond 64 characters). */
export function describeSelector(selector: VmSelector): string {
  const cut = (s: string) => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
  if (selector.id !== undefined) return `VM ${cut(selector.id)}`;
  if (selector.resourceGroup !== undefined) return `resource group ${cut(selector.resourceGroup)}`;
  if (selector.subscription !== undefined) return `subscription ${cut(selector.subscription)}`;
  if (selector.tag) return `tag ${cut(selector.tag.name)}=${cut(selector.tag.value)}`;
  return 'no selector';
}

/** Checks a selector names exactly one scope and that scope's text; `where` prefixes messages (e.g. "policy vms[2]"). */
export function checkVmSelector(selector: VmSelector, where = 'the VM selector'): VmSelector {
  const given = SELECTOR_KEYS.filter((k) => selector[k] !== undefined);
  if (given.length !== 1) {
    throw new PagewiseError('BadInput', `${where} must name exactly one of ${SELECTOR_KEYS.join(', ')} (it names ${given.length === 0 ? 'none' : given.join(' and ')})`);
  }
  if (selector.id !== undefined) parseVmId(selector.id, `${where} id`);
  if (selector.resourceGroup !== undefined && !parseResourceGroupId(selector.resourceGroup)) {
    throw new PagewiseError('BadInput', `${where} resourceGroup ${JSON.stringify(selector.resourceGroup.slice(0, 200))} is not a resource group ID (/subscriptions/<guid>/resourceGroups/<name>)`);
  }
  if (selector.subscription !== undefined) assertSubscriptionId(selector.subscription, `${where} subscription`);
  if (selector.tag) {
    checkTagText(selector.tag.name, 'name', where);
    checkTagText(selector.tag.value, 'value', where);
    const subs = selector.tag.subscriptions;
    if (!Array.isArray(subs) || subs.length === 0 || subs.length > MAX_TAG_SUBSCRIPTIONS) {
      throw new PagewiseError('BadInput', `${where} tag must list 1 to ${MAX_TAG_SUBSCRIPTIONS} subscriptions to search`);
    }
    subs.forEach((s, i) => assertSubscriptionId(s, `${where} tag subscriptions[${i}]`));
  }
  return selector;
}

function tooMany(what: string): PagewiseError {
  return new PagewiseError('BadInput', `${what} names more than ${MAX_VMS_PER_SELECTOR} VMs; split the selector`);
}

/** An ID an answer returned, as a canonical VM ID — only if it is one, inside the scope asked about. */
function vmIdInScope(id: unknown, scope: { subscriptions: string[]; resourceGroup?: string }, source: string): string {
  if (typeof id !== 'string') throw new PagewiseError('Corrupt', `${source} returned a VM without an ID`);
  const vm = parseVmId(id, `the VM ID ${source} returned`);
  const inGroup = scope.resourceGroup === undefined || vm.resourceGroup.toLowerCase() === scope.resourceGroup.toLowerCase();
  if (!scope.subscriptions.includes(vm.subscriptionId) || !inGroup) {
    throw new PagewiseError('Corrupt', `${source} returned VM ${JSON.stringify(id.slice(0, 300))}, outside the scope it was asked about`);
  }
  return vmIdOf(vm);
}

/**
 * The IDs of the VMs a selector names now, each once (ARM IDs compare case-insensitively), in the
 * order the API answered. A VM by ID is taken as given: its backup fails clearly if it does not exist.
 */
export async function vmsInScope(compute: VmCompute, selector: VmSelector): Promise<string[]> {
  checkVmSelector(selector);
  let ids: string[];
  if (selector.id !== undefined) {
    ids = [vmIdOf(parseVmId(selector.id))];
  } else if (selector.resourceGroup !== undefined) {
    const group = parseResourceGroupId(selector.resourceGroup)!;
    const vms = await compute.listVms(group);
    ids = vms.map((vm) => vmIdInScope(vm.id, { subscriptions: [group.subscriptionId], resourceGroup: group.resourceGroup }, 'Compute'));
  } else if (selector.subscription !== undefined) {
    const subscriptionId = assertSubscriptionId(selector.subscription);
    const vms = await compute.listVms({ subscriptionId });
    ids = vms.map((vm) => vmIdInScope(vm.id, { subscriptions: [subscriptionId] }, 'Compute'));
  } else {
    const tag = selector.tag!;
    const subscriptions = tag.subscriptions.map((s) => assertSubscriptionId(s));
    ids = (await compute.vmIdsByTag(subscriptions, { name: tag.name, value: tag.value })).map((id) => vmIdInScope(id, { subscriptions }, 'Resource Graph'));
  }
  if (ids.length > MAX_VMS_PER_SELECTOR) throw tooMany(describeSelector(selector));
  return uniqueVmIds(ids);
}

/** The IDs once each, first spelling kept (ARM IDs are case-insensitive). */
export function uniqueVmIds(ids: Iterable<string>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const id of ids) {
    const key = id.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(id);
  }
  return out;
}
