/**
 * The loopback Compute stand-in (a test fixture) through the real @azure/arm-compute client over TLS:
 * VMs, snapshots, restore points and disk restore points with LRO polling, real bytes behind each SAS.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import type { ComputeManagementClient } from '@azure/arm-compute';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { armContext } from '../core/vm/arm-context';
import { startComputeStandIn, ComputeStandIn } from './harness/compute-standin';

const MiB = 1024 * 1024;
const RG = 'rg-app';
const FAST = { updateIntervalInMs: 10 };

let az: AzuriteInstance;
let standIn: ComputeStandIn;
let client: ComputeManagementClient;

beforeAll(async () => {
  az = await startAzurite({ accounts: ['src'] });
  standIn = await startComputeStandIn(az);
  client = await armContext({ endpoint: standIn.endpoint, credential: standIn.credential }).compute(standIn.subscriptionId);
});
afterAll(async () => {
  await standIn?.stop();
  await az?.stop();
});

const pattern = (byte: number, bytes: number): Buffer => Buffer.alloc(bytes, byte);
const read = (sas: string, offset: number, count: number): Promise<Buffer> =>
  new PageBlobClient(sas, new AnonymousCredential()).downloadToBuffer(offset, count);

test('a VM and its disks read back as Compute shows them', async () => {
  const { vmId, disks } = await standIn.addVm({ resourceGroup: RG, name: 'vm-get', osDiskBytes: 4 * MiB, dataDisks: [{ lun: 0, bytes: 2 * MiB, sku: 'PremiumV2_LRS' }], tags: { env: 'prod' }, zone: '2', securityType: 'TrustedLaunch' });
  const vm = await client.virtualMachines.get(RG, 'vm-get');
  expect(vm.id).toBe(vmId);
  expect(vm.tags).toEqual({ env: 'prod' });
  expect(vm.zones).toEqual(['2']);
  expect(vm.storageProfile?.osDisk?.managedDisk?.id).toBe(disks[0].diskId);
  expect(vm.storageProfile?.dataDisks?.map((d) => [d.lun, d.managedDisk?.id])).toEqual([[0, disks[1].diskId]]);
  expect(vm.securityProfile?.securityType).toBe('TrustedLaunch');
  expect(vm.networkProfile?.networkInterfaces?.length).toBe(1);
  const data = await client.disks.get(RG, 'vm-get-data0');
  expect([data.diskSizeBytes, data.sku?.name, data.diskState, data.managedBy]).toEqual([2 * MiB, 'PremiumV2_LRS', 'Attached', vmId]);
  const listed: string[] = [];
  for await (const v of client.virtualMachines.list(RG)) listed.push(v.id!);
  expect(listed).toContain(vmId);
});

test('an incremental snapshot: created (LRO), granted (a SAS of its bytes), revoked, deleted; a delete under a grant is 409', async () => {
  const { disks } = await standIn.addVm({ resourceGroup: RG, name: 'vm-snap', osDiskBytes: 4 * MiB });
  await disks[0].blob.uploadPages(pattern(0xa1, 512), 0, 512);
  const snap = await client.snapshots.createOrUpdate(RG, 'snap1', { location: 'westeurope', incremental: true, creationData: { createOption: 'Copy', sourceResourceId: disks[0].diskId }, tags: { pagewise: 'taken' } }, FAST);
  expect([snap.incremental, snap.creationData?.sourceResourceId, snap.provisioningState, snap.diskSizeBytes]).toEqual([true, disks[0].diskId, 'Succeeded', 4 * MiB]);
  await disks[0].blob.uploadPages(pattern(0xb2, 512), 0, 512); // the disk moves on; the snapshot keeps its bytes
  const { accessSAS } = await client.snapshots.grantAccess(RG, 'snap1', { access: 'Read', durationInSeconds: 600 }, FAST);
  expect(standIn.activeGrants()).toEqual([snap.id]);
  expect((await read(accessSAS!, 0, 512))[0]).toBe(0xa1);
  await expect(client.snapshots.delete(RG, 'snap1', FAST)).rejects.toMatchObject({ statusCode: 409, code: 'OperationNotAllowed' });
  await client.snapshots.revokeAccess(RG, 'snap1', FAST);
  expect(standIn.activeGrants()).toEqual([]);
  await client.snapshots.delete(RG, 'snap1', FAST);
  await expect(client.snapshots.get(RG, 'snap1')).rejects.toMatchObject({ statusCode: 404, code: 'ResourceNotFound' });
  await client.snapshots.delete(RG, 'snap1', FAST); // gone: 204
  const polls = standIn.calls().filter((c) => c.op === 'operations.poll');
  expect(polls.length).toBeGreaterThanOrEqual(8); // 4 LROs × (InProgress, Succeeded) at least
});

test('a restore point: consistency obtained, one disk restore point per disk, granted and revoked', async () => {
  const { vmId, disks } = await standIn.addVm({ resourceGroup: RG, name: 'vm-rp', osDiskBytes: 2 * MiB, dataDisks: [{ lun: 3, bytes: 2 * MiB }], consistency: 'FileSystemConsistent' });
  await disks[1].blob.uploadPages(pattern(0xc3, 1024), MiB, 1024);
  await client.restorePointCollections.createOrUpdate(RG, 'rpc-vm-rp', { location: 'westeurope', source: { id: vmId }, tags: { pagewise: 'taken' } });
  const rp = await client.restorePoints.create(RG, 'rpc-vm-rp', 'rp1', { consistencyMode: 'ApplicationConsistent' }, FAST);
  expect(rp.consistencyMode).toBe('FileSystemConsistent');
  const os = rp.sourceMetadata!.storageProfile!.osDisk!;
  const data = rp.sourceMetadata!.storageProfile!.dataDisks!;
  expect(os.managedDisk?.id).toBe(disks[0].diskId);
  expect(data.map((d) => [d.lun, d.managedDisk?.id])).toEqual([[3, disks[1].diskId]]);
  const drpId = data[0].diskRestorePoint!.id!;
  const drpName = drpId.split('/').pop()!;
  const drp = await client.diskRestorePoint.get(RG, 'rpc-vm-rp', 'rp1', drpName);
  expect([drp.sourceResourceId, drp.completionPercent]).toEqual([disks[1].diskId, 100]);
  await disks[1].blob.uploadPages(pattern(0xd4, 1024), MiB, 1024);
  const { accessSAS } = await client.diskRestorePoint.grantAccess(RG, 'rpc-vm-rp', 'rp1', drpName, { access: 'Read', durationInSeconds: 600 }, FAST);
  expect((await read(accessSAS!, MiB, 1024)).equals(pattern(0xc3, 1024))).toBe(true);
  expect(standIn.activeGrants()).toEqual([drpId]);
  await expect(client.restorePoints.delete(RG, 'rpc-vm-rp', 'rp1', FAST)).rejects.toMatchObject({ statusCode: 409 });
  await client.diskRestorePoint.revokeAccess(RG, 'rpc-vm-rp', 'rp1', drpName, FAST);
  expect(standIn.activeGrants()).toEqual([]);
  const rpc = await client.restorePointCollections.get(RG, 'rpc-vm-rp', { expand: 'restorePoints' });
  expect(rpc.restorePoints?.map((p) => p.id)).toEqual([rp.id]);
  await client.restorePoints.delete(RG, 'rpc-vm-rp', 'rp1', FAST);
  expect(standIn.resources('restorePoints')).toEqual([]);
});

test('errors: unsupported restore points 409, unknown resources 404, a wrong token 401, 429 retried after Retry-After', async () => {
  const { vmId } = await standIn.addVm({ resourceGroup: RG, name: 'vm-old', osDiskBytes: MiB, restorePoints: false });
  await client.restorePointCollections.createOrUpdate(RG, 'rpc-vm-old', { location: 'westeurope', source: { id: vmId } });
  await expect(client.restorePoints.create(RG, 'rpc-vm-old', 'rp1', {}, FAST)).rejects.toMatchObject({ statusCode: 409, code: 'OperationNotAllowed' });
  await expect(client.virtualMachines.get(RG, 'nope')).rejects.toMatchObject({ statusCode: 404, code: 'ResourceNotFound' });
  const stranger = await armContext({ endpoint: standIn.endpoint, credential: { getToken: async () => ({ token: 'wrong', expiresOnTimestamp: Date.now() + 3600_000 }) } }).compute(standIn.subscriptionId);
  await expect(stranger.virtualMachines.get(RG, 'vm-old')).rejects.toMatchObject({ statusCode: 401 });
  standIn.faults.throttle('virtualMachines.get', 2, 1);
  const before = standIn.calls().length;
  expect((await client.virtualMachines.get(RG, 'vm-old')).id).toBe(vmId);
  expect(standIn.calls().slice(before).map((c) => c.status)).toEqual([429, 429, 200]);
});

test('jest workers and spawned processes trust the stand-in through NODE_EXTRA_CA_CERTS', async () => {
  expect(process.env.NODE_EXTRA_CA_CERTS).toMatch(/pagewise-test-tls-.*cert\.pem$/);
  const script = `require('https').get(${JSON.stringify(`${standIn.endpoint}/subscriptions/x`)}, (r) => { console.log(r.statusCode); r.resume(); }).on('error', (e) => { console.log(e.code); });`;
  // Asynchronously: the stand-in answers from this process's event loop.
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  expect(stdout.trim()).toBe('401');
});

/** A fixed VHD footer (VHD spec: cookie, features, version, data offset, sizes, disk type 2, checksum) — the stand-in's own check. */
function vhdFooter(size: number): Buffer {
  const f = Buffer.alloc(512);
  f.write('conectix', 0, 'latin1');
  f.writeUInt32BE(2, 8);
  f.writeUInt32BE(0x00010000, 12);
  f.writeBigUInt64BE(0xffffffffffffffffn, 16);
  f.writeBigUInt64BE(BigInt(size), 40);
  f.writeBigUInt64BE(BigInt(size), 48);
  f.writeUInt32BE(2, 60);
  let sum = 0;
  for (const b of f) sum += b;
  f.writeUInt32BE(~sum >>> 0, 64);
  return f;
}

