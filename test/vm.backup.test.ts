/**
 * Whole-VM backups (#16) through the real ArmVmCompute (the @azure/arm-compute client) against the loopback
 * Compute stand-in, whose disks, snapshots and restore points are real Azurite page blobs: a two-disk VM
 * backed up full, then incremental (bytes read = the changed pages), list --vm; the restore point's obtained
 * consistency recorded; the snapshot fallback; Premium SSD v2 captures granted once copied; a failure between
 * grant and revoke still revokes and leaves no capture; only each disk's base capture is left behind; a 429 is
 * retried; VMs found by tag (Resource Graph) and group; VM manifests bound to their names.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { captureIO, run } from '../cli/main';
import { ArmVmCompute, backupVm, captureVm, abandonVmCapture, listVmBackups, readVmManifest, restoreBackup, vmBackupIdFor, vmBackupTime, initVault, StorageLocation, PagewiseError } from '../core';
import { TestEnv } from './harness/env';
import { ComputeStandIn } from './harness/compute-standin';
import { startVmEnv, VmTestEnv } from './harness/vm-env';

const KiB = 1024;
const MiB = 1024 * KiB;
const PAGE = 64 * KiB;
const settings = { pageSize: PAGE, cacheBytes: 256 * KiB };

let env: TestEnv;
let standin: ComputeStandIn;
let compute: ArmVmCompute;
let keyFile: string;
let userKey: Buffer;
let vault: StorageLocation;
// A day back, an hour a backup: the CLI's backups (the real clock) come after these.
let clockMs = Date.now() - 24 * 3600_000;
const clock = () => clockMs;

let vmEnv: VmTestEnv | undefined;
beforeAll(async () => {
  vmEnv = await startVmEnv('vmvault');
  ({ env, standin, compute, keyFile, userKey, vault } = vmEnv);
});

afterAll(async () => vmEnv?.stop());

/** The next backup's time: an hour on (VM backup IDs and the release order follow it). */
const tick = () => (clockMs += 3600_000);

async function put(blob: { uploadPages(body: Buffer, offset: number, count: number): Promise<unknown> }, offset: number, bytes: number): Promise<Buffer> {
  const data = randomBytes(bytes);
  await blob.uploadPages(data, offset, bytes);
  return data;
}

