/**
 * Restore to Azure (#16): the fixed VHD footer (checked against qemu-img, an independent VHD reader), a
 * disk backup to a new managed disk and a VM backup to new disks and a new VM — through the real
 * ArmVmCompute (@azure/arm-compute) over the loopback Compute stand-in and a real Azurite.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PageBlobClient } from '@azure/storage-blob';
import { captureIO, run } from '../cli/main';
import {
  armContext,
  ArmVmCompute,
  backupDisk,
  backupVm,
  encodeKeyFile,
  parseVhdFooter,
  restoreBackupToManagedDisk,
  restoreVm,
  StorageLocation,
  vhdFooter,
  vhdGeometry,
  vmBackupIdFor,
  VmManifest,
  writeVmManifest,
} from '../core';
import { ensureTools } from '../testkit/debian-tools';
import { startComputeStandIn, ComputeStandIn } from './harness/compute-standin';
import { startEnv, TestEnv } from './harness/env';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('the fixed VHD footer', () => {
  let tmp: string;
  let qemuImg: string;
  beforeAll(async () => {
    qemuImg = ensureTools(['qemu-img'])['qemu-img'];
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-vhd-'));
  });
  afterAll(() => fs.rm(tmp, { recursive: true, force: true }));

  const qemuInfo = (args: string[]) => JSON.parse(execFileSync(qemuImg, ['info', '--output=json', ...args], { stdio: 'pipe' }).toString()) as Record<string, unknown>;

  test('what vhdFooter writes, parseVhdFooter reads back, and qemu-img opens it as a fixed VHD of that size', async () => {
    const size = 21 * MiB;
    const at = new Date('2026-12-01T10:00:00Z');
    const footer = vhdFooter(size, '12345678-9abc-def0-1234-56789abcdef0', at);
    expect(footer.length).toBe(512);
    expect(footer.toString('latin1', 0, 8)).toBe('conectix');
    expect(footer.readBigUInt64BE(16)).toBe(0xffffffffffffffffn); // no dynamic header
    expect(footer.readUInt32BE(60)).toBe(2); // fixed
    expect(parseVhdFooter(footer)).toEqual({
      features: 2,
      version: 0x00010000,
      timestamp: at,
      creatorApplication: 'pgws',
      originalSize: size,
      currentSize: size,
      geometry: { cylinders: 632, heads: 4, sectorsPerTrack: 17 },
      diskType: 'fixed',
      uniqueId: '12345678-9abc-def0-1234-56789abcdef0',
      savedState: false,
    });
    const file = path.join(tmp, 'ours.vhd');
    const handle = await fs.open(file, 'w');
    await handle.write(footer, 0, 512, size);
    await handle.close();
    // qemu checks the checksum on open; sized by its geometry (CHS) unless told to trust current_size.
    expect(qemuInfo(['-f', 'vpc', file])).toMatchObject({ format: 'vpc', 'virtual-size': 632 * 4 * 17 * 512 });
    expect(qemuInfo(['--image-opts', `driver=vpc,force_size_calc=current_size,file.filename=${file}`])).toMatchObject({ 'virtual-size': size });
    // A new footer gets a new unique ID.
    expect(parseVhdFooter(vhdFooter(size)).uniqueId).not.toBe(parseVhdFooter(vhdFooter(size)).uniqueId);
  });

  test("the CHS geometry is the VHD specification's, as qemu-img computes it, from 21 MiB to past the CHS limit", async () => {
    const checked: string[] = [];
    for (const size of ['21M', '1G', '40G', '127G', '1T']) {
      const file = path.join(tmp, `qemu-${size}.vhd`);
      execFileSync(qemuImg, ['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', file, size], { stdio: 'pipe' }); // sparse
      const { size: fileBytes } = await fs.stat(file);
      const handle = await fs.open(file, 'r');
      const tail = Buffer.alloc(512);
      await handle.read(tail, 0, 512, fileBytes - 512);
      await handle.close();
      await fs.rm(file);
      const theirs = parseVhdFooter(tail, `qemu's ${size} footer`); // a third party's footer passes our checks
      expect(theirs).toMatchObject({ diskType: 'fixed', currentSize: fileBytes - 512 });
      expect(vhdGeometry(theirs.currentSize / 512)).toEqual(theirs.geometry);
      checked.push(`${size}:${theirs.geometry.cylinders}/${theirs.geometry.heads}/${theirs.geometry.sectorsPerTrack}`);
    }
    expect(checked).toEqual(['21M:633/4/17', '1G:2081/16/63', '40G:20561/16/255', '127G:65279/16/255', '1T:65535/16/255']);
  });

  test('a damaged or foreign footer is refused with what is wrong; a size that is no VHD is refused', () => {
    const good = vhdFooter(32 * MiB);
    const damaged = (at: number, value: number) => {
      const copy = Buffer.from(good);
      copy[at] = value;
      return copy;
    };
    const reject = (buf: Buffer, message: RegExp) => expect(() => parseVhdFooter(buf, 'the footer of disk d1')).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(message) }));
    reject(good.subarray(0, 511), /the footer of disk d1 is not a valid VHD footer: it is 511 bytes/);
    reject(damaged(0, 0x43), /no "conectix" cookie/);
    reject(damaged(100, 1), /checksum [0-9a-f]+ does not match/);
    const withChecksum = (mutate: (b: Buffer) => void) => {
      const copy = Buffer.from(good);
      mutate(copy);
      copy.writeUInt32BE(0, 64);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += copy[i];
      copy.writeUInt32BE(~sum >>> 0, 64);
      return copy;
    };
    reject(withChecksum((b) => b.writeUInt32BE(5, 60)), /disk type 5/);
    reject(withChecksum((b) => b.writeBigUInt64BE(512n, 16)), /a fixed disk with a data offset/);
    reject(withChecksum((b) => b.writeBigUInt64BE(1000n, 48)), /the current size 1000 is not a positive multiple of 512/);
    reject(withChecksum((b) => b.writeUInt32BE(0x00020000, 12)), /format version 20000 is not 1\.x/);
    expect(parseVhdFooter(withChecksum((b) => b.writeUInt32BE(3, 60))).diskType).toBe('dynamic');
    for (const size of [0, 1000, -512, 2 ** 53]) expect(() => vhdFooter(size)).toThrow(expect.objectContaining({ code: 'BadInput' }));
    expect(() => vhdFooter(GiB, 'not-a-guid')).toThrow(/is not a GUID/);
  });
});

/** Random bytes of a region (sector-aligned, never a zero sector: each is all written). */
function regionData(length: number, seed: number): Buffer {
  const buf = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE((x | 1) >>> 0, i);
  }
  return buf;
}

