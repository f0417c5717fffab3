/**
 * HTTP API of VM backups (#16): start one (`POST /api/vm-backups` { vmId, full?, consistency?, mode? },
 * 202 + status link), read one (its per-disk progress, live for the disks being backed up), list the
 * vault's VM backups (`?vmId=` for one VM, newest first). Same key and roles as /api/backups. Thin:
 * validate, then start or query.
 */
import * as df from 'durable-functions';
import type { DurableClient } from 'durable-functions';
import { HttpResponse } from '@azure/functions';
import Ajv, { JSONSchemaType } from 'ajv';
import { isPagewiseError, listVmBackups, parseVmId, readVmManifest, VM_BACKUP_ID_RE, vmIdOf } from '../../core';
import type { VmManifest } from '../../core';
import { vmBackupInstanceId } from '../../orchestrations/instanceIds';
import { CAPTURE_MODES, CONSISTENCY_LEVELS } from '../../orchestrations/vmContracts';
import type { VmBackupStatus, VmDiskProgress, VmDiskStatus } from '../../orchestrations/vmContracts';
import { problem, ProblemError } from '../problems';
import { readSettings, readUserKey } from '../settings';
import { findStatus, isRestartable } from '../starter';
import { startVmBackup, VmBackupStartRequest } from '../vmBackupStarts';
import { operationView, redactDeep, withLiveBackupProgress } from './views';
import { answering, assertKnownQuery, startedResponse, validBody } from './responses';
import { apiAuthLevel } from '../auth/authMode';
import { requireRole } from '../auth/principal';
import { ROUTE_ROLES } from '../auth/routeRoles';
import { audited } from '../auth/audit';

const startVmBackupBody: JSONSchemaType<VmBackupStartRequest> = {
  type: 'object',
  properties: {
    // The ARM ID's form is checked by parseVmId, whose message names it.
    vmId: { type: 'string', minLength: 1, maxLength: 1024 },
    full: { type: 'boolean', nullable: true },
    consistency: { type: 'string', enum: [...CONSISTENCY_LEVELS], nullable: true },
    mode: { type: 'string', enum: [...CAPTURE_MODES], nullable: true },
  },
  required: ['vmId'],
  additionalProperties: false,
};
const validateStart = new Ajv({ allErrors: true, verbose: true }).compile(startVmBackupBody);

df.app.client.http('startVmBackup', {
  route: 'vm-backups',
  methods: ['POST'],
  authLevel: apiAuthLevel(),
  handler: answering(async (request, client, context) => {
    const who = requireRole(request, ROUTE_ROLES.startVmBackup);
    assertKnownQuery(request, []);
    const body = await validBody(request, validateStart);
    return audited(context, who, 'vm-backup', body.vmId, async () => {
      const started = await startVmBackup(client, body, new Date());
      context.log(`VM backup ${started.vmBackupId} of ${started.vmId}: ${started.started ? 'started' : `already ${started.status?.runtimeStatus}`}`);
      return startedResponse(request, client, 'vm-backups', started.vmBackupId, started);
    });
  }),
});

df.app.client.http('getVmBackup', {
  route: 'vm-backups/{id}',
  methods: ['GET'],
  authLevel: apiAuthLevel(),
  handler: answering(async (request, client) => {
    requireRole(request, ROUTE_ROLES.getVmBackup);
    assertKnownQuery(request, []);
    const id = request.params.id ?? '';
    if (!VM_BACKUP_ID_RE.test(id)) throw new ProblemError(400, 'BadInput', `${JSON.stringify(id.slice(0, 80))} is not a VM backup ID`);
    const status = await findStatus(client, vmBackupInstanceId(id));
    if (status && !isRestartable(status)) return new HttpResponse({ status: 200, jsonBody: { ...operationView('vm-backups', id, status), customStatus: redactDeep(await withLiveDiskProgress(client, status.customStatus)) } });
    // Made by the CLI, or failed and completed since: the vault's manifest is the truth.
    const manifest = await readVmManifest(readSettings().vault, readUserKey(), id).catch((err: unknown) => {
      if (isPagewiseError(err, 'BackupNotFound')) return undefined;
      throw err;
    });
    if (manifest) return new HttpResponse({ status: 200, jsonBody: manifestView(manifest) });
    if (status) return new HttpResponse({ status: 200, jsonBody: operationView('vm-backups', id, status) });
    return problem(404, 'BackupNotFound', `no VM backup ${id}`);
  }),
});

df.app.client.http('listVmBackups', {
  route: 'vm-backups',
  methods: ['GET'],
  authLevel: apiAuthLevel(),
  handler: answering(async (request) => {
    requireRole(request, ROUTE_ROLES.listVmBackups);
    assertKnownQuery(request, ['vmId']);
    const given = request.query.get('vmId');
    const vmId = given !== null ? vmIdOf(parseVmId(given, 'the vmId query parameter')) : undefined;
    const manifests = await listVmBackups(readSettings().vault, readUserKey(), vmId);
    return new HttpResponse({ status: 200, jsonBody: { vmBackups: manifests.map(manifestView) } });
  }),
});

/** A VM backup as the vault's manifest records it. */
function manifestView(m: VmManifest) {
  return redactDeep({ id: m.vmBackupId, status: 'complete', runtimeStatus: 'Completed', manifest: m, links: { self: `/api/vm-backups/${m.vmBackupId}` } });
}

function isVmStatus(value: unknown): value is VmBackupStatus {
  return typeof value === 'object' && value !== null && Array.isArray((value as VmBackupStatus).disks);
}

/**
 * The VM's custom status with, for each disk being backed up, the live counts of its backup
 * orchestration (pages and bytes done of the total): the VM orchestration learns a disk's figures only
 * when it ends. Reads only instance IDs its own status names.
 */
export async function withLiveDiskProgress(client: DurableClient, customStatus: unknown): Promise<unknown> {
  if (!isVmStatus(customStatus)) return customStatus;
  const disks = await Promise.all(
    customStatus.disks.map(async (disk: VmDiskProgress) => {
      if (disk.state !== 'running' || typeof disk.instanceId !== 'string') return disk;
      const diskStatus = (await findStatus(client, disk.instanceId))?.customStatus as VmDiskStatus | undefined;
      if (!diskStatus?.backupInstanceId) return { ...disk, ...(diskStatus?.state ? { step: diskStatus.state } : {}) };
      const backup = await findStatus(client, diskStatus.backupInstanceId);
      if (!backup) return { ...disk, step: diskStatus.state, backupId: diskStatus.backupId };
      const live = (await withLiveBackupProgress(client, backup)).customStatus as Record<string, unknown> | null;
      const counts = live && typeof live === 'object' ? pick(live, ['phase', 'kind', 'pagesDone', 'pagesTotal', 'bytesDone', 'bytesTotal']) : {};
      return { ...disk, step: diskStatus.state, backupId: diskStatus.backupId, ...counts };
    }),
  );
  return { ...customStatus, disks };
}

function pick(value: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => value[k] !== undefined).map((k) => [k, value[k]]));
}