test('restore side: an Upload disk written through its write SAS, revoked with its footer checked, attached to a new VM', async () => {
  const target = { location: 'westeurope', sku: { name: 'Premium_LRS' }, osType: 'Linux' as const, creationData: { createOption: 'Upload' as const, uploadSizeBytes: 2 * MiB + 512 } };
  const disk = await client.disks.createOrUpdate(RG, 'restored-os', target, FAST);
  expect([disk.diskState, disk.creationData?.uploadSizeBytes]).toEqual(['ReadyToUpload', 2 * MiB + 512]);
  await expect(client.disks.createOrUpdate(RG, 'restored-os', target, FAST)).rejects.toMatchObject({ statusCode: 409, code: 'PropertyChangeNotAllowed' });
  await expect(client.disks.createOrUpdate(RG, 'restored-os', target, { ...FAST, requestOptions: { headers: { 'If-None-Match': '*' } } })).rejects.toMatchObject({ statusCode: 412 });
  const { accessSAS } = await client.disks.grantAccess(RG, 'restored-os', { access: 'Write', durationInSeconds: 3600 }, FAST);
  expect((await client.disks.get(RG, 'restored-os')).diskState).toBe('ActiveUpload');
  const blob = new PageBlobClient(accessSAS!, new AnonymousCredential());
  await blob.uploadPages(pattern(0xe5, 4096), 0, 4096);
  await blob.uploadPages(vhdFooter(2 * MiB), 2 * MiB, 512);
  await client.disks.revokeAccess(RG, 'restored-os', FAST);
  const done = await client.disks.get(RG, 'restored-os');
  expect([done.diskState, done.diskSizeBytes]).toEqual(['Unattached', 2 * MiB]);
  expect(standIn.resources('disks').find((d) => d.id === done.id)?.standIn?.vhdFooter).toBe('valid');
  expect((await standIn.diskBlob(done.id!).downloadToBuffer(0, 4096)).equals(pattern(0xe5, 4096))).toBe(true);

  // An upload ended without a footer: marked, and no VM attaches it.
  await client.disks.createOrUpdate(RG, 'restored-bad', target, FAST);
  await client.disks.grantAccess(RG, 'restored-bad', { access: 'Write', durationInSeconds: 3600 }, FAST);
  await client.disks.revokeAccess(RG, 'restored-bad', FAST);
  expect(standIn.resources('disks').find((d) => d.id.endsWith('/restored-bad'))?.standIn?.vhdFooter).toBe('missing');
  expect(standIn.activeGrants()).toEqual([]);

  const nic = `/subscriptions/${standIn.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/restored-nic`;
  const vmBody = (osDiskId: string, nicId: string) => ({
    location: 'westeurope', hardwareProfile: { vmSize: 'Standard_D2s_v5' as const }, tags: { restoredBy: 'pagewise' },
    storageProfile: { osDisk: { osType: 'Linux' as const, createOption: 'Attach' as const, managedDisk: { id: osDiskId } }, dataDisks: [] },
    networkProfile: { networkInterfaces: [{ id: nicId, primary: true }] },
  });
  await expect(client.virtualMachines.createOrUpdate(RG, 'vm-bad', vmBody(standIn.resources('disks').find((d) => d.id.endsWith('/restored-bad'))!.id, nic), FAST)).rejects.toMatchObject({ statusCode: 409 });
  const { vmId: otherVm } = await standIn.addVm({ resourceGroup: RG, name: 'vm-nic', osDiskBytes: MiB });
  const usedNic = (await client.virtualMachines.get(RG, 'vm-nic')).networkProfile!.networkInterfaces![0].id!;
  await expect(client.virtualMachines.createOrUpdate(RG, 'vm-restored', vmBody(done.id!, usedNic), FAST)).rejects.toMatchObject({ statusCode: 400, code: 'NicInUse' });
  expect(otherVm).toMatch(/vm-nic$/);
  const vm = await client.virtualMachines.createOrUpdate(RG, 'vm-restored', vmBody(done.id!, nic), FAST);
  expect([vm.provisioningState, vm.storageProfile?.osDisk?.managedDisk?.id, vm.tags]).toEqual(['Succeeded', done.id, { restoredBy: 'pagewise' }]);
  expect((await client.disks.get(RG, 'restored-os')).managedBy).toBe(vm.id);
  await expect(client.disks.delete(RG, 'restored-os', FAST)).rejects.toMatchObject({ statusCode: 409 });
});

