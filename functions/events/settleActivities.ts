/**
 * The activities of an event-started backup's settle phase (orchestrations/settleBlob.ts): look at the
 * blob, start the backup of its settled state, and watch a blob again that changed under its backup.
 * The two that start orchestrations have the durable client binding, so every start goes through
 * `startOnce` (one instance per backup ID, whatever trigger started it).
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { displayUrl, sourceState } from '../../core';
import { reportingPermanentFailures } from '../activities';
import { Activities, BlobProbe, DiskRef, Orchestrators, SettleOrchestrationInput, SettleSettings } from '../../orchestrations/contracts';
import { settleInstanceId } from '../../orchestrations/instanceIds';
import { MAX_SETTLE_ATTEMPTS } from '../../orchestrations/settleBlob';
import { startDiskBackup } from '../backupStarts';
import { checkEngineSettings } from '../prechecks';
import { startOnce } from '../starter';
import { allowedSource, readSettings, readUserKey } from '../settings';

const WHAT = 'the created blob';

/** The blob's state now; a deleted blob (SourceNotFound) and the like are permanent failures. */
export const probeBlob = reportingPermanentFailures(async (source: DiskRef): Promise<BlobProbe> => {
  const settings = readSettings();
  const location = allowedSource(settings, source, readUserKey(), WHAT);
  const state = await sourceState(location, checkEngineSettings(settings).pageSize);
  return { etag: state.etag, backupId: state.backupId, diskBytes: state.diskBytes, ...(state.copyStatus ? { copyStatus: state.copyStatus } : {}) };
});

interface StartSettledInput {
  source: DiskRef;
  backupId: string;
  expectedEtag: string;
  settle: SettleSettings;
}

interface WatchAgainInput {
  source: DiskRef;
  backupId: string;
  expectedEtag?: string;
  settle: SettleSettings;
}

/**
 * After a backup started from an event failed: if the blob is no longer in the state it was pinned to,
 * start the next settle round (bounded); otherwise the failure was not a change and stands alone.
 */
export async function watchChangedBlob(client: df.DurableClient, input: WatchAgainInput): Promise<{ note: string }> {
  const now = await probeBlob(input.source);
  if ('permanentFailure' in now) {
    const { code, message } = now.permanentFailure;
    return { note: code === 'SourceNotFound' ? 'the blob no longer exists' : `it could not be looked at again (${code}: ${message})` };
  }
  if (now.etag === input.expectedEtag) return { note: '' };
  if (input.settle.attempt >= MAX_SETTLE_ATTEMPTS) {
    return { note: `the blob changed under ${input.settle.attempt} backups started from its event; it is not watched again (back it up from a snapshot, takeSnapshot)` };
  }
  const settle: SettleOrchestrationInput = { source: input.source, settle: { ...input.settle, attempt: input.settle.attempt + 1 } };
  const instanceId = settleInstanceId(input.source.url, `changed-under:${input.backupId}`);
  await startOnce(client, Orchestrators.settleBlob, instanceId, settle, { restartFailed: false });
  return { note: `the blob changed under the backup; it is watched again until it settles (${instanceId})` };
}

df.app.activity(Activities.probeBlob, {
  handler: async (input: unknown) => probeBlob((input as { source: DiskRef }).source),
});

df.app.activity(Activities.startSettledBackup, {
  extraInputs: [df.input.durableClient()],
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const { source, backupId, expectedEtag, settle } = input as StartSettledInput;
    allowedSource(readSettings(), source, readUserKey(), WHAT);
    const started = await startDiskBackup(df.getClient(context), source, { backupId, expectedEtag, settle, trigger: 'eventgrid' });
    context.log(`backup ${backupId} of ${displayUrl(source.url)} at ETag ${expectedEtag}: ${started.started ? 'started' : `already ${started.status?.runtimeStatus}`}`);
    return { backupId, started: started.started, ...(started.status ? { runtimeStatus: started.status.runtimeStatus } : {}) };
  }),
});

df.app.activity(Activities.watchChangedBlob, {
  extraInputs: [df.input.durableClient()],
  handler: async (input: unknown, context: InvocationContext) => watchChangedBlob(df.getClient(context), input as WatchAgainInput),
});
