/**
 * The durable activities: each rebuilds a core request from small references plus app settings
 * (vault, user key, engine limits) and calls the engine. Inputs never carry keys or page data.
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { asAlreadyExisted, finalizeBackup, planBackup, restoreBackup, runBackupBatch, verifyBackup, displayUrl, isPagewiseError, redact } from '../core';
import type { PermanentFailure } from '../orchestrations/activityOutcome';
import { trackBackupCompleted } from './telemetry';
import type { BackupRequest } from '../core/types';
import {
  Activities,
  BackupActivityInput,
  BatchActivityInput,
  FinalizeActivityInput,
  RestoreOrchestrationInput,
  VerifyOrchestrationInput,
} from '../orchestrations/contracts';
import { shutdownSignal } from './shutdown';
import { allowedSource, assertAllowedAccount, engineSettings, readSettings, readUserKey } from './settings';

/** Storage that could not be reached may answer next time; everything else Pagewise raises will not. */
const TRANSIENT = new Set(['SourceUnreachable', 'VaultUnreachable', 'Aborted']);

/**
 * Hands permanent Pagewise failures back as a value (the orchestrator fails at once, see
 * orchestrations/activityOutcome.ts); transient and unexpected errors are thrown and retried.
 */
export function reportingPermanentFailures<A extends unknown[], R>(handler: (...args: A) => Promise<R>): (...args: A) => Promise<R | PermanentFailure> {
  return async (...args) => {
    try {
      return await handler(...args);
    } catch (err) {
      if (isPagewiseError(err) && !TRANSIENT.has(err.code)) return { permanentFailure: { code: err.code, message: redact(err.message) } };
      throw err;
    }
  };
}

function backupRequest(input: BackupActivityInput): BackupRequest & { backupId: string } {
  const settings = readSettings();
  const userKey = readUserKey();
  return {
    ...engineSettings(settings, input.settings),
    source: allowedSource(settings, input.source, userKey, 'the source disk URL'),
    vault: settings.vault,
    userKey,
    backupId: input.backupId,
    abortSignal: shutdownSignal(),
    ...(input.expectedEtag ? { expectedEtag: input.expectedEtag } : {}),
  };
}

df.app.activity(Activities.planBackup, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const req = backupRequest(input as BackupActivityInput);
    context.log(`planning backup ${req.backupId} of ${displayUrl(req.source.url)}`);
    return planBackup(req);
  }),
});

df.app.activity(Activities.runBackupBatch, {
  handler: reportingPermanentFailures(async (input: unknown) => {
    const { batchIndex, ...rest } = input as BatchActivityInput;
    return runBackupBatch({ ...backupRequest(rest), batchIndex });
  }),
});

df.app.activity(Activities.finalizeBackup, {
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const { startedAt, alreadyComplete, ...rest } = input as FinalizeActivityInput;
    const req = backupRequest(rest);
    const finalized = await finalizeBackup(req);
    // The whole run, from the orchestration's start (plan) to the manifest, not this step alone.
    const whole = startedAt ? { ...finalized, durationMs: Math.max(0, Date.now() - Date.parse(startedAt)) } : finalized;
    const result = alreadyComplete ? asAlreadyExisted(whole) : whole;
    trackBackupCompleted(result, req.source.url);
    context.log(`backup ${req.backupId} complete: ${result.pages} pages, ${result.bytesStored} bytes stored`);
    return result;
  }),
});

df.app.activity(Activities.restoreBackup, {
  handler: reportingPermanentFailures(async (input: unknown) => {
    const { backupId, target, overwrite } = input as RestoreOrchestrationInput;
    const settings = readSettings();
    assertAllowedAccount(settings, target.url, 'blob', 'the restore target URL');
    return restoreBackup({
      backupId,
      vault: settings.vault,
      userKey: readUserKey(),
      target: { url: target.url },
      overwrite: overwrite ?? false,
      ...(settings.engine.concurrency ? { concurrency: settings.engine.concurrency } : {}),
    });
  }),
});

df.app.activity(Activities.verifyBackup, {
  handler: reportingPermanentFailures(async (input: unknown) => {
    const { backupId, readData, source } = input as VerifyOrchestrationInput;
    const settings = readSettings();
    if (source) assertAllowedAccount(settings, source.url, 'blob', 'the source disk URL');
    return verifyBackup({
      backupId,
      vault: settings.vault,
      userKey: readUserKey(),
      readData: readData ?? true,
      ...(source ? { source: { url: source.url } } : {}),
      ...(settings.engine.concurrency ? { concurrency: settings.engine.concurrency } : {}),
      ...(settings.engine.scratchDir ? { scratchDir: settings.engine.scratchDir } : {}),
    });
  }),
});
