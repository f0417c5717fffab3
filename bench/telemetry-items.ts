/**
 * #18: how many Application Insights items a backup makes — before (one dependency item per storage
 * request, as the SDK's auto-collection did) and after (core's request observer: every request counted in
 * one metric, every 100th kept) — measured as storage requests per GiB of a full backup at the default
 * 4 MiB pages on Azurite, extrapolated per TiB. `npm run bench:telemetry`; summary in
 * bench/results/telemetry-items.md (committed with git add -f).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { backupDisk, configureStorageEndpoints, generateKey, MiB, observeStorageRequests, type StorageLocation } from '../core';
import { startAzurite } from '../testkit/azurite';
import { writeDisk } from '../testkit/sample-disk';
import { fullMixed } from './lib/disks';

const DISK_BYTES = 512 * MiB;
const TiB_IN_GiB = 1024;

async function main(): Promise<void> {
  const az = await startAzurite({ accounts: ['src', 'vault'] });
  try {
    configureStorageEndpoints(az.storageEndpoints.split(','), 'PAGEWISE_STORAGE_ENDPOINTS');
    await az.accounts.src.service.getContainerClient('disks').create();
    await az.accounts.vault.service.getContainerClient('vault').create();
    const userKey = generateKey();
    const vault: StorageLocation = { url: az.sasUrl('vault', 'vault') };
    const blob = az.accounts.src.service.getContainerClient('disks').getPageBlobClient('items.vhd');
    await writeDisk(blob, DISK_BYTES, fullMixed(DISK_BYTES));
    const source = { url: az.sasUrl('src', 'disks', 'items.vhd', { permissions: 'r' }) };

    const byKind = new Map<string, number>();
    let requests = 0;
    observeStorageRequests((r) => {
      requests++;
      const key = `${r.method} ${Math.floor((r.status ?? 0) / 100)}xx`;
      byKind.set(key, (byKind.get(key) ?? 0) + 1);
    });
    const full = await backupDisk({ source, vault, userKey });
    const fullRequests = requests;
    const fullKinds = Object.fromEntries(byKind);
    observeStorageRequests(undefined);

    const gib = (bytes: number) => bytes / (1024 * MiB);
    const perGiB = fullRequests / gib(full.bytesRead);
    const perTiB = Math.round(perGiB * TiB_IN_GiB);
    const facts = {
      revision: execFileSync('git', ['rev-parse', '--short', 'HEAD']).toString().trim(),
      date: new Date().toISOString(),
      diskMiB: DISK_BYTES / MiB,
      full: { kind: full.kind, bytesReadMiB: full.bytesRead / MiB, pages: full.pages, requests: fullRequests, byKind: fullKinds },
      requestsPerGiBFull: Number(perGiB.toFixed(1)),
      requestsPerTiBFull: perTiB,
      dependencyItemsPerTiB: { before: perTiB, after1Percent: Math.floor(perTiB / 100) },
    };
    console.log(JSON.stringify(facts, null, 2));
    const dir = path.join(__dirname, 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'telemetry-items.json'), `${JSON.stringify(facts, null, 2)}\n`);
  } finally {
    await az.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
