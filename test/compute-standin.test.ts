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