const ofKind = (kind: 'snapshots' | 'restorePoints', vmTagged?: string) => standin.resources(kind).filter((r) => vmTagged === undefined || r.id.toLowerCase().includes(vmTagged.toLowerCase()));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, PAGEWISE_ARM_TOKEN: standin.token, PAGEWISE_ARM_POLL_MS: '20' });
  const code = await run(args, io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

describe('a two-disk VM by restore point', () => {
  let vmId: string;
  let disks: { lun: number | null; diskId: string; blob: any }[];

  beforeAll(async () => {
    ({ vmId, disks } = await standin.addVm({ resourceGroup: 'rg-app', name: 'app1', osDiskBytes: 2 * MiB, dataDisks: [{ lun: 0, bytes: 1 * MiB }], consistency: 'FileSystemConsistent' }));
    const os = disks.find((d) => d.lun === null)!;
    const data = disks.find((d) => d.lun === 0)!;
    await put(os.blob, 0, 512 * KiB);
    await put(data.blob, 128 * KiB, 256 * KiB);
  });

  it('backs up full, then incremental reading only the changed pages; the obtained consistency is recorded; list --vm shows both', async () => {
    tick();
    const first = await backupVm({ compute, vmId, vault, userKey, settings, clock });
    expect(first.manifest.capture).toBe('restore-point');
    expect(first.manifest.requestedConsistency).toBe('application');
    expect(first.manifest.consistency).toBe('filesystem'); // the VM's best, as the restore point answered
    expect(first.manifest.disks.map((d) => [d.lun, d.role, d.kind, d.reason, d.bytesRead])).toEqual([
      [null, 'os', 'full', 'no-base', 512 * KiB],
      [0, 'data', 'full', 'no-base', 256 * KiB],
    ]);
    expect(standin.activeGrants()).toEqual([]);
    expect(ofKind('restorePoints')).toHaveLength(1);

    // One page of each disk changes; one new page on the OS disk.
    const os = disks.find((d) => d.lun === null)!;
    const data = disks.find((d) => d.lun === 0)!;
    await put(os.blob, 1 * MiB, PAGE);
    await put(data.blob, 128 * KiB, PAGE);
    tick();
    const second = await backupVm({ compute, vmId, vault, userKey, settings, clock });
    expect(second.manifest.disks.map((d) => [d.lun, d.kind, d.reason, d.bytesRead])).toEqual([
      [null, 'incremental', null, PAGE],
      [0, 'incremental', null, PAGE],
    ]);
    // Only the newest restore point (each disk's base) is left; the first was released.
    expect(second.released).toEqual([first.manifest.restorePointId]);
    expect(ofKind('restorePoints').map((r) => r.id.toLowerCase())).toEqual([second.manifest.restorePointId!.toLowerCase()]);
    expect(standin.activeGrants()).toEqual([]);

    // The incremental OS disk backup restores to the disk's content now.
    const out = path.join(env.tmp, 'os.img');
    await restoreBackup({ backupId: second.manifest.disks[0].backupId, vault, userKey, target: { url: out } });
    expect((await fs.readFile(out)).equals(await os.blob.downloadToBuffer())).toBe(true);

    const listed = await listVmBackups(vault, userKey, vmId);
    expect(listed.map((m) => m.vmBackupId)).toEqual([second.vmBackupId, first.vmBackupId]);
    expect((await readVmManifest(vault, userKey, first.vmBackupId)).disks[1].backupId).toBe(first.manifest.disks[1].backupId);

    const text = await cli(['list', '--vault', vault.url, '--key-file', keyFile, '--vm', vmId]);
    expect(text.code).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toBe(`VM ${vmId} (2 backups)`);
    expect(lines[1]).toContain(`${second.vmBackupId}  filesystem-consistent (asked application), restore point, 2 disks`);
    expect(lines[2]).toMatch(/^ {4}os {7}incremental {2}2\.00 MiB disk, read 64\.0 KiB, stored /);
    const json = await cli(['list', '--vault', vault.url, '--key-file', keyFile, '--vm', vmId, '--json']);
    expect(JSON.parse(json.stdout).vmBackups.map((m: { vmBackupId: string }) => m.vmBackupId)).toEqual([second.vmBackupId, first.vmBackupId]);
  });

  it('backup-vm on the CLI: per-disk progress and the summary; a 429 retried after Retry-After', async () => {
    const before = standin.calls().length;
    standin.faults.throttle('virtualMachines.get', 2, 1);
    const human = await cli(['backup-vm', vmId, '--vault', vault.url, '--key-file', keyFile, '--arm-endpoint', standin.endpoint, '--page-size', '64KiB', '--cache', '256KiB']);
    expect(human.code).toBe(0);
    const gets = standin.calls().slice(before).filter((c) => c.op === 'virtualMachines.get').map((c) => c.status);
    expect(gets).toEqual([429, 429, 200]);
    expect(human.stderr).toMatch(/^captured app1 by restore point \(filesystem-consistent\): 2 disk\(s\)$/m);
    expect(human.stderr).toMatch(/^os disk: incremental, read 0 B, stored 0 B$/m);
    expect(human.stderr).toMatch(/^lun 0: incremental, read 0 B, stored 0 B$/m);
    expect(human.stdout).toMatch(/^VM backup vm-\d{8}t\d{9}z-[0-9a-f]{12} complete: app1 /);
    expect(human.stdout).toMatch(/^ {2}consistency +filesystem \(asked: application\)$/m);
    expect(human.stdout).toMatch(/^ {2}released +1 older capture\(s\): /m);
    expect(ofKind('restorePoints')).toHaveLength(1);
    expect(standin.activeGrants()).toEqual([]);
  });
});

describe('snapshots', () => {
  it('fall back to incremental snapshots when the VM has no restore points; only the newest per disk stays', async () => {
    const { vmId, disks } = await standin.addVm({ resourceGroup: 'rg-snap', name: 'legacy1', osDiskBytes: 1 * MiB, dataDisks: [{ lun: 2, bytes: 1 * MiB }], restorePoints: false });
    const lun2 = disks.find((d) => d.lun === 2)!;
    await put(disks.find((d) => d.lun === null)!.blob, 0, 128 * KiB);
    await put(lun2.blob, 256 * KiB, 128 * KiB);
    tick();
    const first = await backupVm({ compute, vmId, vault, userKey, settings, clock, consistency: 'application' });
    expect(first.manifest.capture).toBe('snapshots');
    expect(first.manifest.consistency).toBe('crash');
    expect(first.manifest.captureNote).toMatch(/^restore points are unavailable for this VM \(.*OperationNotAllowed.*\): each disk was captured by its own incremental snapshot, crash-consistent$/);
    const snaps = () => standin.resources('snapshots').filter((s) => s.id.toLowerCase().includes('/resourcegroups/rg-snap/'));
    expect(snaps().map((s) => s.tags.pagewise)).toEqual(['taken', 'taken']);
    await put(lun2.blob, 256 * KiB, PAGE);
    tick();
    const second = await backupVm({ compute, vmId, vault, userKey, settings, clock });
    expect(second.manifest.disks.map((d) => [d.lun, d.kind, d.bytesRead])).toEqual([[null, 'incremental', 0], [2, 'incremental', PAGE]]);
    expect(second.released.sort()).toEqual(first.manifest.disks.map((d) => d.captureId).sort());
    expect(snaps().map((s) => s.id.toLowerCase()).sort()).toEqual(second.manifest.disks.map((d) => d.captureId.toLowerCase()).sort());
    expect(standin.activeGrants()).toEqual([]);
  });

  it('mode snapshots on a VM with restore points; mode restore-point refuses a VM without them', async () => {
    const { vmId } = await standin.addVm({ resourceGroup: 'rg-mode', name: 'm1', osDiskBytes: 512 * KiB });
    tick();
    const r = await backupVm({ compute, vmId, vault, userKey, settings, clock, mode: 'snapshots' });
    expect([r.manifest.capture, r.manifest.consistency]).toEqual(['snapshots', 'crash']);
    expect(r.manifest.captureNote).toMatch(/^incremental snapshots were asked for/);
    // Asked for crash consistency, the restore point is asked for CrashConsistent and records it.
    tick();
    const crash = await captureVm(compute, { vmId, vmBackupId: vmBackupIdFor(vmId, new Date(clockMs)), consistency: 'crash', clock });
    expect([crash.capture, crash.requestedConsistency, crash.consistency]).toEqual(['restore-point', 'crash', 'crash']);
    await abandonVmCapture(compute, crash);
    const none = await standin.addVm({ resourceGroup: 'rg-mode', name: 'm2', osDiskBytes: 512 * KiB, restorePoints: false });
    tick();
    await expect(backupVm({ compute, vmId: none.vmId, vault, userKey, settings, clock, mode: 'restore-point' })).rejects.toThrow(/cannot take a restore point of VM m2/);
    expect(standin.resources('snapshots').filter((s) => s.id.includes('/m2-') || s.tags['pagewise-vm'] === undefined)).toEqual([]);
  });
});

describe('Premium SSD v2', () => {
  it('a capture still being copied is granted only once completionPercent reaches 100 (restore point and snapshot)', async () => {
    const { vmId, disks } = await standin.addVm({ resourceGroup: 'rg-v2', name: 'v2a', osDiskBytes: 512 * KiB, dataDisks: [{ lun: 1, bytes: 512 * KiB, sku: 'PremiumV2_LRS' }] });
    await put(disks.find((d) => d.lun === 1)!.blob, 0, PAGE);
    for (const mode of ['restore-point', 'snapshots'] as const) {
      const before = standin.calls().length;
      tick();
      const r = await backupVm({ compute, vmId, vault, userKey, settings, clock, mode });
      expect(r.manifest.disks.find((d) => d.lun === 1)!.bytesRead).toBe(mode === 'restore-point' ? PAGE : 0);
      const calls = standin.calls().slice(before);
      const op = mode === 'restore-point' ? 'diskRestorePoint' : 'snapshots';
      // Polled (GET) until copied, then granted once; no grant was refused as still copying.
      expect(calls.filter((c) => c.op === `${op}.grantAccess` && c.status === 409)).toEqual([]);
      expect(calls.filter((c) => c.op === `${op}.get`).length).toBeGreaterThanOrEqual(3);
    }
    expect(standin.activeGrants()).toEqual([]);
  });
});

describe('finding VMs', () => {
  it('by tag through Resource Graph, and by resource group through Compute', async () => {
    const a = await standin.addVm({ resourceGroup: 'rg-tags', name: 't1', osDiskBytes: 512 * KiB, tags: { backup: 'Nightly' } });
    await standin.addVm({ resourceGroup: 'rg-tags', name: 't2', osDiskBytes: 512 * KiB, tags: { backup: 'weekly' } });
    const c = await standin.addVm({ resourceGroup: 'rg-tags', name: 't3', osDiskBytes: 512 * KiB, tags: { backup: 'nightly' } });
    expect((await compute.vmIdsByTag([standin.subscriptionId], { name: 'backup', value: 'nightly' })).sort()).toEqual([a.vmId, c.vmId].sort());
    expect((await compute.listVms({ subscriptionId: standin.subscriptionId, resourceGroup: 'rg-tags' })).map((v) => v.name).sort()).toEqual(['t1', 't2', 't3']);
    await expect(compute.vmIdsByTag([standin.subscriptionId], { name: "backup'] or 1==1 //", value: 'x' })).rejects.toThrow(`tag name "backup'] or 1==1 //" holds "'"`);
  });
});

describe('failures', () => {
  it('a disk failing between grant and revoke still revokes, writes no VM manifest and leaves no capture', async () => {
    const { vmId, disks } = await standin.addVm({ resourceGroup: 'rg-fail', name: 'f1', osDiskBytes: 1 * MiB, dataDisks: [{ lun: 0, bytes: 512 * KiB }] });
    await put(disks.find((d) => d.lun === null)!.blob, 0, 128 * KiB);
    const missing = { url: env.az.sasUrl('vault', 'no-such-vault') }; // the backup fails after its grant
    tick();
    const grantsBefore = standin.calls().filter((c) => /grantAccess$/.test(c.op)).length;
    await expect(backupVm({ compute, vmId, vault: missing, userKey, settings, clock })).rejects.toThrow(/VM backup vm-.* has disks that were not backed up, so no VM manifest was written: the OS disk: .*does not exist/);
    expect(standin.calls().filter((c) => /grantAccess$/.test(c.op)).length - grantsBefore).toBe(2);
    expect(standin.activeGrants()).toEqual([]);
    expect(standin.resources('restorePoints').filter((r) => r.id.includes('/rg-fail/'))).toEqual([]);
    expect(await listVmBackups(vault, userKey, vmId)).toEqual([]);
  });

  it('a release that fails after the VM manifest leaves the backup standing and its capture in place', async () => {
    const { vmId, disks } = await standin.addVm({ resourceGroup: 'rg-rel', name: 'r1', osDiskBytes: 512 * KiB });
    await put(disks[0].blob, 0, PAGE);
    standin.faults.fail('restorePointCollections.list', 1, 400, 'BadRequest');
    tick();
    const r = await backupVm({ compute, vmId, vault, userKey, settings, clock });
    expect(r.releaseProblem).toMatch(/^older captures were not released \(the next backup will\): .*400/);
    expect(r.released).toEqual([]);
    expect((await listVmBackups(vault, userKey, vmId)).map((m) => m.vmBackupId)).toEqual([r.vmBackupId]);
    expect(standin.resources('restorePoints').filter((p) => p.id.includes('/rg-rel/')).map((p) => p.id.toLowerCase())).toEqual([r.manifest.restorePointId!.toLowerCase()]);
  });

  it('ADE, a customer-managed key and Trusted Launch are listed as not captured; abandon deletes the capture', async () => {
    const { vmId } = await standin.addVm({ resourceGroup: 'rg-sec', name: 's1', osDiskBytes: 512 * KiB, securityType: 'TrustedLaunch', ade: true, diskEncryptionSetId: `/subscriptions/${standin.subscriptionId}/resourceGroups/rg-sec/providers/Microsoft.Compute/diskEncryptionSets/des1` });
    tick();
    const capture = await captureVm(compute, { vmId, vmBackupId: vmBackupIdFor(vmId, new Date(clockMs)), clock });
    expect(capture.notCaptured.map((n) => n.what)).toEqual([
      expect.stringMatching(/^Azure Disk Encryption key of /),
      expect.stringMatching(/^customer-managed key of /),
      'VM guest state (VMGS: vTPM and UEFI variables)',
    ]);
    expect(standin.resources('restorePoints').filter((r) => r.id.includes('/rg-sec/'))).toHaveLength(1);
    await abandonVmCapture(compute, capture);
    expect(standin.resources('restorePoints').filter((r) => r.id.includes('/rg-sec/'))).toEqual([]);
  });

  it('bad input: not a VM ID is refused before any request', async () => {
    const before = standin.calls().length;
    const r = await cli(['backup-vm', '/subscriptions/x/resourceGroups/../providers/Microsoft.Compute/virtualMachines/a', '--vault', vault.url, '--key-file', keyFile, '--arm-endpoint', standin.endpoint]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/the VM resource ID .* is not the ARM ID of a virtual machine/);
    await expect(backupVm({ compute, vmId: 'vm1', vault, userKey })).rejects.toThrow(PagewiseError);
    const vmId = `/subscriptions/${standin.subscriptionId}/resourceGroups/rg-x/providers/Microsoft.Compute/virtualMachines/x1`;
    await expect(captureVm(compute, { vmId, vmBackupId: 'vm-../../x' })).rejects.toThrow(/is not a VM backup ID/);
    expect(standin.calls().length).toBe(before);
    // A VM backup ID names its VM and time: a resource name, a blob-name part, parsed back to the same instant.
    const at = new Date('2026-12-01T13:14:15.678Z');
    expect(vmBackupIdFor(vmId, at)).toMatch(/^vm-20261201t131415678z-[0-9a-f]{12}$/);
    expect(vmBackupTime(vmBackupIdFor(vmId, at))).toBe(at.getTime());
    expect(vmBackupIdFor(vmId.toUpperCase().replace(standin.subscriptionId.toUpperCase(), standin.subscriptionId), at)).toBe(vmBackupIdFor(vmId, at));
  });
});

describe('VM manifest', () => {
  it('a VM manifest under another name is Corrupt, an unknown VM backup ID BackupNotFound', async () => {
    const { vmId, disks } = await standin.addVm({ resourceGroup: 'rg-man', name: 'man1', osDiskBytes: 512 * KiB });
    await put(disks[0].blob, 0, PAGE);
    const own = await env.makeVault('vmvault2');
    await initVault(own, { userKey });
    tick();
    const r = await backupVm({ compute, vmId, vault: own, userKey, settings, clock });
    const container = env.az.accounts.vault.service.getContainerClient('vmvault2');
    const names: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix: 'vms/' })) names.push(b.name);
    expect(names).toEqual([expect.stringMatching(/^vms\/[0-9a-f]{32}\/\d{13}-[0-9a-f]{32}\.pwv$/)]);
    expect(names[0]).not.toContain('man1');
    // The same sealed bytes under another completion time: refused, naming the blob.
    const moved = names[0].replace(/\/(\d)(\d{12})-/, (_m, d: string, rest: string) => `/${(Number(d) + 1) % 10}${rest}-`);
    const bytes = await container.getBlobClient(names[0]).downloadToBuffer();
    await container.getBlockBlobClient(moved).uploadData(bytes);
    await expect(listVmBackups(own, userKey, vmId)).rejects.toThrow(new RegExp(`the VM manifest ${moved.replace(/[.]/g, '\\.')} (fails authentication|has another completion time)`));
    // Found by ID, the sound one answers; across all VMs the unsound one is skipped.
    expect((await readVmManifest(own, userKey, r.vmBackupId)).vmBackupId).toBe(r.vmBackupId);
    expect((await listVmBackups(own, userKey)).map((m) => m.vmBackupId)).toEqual([r.vmBackupId]);
    await expect(readVmManifest(own, userKey, 'vm-20260101t000000000z-000000000000')).rejects.toMatchObject({ code: 'BackupNotFound' });
  });
});
