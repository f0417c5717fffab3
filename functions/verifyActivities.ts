/**
 * The verify fan-out's activities (#17): `planVerify` opens the backup, checks it whole and counts its
 * windows (core planVerify); `verifyWindow` checks one window (core verifyWindow). Each rebuilds its
 * core request from the checked input and app settings; what they return is counts and problem texts
 * (redacted), never page data or a SAS. #18: `recordVerification` writes a verification's record (docs/FORMAT.md
 * §28) as its last step and logs a failed scheduled one as an error.
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { BATCHES_IN_FLIGHT, planVerify, redact, verificationRecord, verifyWindow, writeVerificationRecord } from '../core';
import type { VerifyPlan, VerifyWindowSummary } from '../core';
import { Activities, VerifyPlanOutput } from '../orchestrations/contracts';
import { recordVerificationActivityInput, verifyActivityInput, verifyWindowActivityInput } from './activityInputs';
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

/** #18 verifysched: what a finished verification leaves: the record in the vault, and a failed scheduled one's error line. */
df.app.activity(Activities.recordVerification, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext): Promise<{ record?: string }> => {
    const r = recordVerificationActivityInput(input);
    const record = verificationRecord(r.backupId, { at: r.at, ok: r.ok, by: r.by, instanceId: r.instanceId, readData: r.readData, ...(r.problems ? { problems: r.problems } : {}) });
    // PagewiseVerifyCompleted/Failed (trigger timer for the schedule: the alert) come from telemetry's reportOperation as the
    // orchestration ends; this names a failed scheduled one in the log with its problems.
    if (r.by === 'schedule' && !r.ok) context.error(`scheduled verification ${r.instanceId} of backup ${r.backupId} FAILED: ${(record.problems ?? ['no reason given']).join('; ')}`);
    let written: Awaited<ReturnType<typeof writeVerificationRecord>>;
    try {
      written = await writeVerificationRecord(readSettings().vault, readUserKey(), record);
    } catch (err) {
      context.error(`verification ${r.instanceId} of backup ${r.backupId}: its record was not written: ${redact(String(err))}`);
      throw err;
    }
    if (written.skipped) context.warn(`verification ${r.instanceId} of backup ${r.backupId}: no record written — the vault has no version-2 keyring for this key (pagewise upgrade)`);
    return written.written ? { record: written.written } : {};
  }),
});
