/**
 * The restore fan-out to a new managed disk (#17 follow-up) through the local runtime's real durable replay
 * and the loopback Compute stand-in: plan (Upload disk, write grant) → 4 windows through the sealed grant →
 * finalize (VHD footer, revoke); an existing name refused before anything is created; a failure mid-way revokes.
 */
import { backupDisk, openBackupSource, parseVhdFooter } from '../core';
import { Orchestrators, RestoreOrchestrationOutput } from '../orchestrations/contracts';
import { HistoryEventType } from '../runtime/durable/history';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { ComputeStandIn, startComputeStandIn } from './harness/compute-standin';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { createHash } from 'node:crypto';
import { jsonRequest } from './harness/http-request';

let env: TestEnv;
let standin: ComputeStandIn;
let app: LocalApp;
let backupId: string;
let diskSha: string;
const WINDOW = 5 * MiB; // 20 MiB (Azure's smallest upload disk): 4 windows
const SIZE = 20 * MiB;
const RG = 'rg-restored';

beforeAll(async () => {
  env = await startEnv();
  standin = await startComputeStandIn(env.az);
  // Data in every window, holes between, a short run at the very end (just before the footer).
  const disk = await env.makeDisk('md.vhd', SIZE, [
    { offset: 0, length: 96 * KiB, kind: 'text', seed: 1 },
    { offset: 6 * MiB, length: 200 * KiB, kind: 'random', seed: 2 },
    { offset: 13 * MiB, length: 60 * KiB, kind: 'text', seed: 3 },
    { offset: SIZE - 8 * KiB, length: 8 * KiB, kind: 'random', seed: 4 },
  ]);
  diskSha = disk.sha256;
  backupId = (await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 64 * KiB, cacheBytes: 256 * KiB })).backupId;
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: {
      ...env.appSettings({ PAGEWISE_RESTORE_WINDOW_BYTES: String(WINDOW) }),
      PAGEWISE_ARM_ENDPOINT: standin.endpoint,
      PAGEWISE_ARM_TOKEN: standin.token,
      PAGEWISE_ARM_POLL_MS: '20',
    },
  });
});

afterAll(async () => {
  await app?.stop();
  await standin?.stop();
  await env?.stop();
});

const target = (name: string) => ({ subscriptionId: standin.subscriptionId, resourceGroup: RG, name, location: 'westeurope' });
const diskIdOf = (name: string) => `/subscriptions/${standin.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Compute/disks/${name}`;
const diskResource = (name: string) => standin.resources('disks').find((r) => r.id.toLowerCase() === diskIdOf(name).toLowerCase());

async function restore(instanceId: string, name: string) {
  await app.runtime.startNew(Orchestrators.restoreManagedDisk, { instanceId, input: { backupId, managedDisk: target(name) } });
  return app.runtime.waitForCompletion(instanceId, { timeoutInMs: 60_000 });
}

test('a backup restores to a new managed disk in 4 windows: its bytes, a valid footer, the grant revoked, no SAS in history', async () => {
  const instanceId = 'restore-md-ok';
  const status = await restore(instanceId, 'md-ok');
  expect([status.runtimeStatus, typeof status.output === 'string' ? status.output : '']).toEqual(['Completed', '']);
  const reader = await openBackupSource(env.vault, backupId, env.userKey);
  expect(status.output as RestoreOrchestrationOutput).toMatchObject({ backupId, target: diskIdOf('md-ok'), diskBytes: SIZE, windows: 4, pagesWritten: reader.entryCount });
  const bytes = await standin.diskBlob(diskIdOf('md-ok')).downloadToBuffer();
  expect(bytes.length).toBe(SIZE + 512);
  expect(createHash('sha256').update(bytes.subarray(0, SIZE)).digest('hex')).toBe(diskSha);
  expect(parseVhdFooter(bytes.subarray(SIZE))).toMatchObject({ diskType: 'fixed', currentSize: SIZE, creatorApplication: 'pgws' });
  const resource = diskResource('md-ok')!;
  expect(resource.tags).toEqual({ pagewise: 'restored', 'pagewise-restore': instanceId });
  expect(resource.properties).toMatchObject({ creationData: { createOption: 'Upload', uploadSizeBytes: SIZE + 512 } });
  expect(resource.standIn).toMatchObject({ vhdFooter: 'valid' });
  expect(standin.activeGrants()).toEqual([]);
  expect(standin.calls().filter((c) => c.op === 'disks.grantAccess')).toHaveLength(1); // one grant, sealed to the windows
  const root = (await app.runtime.getStatus(instanceId, { showHistory: true }))!;
  const range = (await app.runtime.getStatus(`${instanceId}:r0+4`, { showHistory: true }))!;
  const scheduled = (h: unknown) => ((h as { history: Array<{ EventType: HistoryEventType; Name?: string }> }).history).filter((e) => e.EventType === HistoryEventType.TaskScheduled).map((e) => e.Name);
  expect(scheduled(root)).toEqual(['planManagedDiskRestore', 'finalizeManagedDiskRestore', 'reportOperation']); // #18: the end's telemetry
  expect(scheduled(range)).toEqual(Array(4).fill('restoreWindow'));
  expect(JSON.stringify([root, range])).not.toMatch(/sig=|se=20/);
});

