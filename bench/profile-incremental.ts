/**
 * Where a small version-2 incremental spends its time: a fully allocated disk backed up (inline engine,
 * --snapshot), 2 % of it overwritten, backed up again with timing spans on the engine's steps and every
 * vault and source call (`npx ts-node --transpile-only bench/profile-incremental.ts [MiB]`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backupDisk, MiB } from '../core';
import { configureStorageEndpointsFromEnv } from '../core/storage/endpoints';
import { Vault } from '../core/repo/vault';
import { SourceDisk } from '../core/source/source-disk';
import { startAzurite } from '../testkit/azurite';
import { applyChange, changeExtents } from './lib/incremental';
import { fullMixed, writeBenchDisk } from './lib/disks';
import { Spans } from './lib/spans';

/** Wraps every method of a prototype (own, not the constructor). */
function wrapAll(spans: Spans, proto: object, prefix: string): void {
  for (const name of Object.getOwnPropertyNames(proto)) {
    const d = Object.getOwnPropertyDescriptor(proto, name);
    if (name === 'constructor' || !d || typeof d.value !== 'function' || d.value.constructor.name === 'AsyncGeneratorFunction') continue;
    spans.wrap(proto, name, `${prefix}.${name}`);
  }
}

/** Wraps the named exports of a module (cross-module calls go through them). */
function wrapExports(spans: Spans, mod: Record<string, unknown>, names: string[], prefix: string): void {
  for (const n of names) spans.wrap(mod, n, `${prefix}.${n}`);
}

async function main(): Promise<void> {
  const diskBytes = Number(process.argv[2] ?? 256) * MiB;
  const work = mkdtempSync(path.join(os.tmpdir(), 'pagewise-prof-'));
  const az = await startAzurite({ accounts: ['src', 'vault'] });
  configureStorageEndpointsFromEnv({ PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints });
  try {
    const disks = az.accounts.src.service.getContainerClient('disks');
    await disks.create();
    const client = disks.getPageBlobClient('i.vhd');
    const image = path.join(work, 'i.img');
    await writeBenchDisk(client, { key: 'i', label: 'i', diskBytes, regions: fullMixed(diskBytes, 17) }, image);
    await az.accounts.vault.service.getContainerClient('vault').create();
    const req = {
      source: { url: az.sasUrl('src', 'disks', 'i.vhd', { permissions: 'racwd' }) },
      vault: { url: az.sasUrl('vault', 'vault') },
      userKey: randomBytes(32),
      pageSize: 64 * 1024,
      cacheBytes: 16 * MiB,
      scratchDir: work,
      takeSnapshot: true,
    };
    const t0 = Date.now();
    const full = await backupDisk({ ...req, backupId: `pw-${randomBytes(12).toString('hex')}` });
    process.stdout.write(`full: ${full.kind} ${Date.now() - t0} ms\n`);
    await applyChange(client, image, changeExtents(diskBytes, 0.02));

    const spans = new Spans();
    wrapAll(spans, Vault.prototype, 'vault');
    wrapAll(spans, SourceDisk.prototype, 'source');
    wrapExports(spans, require('../core/backup/plan-backup'), ['planBackup'], 'phase');
    wrapExports(spans, require('../core/backup/v2/plan'), ['planV2'], 'phase');
    wrapExports(spans, require('../core/backup/v2/batch'), ['runBatchV2'], 'phase');
    wrapExports(spans, require('../core/backup/finalize-backup'), ['finalizeBackup'], 'phase');
    wrapExports(spans, require('../core/backup/v2/finalize'), ['finalizeV2'], 'phase');
    wrapExports(spans, require('../core/backup/v2/base'), ['chooseBase'], 'base');
    wrapExports(spans, require('../core/backup/v2/context'), ['openBackupContextV2', 'manifestOfPlan'], 'ctx');
    wrapExports(spans, require('../core/repo/v2/manifest'), ['readManifest2', 'writeManifest2', 'findManifest2'], 'manifest');
    wrapExports(spans, require('../core/repo/v2/page-table'), ['readTable', 'writeTable'], 'table');
    wrapExports(spans, require('../core/repo/v2/staging'), ['readPlan2', 'writePlan2', 'readBatch2', 'writeBatch2'], 'staging');
    wrapExports(spans, require('../core/repo/v2/marker'), ['openVaultKeyring', 'readVaultMarker', 'readVaultMarkerIfAny'], 'marker');
    wrapExports(spans, require('../core/repo/v2/keyring'), ['openKeyring'], 'keyring');
    wrapExports(spans, require('../core/backup/vault-version'), ['openVaultForBackup', 'formatOfBackup'], 'version');
    wrapExports(spans, require('../core/source/snapshot-lifecycle'), ['releaseOlderSnapshots'], 'snap');
    const t1 = Date.now();
    const incr = await backupDisk({ ...req, backupId: `pw-${randomBytes(12).toString('hex')}` });
    const ms = Date.now() - t1;
    process.stdout.write(`incremental: ${incr.kind}, ${ms} ms, read ${incr.bytesRead}, released ${incr.releasedSnapshots?.length}\n`);
    const rows = Object.entries(spans.snapshot()).sort((a, b) => b[1].busyMs - a[1].busyMs);
    for (const [name, s] of rows) process.stdout.write(`${name.padEnd(36)} calls ${String(s.calls).padStart(5)}  busy ${String(s.busyMs).padStart(8)} ms  total ${String(s.totalMs).padStart(8)} ms  max ${s.maxMs}  par ${s.maxActive}\n`);
  } finally {
    await az.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