test('Resource Graph answers the VM-by-tag query form only', async () => {
  const { ResourceGraphClient } = await import('@azure/arm-resourcegraph');
  const graph = new ResourceGraphClient(standIn.credential, { endpoint: standIn.endpoint, credentials: { scopes: [`${standIn.endpoint}/.default`] } });
  const a = await standIn.addVm({ resourceGroup: 'rg-tags', name: 'tag-a', osDiskBytes: MiB, tags: { backup: 'Daily' } });
  await standIn.addVm({ resourceGroup: 'rg-tags', name: 'tag-b', osDiskBytes: MiB, tags: { backup: 'weekly' } });
  const c = await standIn.addVm({ resourceGroup: 'rg-tags', name: 'tag-c', osDiskBytes: MiB, tags: { backup: 'daily', other: 'x' } });
  const query = "resources | where type =~ 'microsoft.compute/virtualmachines' | where tags['backup'] =~ 'daily' | project id";
  const res = await graph.resources({ subscriptions: [standIn.subscriptionId], query });
  expect((res.data as { id: string }[]).map((r) => r.id).sort()).toEqual([a.vmId, c.vmId].sort());
  expect(res.totalRecords).toBe(2);
  const elsewhere = await graph.resources({ subscriptions: ['11111111-1111-4111-8111-111111111111'], query });
  expect(elsewhere.data).toEqual([]);
  await expect(graph.resources({ subscriptions: [standIn.subscriptionId], query: 'resources | project id' })).rejects.toMatchObject({ statusCode: 400, code: 'InvalidQuery' });
});

