/**
 * The Event Grid and timer functions, invoked as the host would (real InvocationContext with the
 * durable client binding) against the local durable runtime on Azurite: real sample payloads of both
 * event types in both schemas, duplicate deliveries, ignored events, and scheduled backups with an
 * injected clock. Compute (snapshot SAS grants) is a cloud API: its client is replaced by a fake.
 */
import * as df from 'durable-functions';
import { LogLevel } from '@azure/functions';
import { randomBytes } from 'node:crypto';
import { deriveBackupId, restoreBackup } from '../core';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { findManifest2 } from '../core/repo/v2/manifest';
import { Vault } from '../core/repo/vault';
import type { BackupOrchestrationOutput } from '../orchestrations/contracts';
import { snapshotBackupId } from '../functions/backupStarts';
import { managedSnapshotAccess, SnapshotAccess, SnapshotRef, useSnapshotAccess } from '../functions/compute';
import { runScheduledBackups } from '../functions/scheduledBackups';
import { classifyEvent } from '../functions/events/diskEvents';
import { settleInstanceId } from '../orchestrations/instanceIds';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { findFunction } from '../runtime/registry';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

const SUB = '5f8b2c1e-0000-4000-8000-000000000001';
const SNAPSHOT_ID = `/subscriptions/${SUB}/resourceGroups/vm-rg/providers/Microsoft.Compute/snapshots/vm1-osdisk-nightly`;

/** Microsoft.Resources.ResourceWriteSuccess as Event Grid delivers it (Event Grid schema). */
const snapshotEventGridSchema = {
  subject: SNAPSHOT_ID,
  eventType: 'Microsoft.Resources.ResourceWriteSuccess',
  eventTime: '2024-05-02T01:00:04.6117357Z',
  id: '4db48cba-50a2-455a-93b4-de41a3b5b7f6',
  data: {
    authorization: { scope: SNAPSHOT_ID, action: 'Microsoft.Compute/snapshots/write', evidence: { role: 'Contributor' } },
    correlationId: '7dcf8e3a-4bd9-4a28-8e4a-1e1b5a5a5a5a',
    resourceProvider: 'Microsoft.Compute',
    resourceUri: SNAPSHOT_ID,
    operationName: 'Microsoft.Compute/snapshots/write',
    status: 'Succeeded',
    subscriptionId: SUB,
    tenantId: '72f988bf-0000-4000-8000-000000000002',
  },
  dataVersion: '2',
  metadataVersion: '1',
  topic: `/subscriptions/${SUB}`,
};

/** The same event in CloudEvents 1.0 schema. */
const snapshotCloudEvent = {
  source: `/subscriptions/${SUB}`,
  subject: SNAPSHOT_ID,
  type: 'Microsoft.Resources.ResourceWriteSuccess',
  time: '2024-05-02T01:00:04.6117357Z',
  id: '4db48cba-50a2-455a-93b4-de41a3b5b7f6',
  data: snapshotEventGridSchema.data,
  specversion: '1.0',
};

function blobCreated(schema: 'EventGrid' | 'CloudEvents', account: string, url: string, eTag: string, blobType = 'PageBlob') {
  const data = {
    api: 'PutBlob',
    clientRequestId: '6d79dbfb-0e37-4fc4-981f-442c9ca89821',
    requestId: '831e1650-001e-001b-66ab-eeb76e000000',
    eTag,
    contentType: 'application/octet-stream',
    contentLength: 0,
    blobType,
    url,
    sequencer: '00000000000004420000000000028963',
    storageDiagnostics: { batchId: 'b68529f3-68cd-4744-baa4-3c0498ec19f0' },
  };
  const topic = `/subscriptions/${SUB}/resourceGroups/storage-rg/providers/Microsoft.Storage/storageAccounts/${account}`;
  const subject = `/blobServices/default/containers/disks/blobs/${url.split('/').pop()}`;
  return schema === 'EventGrid'
    ? { topic, subject, eventType: 'Microsoft.Storage.BlobCreated', id: `eg-${eTag}`, data, dataVersion: '', metadataVersion: '1', eventTime: '2024-05-02T01:00:00Z' }
    : { source: topic, subject, type: 'Microsoft.Storage.BlobCreated', id: `ce-${eTag}`, data, specversion: '1.0', time: '2024-05-02T01:00:00Z' };
}

const DISK_ID = `/subscriptions/${SUB}/resourceGroups/vm-rg/providers/Microsoft.Compute/disks/vm1-osdisk`;

