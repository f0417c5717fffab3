/**
 * Nothing left behind (#17): the Event Grid snapshot path's short grant, revoked after success, failure and a
 * start that never ran; a terminated backup's grant ended by the sweeper; the sweeper deleting an orphan capture
 * past its grace and keeping an untagged snapshot, a young orphan, the base of the next incremental and a running
 * backup's capture. Through the local durable runtime and the real @azure/arm-compute client against the loopback
 * Compute stand-in, whose snapshots are Azurite blob snapshots.
 */
import { InvocationContext } from '@azure/functions';
import type { DurableClient } from 'durable-functions';
import { randomBytes } from 'node:crypto';
import { armContext, ArmVmCompute, backupCapturedDisk, captureVm, PagewiseError, vmBackupIdFor, vmCaptureTag } from '../core';
import type { SweepReport } from '../core';
import { snapshotBackupId } from '../functions/backupStarts';
import { useSnapshotAccess } from '../functions/compute';
import { handleDiskEvent } from '../functions/events/eventGrid';
import { reportingPermanentFailures } from '../functions/permanentFailures';
import { snapshotGrantSeconds } from '../functions/snapshotGrants';
import { runSnapshotSweep, sweepGraceMs, sweepScopes } from '../functions/sweepSnapshots';
import { backupInstanceId, vmBackupInstanceId } from '../orchestrations/instanceIds';
import type { VmBackupStatus } from '../orchestrations/vmContracts';
import { registeredFunctions } from '../runtime/functionsCore';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { ComputeStandIn, standInAppSettings, startComputeStandIn } from './harness/compute-standin';
import { holdVmBatches } from './harness/hold-vm-batches';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { jsonRequest } from './harness/http-request';

jest.setTimeout(300_000);

let env: TestEnv;
let standin: ComputeStandIn;
let compute: ArmVmCompute;
let app: LocalApp;
const logs: string[] = [];
const HOUR = 3600_000;

beforeAll(async () => {
  env = await startEnv();
  standin = await startComputeStandIn(env.az);
  compute = new ArmVmCompute(armContext({ endpoint: standin.endpoint, credential: standin.credential }, {}), {
    pollIntervalMs: 20,
    completionWait: { firstDelayMs: 20, maxDelayMs: 100, timeoutMs: 10_000 },
  });
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      ...env.appSettings(),
      ...standInAppSettings(standin),
      PAGEWISE_SWEEP_SCOPES: standin.subscriptionId,
    },
    log: (_level, message) => logs.push(message),
  });
  // Compute through the app settings' ARM context (the stand-in): the production SnapshotAccess.
  useSnapshotAccess(undefined);
});
afterAll(async () => {
  await app?.stop();
  await standin?.stop();
  await env?.stop();
});

/** A VM with one OS disk holding `bytes` of data: the disk a snapshot is taken of. */
async function diskWithData(name: string, bytes = 128 * KiB): Promise<{ vmId: string; diskId: string }> {
  const vm = await standin.addVm({ resourceGroup: 'ev', name, osDiskBytes: 2 * MiB });
  await standin.diskBlob(vm.disks[0].diskId).uploadPages(randomBytes(bytes), 0, bytes);
  return { vmId: vm.vmId, diskId: vm.disks[0].diskId };
}

/** A snapshot someone else took (no Pagewise tag), through the real Compute client. */
async function othersSnapshot(diskId: string, name: string): Promise<string> {
  const client = await compute.ctx.compute(standin.subscriptionId);
  const snap = await client.snapshots.beginCreateOrUpdateAndWait('ev', name, { location: 'westeurope', incremental: true, creationData: { createOption: 'Copy', sourceResourceId: diskId } }, { updateIntervalInMs: 20 });
  return snap.id!;
}

/** Microsoft.Resources.ResourceWriteSuccess of a snapshot (Event Grid schema). */
function snapshotWritten(resourceId: string, id: string) {
  return {
    subject: resourceId,
    eventType: 'Microsoft.Resources.ResourceWriteSuccess',
    eventTime: '2026-12-01T01:00:04Z',
    id,
    data: { resourceUri: resourceId, operationName: 'Microsoft.Compute/snapshots/write', status: 'Succeeded', subscriptionId: standin.subscriptionId },
    dataVersion: '2',
    metadataVersion: '1',
    topic: `/subscriptions/${standin.subscriptionId}`,
  };
}

const grantOpen = (id: string) => standin.activeGrants().some((g) => g.toLowerCase() === id.toLowerCase());
const revokes = (name: string) => standin.calls().filter((c) => c.op === 'snapshots.revokeAccess' && c.path.endsWith(`/snapshots/${name}/endGetAccess`)).length;

