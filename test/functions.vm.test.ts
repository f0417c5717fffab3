/**
 * VM backups through the function app (#16): the HTTP routes, the VM orchestration and its disk
 * sub-orchestrations replayed by the local durable runtime, the real ArmVmCompute (and Resource Graph
 * client) against the loopback Compute stand-in, whose disks are Azurite page blobs. A disk that fails
 * abandons the capture; a tag policy picks exactly the tagged VMs; bad VM IDs are refused.
 */
import * as df from 'durable-functions';
import { HttpResponse } from '@azure/functions';
import { randomBytes } from 'node:crypto';
import { vmBackupIdFor } from '../core';
import type { VmManifest } from '../core';
import { SnapshotAccess, useSnapshotAccess } from '../functions/compute';
import { parsePolicy } from '../functions/policy';
import { runScheduledBackups } from '../functions/scheduledBackups';
import { vmBackupInstanceId } from '../orchestrations/instanceIds';
import { VmBackupOrchestrationInput, VmBackupOutput, VmBackupStatus, VmOrchestrators } from '../orchestrations/vmContracts';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { findFunction } from '../runtime/registry';
import { ComputeStandIn, standInAppSettings, startComputeStandIn } from './harness/compute-standin';
import { holdVmBatches } from './harness/hold-vm-batches';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { jsonRequest } from './harness/http-request';

// Several durable runs through the runtime each; a loaded 2-core machine runs them several times slower than a quiet one.
jest.setTimeout(400_000);

let env: TestEnv;
let standin: ComputeStandIn;
let app: LocalApp;
const logs: string[] = [];
const TAG = { name: 'backup', value: 'nightly' };

async function json(response: HttpResponse): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

/** The live fields GET /api/vm-backups/{id} adds to a running disk. */
function pickCounts(disk: object): Record<string, unknown> {
  const d = disk as Record<string, unknown>;
  return Object.fromEntries(['step', 'phase', 'pagesDone', 'pagesTotal', 'bytesDone', 'bytesTotal'].filter((k) => d[k] !== undefined).map((k) => [k, d[k]]));
}

/** Writes `length` random bytes at `offset` of a stand-in disk (the Azurite page blob behind it). */
async function writeDisk(diskId: string, offset: number, length: number): Promise<void> {
  await standin.diskBlob(diskId).uploadPages(randomBytes(length), offset, length);
}

beforeAll(async () => {
  env = await startEnv();
  standin = await startComputeStandIn(env.az);
  const sub = standin.subscriptionId;
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      ...env.appSettings(),
      ...standInAppSettings(standin),
      PAGEWISE_VM_DISK_CONCURRENCY: '2',
      // The timer's policy: every VM tagged backup=nightly, and one of them again by ID (backed up once).
      // The timer starts each due backup itself (#17 start mode direct; the queue-fed starts are test/fleet.test.ts's).
      PAGEWISE_START_MODE: 'direct',
      PAGEWISE_BACKUP_POLICY: JSON.stringify({
        vms: [
          { tag: { ...TAG, subscriptions: [sub] }, fullOn: ['Sun'] },
          { id: `/subscriptions/${sub}/resourceGroups/tagged-a/providers/Microsoft.Compute/virtualMachines/t1` },
        ],
      }),
    },
    log: (_level, message) => logs.push(message),
  });
});
afterAll(async () => {
  await app?.stop();
  await standin?.stop();
  await env?.stop();
});

