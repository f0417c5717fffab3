/**
 * Event Grid trigger: a new managed-disk snapshot starts its backup; a new page blob in a watched
 * container starts a settle orchestration that backs it up once it stops changing. Duplicate
 * deliveries map to the same instance ID, so they make one backup. Events of
 * other types are acknowledged and ignored with a log line (Event Grid would otherwise retry them).
 */
import * as df from 'durable-functions';
import type { EventGridEvent, InvocationContext } from '@azure/functions';
import { displayUrl, isPagewiseError, isTransient, redact } from '../../core';
import { Orchestrators, SettleOrchestrationInput } from '../../orchestrations/contracts';
import { backupInstanceId, settleInstanceId } from '../../orchestrations/instanceIds';
import { snapshotBackupId, startDiskBackup } from '../backupStarts';
import { checkSourceIsNotVault } from '../prechecks';
import { findStatus, startOnce } from '../starter';
import { settleSettings } from './settleSettings';
import { grantedSource, snapshotAccess } from '../compute';
import type { SnapshotRef } from '../compute';
import { snapshotGrantSeconds } from '../snapshotGrants';
import { sealRef } from '../sealedRefs';
import { assertAllowedAccount, readSettings, readUserKey, watchedContainers } from '../settings';
import { classifyEvent, shown } from './diskEvents';

/**
 * Handles one event. An event that can never be acted on (a URL on an account not in the allow list, a
 * blob that is not a page blob, bad settings for it) is logged as rejected and acknowledged: failing the
 * function would only make Event Grid deliver it again for 24 hours. Transient and unexpected errors
 * fail the invocation so Event Grid retries.
 */
export async function handleDiskEvent(raw: unknown, client: df.DurableClient, context: InvocationContext): Promise<void> {
  try {
    await actOnEvent(raw, client, context);
  } catch (err) {
    // A transient failure (core/errors.ts) fails the invocation: Event Grid's redelivery may cure it.
    if (!isPagewiseError(err) || isTransient(err)) throw err;
    const id = typeof raw === 'object' && raw !== null ? String((raw as { id?: unknown }).id ?? '') : '';
    context.error(`event ${shown(id) || '(no id)'} rejected: ${err.code}: ${redact(err.message)}`);
  }
}

/** Instance states in which a backup still reads its snapshot (and will revoke its grant itself). */
const ACTIVE = new Set(['Running', 'Pending', 'ContinuedAsNew']);

/** Ends a grant no backup will end; a revoke that fails is logged (the sweeper ends it later), never hides the cause. */
async function revokeUnusedGrant(ref: SnapshotRef, why: string, context: InvocationContext): Promise<void> {
  const access = snapshotAccess();
  if (!access.revokeRead) return;
  try {
    await access.revokeRead(ref);
    context.log(`snapshot ${ref.snapshotName}: read grant revoked (${why})`);
  } catch (err) {
    context.warn(`snapshot ${ref.snapshotName}: read grant not revoked (${why}): ${redact(err instanceof Error ? err.message : String(err))}; the sweeper ends it`);
  }
}

async function actOnEvent(raw: unknown, client: df.DurableClient, context: InvocationContext): Promise<void> {
  const event = classifyEvent(raw, watchedContainers());
  switch (event.kind) {
    case 'ignored':
      context.log(`event ${shown(event.eventId) || '(no id)'} ignored: ${event.reason}`);
      return;
    case 'snapshot': {
      const { subscriptionId, resourceGroup, snapshotName } = event;
      const access = snapshotAccess();
      const ref = { subscriptionId, resourceGroup, snapshotName };
      // A snapshot a VM backup took (#16) is that VM backup's, under the same backup ID (its disk's
      // sub-orchestration may not have started yet): the event path handles snapshots made by others.
      if (access.takenByPagewise && (await access.takenByPagewise(ref))) {
        context.log(`event ${shown(event.eventId) || '(no id)'} ignored: snapshot ${snapshotName} was taken by a Pagewise VM backup`);
        return;
      }
      const backupId = snapshotBackupId(event.resourceId);
      const existing = await findStatus(client, backupInstanceId(backupId));
      if (existing) {
        // A duplicate delivery: no new SAS grant, no second backup (whatever became of the first).
        context.log(`snapshot ${event.snapshotName}: backup ${backupId} already ${existing.runtimeStatus}`);
        return;
      }
      // The disk the snapshot is of: its previous backup is this one's base (FORMAT.md §21.1); the event's resource ID at least.
      const managedDisk = { snapshotResourceId: event.resourceId, ...(access.diskOf ? await access.diskOf(ref) : {}) };
      // A short grant (functions/snapshotGrants.ts), ended by the backup's finalize or failure; from here
      // until the orchestration runs, this handler is the only one that can end it.
      const url = await access.grantRead(ref, snapshotGrantSeconds(access.sizeBytes ? await access.sizeBytes(ref) : undefined));
      let started: Awaited<ReturnType<typeof startDiskBackup>>;
      try {
        started = await startDiskBackup(client, grantedSource(url, readUserKey(), readSettings().allowedEndpoints, managedDisk), { backupId, restartFailed: false, trigger: 'eventgrid' });
      } catch (err) {
        await revokeUnusedGrant(ref, `backup ${backupId} did not start`, context);
        throw err;
      }
      // Another delivery won the race: a running backup reads through the grant and ends it; an ended one never will.
      if (!started.started && started.status && !ACTIVE.has(started.status.runtimeStatus)) await revokeUnusedGrant(ref, `backup ${backupId} had already ended`, context);
      context.log(`snapshot ${event.snapshotName}: backup ${backupId} ${started.started ? 'started' : `already ${started.status?.runtimeStatus}`}`);
      return;
    }
    case 'pageBlob': {
      const settings = readSettings();
      assertAllowedAccount(settings, event.url, 'blob', 'the created blob');
      checkSourceIsNotVault(settings, event.url);
      // BlobCreated of a page blob (Put Blob, Copy Blob) does not mean its pages are written: wait until
      // the blob stops changing, then back up the state it settled in (orchestrations/settleBlob.ts).
      const instanceId = settleInstanceId(event.url, event.etag ?? `event:${event.eventId}`);
      const input: SettleOrchestrationInput = { source: sealRef({ url: event.url }, readUserKey()), ...(event.etag ? { eventEtag: event.etag } : {}), settle: settleSettings() };
      const started = await startOnce(client, Orchestrators.settleBlob, instanceId, input, { restartFailed: false });
      context.log(
        `page blob ${displayUrl(event.url)} (${event.api ?? 'unknown API'}, ETag ${event.etag ?? 'none'}): ` +
          `${started.started ? 'waiting for it to settle' : `already ${started.status?.runtimeStatus}`} (${instanceId})`,
      );
      return;
    }
  }
}

df.app.client.eventGrid('diskEvents', {
  handler: (event: EventGridEvent, client: df.DurableClient, context: InvocationContext) => handleDiskEvent(event, client, context),
});