class FakeCompute implements SnapshotAccess {
  grants: SnapshotRef[] = [];
  constructor(private readonly url: string) {}
  async grantRead(snapshot: SnapshotRef): Promise<string> {
    this.grants.push(snapshot);
    return this.url;
  }
  /** What Compute's snapshot resource says of its disk (creationData). */
  async diskOf(): Promise<{ sourceUniqueId: string; armDiskId: string; snapshotResourceId: string }> {
    return { sourceUniqueId: '5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b', armDiskId: DISK_ID, snapshotResourceId: SNAPSHOT_ID };
  }
}

let env: TestEnv;
let app: LocalApp;
const logs: string[] = [];

beforeAll(async () => {
  env = await startEnv();
  await env.makeDisk('ev.vhd', 8 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'text', seed: 3 }]);
  await env.makeDisk('mon.vhd', 8 * MiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 6 }]);
  await env.makeDisk('daily.vhd', 8 * MiB, [{ offset: 4 * MiB, length: 64 * KiB, kind: 'random', seed: 7 }]);
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      ...env.appSettings(),
      PAGEWISE_WATCHED_CONTAINERS: 'src/disks',
      // The timer starts each due backup itself (#17 start mode direct; the queue-fed starts are test/fleet.test.ts's).
      PAGEWISE_START_MODE: 'direct',
      PAGEWISE_BACKUP_POLICY: JSON.stringify({
        disks: [
          { url: env.sourceUrl('mon.vhd'), days: ['Mon'], fullOn: ['Mon'] },
          { url: env.sourceUrl('daily.vhd') },
          { url: 'https://elsewhere.blob.core.windows.net/vhds/x.vhd' },
        ],
      }),
    },
    log: (_level: LogLevel, message: string) => logs.push(message),
  });
});
afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

test('a snapshot event in both schemas, delivered three times, starts one backup with one SAS grant', async () => {
  // The stand-in grant returns a URL on an allowed (emulator) endpoint; a real one is on a managed-disk
  // export host (*.blob.storage.azure.net), reached only with the grant's seal. This test is about the trigger.
  const granted = env.sourceUrl('ev.vhd');
  const compute = new FakeCompute(granted);
  useSnapshotAccess(compute);
  await app.host.invokeEventGrid('diskEvents', snapshotEventGridSchema);
  await app.host.invokeEventGrid('diskEvents', snapshotEventGridSchema);
  await app.host.invokeEventGrid('diskEvents', snapshotCloudEvent);

  const instanceId = `backup-${snapshotBackupId(SNAPSHOT_ID)}`;
  const status = await app.runtime.getStatus(instanceId);
  expect(status?.name).toBe('backupDiskOrchestrator');
  // The disk the snapshot is of rides with the grant (under its seal): the next snapshot of vm1-osdisk finds this backup as its base.
  expect(status?.input).toMatchObject({ source: { grantedBy: 'compute', managedDisk: { sourceUniqueId: '5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b', armDiskId: DISK_ID, snapshotResourceId: SNAPSHOT_ID } } });
  expect(compute.grants).toEqual([{ subscriptionId: SUB, resourceGroup: 'vm-rg', snapshotName: 'vm1-osdisk-nightly' }]);
  expect((await app.runtime.listInstances({ prefix: 'backup-' })).filter((s) => !s.instanceId.includes(':')).map((s) => s.instanceId)).toEqual([instanceId]);
  expect(logs.some((l) => l.includes('already'))).toBe(true);
  expect(logs.join('\n')).not.toContain(new URL(granted).searchParams.get('sig')!);
  await app.runtime.terminate(instanceId, 'test done');
});