/** Replaces the batch activity for one backup (restored by the returned function). */
function replaceBatch(backupId: string, replacement: (input: unknown, ...rest: unknown[]) => Promise<unknown>): () => void {
  const activity = registeredFunctions().get('runBackupBatch')!;
  const original = activity.handler;
  activity.handler = (input: unknown, ...rest: unknown[]) => ((input as { backupId?: string }).backupId === backupId ? replacement(input, ...rest) : original(input, ...rest));
  return () => void (activity.handler = original);
}

test('a snapshot event backs up under a short grant (by the disk size), revoked when the backup completes', async () => {
  const { diskId } = await diskWithData('ok');
  const id = await othersSnapshot(diskId, 'ok-nightly');
  await app.host.invokeEventGrid('diskEvents', snapshotWritten(id, 'ev-ok'));
  const done = await app.runtime.waitForCompletion(backupInstanceId(snapshotBackupId(id)), { timeoutInMs: 120_000 });
  expect(done.runtimeStatus).toBe('Completed');
  expect(done.output).toMatchObject({ result: { bytesRead: 128 * KiB } });
  // One hour of margin plus the 2 MiB disk at 64 MiB/s: 3601 s, not a day.
  expect(standin.grantSeconds(id)).toBe(3601);
  expect(snapshotGrantSeconds(2 * MiB, {})).toBe(3601);
  expect(grantOpen(id)).toBe(false);
  expect(revokes('ok-nightly')).toBe(1);
});

test('a snapshot backup that fails revokes its grant', async () => {
  const { diskId } = await diskWithData('bad');
  const id = await othersSnapshot(diskId, 'bad-nightly');
  const backupId = snapshotBackupId(id);
  const restore = replaceBatch(backupId, reportingPermanentFailures(async () => {
    throw new PagewiseError('Corrupt', 'the batch read a page that fails its check (test)');
  }));
  try {
    await app.host.invokeEventGrid('diskEvents', snapshotWritten(id, 'ev-bad'));
    const done = await app.runtime.waitForCompletion(backupInstanceId(backupId), { timeoutInMs: 120_000 });
    expect(done.runtimeStatus).toBe('Failed');
  } finally {
    restore();
  }
  expect(standin.grantSeconds(id)).toBe(3601);
  expect(grantOpen(id)).toBe(false);
  expect(revokes('bad-nightly')).toBe(1);
});

test('a grant whose backup never started is revoked at once (the event is redelivered later)', async () => {
  const { diskId } = await diskWithData('nostart');
  const id = await othersSnapshot(diskId, 'nostart-nightly');
  const real = app.host.durableClient();
  // The task hub refuses the start (e.g. storage down): the handler fails so Event Grid delivers the event again.
  const refusing = new Proxy(real, {
    get: (target, prop, receiver) => (prop === 'startNew' ? async () => Promise.reject(new Error('the task hub is unavailable (test)')) : Reflect.get(target, prop, receiver)),
  }) as DurableClient;
  const context = new InvocationContext({ functionName: 'diskEvents', invocationId: 'nostart', logHandler: (_level, ...args) => logs.push(args.join(' ')) });
  await expect(handleDiskEvent(snapshotWritten(id, 'ev-nostart'), refusing, context)).rejects.toThrow('the task hub is unavailable (test)');
  expect(standin.grantSeconds(id)).toBe(3601);
  expect(grantOpen(id)).toBe(false);
  expect(revokes('nostart-nightly')).toBe(1);
  expect(await app.runtime.getStatus(backupInstanceId(snapshotBackupId(id)))).toBeUndefined();
  expect(logs.join('\n')).toContain(`snapshot nostart-nightly: read grant revoked (backup ${snapshotBackupId(id)} did not start)`);
});

let terminatedSnapshot: string;

test('a terminated backup leaves its grant open; the sweeper ends it and deletes nothing it did not take', async () => {
  const { diskId } = await diskWithData('term');
  const id = await othersSnapshot(diskId, 'term-nightly');
  terminatedSnapshot = id;
  const backupId = snapshotBackupId(id);
  let entered!: () => void;
  const inBatch = new Promise<void>((resolve) => (entered = resolve));
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const restore = replaceBatch(backupId, async () => {
    entered();
    await held;
    throw new Error('released after the termination (test)');
  });
  try {
    await app.host.invokeEventGrid('diskEvents', snapshotWritten(id, 'ev-term'));
    await inBatch;
    expect(await app.runtime.terminate(backupInstanceId(backupId), 'operator stopped it (test)')).toBe('terminated');
    expect(grantOpen(id)).toBe(true);
    // Someone else's grant on a snapshot Pagewise never backed up: not Pagewise's to end.
    const foreign = await othersSnapshot(diskId, 'term-foreign');
    await compute.grantCaptureRead(foreign, 600);

    const report = await runSnapshotSweep(app.host.durableClient(), new InvocationContext({ functionName: 'sweepSnapshots' }), new Date());
    expect(report.revoked).toEqual([id]);
    expect(report.deleted).toEqual([]);
    expect(grantOpen(id)).toBe(false);
    expect(grantOpen(foreign)).toBe(true);
    await compute.revokeCaptureRead(foreign);
    expect(standin.resources('snapshots').map((s) => s.id)).toEqual(expect.arrayContaining([id, foreign]));
  } finally {
    release();
    restore();
  }
});

