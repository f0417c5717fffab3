/**
 * The restore activities (issue #17): each checks its input, opens the target's sealed SAS, checks it
 * against the allow list, and runs one step of core's fan-out restore (plan, window, finalize, abandon).
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { abandonManagedDiskRestore, abandonRestore, BATCHES_IN_FLIGHT, finalizeManagedDiskRestore, finalizeRestore, planManagedDiskRestore, planRestore, restoreWindow } from '../core';
import type { RestoreStepRequest } from '../core';
import { Activities, DiskRef, RestorePlanOutput } from '../orchestrations/contracts';
import { managedDiskPlanActivityInput, restorePlanActivityInput, restoreStepActivityInput, restoreWindowActivityInput } from './activityInputs';
import { grantedSource } from './compute';
import { vmCompute } from './vmCompute';
import { reportingPermanentFailures } from './permanentFailures';
import { assertNotBeingBackedUp } from './prechecks';
import { allowedSource, readSettings, readUserKey, restoreWindowBytes } from './settings';
import { shutdownSignal } from './shutdown';

/** A step's core request: the target opened and allow-list checked, vault and key from the app settings. */
function stepRequest(backupId: string, target: Omit<DiskRef, 'managedDisk'>): RestoreStepRequest {
  const settings = readSettings();
  const userKey = readUserKey();
  return {
    backupId,
    vault: settings.vault,
    userKey,
    // A managed disk's write grant is accepted only with the seal the plan activity put on it (functions/compute.ts).
    target: allowedSource(settings, target, userKey, 'the restore target URL'),
    abortSignal: shutdownSignal(),
    ...(settings.engine.concurrency ? { concurrency: settings.engine.concurrency } : {}),
  };
}

df.app.activity(Activities.planRestore, {
  extraInputs: [df.input.durableClient()],
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext): Promise<RestorePlanOutput> => {
    // Checked here, not only by the HTTP pre-checks: the durable webhook starts an orchestration with any input.
    const { backupId, target, overwrite, operationId } = restorePlanActivityInput(input);
    const req = stepRequest(backupId, target);
    // A disk a backup orchestration is reading (its activities may run elsewhere); core checks the vault and this process's backups.
    await assertNotBeingBackedUp(df.getClient(context), target.url, 'the restore target URL');
    const plan = await planRestore({ ...req, overwrite: overwrite ?? false, operationId, windowBytes: restoreWindowBytes() });
    context.log(`restore ${operationId} of backup ${backupId}: ${plan.windowCount} windows of ${plan.windowPages} pages`);
    return { plan, windowsInFlight: readSettings().batchesInFlight ?? BATCHES_IN_FLIGHT.default };
  }),
});

df.app.activity(Activities.restoreWindow, {
  handler: reportingPermanentFailures(async (input: unknown) => {
    const { backupId, target, plan, window } = restoreWindowActivityInput(input);
    return restoreWindow(stepRequest(backupId, target), plan, window);
  }),
});

df.app.activity(Activities.finalizeRestore, {
  handler: reportingPermanentFailures(async (input: unknown) => {
    const { backupId, target, plan } = restoreStepActivityInput(input);
    return finalizeRestore(stepRequest(backupId, target), plan);
  }),
});

df.app.activity(Activities.abandonRestore, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const { backupId, target, plan } = restoreStepActivityInput(input);
    const result = await abandonRestore(stepRequest(backupId, target), plan);
    context.log(`restore ${plan.operationId} of backup ${backupId} abandoned: ${result.removed ? 'its target removed' : 'nothing of it left to remove'}`);
    return result;
  }),
});

// #17 mdrestore: a restore to a new managed disk. One write grant, opened by the plan and revoked by finalize or
// abandon, travels sealed (its SAS encrypted and MAC-bound under the app's key) to the windows: re-granting per
// activity would have concurrent windows replace one another's grant (Compute keeps one per disk) and revoke it.
df.app.activity(Activities.planManagedDiskRestore, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext): Promise<RestorePlanOutput> => {
    const { backupId, managedDisk, operationId } = managedDiskPlanActivityInput(input);
    const settings = readSettings();
    const userKey = readUserKey();
    const { plan, grantUrl } = await planManagedDiskRestore({
      compute: vmCompute(),
      disk: managedDisk,
      backupId,
      vault: settings.vault,
      userKey,
      operationId,
      windowBytes: restoreWindowBytes(),
      abortSignal: shutdownSignal(),
      ...(settings.engine.concurrency ? { concurrency: settings.engine.concurrency } : {}),
    });
    context.log(`restore ${operationId} of backup ${backupId} to the managed disk ${managedDisk.name}: ${plan.windowCount} windows of ${plan.windowPages} pages`);
    return { plan, windowsInFlight: settings.batchesInFlight ?? BATCHES_IN_FLIGHT.default, target: grantedSource(grantUrl, userKey, settings.allowedEndpoints) };
  }),
});

df.app.activity(Activities.finalizeManagedDiskRestore, {
  handler: reportingPermanentFailures(async (input: unknown) => {
    const { backupId, target, plan } = restoreStepActivityInput(input);
    return finalizeManagedDiskRestore({ ...stepRequest(backupId, target), compute: vmCompute() }, plan);
  }),
});

df.app.activity(Activities.abandonManagedDiskRestore, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const { backupId, target, plan } = restoreStepActivityInput(input);
    const result = await abandonManagedDiskRestore({ ...stepRequest(backupId, target), compute: vmCompute() }, plan);
    context.log(`restore ${plan.operationId} of backup ${backupId} abandoned: its grant revoked${result.incompleteDisk ? `; the incomplete managed disk ${result.incompleteDisk} is left for you to delete` : ''}`);
    return result;
  }),
});
