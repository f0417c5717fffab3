/**
 * ARM calls per VM backup and per VM restore (#16): a three-disk VM (OS + 2 data disks) on the loopback
 * Compute stand-in (test/harness/compute-standin, a test fixture; every disk a page blob in Azurite),
 * backed up full, changed, backed up incrementally, then restored as new disks and a new VM — all through
 * the real `@azure/arm-compute` client. Prints the requests each step made, by Compute operation, and how
 * many were long-running-operation polls (ARM's own Retry-After sets their number in Azure; here each LRO is
 * polled once or twice). Counts, not timings: rerun with `npx ts-node --transpile-only bench/vm-arm-calls.ts`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { armContext, ArmVmCompute, backupVm, configureStorageEndpoints, generateKey, initVault, restoreVm } from '../core';
import { startAzurite } from '../testkit/azurite';
import { startComputeStandIn } from '../test/harness/compute-standin';

const KiB = 1024;
const MiB = 1024 * KiB;

async function main(): Promise<void> {
  const az = await startAzurite({ accounts: ['src', 'vault'] });
  configureStorageEndpoints(az.storageEndpoints.split(','), 'PAGEWISE_STORAGE_ENDPOINTS');
  const standin = await startComputeStandIn(az);
  try {
    await az.accounts.vault.service.getContainerClient('vault').create();
    const vault = { url: az.sasUrl('vault', 'vault') };
    const userKey = generateKey();
    await initVault(vault, { userKey });
    const compute = new ArmVmCompute(armContext({ endpoint: standin.endpoint, credential: standin.credential }, {}), { pollIntervalMs: 20 });
    const { vmId, disks } = await standin.addVm({ resourceGroup: 'rg-app', name: 'web-01', osDiskBytes: 32 * MiB, dataDisks: [{ lun: 0, bytes: 32 * MiB }, { lun: 1, bytes: 32 * MiB }] });
    for (const d of disks) await d.blob.uploadPages(randomBytes(4 * MiB), 0, 4 * MiB);
    const settings = { pageSize: 1 * MiB, cacheBytes: 4 * MiB, scratchDir: mkdtempSync(path.join(os.tmpdir(), 'pagewise-vm-calls-')) };

    const steps: { step: string; counts: Map<string, number>; polls: number; total: number }[] = [];
    let seen = 0;
    const record = (step: string) => {
      const calls = standin.calls().slice(seen);
      seen += calls.length;
      const counts = new Map<string, number>();
      let polls = 0;
      for (const c of calls) {
        if (c.op === 'operations.poll') polls++;
        else counts.set(c.op, (counts.get(c.op) ?? 0) + 1);
      }
      steps.push({ step, counts, polls, total: calls.length });
    };

    let clockMs = Date.now() - 3600_000;
    const full = await backupVm({ compute, vmId, vault, userKey, settings, clock: () => clockMs });
    record(`full VM backup (${full.manifest.disks.length} disks, ${full.manifest.capture})`);
    for (const d of disks) await d.blob.uploadPages(randomBytes(1 * MiB), 8 * MiB, 1 * MiB);
    clockMs += 600_000;
    const incremental = await backupVm({ compute, vmId, vault, userKey, settings, clock: () => clockMs });
    record(`incremental VM backup (${incremental.manifest.disks.map((d) => d.kind).join('/')}, ${incremental.released.length} older capture(s) released)`);
    const restored = await restoreVm({ compute, vault, userKey, vmBackupId: incremental.vmBackupId, resourceGroup: 'rg-restore', createVm: { name: 'web-01-restored', networkInterfaceIds: [`/subscriptions/${standin.subscriptionId}/resourceGroups/rg-restore/providers/Microsoft.Network/networkInterfaces/nic-restored`] } });
    record(`restore-vm with --create-vm (${restored.disks.length} disks)`);

    console.log(`# ARM calls per VM operation (bench/vm-arm-calls.ts; ${new Date().toISOString()}; node ${process.version})\n`);
    for (const s of steps) {
      console.log(`## ${s.step}: ${s.total} requests, ${s.total - s.polls} operations + ${s.polls} LRO polls`);
      for (const [op, n] of [...s.counts].sort((a, b) => a[0].localeCompare(b[0]))) console.log(`- ${op}: ${n}`);
      console.log('');
    }
  } finally {
    await standin.stop();
    await az.stop();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