test('a page blob created in a watched container (both schemas) starts one settle run for that event state, before any backup', async () => {
  const client = env.sourceClient('ev.vhd');
  const etag = (await client.getProperties()).etag!.replace(/"/g, '');
  const url = `${env.az.accounts.src.endpoint}/disks/ev.vhd`;
  await app.host.invokeEventGrid('diskEvents', blobCreated('EventGrid', 'src', url, etag));
  await app.host.invokeEventGrid('diskEvents', blobCreated('CloudEvents', 'src', url, etag));

  // Both deliveries name the same blob state: one settle instance; no backup until the blob settles
  // (test/events.settle.test.ts follows it to the backup).
  const instanceId = settleInstanceId(url, `"${etag}"`);
  const status = await app.runtime.getStatus(instanceId);
  expect(status?.name).toBe('settleBlobOrchestrator');
  expect(status?.input).toMatchObject({ source: { url }, eventEtag: `"${etag}"`, settle: { quietPeriodMs: 300_000, attempt: 1 } });
  expect((await app.runtime.listInstances({ prefix: 'settle-' })).map((s) => s.instanceId)).toEqual([instanceId]);
  const backupId = await deriveBackupId({ url: env.sourceUrl('ev.vhd') }, 64 * KiB);
  expect(await app.runtime.getStatus(`backup-${backupId}`)).toBeUndefined();
  await app.runtime.terminate(instanceId, 'test done');
});

test('events of other types, block blobs and unwatched containers are ignored with a log line', async () => {
  logs.length = 0;
  const url = `${env.az.accounts.src.endpoint}/disks/ev.vhd`;
  const before = (await app.runtime.listInstances()).length;
  await app.host.invokeEventGrid('diskEvents', { ...blobCreated('EventGrid', 'src', url, '0x1'), eventType: 'Microsoft.Storage.BlobDeleted' });
  await app.host.invokeEventGrid('diskEvents', blobCreated('CloudEvents', 'src', url, '0x2', 'BlockBlob'));
  await app.host.invokeEventGrid('diskEvents', blobCreated('EventGrid', 'src', `${env.az.accounts.src.endpoint}/other/ev.vhd`, '0x3'));
  const vmWrite = { ...snapshotEventGridSchema, subject: `/subscriptions/${SUB}/resourceGroups/vm-rg/providers/Microsoft.Compute/virtualMachines/vm1` };
  await app.host.invokeEventGrid('diskEvents', { ...vmWrite, data: { ...vmWrite.data, resourceUri: vmWrite.subject, operationName: 'Microsoft.Compute/virtualMachines/write' } });
  expect((await app.runtime.listInstances()).length).toBe(before);
  expect(logs).toEqual([
    expect.stringMatching(/ignored: event type Microsoft\.Storage\.BlobDeleted is not handled/),
    expect.stringMatching(/ignored: blob type BlockBlob is not PageBlob/),
    expect.stringMatching(/ignored: container src\/other is not watched/),
    expect.stringMatching(/ignored: resource write of .*virtualMachines\/vm1 is not a Microsoft\.Compute\/snapshots resource/),
  ]);
  expect(classifyEvent({ specversion: '1.0', type: 'Some.Other', id: 'x' }, [])).toEqual({ kind: 'ignored', eventId: 'x', reason: 'event type Some.Other is not handled' });
});

test('scheduled backups start the policy disks due on the clock\'s weekday, once', async () => {
  const timer = findFunction('scheduledBackups', 'timerTrigger');
  expect(timer.trigger.schedule).toBe('%PAGEWISE_BACKUP_SCHEDULE%');
  const context = app.host.contextFor(timer);
  const client = df.getClient(context);
  const tuesday = new Date('2024-05-07T02:00:00Z');
  const monday = new Date('2024-05-06T02:00:00Z');
  const monId = await deriveBackupId({ url: env.sourceUrl('mon.vhd') }, 64 * KiB);
  const dailyId = await deriveBackupId({ url: env.sourceUrl('daily.vhd') }, 64 * KiB);

  const tue = await runScheduledBackups(client, context, tuesday);
  expect(tue).toMatchObject({ due: 2, started: [dailyId], skipped: [] });
  expect(tue.failed).toEqual(['https://elsewhere.blob.core.windows.net/vhds/x.vhd']); // not an allowed account

  const mon = await runScheduledBackups(client, context, monday);
  expect(mon).toMatchObject({ due: 3, started: [monId], skipped: [dailyId] });
  // fullOn: Mon — Monday's run of mon.vhd is a forced full backup; daily.vhd's runs are left to the plan.
  expect((await app.runtime.getStatus(`backup-${monId}`))?.input).toMatchObject({ settings: { full: true } });
  expect((await app.runtime.getStatus(`backup-${dailyId}`))?.input).not.toHaveProperty('settings.full');

  for (const id of [monId, dailyId]) {
    expect((await app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 30_000 })).runtimeStatus).toBe('Completed');
  }
  // The registered timer function runs end to end too (today's weekday; nothing new to start).
  await app.host.invokeTimer('scheduledBackups');
  expect(logs.some((l) => /scheduled backups at .*: \d due, 0 started/.test(l))).toBe(true);
});

/**
 * Compute over Azurite for the managed-disk path: each snapshot resource is a Copy Blob of the disk in
 * its own container (as each Compute grant hands out its own md-… container), sharing the disk's extents
 * as a managed-disk snapshot shares the disk's history; the patched emulator diffs one against another
 * through x-ms-previous-snapshot-url (docs/AZURITE.md). Counts every grant and revoke.
 */