test('an existing disk name is refused before anything is created or granted', async () => {
  const before = standin.calls().length;
  const creates = () => standin.calls().filter((c) => c.op === 'disks.createOrUpdate' || c.op === 'disks.grantAccess').length;
  const made = creates();
  const status = await restore('restore-md-exists', 'md-ok');
  expect(status.runtimeStatus).toBe('Failed');
  expect(JSON.stringify(status.output)).toMatch(/md-ok already exists in rg-restored/);
  expect(creates()).toBe(made);
  expect(standin.calls().length).toBeGreaterThan(before); // it looked
  expect(diskResource('md-ok')!.tags).toEqual({ pagewise: 'restored', 'pagewise-restore': 'restore-md-ok' });
});

test('POST /api/restores with a managedDisk: started (202) and restored; bad names 400, an existing disk 409, target beside it 400', async () => {
  const post = (body: unknown) => app.host.invokeHttp('startRestore', jsonRequest('POST', '/api/restores', body));
  const bad = await post({ backupId, managedDisk: { ...target('bad name!'), name: 'bad name!' } });
  expect(bad.status).toBe(400);
  const traversal = await post({ backupId, managedDisk: { ...target('x'), resourceGroup: '../rg' } });
  expect(traversal.status).toBe(400);
  expect((await post({ backupId, managedDisk: { ...target('x'), extra: 1 } })).status).toBe(400);
  expect((await post({ backupId, managedDisk: target('x'), target: { url: env.targetUrl('x.vhd') } })).status).toBe(400);
  const exists = await post({ backupId, managedDisk: target('md-ok') });
  expect(exists.status).toBe(409);
  const started = await post({ backupId, managedDisk: target('md-http') });
  expect(started.status).toBe(202);
  const { id } = (await started.json()) as { id: string };
  const status = await app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 });
  expect(status.runtimeStatus).toBe('Completed');
  expect(diskResource('md-http')).toMatchObject({ standIn: { vhdFooter: 'valid' } });
  expect(standin.activeGrants()).toEqual([]);
});

test('a window failing mid-way abandons: the grant revoked, the incomplete disk left and named, nothing else made', async () => {
  // The backup's data gone from the vault after the plan could read its facts: every window fails.
  const vault = env.az.accounts.vault.service.getContainerClient('vault');
  const revokes = () => standin.calls().filter((c) => c.op === 'disks.revokeAccess').length;
  const revoked = revokes();
  const packs: string[] = [];
  for await (const b of vault.listBlobsFlat()) if (/^(packs\/|backups\/[^/]+\/segments\/)/.test(b.name)) packs.push(b.name);
  expect(packs.length).toBeGreaterThan(0);
  for (const name of packs) await vault.deleteBlob(name);
  const status = await restore('restore-md-fails', 'md-fails');
  expect(status.runtimeStatus).toBe('Failed');
  expect(standin.activeGrants()).toEqual([]);
  expect(revokes()).toBeGreaterThan(revoked);
  const root = (await app.runtime.getStatus('restore-md-fails', { showHistory: true }))! as unknown as { history: Array<{ EventType: HistoryEventType; Name?: string }> };
  expect(root.history.filter((e) => e.EventType === HistoryEventType.TaskScheduled).map((e) => e.Name)).toEqual(['planManagedDiskRestore', 'abandonManagedDiskRestore', 'reportOperation']);
  // Left for the operator (never deleted), tagged with the operation, its upload ended without a footer.
  expect(diskResource('md-fails')).toMatchObject({ tags: { pagewise: 'restored', 'pagewise-restore': 'restore-md-fails' }, standIn: { vhdFooter: 'missing' } });
});
