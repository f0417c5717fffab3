/**
 * Retention of whole-VM backups (#16, FORMAT §27.6) through the real ArmVmCompute over the loopback Compute
 * stand-in: three VM backups of a two-disk VM, keep-last 1 forgets two with their disk backups, undelete
 * brings one back, prune reclaims the other's disk backups, the kept one restores byte-identical; the CLI's
 * forget --vm / --vm-backup, undelete --vm-backup and list --vm; bad input refused before any write; a
 * backup policy's retention applied to the VMs its `vms` selectors name (the retention activity's code).
 */
import { randomBytes } from 'node:crypto';
import { captureIO, run } from '../cli/main';
import {
  armContext, ArmVmCompute, backupVm, forgetVmBackups, forgetVmBackupsByPolicy, listBackups, listVmBackupStates, restoreVm, StorageLocation, undeleteVmBackups, VmManifest,
} from '../core';
import { DEFAULT_DELETE_AFTER_MS, DEFAULT_GRACE_MS } from '../core/prune/protocol';
import { pruneVault } from '../core/prune/prune';
import { readTombstones } from '../core/retention/tombstones';
import { Vault } from '../core/repo/vault';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { forgetByAppPolicy } from '../functions/retentionActivities';
import { useAppSettings } from '../functions/settings';
import { useVmCompute } from '../functions/vmCompute';
import { MiB, TestEnv } from './harness/env';
import { ComputeStandIn } from './harness/compute-standin';
import { startVmEnv, VmTestEnv } from './harness/vm-env';

const KiB = 1024;
const DAY = 24 * 3600_000;
const settings = { pageSize: 64 * KiB, cacheBytes: 256 * KiB };

let env: TestEnv;
let standin: ComputeStandIn;
let compute: ArmVmCompute;
let keyFile: string;
let userKey: Buffer;
let vault: StorageLocation;
// Backups a day back, an hour apart; forget and undelete on the real clock; prunes past the grace.
let clockMs = Date.now() - DAY;
const clock = () => clockMs;

let vmEnv: VmTestEnv | undefined;
beforeAll(async () => {
  vmEnv = await startVmEnv('retvault');
  ({ env, standin, compute, keyFile, userKey, vault } = vmEnv);
});

