/**
 * The last step of a fan-out restore, and its undo. Finalize marks the page blob complete, or syncs the
 * partial file and renames it into place (refused when something appeared at the target meanwhile and
 * overwrite is off); abandon removes what the plan made — only that: a blob whose marks name this
 * operation, the plan's partial file.
 */
import { promises as fs } from 'node:fs';
import { RestError } from '@azure/storage-blob';
import { PagewiseError } from '../errors';
import { removeAtExit } from '../exit-cleanup';
import { displayUrl } from '../redact';
import { targetBlobClient } from '../storage/clients';
import { translateTargetError } from '../storage/storage-errors';
import { moveIntoPlace, reopenPartialFile } from './file-target';
import { assertOwnIncomplete, readTargetState, restoreMarks } from './restore-marks';
import { assertPlanOf, RestorePlan, RestoreStepRequest } from './restore-plan';

export interface FinalizedRestore {
  backupId: string;
  target: string;
  diskBytes: number;
}

export async function finalizeRestore(req: RestoreStepRequest, plan: RestorePlan): Promise<FinalizedRestore> {
  await assertPlanOf(req, plan);
  const done = { backupId: plan.backupId, target: plan.display, diskBytes: plan.diskBytes };
  if (plan.kind === 'file') {
    const handle = await reopenPartialFile(plan.partial!, plan.diskBytes);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await moveIntoPlace(plan.partial!, plan.display, plan.overwrite, plan.replaces);
    removeAtExit(plan.partial!)(); // in place now: no longer this process's to remove at exit
    return done;
  }
  const { client } = targetBlobClient(req.target);
  const what = `the restore target ${displayUrl(req.target.url)}`;
  // A retried finalize finds its own work done.
  if ((await readTargetState(client, plan.backupId, plan.operationId, what))?.own === 'complete') return done;
  const { etag } = await assertOwnIncomplete(client, plan.backupId, plan.operationId, what);
  try {
    await client.setMetadata(restoreMarks('complete', plan.backupId, plan.operationId), { conditions: { ifMatch: etag } });
  } catch (err) {
    if ((err as RestError).statusCode === 412) throw new PagewiseError('TargetExists', `${what} was changed by someone else during the restore; it was left incomplete`);
    throw translateTargetError(err, what);
  }
  return done;
}

/** Removes what the plan made; true when something was removed. Never throws for what is already gone. */
export async function abandonRestore(req: RestoreStepRequest, plan: RestorePlan): Promise<{ removed: boolean }> {
  await assertPlanOf(req, plan);
  if (plan.kind === 'file') {
    const there = await fs.lstat(plan.partial!).then(() => true, () => false);
    await fs.rm(plan.partial!, { force: true });
    removeAtExit(plan.partial!)();
    return { removed: there };
  }
  const { client } = targetBlobClient(req.target);
  const what = `the restore target ${displayUrl(req.target.url)}`;
  // A window still writing changes the ETag between the look and the delete: look again (a few times).
  for (let attempt = 0; ; attempt++) {
    const state = await readTargetState(client, plan.backupId, plan.operationId, what);
    // Only this operation's incomplete blob: a completed restore or another's blob stays.
    if (state?.own !== 'incomplete') return { removed: false };
    try {
      await client.delete({ conditions: { ifMatch: state.etag } });
      return { removed: true };
    } catch (err) {
      const status = (err as RestError).statusCode;
      if (status === 404) return { removed: false };
      if (status !== 412 || attempt >= ABANDON_ATTEMPTS) throw translateTargetError(err, what);
    }
  }
}

const ABANDON_ATTEMPTS = 5;