test('POST /api/vm-backups backs up every disk of the VM; the status shows each disk; the manifest is listed; no grant stays open', async () => {
  const vm = await standin.addVm({ resourceGroup: 'web', name: 'vm1', osDiskBytes: 2 * MiB, dataDisks: [{ lun: 0, bytes: 1 * MiB }, { lun: 3, bytes: 1 * MiB }] });
  await writeDisk(vm.disks[0].diskId, 0, 192 * KiB);
  await writeDisk(vm.disks[1].diskId, 512 * KiB, 64 * KiB);
  await writeDisk(vm.disks[2].diskId, 0, 128 * KiB);

  // Hold the VM disks' batch activities until the test has read the live status: no dependence on timing.
  const letGo = holdVmBatches();
  let body: Record<string, unknown>;
  try {
    const started = await app.host.invokeHttp('startVmBackup', jsonRequest('POST', '/api/vm-backups', { vmId: vm.vmId }));
    expect(started.status).toBe(202);
    body = await json(started);
    const id = body.id as string;
    expect(body).toMatchObject({ instanceId: vmBackupInstanceId(id), statusUri: `http://127.0.0.1:7071/api/vm-backups/${id}`, duplicate: false });
    // Two disks at once (PAGEWISE_VM_DISK_CONCURRENCY=2): both planned and copying, the third waiting its turn.
    let live: VmBackupStatus | undefined;
    // Until both are copying — however loaded the machine (the activities wait on `held` meanwhile).
    for (let look = 0; look < 3000; look++) {
      const view = await json(await app.host.invokeHttp('getVmBackup', jsonRequest('GET', `/api/vm-backups/${id}`, undefined, { id })));
      live = view.customStatus as VmBackupStatus;
      const copying = (live?.disks ?? []).filter((d) => (d as { phase?: string }).phase === 'copying');
      if (copying.length === 2) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(live!.phase).toBe('backing-up');
    expect(live!.disks.map((d) => ({ lun: d.lun, state: d.state, ...pickCounts(d) }))).toEqual([
      { lun: null, state: 'running', step: 'backing-up', phase: 'copying', pagesDone: 0, pagesTotal: 3, bytesDone: 0, bytesTotal: 192 * KiB },
      { lun: 0, state: 'running', step: 'backing-up', phase: 'copying', pagesDone: 0, pagesTotal: 1, bytesDone: 0, bytesTotal: 64 * KiB },
      { lun: 3, state: 'pending' },
    ]);
    // A second backup of the VM while this one runs would take a second capture beside it: refused.
    const beside = await app.host.invokeHttp('startVmBackup', jsonRequest('POST', '/api/vm-backups', { vmId: vm.vmId, full: true }));
    expect(beside.status).toBe(409);
    expect((await json(beside)).detail).toBe(`a backup of VM ${vm.vmId} is already running (${vmBackupInstanceId(id)}); start another when it has finished`);
  } finally {
    letGo();
  }
  const id = body.id as string;
  const done = await app.runtime.waitForCompletion(vmBackupInstanceId(id), { timeoutInMs: 90_000 });
  expect(done.output).toBeDefined();
  expect(done.runtimeStatus).toBe('Completed');

  const view = await json(await app.host.invokeHttp('getVmBackup', jsonRequest('GET', `/api/vm-backups/${id}`, undefined, { id })));
  expect(view).toMatchObject({ id, runtimeStatus: 'Completed' });
  const status = view.customStatus as VmBackupStatus;
  expect(status).toMatchObject({ phase: 'done', vmId: vm.vmId, capture: 'restore-point' });
  // Every disk done, a full backup of what was written (whole pages of 64 KiB: 192 + 64 + 128 KiB).
  expect(status.disks.map((d) => [d.lun, d.role, d.state, d.kind, d.bytesRead])).toEqual([
    [null, 'os', 'done', 'full', 192 * KiB],
    [0, 'data', 'done', 'full', 64 * KiB],
    [3, 'data', 'done', 'full', 128 * KiB],
  ]);
  // Each disk's backup is an ordinary backup orchestration, Completed.
  for (const disk of status.disks) expect((await app.runtime.getStatus(`backup-${disk.backupId}`))?.runtimeStatus).toBe('Completed');
  expect(standin.activeGrants()).toEqual([]);

  const listed = await json(await app.host.invokeHttp('listVmBackups', jsonRequest('GET', `/api/vm-backups?vmId=${encodeURIComponent(vm.vmId)}`)));
  const manifests = (listed.vmBackups as { manifest: VmManifest }[]).map((v) => v.manifest);
  expect(manifests.map((m) => m.vmBackupId)).toEqual([id]);
  expect(manifests[0].disks.map((d) => [d.lun, d.kind, d.bytesRead])).toEqual([
    [null, 'full', 192 * KiB],
    [0, 'full', 64 * KiB],
    [3, 'full', 128 * KiB],
  ]);
  // No SAS in the history or the status the API shows.
  expect(JSON.stringify(done)).not.toMatch(/sig=/);
  expect(JSON.stringify(view)).not.toMatch(/sig=/);

  // Changed since: the next VM backup reads only the changed pages of each disk, diffed against its capture.
  await writeDisk(vm.disks[0].diskId, 1 * MiB, 64 * KiB);
  await writeDisk(vm.disks[2].diskId, 0, 64 * KiB);
  const again = await json(await app.host.invokeHttp('startVmBackup', jsonRequest('POST', '/api/vm-backups', { vmId: vm.vmId })));
  const second = await app.runtime.waitForCompletion(again.instanceId as string, { timeoutInMs: 90_000 });
  expect(second.runtimeStatus).toBe('Completed');
  const out = second.output as VmBackupOutput;
  expect(out.disks.map((d) => [d.lun, d.kind, d.bytesRead])).toEqual([
    [null, 'incremental', 64 * KiB],
    [0, 'incremental', 0],
    [3, 'incremental', 64 * KiB],
  ]);
  // The first backup's restore point is no base any more: released; this one's stays.
  expect(out.released).toEqual([expect.stringMatching(new RegExp(`/restorePoints/${id}$`))]);
  expect(standin.resources('restorePoints').filter((r) => r.id.includes(id))).toEqual([]);
  // No SAS anywhere in the task hub (histories, inputs, outputs, statuses of every instance): grants travel sealed.
  const hub = env.az.accounts.vault.service.getContainerClient('pagewise-taskhub');
  let blobs = 0;
  for await (const blob of hub.listBlobsFlat()) {
    blobs++;
    expect((await hub.getBlobClient(blob.name).downloadToBuffer()).toString('utf8')).not.toMatch(/sig=|sig%3D/i);
  }
  expect(blobs).toBeGreaterThan(0);
  const ids = ((await json(await app.host.invokeHttp('listVmBackups', jsonRequest('GET', `/api/vm-backups?vmId=${encodeURIComponent(vm.vmId)}`)))).vmBackups as { id: string }[]).map((v) => v.id);
  expect(ids).toEqual([again.id, id]);
  expect(standin.activeGrants()).toEqual([]);
});

test('mode snapshots: each disk by its own incremental snapshot, crash-consistent; the snapshot events they raise start nothing', async () => {
  const vm = await standin.addVm({ resourceGroup: 'snap', name: 'vm3', osDiskBytes: 1 * MiB, dataDisks: [{ lun: 1, bytes: 1 * MiB }] });
  await writeDisk(vm.disks[0].diskId, 0, 64 * KiB);
  const started = await json(await app.host.invokeHttp('startVmBackup', jsonRequest('POST', '/api/vm-backups', { vmId: vm.vmId, mode: 'snapshots', consistency: 'crash' })));
  const done = await app.runtime.waitForCompletion(started.instanceId as string, { timeoutInMs: 90_000 });
  expect(done.runtimeStatus).toBe('Completed');
  expect(done.output).toMatchObject({ capture: 'snapshots', consistency: 'crash', disks: [{ lun: null, kind: 'full', bytesRead: 64 * KiB }, { lun: 1, kind: 'full', bytesRead: 0 }] });
  const taken = standin.resources('snapshots').filter((r) => r.id.includes(started.id as string));
  expect(taken.map((r) => r.tags.pagewise)).toEqual(['taken', 'taken']);
  expect(standin.activeGrants()).toEqual([]);

  // Event Grid reports each snapshot written: the snapshot path leaves those a VM backup took alone.
  const refused = new Error('no grant may be asked for a snapshot Pagewise took');
  const access: SnapshotAccess = {
    grantRead: async () => Promise.reject(refused),
    takenByPagewise: async (ref) => taken.some((r) => r.id.endsWith(`/snapshots/${ref.snapshotName}`) && r.tags.pagewise === 'taken'),
  };
  useSnapshotAccess(access);
  const before = (await app.runtime.listInstances({ prefix: 'backup-' })).length;
  const id = taken[0].id;
  await app.host.invokeEventGrid('diskEvents', {
    subject: id, eventType: 'Microsoft.Resources.ResourceWriteSuccess', eventTime: '2026-12-01T01:00:00Z', id: 'ev-taken-1', dataVersion: '2', metadataVersion: '1', topic: `/subscriptions/${standin.subscriptionId}`,
    data: { resourceProvider: 'Microsoft.Compute', resourceUri: id, operationName: 'Microsoft.Compute/snapshots/write', status: 'Succeeded', subscriptionId: standin.subscriptionId },
  });
  expect((await app.runtime.listInstances({ prefix: 'backup-' })).length).toBe(before);
  expect(logs).toContainEqual(expect.stringMatching(new RegExp(`ev-taken-1 ignored: snapshot ${started.id}-os was taken by a Pagewise VM backup`)));
});

test('a disk that fails abandons the capture: no restore point, snapshot or grant of it stays', async () => {
  const vm = await standin.addVm({ resourceGroup: 'db', name: 'vm2', osDiskBytes: 1 * MiB, dataDisks: [{ lun: 0, bytes: 1 * MiB }] });
  await writeDisk(vm.disks[1].diskId, 0, 64 * KiB);
  const before = { restorePoints: standin.resources('restorePoints').length, snapshots: standin.resources('snapshots').length };
  // Compute refuses the disk's read grant (every attempt of it); the other disk may well be backed up meanwhile.
  standin.faults.fail('diskRestorePoint.grantAccess', 2, 403, 'AuthorizationFailed');
  const vmBackupId = vmBackupIdFor(vm.vmId, new Date('2026-11-30T01:00:00Z'));
  const instanceId = vmBackupInstanceId(vmBackupId);
  // Started as the HTTP route would, with retries cut short (one attempt per activity).
  const input: VmBackupOrchestrationInput = { vmBackupId, vmId: vm.vmId, diskConcurrency: 1, retry: { firstRetryIntervalInMs: 10, maxAttempts: 1 } };
  await app.runtime.startNew(VmOrchestrators.backupVm, { instanceId, input });
  const done = await app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
  expect(done.runtimeStatus).toBe('Failed');
  expect(String(done.output)).toMatch(new RegExp(`VM backup ${vmBackupId} failed \\(2 of 2 disks\\); its capture was abandoned: OS disk: AccessDenied: grantCaptureRead \\S+: Compute refused the request \\(403 AuthorizationFailed: Stand-in fault on diskRestorePoint\\.grantAccess\\.\\); data disk LUN 0: AccessDenied: grantCaptureRead`));
  expect(done.customStatus).toMatchObject({ phase: 'failed', disks: [{ lun: null, state: 'failed' }, { lun: 0, state: 'failed' }] });
  // No stack frame reaches the status or the failure.
  expect(JSON.stringify(done)).not.toMatch(/\s+at\s+\S+ \(/);
  expect(standin.resources('restorePoints').length).toBe(before.restorePoints);
  expect(standin.resources('snapshots').length).toBe(before.snapshots);
  expect(standin.activeGrants()).toEqual([]);
});

test('a disk orchestration started with a capture this app did not seal grants nothing', async () => {
  const sub = standin.subscriptionId;
  const vmId = `/subscriptions/${sub}/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/foreign`;
  const disk = { id: `/subscriptions/${sub}/resourceGroups/other/providers/Microsoft.Compute/disks/foreign-os`, name: 'foreign-os', lun: null, sizeBytes: MiB, location: 'westeurope' };
  const capture = {
    vmBackupId: vmBackupIdFor(vmId, new Date('2026-11-30T02:00:00Z')),
    vm: { id: vmId, name: 'foreign', location: 'westeurope', tags: {}, networkInterfaceIds: [], osDisk: disk, dataDisks: [] },
    capture: 'snapshots', requestedConsistency: 'crash', consistency: 'crash', notCaptured: [], createdAt: '2026-11-30T02:00:00.000Z',
    disks: [{ lun: null, role: 'os', disk, captureId: `/subscriptions/${sub}/resourceGroups/other/providers/Microsoft.Compute/snapshots/someone-elses`, takenByPagewise: true }],
  };
  const calls = standin.calls().length;
  await app.runtime.startNew(VmOrchestrators.backupVmDisk, { instanceId: 'forged-capture', input: { capture, seal: 'f'.repeat(64), lun: null, retry: { firstRetryIntervalInMs: 10, maxAttempts: 1 } } });
  const done = await app.runtime.waitForCompletion('forged-capture', { timeoutInMs: 30_000 });
  expect(done.output).toMatchObject({ lun: null, ok: false, error: expect.stringMatching(/BadInput: the grantVmDisk activity's input holds a VM capture this app did not take/) });
  expect(standin.calls().length).toBe(calls);
});

test('the timer backs up exactly the VMs the tag names, each once though two entries name one of them', async () => {
  const t1 = await standin.addVm({ resourceGroup: 'tagged-a', name: 't1', tags: { backup: 'nightly' }, osDiskBytes: 1 * MiB });
  const t2 = await standin.addVm({ resourceGroup: 'tagged-b', name: 't2', tags: { backup: 'nightly', team: 'x' }, osDiskBytes: 1 * MiB });
  await standin.addVm({ resourceGroup: 'tagged-a', name: 'untagged', tags: { backup: 'weekly' }, osDiskBytes: 1 * MiB });
  const timer = findFunction('scheduledBackups', 'timerTrigger');
  const context = app.host.contextFor(timer);
  const sunday = new Date('2026-11-29T02:00:00Z');
  const run = await runScheduledBackups(df.getClient(context), context, sunday);
  expect(run).toMatchObject({ due: 0, started: [] });
  expect(run.vms).toMatchObject({ due: 2, skipped: [], failed: [] });
  const inputs = await Promise.all(run.vms!.started.map(async (id) => (await app.runtime.getStatus(vmBackupInstanceId(id)))?.input as VmBackupOrchestrationInput));
  expect(inputs.map((i) => i.vmId).sort()).toEqual([t1.vmId, t2.vmId].sort());
  // fullOn: Sun — the tag entry's VMs are backed up full today.
  expect(inputs.every((i) => i.full === true)).toBe(true);
  // Resource Graph was asked the one query form, once.
  expect(standin.calls().filter((c: { op: string }) => c.op === 'resourceGraph.resources').length).toBe(1);
  for (const id of run.vms!.started) expect((await app.runtime.waitForCompletion(vmBackupInstanceId(id), { timeoutInMs: 90_000 })).runtimeStatus).toBe('Completed');
  expect(standin.activeGrants()).toEqual([]);
});

test('POST /api/vm-backups refuses what is no VM ID, with a clear 400', async () => {
  const sub = standin.subscriptionId;
  const cases: [unknown, RegExp][] = [
    [{ vmId: 'vm1' }, /vmId "vm1" is not the ARM ID of a virtual machine/],
    [{ vmId: `/subscriptions/${sub}/resourceGroups/web/providers/Microsoft.Compute/snapshots/s1` }, /is not the ARM ID of a virtual machine/],
    [{ vmId: `/subscriptions/${sub}/resourceGroups/web/providers/Microsoft.Compute/virtualMachines/../disks/d1` }, /is not the ARM ID of a virtual machine/],
    [{ vmId: `/subscriptions/${sub}/resourceGroups/../providers/Microsoft.Compute/virtualMachines/vm1` }, /is not the ARM ID of a virtual machine/],
    [{ vmId: `/subscriptions/${sub}/resourceGroups/web/providers/Microsoft.Compute/virtualMachines/vm1`, consistency: 'total' }, /consistency/],
    [{ vmId: `/subscriptions/${sub}/resourceGroups/web/providers/Microsoft.Compute/virtualMachines/vm1`, url: 'https://x' }, /url/],
  ];
  const before = (await app.runtime.listInstances({ prefix: 'vmbackup-' })).length;
  for (const [body, message] of cases) {
    const response = await app.host.invokeHttp('startVmBackup', jsonRequest('POST', '/api/vm-backups', body));
    expect(response.status).toBe(400);
    expect(String((await json(response)).detail)).toMatch(message);
  }
  const badQuery = await app.host.invokeHttp('listVmBackups', jsonRequest('GET', '/api/vm-backups?vmId=%2Fsubscriptions%2Fx'));
  expect(badQuery.status).toBe(400);
  const badId = await app.host.invokeHttp('getVmBackup', jsonRequest('GET', '/api/vm-backups/..', undefined, { id: '..' }));
  expect(badId.status).toBe(400);
  expect((await app.runtime.listInstances({ prefix: 'vmbackup-' })).length).toBe(before);
});

test('a policy VM entry names exactly one selector, and no tag text that could leave its query string', () => {
  const sub = '5f8b2c1e-0000-4000-8000-000000000001';
  expect(() => parsePolicy(JSON.stringify({ vms: [{ subscription: sub, resourceGroup: `/subscriptions/${sub}/resourceGroups/rg` }] }))).toThrow(
    /vms\[0\] must name exactly one of id, resourceGroup, subscription, tag \(it names resourceGroup and subscription\)/,
  );
  expect(() => parsePolicy(JSON.stringify({ vms: [{ days: ['Mon'] }] }))).toThrow(/vms\[0\] must name exactly one of .* \(it names none\)/);
  expect(() => parsePolicy(JSON.stringify({ vms: [{ tag: { name: 'env', value: "x' or 1==1 or tags['a", subscriptions: [sub] } }] }))).toThrow(/tag value .* holds "'"/);
  expect(() => parsePolicy(JSON.stringify({ vms: [{ tag: { name: 'e\\nv', value: 'x', subscriptions: [sub] } }] }))).toThrow(/tag name .* holds "\\\\"/);
  expect(() => parsePolicy(JSON.stringify({ vms: [{ resourceGroup: `/subscriptions/${sub}/resourceGroups/rg/../x` }] }))).toThrow(/is not a resource group ID/);
  expect(() => parsePolicy(JSON.stringify({ vms: [{ subscription: 'not-a-guid' }] }))).toThrow(/is not a subscription GUID/);
  expect(parsePolicy(JSON.stringify({ vms: [{ subscription: sub, consistency: 'crash' }] }))).toEqual({ disks: [], vms: [{ subscription: sub, consistency: 'crash' }] });
});
