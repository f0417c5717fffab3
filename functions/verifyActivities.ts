/**
 * The verify fan-out's activities (#17): `planVerify` opens the backup, checks it whole and counts its
 * windows (core planVerify); `verifyWindow` checks one window (core verifyWindow). Each rebuilds its
 * core request from the checked input and app settings; what they return is counts and problem texts
 * (redacted), never page data or a SAS.
 */
import * as df from 'durable-functions';
import { BATCHES_IN_FLIGHT, planVerify, redact, verifyWindow } from '../core';
import type { VerifyPlan, VerifyWindowSummary } from '../core';
import { Activities, VerifyPlanOutput } from '../orchestrations/contracts';
import { verifyActivityInput, verifyWindowActivityInput } from './activityInputs';
import { reportingPermanentFailures } from './permanentFailures';
import { allowedBlob, readSettings, readUserKey, restoreWindowBytes } from './settings';
import { shutdownSignal } from './shutdown';

/** Problem texts enter the history: a storage error's words may quote a URL. */
const redacted = <T extends Pick<VerifyPlan | VerifyWindowSummary, 'problems'>>(found: T): T => ({ ...found, problems: found.problems.map(redact) });

df.app.activity(Activities.planVerify, {
  handler: reportingPermanentFailures(async (input: unknown): Promise<VerifyPlanOutput> => {
    // Checked here too: the durable webhook starts an orchestration with any input.
    const { backupId, readData, source } = verifyActivityInput(input);
    const settings = readSettings();
    const userKey = readUserKey();
    const plan = await planVerify({
      backupId,
      vault: settings.vault,
      userKey,
      readData: readData ?? true,
      abortSignal: shutdownSignal(),
      ...(source ? { source: allowedBlob(settings, source, userKey, 'the source disk URL') } : {}),
      windowBytes: restoreWindowBytes(), // PAGEWISE_RESTORE_WINDOW_BYTES, shared with the restore fan-out
    });
    return { ...redacted(plan), windowsInFlight: settings.batchesInFlight ?? BATCHES_IN_FLIGHT.default };
  }),
});

df.app.activity(Activities.verifyWindow, {
  handler: reportingPermanentFailures(async (input: unknown): Promise<VerifyWindowSummary> => {
    const { source, ...window } = verifyWindowActivityInput(input);
    const settings = readSettings();
    const userKey = readUserKey();
    return redacted(
      await verifyWindow({
        ...window,
        vault: settings.vault,
        userKey,
        abortSignal: shutdownSignal(),
        ...(source ? { source: allowedBlob(settings, source, userKey, 'the source disk URL') } : {}),
        ...(settings.engine.concurrency ? { concurrency: settings.engine.concurrency } : {}),
        ...(settings.engine.scratchDir ? { scratchDir: settings.engine.scratchDir } : {}),
      }),
    );
  }),
});