afterAll(async () => vmEnv?.stop());

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, PAGEWISE_ARM_TOKEN: standin.token });
  const code = await run([...args, '--vault', vault.url, '--key-file', keyFile], io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

describe('a two-disk VM with three VM backups', () => {
  let vmId: string;
  let disks: { lun: number | null; diskId: string; blob: any }[];
  const backups: VmManifest[] = [];
  let newest: Buffer[] = [];

  beforeAll(async () => {
    ({ vmId, disks } = await standin.addVm({ resourceGroup: 'rg-ret', name: 'ret1', osDiskBytes: 20 * MiB, dataDisks: [{ lun: 0, bytes: 20 * MiB }] }));
    for (let i = 0; i < 3; i++) {
      // The same region each time: each backup's data there is its own, so forgetting one frees it.
      for (const d of disks) await d.blob.uploadPages(randomBytes(256 * KiB), 1 * MiB, 256 * KiB);
      clockMs += 3600_000;
      backups.push((await backupVm({ compute, vmId, vault, userKey, settings, clock })).manifest);
    }
    newest = await Promise.all(disks.map((d) => d.blob.downloadToBuffer()));
  });

  const ids = () => backups.map((b) => b.vmBackupId);
  const states = async () => (await listVmBackupStates(vault, userKey, vmId)).map((s) => [s.manifest.vmBackupId, s.state]);

  test('keep-last 1 forgets the two older VM backups with all four disk backups; the capture of the newest stays', async () => {
    const [b1, b2, b3] = ids();
    expect(await states()).toEqual([[b3, 'live'], [b2, 'live'], [b1, 'live']]);
    const dry = await forgetVmBackupsByPolicy(vault, userKey, vmId, { last: 1 }, { dryRun: true });
    expect(dry.forgotten.map((f) => f.vmBackupId)).toEqual([b2, b1]);
    expect(await states()).toEqual([[b3, 'live'], [b2, 'live'], [b1, 'live']]);

    const report = await forgetVmBackupsByPolicy(vault, userKey, vmId, { last: 1 });
    expect(report.kept).toEqual([{ vmBackupId: b3, reasons: ['last #1'] }]);
    expect(report.forgotten.map((f) => [f.vmBackupId, f.diskBackups])).toEqual([
      [b2, backups[1].disks.map((d) => d.backupId)],
      [b1, backups[0].disks.map((d) => d.backupId)],
    ]);
    const forgottenDisks = new Set([...backups[0].disks, ...backups[1].disks].map((d) => d.backupId));
    const listed = await listBackups(vault, { userKey });
    const deleted = listed.filter((b) => b.status === 'complete' && b.deleted).map((b) => b.backupId);
    expect(new Set(deleted)).toEqual(forgottenDisks);
    expect(await states()).toEqual([[b3, 'live'], [b2, 'forgotten'], [b1, 'forgotten']]);
    // Ordinary tombstones (§26.2), saying the VM's keep rule chose them.
    const v = Vault.open(vault);
    const tombstones = [...(await readTombstones(v, await openVaultKeyring(v, userKey))).values()].map((t) => t.tombstone!);
    expect(new Set(tombstones.map((t) => t.backupId))).toEqual(forgottenDisks);
    expect(tombstones.map((t) => [t.reason, t.rule])).toEqual(Array(4).fill(['policy', 'last 1']));
    // Forgetting again changes nothing: their grace stands.
    expect(await forgetVmBackups(vault, userKey, [b1])).toMatchObject({ forgotten: [], alreadyForgotten: [b1] });
    // Releasing captures is the next backup's (§27.3): only the newest VM backup's restore point is there.
    expect(standin.resources('restorePoints').map((r) => r.id.split('/').pop())).toEqual([b3]);
  });

  test('list --vm shows the forgotten ones flagged; undelete brings one back whole', async () => {
    const [b1, b2, b3] = ids();
    const text = await cli(['list', '--vm', vmId]);
    expect(text.code).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines.find((l) => l.includes(b3))).not.toContain('deleted');
    expect(lines.find((l) => l.includes(b1))).toMatch(/deleted, recoverable until \d{4}-/);
    const json = JSON.parse((await cli(['list', '--vm', vmId, '--json'])).stdout);
    expect(json.vmBackups.map((b: { vmBackupId: string; state: string }) => [b.vmBackupId, b.state])).toEqual([[b3, 'live'], [b2, 'forgotten'], [b1, 'forgotten']]);

    expect(await undeleteVmBackups(vault, userKey, [b2, b3])).toEqual({ restored: [b2], notForgotten: [b3], expired: [] });
    expect(await states()).toEqual([[b3, 'live'], [b2, 'live'], [b1, 'forgotten']]);
  });

  test('prune past the grace reclaims the forgotten disk backups; that VM backup cannot come back', async () => {
    const [b1, b2, b3] = ids();
    const now = Date.now();
    const first = await pruneVault({ vault, userKey, clock: () => now + DEFAULT_GRACE_MS + DAY });
    expect(first.deleted.manifests).toHaveLength(2);
    const second = await pruneVault({ vault, userKey, clock: () => now + DEFAULT_GRACE_MS + DEFAULT_DELETE_AFTER_MS + 2 * DAY });
    expect(second.deleted.tables).toBeGreaterThan(0);
    expect(first.bytesReclaimed + second.bytesReclaimed).toBeGreaterThan(0);
    expect(await states()).toEqual([[b3, 'live'], [b2, 'live'], [b1, 'pruned']]);
    const late = await undeleteVmBackups(vault, userKey, [b1]);
    expect(late).toMatchObject({ restored: [], expired: [b1], problems: [{ id: b1, problem: expect.stringContaining('pruned') }] });
    const listed = await listBackups(vault, { userKey });
    expect(listed.map((b) => b.backupId).sort()).toEqual([...backups[1].disks, ...backups[2].disks].map((d) => d.backupId).sort());
  });

  test('the kept VM backup restores byte-identical to the disks it captured', async () => {
    const result = await restoreVm({ compute, vault, userKey, vmBackupId: backups[2].vmBackupId, resourceGroup: 'rg-ret', namePrefix: 'back-' });
    expect(result.disks.map((d) => d.lun)).toEqual([null, 0]);
    for (const [i, d] of result.disks.entries()) {
      const restored: Buffer = await standin.diskBlob(d.diskId).downloadToBuffer();
      expect(restored.length).toBe(newest[i].length + 512);
      expect(restored.subarray(0, newest[i].length).equals(newest[i])).toBe(true);
    }
    expect(standin.activeGrants()).toEqual([]);
  });

  test('the CLI: forget --vm with keep rules (dry run), forget --vm-backup, undelete --vm-backup', async () => {
    const [, b2, b3] = ids();
    const dry = await cli(['forget', '--vm', vmId, '--keep-last', '1', '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout).forgetVm).toMatchObject({ dryRun: true, forgotten: [{ vmBackupId: b2 }], kept: [{ vmBackupId: b3, reasons: ['last #1'] }] });
    const gone = await cli(['forget', '--vm-backup', b2]);
    expect(gone.code).toBe(0);
    expect(gone.stdout).toContain(`forget  ${b2}  recoverable until`);
    expect(await states()).toEqual([[b3, 'live'], [b2, 'forgotten'], [ids()[0], 'pruned']]);
    const back = await cli(['undelete', '--vm-backup', b2, '--json']);
    expect(back.code).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ restored: [b2], expired: [] });
    expect(await states()).toEqual([[b3, 'live'], [b2, 'live'], [ids()[0], 'pruned']]);
  });

  test('bad input is refused before anything is written', async () => {
    await expect(forgetVmBackups(vault, userKey, ['vm-../x'])).rejects.toMatchObject({ code: 'BadInput', message: expect.stringContaining('is not a VM backup ID') });
    await expect(forgetVmBackups(vault, userKey, [ids()[2], 'vm-20200101t000000000z-0123456789ab'])).rejects.toMatchObject({ code: 'BackupNotFound' });
    expect(await states()).toEqual([[ids()[2], 'live'], [ids()[1], 'live'], [ids()[0], 'pruned']]);
    await expect(forgetVmBackupsByPolicy(vault, userKey, vmId, {})).rejects.toMatchObject({ code: 'BadInput' });
    const other = `/subscriptions/${standin.subscriptionId}/resourceGroups/rg-ret/providers/Microsoft.Compute/virtualMachines/none`;
    await expect(forgetVmBackupsByPolicy(vault, userKey, other, { last: 1 })).rejects.toMatchObject({ code: 'BackupNotFound' });
    const both = await cli(['forget', '--vm', vmId, '--vm-backup', ids()[1], '--keep-last', '1']);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain('contradict');
  });
});