class BlobCompute implements SnapshotAccess {
  grants: string[] = [];
  revokes: string[] = [];
  refusing = new Set<string>();
  /** What diskOf says of the disk's unique ID (a malformed one fails the plan). */
  uniqueIdSaid?: string;
  private readonly containers = new Map<string, string>();
  constructor(private readonly disk: string, private readonly uniqueId: string) {}

  static idOf(name: string): string {
    return `/subscriptions/${SUB}/resourceGroups/vm-rg/providers/Microsoft.Compute/snapshots/${name}`;
  }

  /** Takes "snapshot resource" `name` of the disk: a Copy Blob into a container of its own. */
  async take(name: string): Promise<{ id: string; url: string }> {
    const container = `md-${name}`;
    await env.az.accounts.src.service.getContainerClient(container).create();
    const copy = env.az.accounts.src.service.getContainerClient(container).getPageBlobClient('abcd');
    await (await copy.beginCopyFromURL(env.sourceUrl(this.disk))).pollUntilDone();
    this.containers.set(name, container);
    return { id: BlobCompute.idOf(name), url: this.urlOf(name) };
  }

  /** Deletes snapshot resource `name` (its blob). */
  async drop(name: string): Promise<void> {
    await env.az.accounts.src.service.getContainerClient(this.containers.get(name)!).getPageBlobClient('abcd').delete();
  }

  private urlOf(name: string): string {
    return env.az.sasUrl('src', this.containers.get(name)!, 'abcd', { permissions: 'r' });
  }

  async grantRead(snapshot: SnapshotRef): Promise<string> {
    if (!(await this.exists(snapshot)) || this.refusing.has(snapshot.snapshotName)) throw new Error(`Compute refused the grant of ${snapshot.snapshotName} (AuthorizationFailed)`);
    this.grants.push(snapshot.snapshotName);
    return this.urlOf(snapshot.snapshotName);
  }

  async revokeRead(snapshot: SnapshotRef): Promise<void> {
    this.revokes.push(snapshot.snapshotName);
  }

  async exists(snapshot: SnapshotRef): Promise<boolean> {
    const container = this.containers.get(snapshot.snapshotName);
    return container !== undefined && env.az.accounts.src.service.getContainerClient(container).getPageBlobClient('abcd').exists();
  }

  async diskOf(snapshot: SnapshotRef): Promise<{ sourceUniqueId: string; armDiskId: string; snapshotResourceId: string }> {
    return { sourceUniqueId: this.uniqueIdSaid ?? this.uniqueId, armDiskId: `/subscriptions/${SUB}/resourceGroups/vm-rg/providers/Microsoft.Compute/disks/vm2-datadisk`, snapshotResourceId: BlobCompute.idOf(snapshot.snapshotName) };
  }
}

function snapshotWritten(resourceId: string, id: string) {
  return { ...snapshotEventGridSchema, subject: resourceId, id, data: { ...snapshotEventGridSchema.data, resourceUri: resourceId, authorization: { ...snapshotEventGridSchema.data.authorization, scope: resourceId } } };
}