const PAGE = 64 * 1024;
const SETTINGS = { pageSize: PAGE, cacheBytes: 4 * PAGE };
const RG = 'rg-restore';
/** Written regions of each disk: [offset, length]; the rest stays a hole. Their sum is what a restore writes. */
const OS_REGIONS: [number, number][] = [[0, 3 * PAGE], [5 * MiB + 4096, 8192], [23 * MiB, PAGE]];
const DATA_REGIONS: [number, number][] = [[MiB, 2 * PAGE], [20 * MiB - 512, 512]];
const written = (regions: [number, number][]) => regions.reduce((sum, [, n]) => sum + n, 0);
/** Put Pages of a restore: adjacent pages' bytes go out together, so one per ≤ 4 MiB of each region, and the footer. */
const putsOf = (regions: [number, number][]) => regions.reduce((sum, [, n]) => sum + Math.ceil(n / (4 * MiB)), 0) + 1;

describe('restore to Azure managed disks and a VM', () => {
  let env: TestEnv;
  let standin: ComputeStandIn;
  let compute: ArmVmCompute;
  let vmBackupId: string;
  let manifest: VmManifest;
  let source: { lun: number | null; diskId: string; blob: PageBlobClient }[];
  let nic: string;

  async function fill(blob: PageBlobClient, regions: [number, number][], seed: number): Promise<void> {
    for (const [at, n] of regions) await blob.uploadPages(regionData(n, seed + at), at, n);
  }
  const bytesOf = async (blob: PageBlobClient) => blob.downloadToBuffer();
  const armCalls = (op: string) => standin.calls().filter((c) => c.op === op).length;

  beforeAll(async () => {
    env = await startEnv();
    standin = await startComputeStandIn(env.az);
    compute = new ArmVmCompute(armContext({ endpoint: standin.endpoint, credential: standin.credential }), { pollIntervalMs: 10 });
    const vm = await standin.addVm({ resourceGroup: 'rg-src', name: 'vm1', osDiskBytes: 24 * MiB, dataDisks: [{ lun: 0, bytes: 20 * MiB, sku: 'Premium_LRS' }], vmSize: 'Standard_D2s_v5', zone: '2' });
    source = vm.disks;
    await fill(source[0].blob, OS_REGIONS, 11);
    await fill(source[1].blob, DATA_REGIONS, 22);
    nic = `/subscriptions/${standin.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/nic-restored`;
    // The VM backup: each disk backed up through core's backupDisk from a read SAS of its blob, then the VM manifest.
    const info = await compute.getVm(vm.vmId);
    vmBackupId = vmBackupIdFor(vm.vmId, new Date());
    const disks = [];
    for (const d of [info.osDisk, ...info.dataDisks]) {
      const blob = standin.diskBlob(d.id);
      const url = env.az.sasUrl('src', blob.containerName, blob.name, { permissions: 'r' });
      const r = await backupDisk({ source: { url }, vault: env.vault, userKey: env.userKey, ...SETTINGS });
      disks.push({ lun: d.lun, role: d.lun === null ? 'os' as const : 'data' as const, diskId: d.id, diskName: d.name, sizeBytes: d.sizeBytes, ...(d.sku ? { sku: d.sku } : {}), ...(d.zone ? { zone: d.zone } : {}), ...(d.osType ? { osType: d.osType } : {}), captureId: `/subscriptions/${standin.subscriptionId}/resourceGroups/rg-src/providers/Microsoft.Compute/snapshots/${d.name}-pw1`, backupId: r.backupId, kind: r.kind, reason: r.reason ?? null, bytesRead: r.bytesRead, bytesStored: r.bytesStored });
    }
    const now = new Date().toISOString();
    manifest = {
      format: 'pagewise-vm', version: 1, vmBackupId, vmId: vm.vmId, vmName: 'vm1', createdAt: now, completedAt: now,
      capture: 'snapshots', requestedConsistency: 'crash', consistency: 'crash',
      vm: { location: info.location, ...(info.zone ? { zone: info.zone } : {}), vmSize: info.vmSize, tags: { team: 'blue' }, networkInterfaceIds: info.networkInterfaceIds, osType: info.osDisk.osType },
      disks, notCaptured: [],
    };
    await writeVmManifest(env.vault, env.userKey, manifest);
  });
  afterAll(async () => {
    await standin?.stop();
    await env?.stop();
  });

  test('a VM backup restores as new disks byte-identical to its disks, each a valid fixed VHD, and a VM attaching them', async () => {
    const result = await restoreVm({ compute, vault: env.vault, userKey: env.userKey, vmBackupId, resourceGroup: RG, createVm: { name: 'vm1-restored', networkInterfaceIds: [nic] } });
    const prefix = `/subscriptions/${standin.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Compute`;
    expect(result.disks.map((d) => [d.lun, d.diskId, d.bytesWritten])).toEqual([
      [null, `${prefix}/disks/restored-${manifest.disks[0].diskName}`, written(OS_REGIONS)],
      [0, `${prefix}/disks/restored-${manifest.disks[1].diskName}`, written(DATA_REGIONS)],
    ]);
    for (const [i, d] of result.disks.entries()) {
      const original = await bytesOf(source[i].blob);
      const restored = await bytesOf(standin.diskBlob(d.diskId));
      expect(restored.length).toBe(original.length + 512);
      expect(restored.subarray(0, original.length).equals(original)).toBe(true);
      expect(parseVhdFooter(restored.subarray(original.length))).toMatchObject({ diskType: 'fixed', currentSize: original.length, creatorApplication: 'pgws' });
      const resource = standin.resources('disks').find((r) => r.id.toLowerCase() === d.diskId.toLowerCase())!;
      expect(resource.tags).toEqual({ pagewise: 'restored' });
      // Attached to the new VM: the stand-in found a valid footer at revoke (it attaches no disk without one).
      expect(resource.properties).toMatchObject({ diskState: 'Attached', creationData: { createOption: 'Upload', uploadSizeBytes: original.length + 512 } });
      expect(resource.standIn).toMatchObject({ vhdFooter: 'valid' });
    }
    expect(standin.activeGrants()).toEqual([]);
    expect(result.vmId).toBe(`${prefix}/virtualMachines/vm1-restored`);
    const vm = standin.resources('virtualMachines').find((r) => r.id === result.vmId)!;
    expect(vm.tags).toEqual({ team: 'blue', pagewise: 'restored' });
    expect(vm.properties).toMatchObject({
      hardwareProfile: { vmSize: 'Standard_D2s_v5' },
      storageProfile: {
        osDisk: { managedDisk: { id: result.disks[0].diskId } },
        dataDisks: [{ lun: 0, managedDisk: { id: result.disks[1].diskId } }],
      },
      networkProfile: { networkInterfaces: [{ id: nic }] },
    });
  });

  test('a name that exists is refused before anything is created or written; so are selections the backup cannot satisfy', async () => {
    // A disk of the data disk's new name exists: the whole restore is refused, the OS disk's not made either.
    const taken = `taken-${manifest.disks[1].diskName}`;
    await compute.createUploadDisk({ subscriptionId: standin.subscriptionId, resourceGroup: RG, name: taken, location: 'westeurope', sizeBytes: 20 * MiB });
    const before = { creates: armCalls('disks.createOrUpdate'), grants: armCalls('disks.grantAccess'), vms: armCalls('virtualMachines.createOrUpdate') };
    await expect(restoreVm({ compute, vault: env.vault, userKey: env.userKey, vmBackupId, resourceGroup: RG, namePrefix: 'taken-' })).rejects.toMatchObject({
      code: 'TargetExists',
      message: expect.stringContaining(`the managed disk ${taken} already exists in ${RG}`),
    });
    await expect(restoreBackupToManagedDisk({ compute, vault: env.vault, userKey: env.userKey, backupId: manifest.disks[1].backupId, target: { subscriptionId: standin.subscriptionId, resourceGroup: RG, name: taken, location: 'westeurope' } })).rejects.toMatchObject({ code: 'TargetExists' });
    // The VM's name is taken (the backed-up VM itself, in its own group).
    await expect(restoreVm({ compute, vault: env.vault, userKey: env.userKey, vmBackupId, resourceGroup: 'rg-src', namePrefix: 'again-', createVm: { name: 'vm1', networkInterfaceIds: [nic] } })).rejects.toMatchObject({ code: 'TargetExists', message: expect.stringContaining('the VM vm1 already exists in rg-src') });
    await expect(restoreVm({ compute, vault: env.vault, userKey: env.userKey, vmBackupId, resourceGroup: RG, luns: [7] })).rejects.toMatchObject({ code: 'BadInput', message: expect.stringContaining('holds no the data disk at LUN 7') });
    await expect(restoreVm({ compute, vault: env.vault, userKey: env.userKey, vmBackupId, resourceGroup: RG, luns: [0], namePrefix: 'x-', createVm: { name: 'vm2' } })).rejects.toMatchObject({ code: 'BadInput', message: expect.stringContaining('only with its OS disk') });
    await expect(restoreVm({ compute, vault: env.vault, userKey: env.userKey, vmBackupId, resourceGroup: RG, namePrefix: 'x-', createVm: { name: 'vm2', networkInterfaceIds: [`${nic}/../../x`] } })).rejects.toMatchObject({ code: 'BadInput', message: expect.stringContaining('is not the ARM ID of a network interface') });
    await expect(restoreVm({ compute, vault: env.vault, userKey: env.userKey, vmBackupId, resourceGroup: RG, namePrefix: 'bad/' })).rejects.toMatchObject({ code: 'BadInput', message: expect.stringContaining('is not a valid Compute resource name') });
    expect({ creates: armCalls('disks.createOrUpdate'), grants: armCalls('disks.grantAccess'), vms: armCalls('virtualMachines.createOrUpdate') }).toEqual(before);
  });

  test('a single disk backup restores to a new managed disk: non-hole runs in Put Pages, the footer last, the grant revoked', async () => {
    const result = await restoreBackupToManagedDisk({
      compute, vault: env.vault, userKey: env.userKey, backupId: manifest.disks[1].backupId, settings: SETTINGS,
      target: { subscriptionId: standin.subscriptionId, resourceGroup: RG, name: 'single-data', location: 'westeurope', sku: 'StandardSSD_LRS' },
    });
    expect(result).toEqual({ diskId: `/subscriptions/${standin.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Compute/disks/single-data`, bytesWritten: written(DATA_REGIONS), putPages: putsOf(DATA_REGIONS) });
    const restored = await bytesOf(standin.diskBlob(result.diskId));
    expect(restored.subarray(0, 20 * MiB).equals(await bytesOf(source[1].blob))).toBe(true);
    expect(parseVhdFooter(restored.subarray(20 * MiB)).currentSize).toBe(20 * MiB);
    const resource = standin.resources('disks').find((r) => r.id.endsWith('/single-data'))!;
    expect({ state: resource.properties.diskState, footer: resource.standIn?.vhdFooter }).toEqual({ state: 'Unattached', footer: 'valid' });
    expect(await compute.getDisk(result.diskId)).toMatchObject({ sku: 'StandardSSD_LRS', location: 'westeurope', sizeBytes: 20 * MiB, diskState: 'Unattached' });
    expect(standin.activeGrants()).toEqual([]);
  });

  test("a backup of Azure's export (N MiB + 512, its footer) gets a new footer in that slot; a size Azure cannot upload is refused before a disk is made", async () => {
    const exported = await env.makeDisk('exported.vhd', 20 * MiB + 512, [{ offset: 2 * MiB, length: PAGE, kind: 'random', seed: 5 }]);
    await env.sourceClient('exported.vhd').uploadPages(vhdFooter(20 * MiB, '00000000-0000-0000-0000-000000000001'), 20 * MiB, 512);
    const b = await backupDisk({ source: exported.source, vault: env.vault, userKey: env.userKey, ...SETTINGS });
    const target = { subscriptionId: standin.subscriptionId, resourceGroup: RG, name: 'from-export', location: 'westeurope' };
    const result = await restoreBackupToManagedDisk({ compute, vault: env.vault, userKey: env.userKey, backupId: b.backupId, target });
    expect(result).toMatchObject({ bytesWritten: PAGE, putPages: 2 });
    const restored = await bytesOf(standin.diskBlob(result.diskId));
    expect(restored.length).toBe(20 * MiB + 512);
    expect(restored.subarray(0, 20 * MiB).equals((await env.sourceClient('exported.vhd').downloadToBuffer()).subarray(0, 20 * MiB))).toBe(true);
    expect(parseVhdFooter(restored.subarray(20 * MiB)).uniqueId).not.toBe('00000000-0000-0000-0000-000000000001');

    const creates = armCalls('disks.createOrUpdate');
    for (const [name, bytes] of [['odd.vhd', 20 * MiB + 4096], ['small.vhd', 8 * MiB]] as const) {
      const odd = await env.makeDisk(name, bytes, [{ offset: 0, length: 4096, kind: 'random', seed: 1 }]);
      const ob = await backupDisk({ source: odd.source, vault: env.vault, userKey: env.userKey, ...SETTINGS });
      await expect(restoreBackupToManagedDisk({ compute, vault: env.vault, userKey: env.userKey, backupId: ob.backupId, target: { ...target, name: `from-${name.replace('.vhd', '')}` } })).rejects.toMatchObject({
        code: 'BadInput',
        message: expect.stringMatching(bytes === 8 * MiB ? /20 MiB to 32 TiB/ : /whole number of MiB/),
      });
    }
    expect(armCalls('disks.createOrUpdate')).toBe(creates);
  });

  test('a restore failing after the grant still revokes it and names the incomplete disk; a VM Compute refuses leaves the disks, named', async () => {
    // A vault of its own whose one pack is damaged: the manifest opens, the pages fail to decrypt mid-write.
    const vault: StorageLocation = await env.makeVault('damaged');
    const b = await backupDisk({ source: { url: env.az.sasUrl('src', source[1].blob.containerName, source[1].blob.name, { permissions: 'r' }) }, vault, userKey: env.userKey, ...SETTINGS });
    const container = env.az.accounts.vault.service.getContainerClient('damaged');
    let damaged = 0;
    for await (const item of container.listBlobsFlat({ prefix: 'packs/' })) {
      const blob = container.getBlockBlobClient(item.name);
      const data = await blob.downloadToBuffer();
      data[Math.floor(data.length / 2)] ^= 0xff;
      await blob.uploadData(data);
      damaged++;
    }
    expect(damaged).toBeGreaterThan(0);
    const grants = armCalls('disks.grantAccess');
    const failed = await restoreBackupToManagedDisk({ compute, vault, userKey: env.userKey, backupId: b.backupId, target: { subscriptionId: standin.subscriptionId, resourceGroup: RG, name: 'half-done', location: 'westeurope' } }).catch((err: unknown) => err);
    expect(failed).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('the managed disk half-done it created is incomplete') });
    expect((failed as Error).message).not.toMatch(/sig=|\?sv=|127\.0\.0\.1/); // neither the write grant nor its host
    expect(armCalls('disks.grantAccess')).toBe(grants + 1);
    expect(armCalls('disks.revokeAccess')).toBeGreaterThan(0);
    expect(standin.activeGrants()).toEqual([]);
    // Revoked before its footer was written: the stand-in, like Azure, holds it for an upload without a valid VHD.
    expect(standin.resources('disks').find((r) => r.id.endsWith('/half-done'))!.standIn).toMatchObject({ vhdFooter: 'missing' });

    // A grant Compute refuses: revoked all the same (an answer lost is a grant that may exist), the disk named.
    standin.faults.fail('disks.grantAccess', 1, 409, 'OperationNotAllowed');
    const revokes = armCalls('disks.revokeAccess');
    await expect(restoreBackupToManagedDisk({ compute, vault: env.vault, userKey: env.userKey, backupId: manifest.disks[1].backupId, target: { subscriptionId: standin.subscriptionId, resourceGroup: RG, name: 'never-granted', location: 'westeurope' } })).rejects.toMatchObject({
      code: 'BadInput',
      message: expect.stringMatching(/granting write access to the disk never-granted: Compute refused it \(409 OperationNotAllowed: .*the managed disk never-granted it created is incomplete/),
    });
    expect(armCalls('disks.revokeAccess')).toBe(revokes + 1);
    expect(standin.activeGrants()).toEqual([]);

    // A VM Compute will not create (the backed-up VM's own NIC is in use): the restored disks are kept and named.
    await expect(restoreVm({ compute, vault: env.vault, userKey: env.userKey, vmBackupId, resourceGroup: RG, namePrefix: 'nic-', createVm: { name: 'vm1-nic' } })).rejects.toMatchObject({
      code: 'BadInput',
      message: expect.stringMatching(new RegExp(`creating the VM vm1-nic: Compute refused it \\(400 NicInUse: .*\\(the restored disks are kept: nic-${manifest.disks[0].diskName}, nic-${manifest.disks[1].diskName}\\)$`)),
    });
  });

  test("a VM backed up by the VM engine (restore point, grants through Compute) restores byte-identical", async () => {
    const vm = await standin.addVm({ resourceGroup: 'rg-src', name: 'vm2', osDiskBytes: 20 * MiB, dataDisks: [{ lun: 3, bytes: 21 * MiB }], vmSize: 'Standard_B2s' });
    await fill(vm.disks[0].blob, [[0, PAGE], [19 * MiB, 4096]], 33);
    await fill(vm.disks[1].blob, [[7 * MiB, 2 * PAGE]], 44);
    const backup = await backupVm({ compute, vmId: vm.vmId, vault: env.vault, userKey: env.userKey, settings: SETTINGS });
    expect(backup.manifest.capture).toBe('restore-point');
    const result = await restoreVm({ compute, vault: env.vault, userKey: env.userKey, vmBackupId: backup.vmBackupId, resourceGroup: RG, namePrefix: 'eng-' });
    expect(result.disks.map((d) => [d.lun, d.bytesWritten])).toEqual([[null, PAGE + 4096], [3, 2 * PAGE]]);
    for (const [i, d] of result.disks.entries()) {
      const original = await bytesOf(vm.disks[i].blob);
      const restored = await bytesOf(standin.diskBlob(d.diskId));
      expect(restored.subarray(0, original.length).equals(original)).toBe(true);
      expect(parseVhdFooter(restored.subarray(original.length)).currentSize).toBe(original.length);
    }
    expect(standin.activeGrants()).toEqual([]);
  });

  test('pagewise restore-vm restores the chosen disk and prints it (--json)', async () => {
    const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, PAGEWISE_ARM_ENDPOINT: standin.endpoint, PAGEWISE_ARM_TOKEN: standin.token, PAGEWISE_ARM_POLL_MS: '20' });
    const keyFile = path.join(env.tmp, 'restore-vm.key');
    await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
    const code = await run(['restore-vm', vmBackupId, '--vault', env.vault.url, '--key-file', keyFile, '--resource-group', RG, '--disk', '0', '--name-prefix', 'cli-', '--json'], io);
    expect({ code, stderr: io.stderrText() }).toEqual({ code: 0, stderr: '' });
    const out = JSON.parse(io.stdoutText()) as { disks: { lun: number | null; diskId: string; bytesWritten: number }[] };
    expect(out.disks).toEqual([{ lun: 0, diskId: expect.stringMatching(new RegExp(`/disks/cli-${manifest.disks[1].diskName}$`)), bytesWritten: written(DATA_REGIONS) }]);
    expect(io.stdoutText()).not.toMatch(/sig=/);
    expect(await run(['restore-vm', vmBackupId, '--vault', env.vault.url, '--key-file', keyFile, '--resource-group', RG, '--disk', 'two'], io)).not.toBe(0);
    expect(io.stderrText()).toContain('--disk "two" is neither "os" nor a LUN from 0 to 63');
    // restore --to-managed-disk: its inputs are checked before Compute or the vault is asked anything.
    const creates = armCalls('disks.createOrUpdate');
    const restore = ['restore', manifest.disks[1].backupId, '--vault', env.vault.url, '--key-file', keyFile];
    for (const [args, message] of [
      [['--to-managed-disk', 'only-a-name', '--subscription', standin.subscriptionId, '--location', 'westeurope'], '--to-managed-disk must be <resource-group>/<disk-name>'],
      [['--to-managed-disk', `${RG}/cli-single`, '--location', 'westeurope'], '--to-managed-disk needs --subscription <guid>'],
      [['--to-managed-disk', `${RG}/cli-single`, '--subscription', standin.subscriptionId], '--to-managed-disk needs --location <region>'],
      [['--to-managed-disk', `${RG}/cli-single`, '--subscription', standin.subscriptionId, '--location', 'westeurope', '--force'], '--force does not apply to --to-managed-disk'],
      [['--to', path.join(env.tmp, 'x.img'), '--sku', 'Premium_LRS'], '--sku applies only to --to-managed-disk'],
      [['--to-managed-disk', `${RG}/bad name`, '--subscription', standin.subscriptionId, '--location', 'westeurope'], 'is not a valid Compute resource name'],
    ] as const) {
      const bad = captureIO(io.env);
      expect(await run([...restore, ...args], bad)).toBe(2);
      expect(bad.stderrText()).toContain(message);
    }
    expect(armCalls('disks.createOrUpdate')).toBe(creates);
  });
});