describe("a backup policy's retention over its VM selectors", () => {
  afterAll(() => {
    useAppSettings(undefined);
    useVmCompute(undefined);
  });

  test('keep-last 1 of a policy naming a resource group forgets the older VM backup of each VM there, never the newest', async () => {
    const a = await standin.addVm({ resourceGroup: 'rg-policy', name: 'pa', osDiskBytes: 1 * MiB });
    const b = await standin.addVm({ resourceGroup: 'rg-policy', name: 'pb', osDiskBytes: 1 * MiB, dataDisks: [{ lun: 2, bytes: 1 * MiB }] });
    const made: Record<string, string[]> = { [a.vmId]: [], [b.vmId]: [] };
    for (const vm of [a, a, b]) {
      await vm.disks[0].blob.uploadPages(randomBytes(64 * KiB), 0, 64 * KiB);
      clockMs += 3600_000;
      made[vm.vmId].push((await backupVm({ compute, vmId: vm.vmId, vault, userKey, settings, clock })).manifest.vmBackupId);
    }
    // The settings the retention activity reads: this vault and key, the stand-in's ARM endpoint, the policy.
    useAppSettings(env.appSettings({
      PAGEWISE_VAULT_URL: vault.url,
      PAGEWISE_USER_KEY: userKey.toString('base64'),
      PAGEWISE_ARM_ENDPOINT: standin.endpoint,
      PAGEWISE_ARM_TOKEN: standin.token,
      PAGEWISE_BACKUP_POLICY: JSON.stringify({ vms: [{ resourceGroup: `/subscriptions/${standin.subscriptionId}/resourceGroups/rg-policy` }], retention: { keepLast: 1, graceDays: 3 } }),
    }));
    const report = await forgetByAppPolicy();
    expect(report.forgotten).toEqual([]);
    expect(report.vmBackups!.problems).toBeUndefined();
    expect(report.vmBackups!.forgotten.map((f) => [f.vmId, f.vmBackupId, f.diskBackups.length])).toEqual([[a.vmId, made[a.vmId][0], 1]]);
    expect(Date.parse(report.vmBackups!.forgotten[0].graceEndsAt) - Date.now()).toBeGreaterThan(2 * DAY);
    expect(report.vmBackups!.kept.map((k) => [k.vmId, k.vmBackupId, k.reasons])).toEqual([
      [a.vmId, made[a.vmId][1], ['last #1']],
      [b.vmId, made[b.vmId][0], ['last #1']],
    ]);
    const stateOf = async (vmId: string) => (await listVmBackupStates(vault, userKey, vmId)).map((s) => s.state);
    expect(await stateOf(a.vmId)).toEqual(['live', 'forgotten']);
    expect(await stateOf(b.vmId)).toEqual(['live']);
    // A second run finds nothing more to forget.
    expect((await forgetByAppPolicy()).vmBackups!.forgotten).toEqual([]);
  });
});