test('faults and rules: an armed failure, a background copy not yet granted, a missing api-version', async () => {
  const { vmId: v2, disks } = await standIn.addVm({ resourceGroup: RG, name: 'vm-v2', osDiskBytes: MiB, osDiskSku: 'PremiumV2_LRS' });
  const body = { location: 'westeurope', incremental: true, creationData: { createOption: 'Copy' as const, sourceResourceId: disks[0].diskId } };
  standIn.faults.fail('snapshots.createOrUpdate', 1, 409, 'ConflictingUserInput');
  await expect(client.snapshots.createOrUpdate(RG, 'snap-v2', body, FAST)).rejects.toMatchObject({ statusCode: 409, code: 'ConflictingUserInput' });
  const snap = await client.snapshots.createOrUpdate(RG, 'snap-v2', body, FAST); // the final GET of the LRO looked once: 50 %
  expect(snap.completionPercent).toBe(50);
  await expect(client.snapshots.grantAccess(RG, 'snap-v2', { access: 'Read', durationInSeconds: 60 }, FAST)).rejects.toMatchObject({ statusCode: 409, code: 'OperationNotAllowed' });
  expect((await client.snapshots.get(RG, 'snap-v2')).completionPercent).toBe(100);
  const { accessSAS } = await client.snapshots.grantAccess(RG, 'snap-v2', { access: 'Read', durationInSeconds: 60 }, FAST);
  expect(accessSAS).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/src\/managed\/.*&snapshot=/);
  await client.snapshots.revokeAccess(RG, 'snap-v2', FAST);

  // A restore point of a Premium SSD v2 disk: its disk restore point copies in the background too (instanceView shows it).
  await client.restorePointCollections.createOrUpdate(RG, 'rpc-vm-v2', { location: 'westeurope', source: { id: v2 } });
  const rp = await client.restorePoints.create(RG, 'rpc-vm-v2', 'rp1', { consistencyMode: 'CrashConsistent' }, FAST);
  const drpName = rp.sourceMetadata!.storageProfile!.osDisk!.diskRestorePoint!.id!.split('/').pop()!;
  await expect(client.diskRestorePoint.grantAccess(RG, 'rpc-vm-v2', 'rp1', drpName, { access: 'Read', durationInSeconds: 60 }, FAST)).rejects.toMatchObject({ statusCode: 409 });
  const views = [];
  for (let i = 0; i < 2; i++) views.push((await client.restorePoints.get(RG, 'rpc-vm-v2', 'rp1', { expand: 'instanceView' })).instanceView?.diskRestorePoints?.[0].replicationStatus?.completionPercent);
  expect(views).toEqual([50, 100]);
  await client.diskRestorePoint.grantAccess(RG, 'rpc-vm-v2', 'rp1', drpName, { access: 'Read', durationInSeconds: 60 }, FAST);
  await client.diskRestorePoint.revokeAccess(RG, 'rpc-vm-v2', 'rp1', drpName, FAST);
  await client.restorePointCollections.delete(RG, 'rpc-vm-v2', FAST);
  expect(standIn.resources('restorePoints').filter((p) => p.id.includes('rpc-vm-v2'))).toEqual([]);

  const raw = await fetchStatus(`${standIn.endpoint}/subscriptions/${standIn.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/vm-v2`, standIn.token);
  expect(raw).toEqual({ status: 400, code: 'MissingApiVersionParameter' });
});

/** A GET with the bearer token but no api-version (the SDK always sends one). */
async function fetchStatus(url: string, token: string): Promise<{ status: number; code: string }> {
  const https = await import('node:https');
  return new Promise((resolve, reject) => {
    https.get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, code: JSON.parse(text).error.code }));
    }).on('error', reject);
  });
}
