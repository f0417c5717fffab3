/** The backup plan (docs/FORMAT.md §4): what the planning step decided, stored before any page is read. */
import { PagewiseError } from '../errors';
import { WrappedKey } from './keys';
import { SourceIdentity } from '../source/source-disk';
import { layout } from './layout';
import { Vault } from './vault';

export interface BackupPlan {
  format: 'pagewise-plan';
  version: 1;
  backupId: string;
  createdAt: string;
  source: SourceIdentity;
  diskBytes: number;
  pageSize: number;
  pageCount: number;
  pagesPerBatch: number;
  pagesPerSegment: number;
  allocatedBytes: number;
  /** pages holding at least one allocated byte */
  allocatedPages: number;
  batches: number[];
  encryption: { keyId: string; wrappedDataKey: WrappedKey };
}

export async function readPlan(vault: Vault, backupId: string): Promise<BackupPlan> {
  if (!(await vault.exists(layout.plan(backupId)))) {
    throw new PagewiseError('BackupNotFound', `backup ${backupId} has no plan in the vault ${vault.display}`);
  }
  const plan = await vault.getJson<BackupPlan>(layout.plan(backupId));
  if (plan?.format !== 'pagewise-plan' || plan.version !== 1 || plan.backupId !== backupId || !wellTyped(plan)) {
    throw new PagewiseError('Corrupt', `the plan of backup ${backupId} is not a version 1 Pagewise plan`);
  }
  return plan;
}

/** The fields every reader of a plan relies on have their types (a hostile vault cannot crash a listing). */
function wellTyped(plan: BackupPlan): boolean {
  const counts = [plan.diskBytes, plan.pageSize, plan.pageCount, plan.pagesPerBatch, plan.pagesPerSegment];
  return typeof plan.createdAt === 'string' && typeof plan.source === 'object' && plan.source !== null && typeof plan.source.url === 'string'
    && ['string', 'undefined'].includes(typeof plan.source.snapshot) && counts.every((n) => Number.isSafeInteger(n)) && Array.isArray(plan.batches);
}

/** Pages per batch: the largest power of two ≤ min(pagesPerSegment, 1 GiB / page size), at least 1. */
export function pagesPerBatchFor(pageSize: number, pagesPerSegment: number): number {
  const want = Math.max(1, Math.min(pagesPerSegment, Math.floor((1024 * 1024 * 1024) / pageSize)));
  return 2 ** Math.floor(Math.log2(want));
}

/** Whether backup `backupId` has been planned (its plan is stored). */
export function planExists(vault: Vault, backupId: string): Promise<boolean> {
  return vault.exists(layout.plan(backupId));
}

/** Stores a new plan, before any page is read. */
export async function writePlan(vault: Vault, plan: BackupPlan): Promise<void> {
  await vault.putJson(layout.plan(plan.backupId), plan);
}