describe('Compute refusing the identity', () => {
  test('a 403 or a 401 from Compute is AccessDenied naming the call, not a transient failure; tag text is checked by one rule', async () => {
    const { vmId } = await standin.addVm({ resourceGroup: 'rg-denied', name: 'd1', osDiskBytes: 1 * MiB });
    standin.faults.fail('virtualMachines.get', 1, 403, 'AuthorizationFailed');
    await expect(compute.getVm(vmId)).rejects.toMatchObject({ code: 'AccessDenied', message: expect.stringContaining(`getVm ${vmId}: Compute refused the request (403 AuthorizationFailed`) });
    const stranger = new ArmVmCompute(armContext({ endpoint: standin.endpoint, credential: { getToken: async () => ({ token: 'wrong', expiresOnTimestamp: Date.now() + 3600_000 }) } }), { pollIntervalMs: 20 });
    await expect(stranger.getVm(vmId)).rejects.toMatchObject({ code: 'AccessDenied', message: expect.stringContaining('401') });
    expect((await compute.getVm(vmId)).name).toBe('d1');
    // The same words as a policy's tag selector gets (core/vm/tag-text.ts).
    await expect(compute.vmIdsByTag([standin.subscriptionId], { name: 'env', value: "x' or 1==1" })).rejects.toMatchObject({ code: 'BadInput', message: expect.stringContaining(`the VM tag value "x' or 1==1" holds "'"`) });
  });

  test('PAGEWISE_ARM_POLL_MS sets the poll interval, bounded; unset leaves the SDK default', () => {
    expect(armContext({ endpoint: standin.endpoint, credential: standin.credential }, { PAGEWISE_ARM_POLL_MS: '25' }).pollIntervalMs).toBe(25);
    expect(armContext({ endpoint: standin.endpoint, credential: standin.credential }, {}).pollIntervalMs).toBeUndefined();
    for (const bad of ['5', '60001', '2s', '-1']) {
      expect(() => armContext({ endpoint: standin.endpoint, credential: standin.credential }, { PAGEWISE_ARM_POLL_MS: bad })).toThrow(/PAGEWISE_ARM_POLL_MS .* must be a whole number of milliseconds from 10 to 60000/);
    }
  });
});