test('the sweeper deletes an orphan capture past its grace and keeps an untagged snapshot, a young orphan, the base of the next incremental and a running backup\'s capture', async () => {
  const now = Date.now();
  const vm = await standin.addVm({ resourceGroup: 'sweep', name: 'sw', osDiskBytes: 1 * MiB });
  await standin.diskBlob(vm.disks[0].diskId).uploadPages(randomBytes(64 * KiB), 0, 64 * KiB);
  const info = await compute.getVm(vm.vmId);

  // The base: a capture whose disk backup completed (a disk manifest names it) but whose VM backup never wrote its manifest.
  const base = await captureVm(compute, { vmId: vm.vmId, vmBackupId: vmBackupIdFor(vm.vmId, new Date(now - 72 * HOUR)), mode: 'snapshots' });
  await backupCapturedDisk({ compute, disk: base.disks[0], vault: env.vault, userKey: env.userKey, settings: { pageSize: 64 * KiB, cacheBytes: 256 * KiB } });
  standin.backdateSnapshot(base.disks[0].captureId, new Date(now - 72 * HOUR));
  // An orphan past the grace (its VM backup died between capture and manifest), its grant still open.
  const orphanBackup = vmBackupIdFor(vm.vmId, new Date(now - 48 * HOUR));
  const orphan = await compute.createIncrementalSnapshot(info.osDisk, `${orphanBackup}-os`, { 'pagewise-vm': vmCaptureTag(vm.vmId) });
  standin.backdateSnapshot(orphan, new Date(now - 48 * HOUR));
  await compute.grantCaptureRead(orphan, 600);
  // A young orphan: its VM backup may still be about to record it.
  const young = await compute.createIncrementalSnapshot(info.osDisk, `${vmBackupIdFor(vm.vmId, new Date(now - 1 * HOUR))}-os`, {});
  // Someone else's snapshot, named like a capture and just as old, without the tag.
  const client = await compute.ctx.compute(standin.subscriptionId);
  const untagged = (await client.snapshots.beginCreateOrUpdateAndWait('sweep', `${vmBackupIdFor(vm.vmId, new Date(now - 50 * HOUR))}-os`, { location: 'westeurope', incremental: true, creationData: { createOption: 'Copy', sourceResourceId: vm.disks[0].diskId } }, { updateIntervalInMs: 20 })).id!;
  standin.backdateSnapshot(untagged, new Date(now - 50 * HOUR));

  // A running VM backup (another VM), held in its disk's batches; its capture looks old, as after a long copy.
  const other = await standin.addVm({ resourceGroup: 'sweep', name: 'busy', osDiskBytes: 1 * MiB });
  await standin.diskBlob(other.disks[0].diskId).uploadPages(randomBytes(64 * KiB), 0, 64 * KiB);
  const letGo = holdVmBatches();
  let report: SweepReport;
  let running: string;
  let runningId: string;
  try {
    const started = await app.host.invokeHttp('startVmBackup', jsonRequest('POST', '/api/vm-backups', { vmId: other.vmId, mode: 'snapshots' }));
    expect(started.status).toBe(202);
    runningId = ((await started.json()) as { id: string }).id;
    running = '';
    for (let look = 0; look < 3000 && !running; look++) {
      const status = (await app.runtime.getStatus(vmBackupInstanceId(runningId)))?.customStatus as VmBackupStatus | undefined;
      if (status?.disks?.[0]?.state === 'running') running = standin.resources('snapshots').find((s) => s.id.includes(`/snapshots/${runningId}-os`))?.id ?? '';
      if (!running) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(running).not.toBe('');
    standin.backdateSnapshot(running, new Date(now - 30 * HOUR));

    report = await runSnapshotSweep(app.host.durableClient(), new InvocationContext({ functionName: 'sweepSnapshots' }), new Date(now));
  } finally {
    letGo();
  }
  expect(report.deleted).toEqual([orphan]);
  const keptOf = (id: string) => report.kept.find((k) => k.id === id)?.reason;
  expect(keptOf(young)).toBe('young');
  expect(keptOf(base.disks[0].captureId)).toBe('base-of-next-incremental');
  expect(keptOf(running)).toBe('in-use');
  expect(keptOf(untagged)).toBeUndefined(); // not Pagewise's: never a candidate
  expect(report.problems).toEqual([]);
  const left = standin.resources('snapshots').map((s) => s.id);
  expect(left).not.toContain(orphan);
  for (const id of [young, base.disks[0].captureId, running, untagged, terminatedSnapshot]) expect(left).toContain(id);
  expect(report.listed).toBe(10);
  expect(grantOpen(orphan)).toBe(false);
  expect((await app.runtime.waitForCompletion(vmBackupInstanceId(runningId), { timeoutInMs: 120_000 })).runtimeStatus).toBe('Completed');
  // eslint-disable-next-line no-console -- the figures of the closing note
  console.log(`sweeper: listed ${report.listed}, deleted ${report.deleted.length} (${report.deleted.join(', ')}), kept ${report.kept.map((k) => k.reason).join(', ')}, revoked ${report.revoked.length}`);
  expect(logs.join('\n')).not.toMatch(/sig=/);
});

test('grant and sweep settings: bounds checked, named in the error; scopes from the setting or the policy\'s VM subscriptions', async () => {
  expect(snapshotGrantSeconds(undefined, {})).toBe(6 * 3600);
  expect(snapshotGrantSeconds(1024 ** 4, {})).toBe(3600 + 16384); // 1 TiB: 5 h 33 min
  expect(snapshotGrantSeconds(32 * 1024 ** 4, {})).toBe(24 * 3600);
  expect(snapshotGrantSeconds(32 * 1024 ** 4, { PAGEWISE_SNAPSHOT_GRANT_MINUTES: '90' })).toBe(5400);
  for (const bad of ['14', '1441', '1e3', '-5', '60.5']) {
    expect(() => snapshotGrantSeconds(0, { PAGEWISE_SNAPSHOT_GRANT_MINUTES: bad })).toThrow(`app setting PAGEWISE_SNAPSHOT_GRANT_MINUTES must be a whole number of minutes from 15 to 1440, got "${bad}"`);
  }
  expect(sweepGraceMs({})).toBe(24 * HOUR);
  expect(sweepGraceMs({ PAGEWISE_SWEEP_GRACE_HOURS: '720' })).toBe(720 * HOUR);
  for (const bad of ['0', '721', 'x']) expect(() => sweepGraceMs({ PAGEWISE_SWEEP_GRACE_HOURS: bad })).toThrow(`app setting PAGEWISE_SWEEP_GRACE_HOURS must be a whole number of hours from 1 to 720, got "${bad}"`);

  const sub = standin.subscriptionId;
  expect(await sweepScopes({ PAGEWISE_SWEEP_SCOPES: ` ${sub.toUpperCase()} , ${sub}/web-rg ` })).toEqual([{ subscriptionId: sub }, { subscriptionId: sub, resourceGroup: 'web-rg' }]);
  await expect(sweepScopes({ PAGEWISE_SWEEP_SCOPES: 'not-a-guid' })).rejects.toThrow("app setting PAGEWISE_SWEEP_SCOPES's subscription");
  await expect(sweepScopes({ PAGEWISE_SWEEP_SCOPES: `${sub}/rg/extra` })).rejects.toThrow('is not <subscription> or <subscription>/<resource group>');
  await expect(sweepScopes({ PAGEWISE_SWEEP_SCOPES: `${sub}/bad group!` })).rejects.toThrow("app setting PAGEWISE_SWEEP_SCOPES's resource group");
  const other = '11111111-2222-4333-8444-555555555555';
  const policy = JSON.stringify({ vms: [{ id: `/subscriptions/${sub}/resourceGroups/web/providers/Microsoft.Compute/virtualMachines/vm1` }, { tag: { name: 'backup', value: 'nightly', subscriptions: [other, sub] } }] });
  expect(await sweepScopes(env.appSettings({ PAGEWISE_BACKUP_POLICY: policy }))).toEqual([{ subscriptionId: sub }, { subscriptionId: other }]);
  expect(await sweepScopes({})).toEqual([]);
});

test('the registered timer sweeps with the app settings: after the runs above, nothing more to delete', async () => {
  const before = logs.length;
  await app.host.invokeTimer('sweepSnapshots');
  const line = logs.slice(before).find((l) => l.startsWith('snapshot sweep at '));
  expect(line).toMatch(/over 1 scope\(s\): deleted 0 snapshot\(s\), revoked 0 grant\(s\), kept 3 taken snapshot\(s\) of 9 listed$/); // young, the base, and the finished VM backup's capture (has-manifest)
});
