/**
 * HTTP API of backups: start one (202 + status links; `full: true` forces a full backup), read one, list
 * them (optionally for one disk; `?groupBy=disk` adds the catalog grouped by disk, as `pagewise list`; `usage`:
 * stored bytes unique and shared per backup and disk and the vault's totals, skipped with `?usage=false`).
 * #18: every complete backup carries `lastVerified` (its newest verification record; absent = never verified).
 * Thin: validate, check the allow list, then start or query the orchestration.
 */
import * as df from 'durable-functions';
import { HttpResponse } from '@azure/functions';
import { BackupListing, displayUrl, groupByDisk, listBackups, validateBackupId, VaultUsage, withLastVerified } from '../../core';
import { startDiskBackup } from '../backupStarts';
import { backupIdOfInstance, backupInstanceId } from '../../orchestrations/instanceIds';
import { problem, ProblemError } from '../problems';
import { assertAllowedAccount, readSettings, readUserKey } from '../settings';
import { findStatus, isRestartable } from '../starter';
import { validators } from './schemas';
import { cachedVaultUsage } from './usage-cache';
import { operationView, redactDeep, withLiveBackupProgress } from './views';
import { answering, assertKnownQuery, startedResponse, validBody } from './responses';

df.app.client.http('startBackup', {
  route: 'backups',
  methods: ['POST'],
  authLevel: 'function',
  handler: answering(async (request, client, context) => {
    assertKnownQuery(request, []);
    const { source, ...overrides } = await validBody(request, validators.startBackup);
    assertAllowedAccount(readSettings(), source.url, 'blob', 'source.url');
    const started = await startDiskBackup(client, { url: source.url }, { settings: overrides, trigger: 'http' });
    context.log(`backup ${started.backupId} of ${displayUrl(source.url)}: ${started.started ? 'started' : `already ${started.status?.runtimeStatus}`}`);
    return startedResponse(request, client, 'backups', started.backupId, started);
  }),
});

df.app.client.http('getBackup', {
  route: 'backups/{id}',
  methods: ['GET'],
  authLevel: 'function',
  handler: answering(async (request, client) => {
    assertKnownQuery(request, []);
    const backupId = validateBackupId(request.params.id ?? '');
    const status = await findStatus(client, backupInstanceId(backupId));
    if (status && !isRestartable(status)) {
      return new HttpResponse({ status: 200, jsonBody: operationView('backups', backupId, await withLiveBackupProgress(client, status)) });
    }
    // A backup made outside the function app (CLI) is known only to the vault catalog — also one whose
    // orchestration failed and that was completed since: the vault, not the old failure, is the truth.
    const settings = readSettings();
    const listed = (await listBackups(settings.vault, { userKey: readUserKey() })).find((b) => b.backupId === backupId);
    if (listed?.status === 'complete') {
      const [withRecord] = (await withLastVerified(settings.vault, readUserKey(), [listed])).backups;
      return new HttpResponse({ status: 200, jsonBody: catalogView(withRecord) });
    }
    if (status) return new HttpResponse({ status: 200, jsonBody: operationView('backups', backupId, status) });
    if (listed) return new HttpResponse({ status: 200, jsonBody: catalogView(listed) });
    return problem(404, 'BackupNotFound', `no backup ${backupId}`);
  }),
});

df.app.client.http('listBackups', {
  route: 'backups',
  methods: ['GET'],
  authLevel: 'function',
  handler: answering(async (request, client) => {
    assertKnownQuery(request, ['disk', 'groupBy', 'usage']);
    const groupBy = request.query.get('groupBy');
    if (groupBy !== null && groupBy !== 'disk') throw new ProblemError(400, 'BadQuery', `groupBy ${JSON.stringify(groupBy.slice(0, 64))} is not supported (allowed: disk)`);
    const withUsage = request.query.get('usage');
    if (withUsage !== null && withUsage !== 'true' && withUsage !== 'false') throw new ProblemError(400, 'BadQuery', `usage ${JSON.stringify(withUsage.slice(0, 64))} is not supported (allowed: true, false)`);
    const settings = readSettings();
    const disk = request.query.get('disk');
    if (disk) assertAllowedAccount(settings, disk, 'blob', 'the disk query parameter');
    const wanted = disk ? displayUrl(disk) : undefined;
    const userKey = readUserKey();
    // #18: each complete backup's newest verification record, `lastVerified` (absent: never verified).
    const catalogued = (await withLastVerified(settings.vault, userKey, await listBackups(settings.vault, { userKey }))).backups;
    const lastVerified = new Map(catalogued.flatMap((b) => (b.status === 'complete' && b.lastVerified ? [[b.backupId, b.lastVerified] as const] : [])));
    const inVault = new Set(catalogued.filter((b) => b.status === 'complete').map((b) => b.backupId));
    // A failed orchestration of a backup the vault holds complete (finished since, e.g. by the CLI) is stale.
    const instances = (await client.getStatusBy({}))
      .filter((s) => backupIdOfInstance(s.instanceId) !== undefined)
      .filter((s) => !(isRestartable(s) && inVault.has(backupIdOfInstance(s.instanceId)!)));
    const live = await Promise.all(instances.map((s) => withLiveBackupProgress(client, s)));
    const orchestrated = live
      .map((s) => operationView('backups', backupIdOfInstance(s.instanceId)!, s))
      .filter((v) => !wanted || v.source === wanted)
      .map((v) => (lastVerified.has(v.id) ? { ...v, lastVerified: lastVerified.get(v.id)! } : v));
    const seen = new Set(orchestrated.map((v) => v.id));
    const ofDisk = catalogued.filter((b) => !wanted || (b.source !== undefined && displayUrl(b.source) === wanted));
    const catalog = ofDisk.filter((b) => !seen.has(b.backupId)).map(catalogView);
    // groupBy=disk: the vault's backups as `pagewise list` shows them (by disk, newest first) beside the flat list,
    // which also holds orchestrations the vault knows nothing of yet.
    const disks = groupBy === 'disk' ? { disks: groupByDisk(ofDisk).map((g) => ({ disk: g.disk, backups: g.backups.map(catalogView) })) } : {};
    const usage = withUsage === 'false' ? {} : { usage: redactDeep(usageOf(await cachedVaultUsage(settings.vault, userKey, catalogued, { scratchDir: settings.engine.scratchDir }), wanted ? ofDisk : undefined)) };
    return new HttpResponse({ status: 200, jsonBody: { backups: [...orchestrated, ...catalog], ...disks, ...usage } });
  }),
});

/** The vault's usage as a listing shows it: for one disk (`?disk=`), only its backups and disk; the vault's totals always. */
function usageOf(usage: VaultUsage, shown: BackupListing[] | undefined): VaultUsage {
  if (!shown) return usage;
  const ids = new Set(shown.map((b) => b.backupId));
  const backups = usage.backups.filter((b) => ids.has(b.backupId));
  const disks = new Set(backups.map((b) => b.disk));
  return { ...usage, backups, disks: usage.disks.filter((d) => disks.has(d.disk)) };
}

/** A backup known from the vault's catalog: complete (its manifest), or incomplete or damaged (and why). */
function catalogView(listed: BackupListing) {
  const runtime = listed.status === 'complete' ? { runtimeStatus: 'Completed' } : { problem: listed.problem };
  // #18: lastVerified beside the status too (the portal's column), as in `catalog`.
  const verified = listed.status === 'complete' && listed.lastVerified ? { lastVerified: listed.lastVerified } : {};
  return redactDeep({ id: listed.backupId, status: listed.status, ...runtime, ...verified, catalog: listed, links: { self: `/api/backups/${listed.backupId}` } });
}
