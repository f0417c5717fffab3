/**
 * The durable activities: each rebuilds a core request from small references plus app settings
 * (vault, user key, engine limits) and calls the engine. Inputs never carry keys or page data.
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { finalizeBackup, planBackup, restoreBackup, runBackupBatch, verifyBackup, displayUrl, isPagewiseError, redact } from '../core';
import type { PermanentFailure } from '../orchestrations/activityOutcome';
import { trackBackupCompleted } from './telemetry';
import type { BackupRequest } from '../core/types';
import {
  Activities,
  BackupActivityInput,
  BatchActivityInput,
  RestoreOrchestrationInput,
  VerifyOrchestrationInput,
} from '../orchestrations/contracts';
import { assertAllowedAccount, assertAllowedSource, engineSettings, readSettings, readUserKey } from './settings';

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
  assertAllowedSource(settings, input.source, 'the source disk URL');
  return {
    ...engineSettings(settings, input.settings),
    source: { url: input.source.url },
    vault: settings.vault,
    userKey: readUserKey(),
    backupId: input.backupId,
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
    const req = backupRequest(input as BackupActivityInput);
    const result = await finalizeBackup(req);
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
    });
  }),
});