test('managed-disk snapshots: the first is full, the next of the same disk incremental against the first snapshot resource (its grant revoked), a gone base full; every grant revoked', async () => {
  const disk = await env.makeDisk('vm2.vhd', 8 * MiB, [{ offset: 0, length: 256 * KiB, kind: 'random', seed: 21 }]);
  const compute = new BlobCompute('vm2.vhd', '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
  useSnapshotAccess(compute);
  const diskClient = env.az.accounts.src.service.getContainerClient('disks').getPageBlobClient('vm2.vhd');
  const run = async (name: string) => {
    const { id, url } = await compute.take(name);
    await app.host.invokeEventGrid('diskEvents', snapshotWritten(id, `ev-${name}`));
    const done = await app.runtime.waitForCompletion(`backup-${snapshotBackupId(id)}`, { timeoutInMs: 60_000 });
    expect(done.runtimeStatus).toBe('Completed');
    return { result: (done.output as BackupOrchestrationOutput).result, url };
  };

  const first = await run('vm2-s1');
  expect(first.result).toMatchObject({ kind: 'full', reason: 'no-base', base: null, bytesRead: disk.regions.reduce((n, r) => n + r.length, 0) });

  // One page rewritten inside the data, one written where there was none: two 64 KiB pages changed.
  await diskClient.uploadPages(randomBytes(64 * KiB), 64 * KiB, 64 * KiB);
  await diskClient.uploadPages(randomBytes(64 * KiB), 6 * MiB, 64 * KiB);
  const second = await run('vm2-s2');
  expect(second.result).toMatchObject({ kind: 'incremental', reason: null, base: { backupId: first.result.backupId, snapshot: BlobCompute.idOf('vm2-s1') }, bytesRead: 128 * KiB, bytesChanged: 128 * KiB });
  expect(compute.grants).toEqual(['vm2-s1', 'vm2-s2', 'vm2-s1']); // the second plan granted its base, and revoked it
  const vault = Vault.open(env.vault);
  const manifest = (await findManifest2(vault, await openVaultKeyring(vault, env.userKey), second.result.backupId))!.manifest;
  expect(manifest.disk).toMatchObject({ identity: 'azure-disk:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d', kind: 'managed-disk' });
  expect(manifest.source.snapshotResourceId).toBe(BlobCompute.idOf('vm2-s2'));
  await restoreBackup({ backupId: second.result.backupId, vault: env.vault, userKey: env.userKey, target: { url: env.targetUrl('vm2-s2-restored.vhd') } });
  expect(await env.blobSha256(env.targetUrl('vm2-s2-restored.vhd'))).toBe(await env.blobSha256(second.url));

  // Both earlier snapshot resources deleted: no base left; the newest one's reason.
  await compute.drop('vm2-s2');
  await compute.drop('vm2-s1');
  await diskClient.uploadPages(randomBytes(64 * KiB), 0, 64 * KiB);
  const third = await run('vm2-s3');
  expect(third.result).toMatchObject({ kind: 'full', reason: 'base-snapshot-gone', base: null });

  // A base that exists but whose grant Compute refuses: full, base-snapshot-gone, the reason in the status.
  compute.refusing.add('vm2-s3');
  const fourth = await run('vm2-s4');
  expect(fourth.result).toMatchObject({ kind: 'full', reason: 'base-snapshot-gone', base: null });
  expect((await app.runtime.getStatus(`backup-${snapshotBackupId(BlobCompute.idOf('vm2-s4'))}`))?.customStatus).toMatchObject({
    phase: 'done',
    reason: 'base-snapshot-gone',
    reasonText: `Compute granted no read access to the base snapshot ${BlobCompute.idOf('vm2-s3')} (Compute refused the grant of vm2-s3 (AuthorizationFailed))`,
  });

  expect(compute.grants).toEqual(['vm2-s1', 'vm2-s2', 'vm2-s1', 'vm2-s3', 'vm2-s4']);
  expect([...compute.revokes].sort()).toEqual([...compute.grants].sort());
  expect(logs.join('\n')).not.toMatch(/sig=/);
}, 120_000);

test('a managed-disk backup that fails ends its snapshot grant too', async () => {
  await env.makeDisk('vm3.vhd', 4 * MiB, [{ offset: 0, length: 64 * KiB, kind: 'random', seed: 22 }]);
  const compute = new BlobCompute('vm3.vhd', '1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
  compute.uniqueIdSaid = 'not-a-guid'; // the plan refuses to name the disk: BadInput, a permanent failure
  useSnapshotAccess(compute);
  const { id } = await compute.take('vm3-s1');
  await app.host.invokeEventGrid('diskEvents', snapshotWritten(id, 'ev-vm3-s1'));
  const done = await app.runtime.waitForCompletion(`backup-${snapshotBackupId(id)}`, { timeoutInMs: 60_000 });
  expect(done.runtimeStatus).toBe('Failed');
  expect(String(done.output)).toContain("creationData.sourceUniqueId (a GUID) is not of the expected form");
  expect(compute.grants).toEqual(['vm3-s1']);
  expect(compute.revokes).toEqual(['vm3-s1']);
}, 60_000);

test('the base access over Compute: none without exists; an ARM ID not of a snapshot is no base and never reaches Compute', async () => {
  const noExists = { grantRead: async () => 'x' };
  expect(managedSnapshotAccess(noExists)).toBeUndefined();
  const compute = new BlobCompute('vm2.vhd', '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
  const access = managedSnapshotAccess(compute)!;
  const bad = `/subscriptions/${SUB}/resourceGroups/vm-rg/providers/Microsoft.Compute/disks/../snapshots/x`;
  expect(await access.exists(bad)).toBe(false);
  await expect(access.grantRead(bad)).rejects.toThrow('is not the ARM ID of a managed-disk snapshot');
  expect(compute.grants).toEqual([]);
});
