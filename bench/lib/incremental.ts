/**
 * The incremental case (issue #12): a fully allocated disk backed up in full with a snapshot kept as
 * the base, then 2 % of it overwritten in scattered extents (a new state of the same page blob and of
 * its local image), then backed up again — incremental by itself. restic backs up the same two images
 * into one repository in the same run (it re-reads the whole file the second time).
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, rmSync } from 'node:fs';
import * as path from 'node:path';
import type { PageBlobClient } from '@azure/storage-blob';
import { formatBytes, MiB } from '../../core';

const KiB = 1024;
import { AzuriteInstance } from '../../testkit/azurite';
import { fileSha256 } from '../../testkit/disk-hash';
import { prng } from '../../testkit/prng';
import { DiskRegion, regionBytes } from '../../testkit/sample-disk';
import { ChildRun, runWorker } from './child';
import { fullMixed, writeBenchDisk } from './disks';
import { resticIncremental, ResticResult } from './restic';
import type { WorkerInput } from '../worker';

export interface IncrementalOptions {
  diskBytes: number;
  /** The backups' page size: a changed page is re-read whole, so it bounds read ÷ changed for small extents. */
  pageSize: number;
  cacheBytes: number;
  /** Share of the disk overwritten between the two backups. */
  changeFraction: number;
  buildDir: string;
  work: string;
  azuritePid?: number;
  restic?: string;
  log: (line: string) => void;
}

/** What the report shows of a backup result (core BackupResult, from the worker). */
export interface IncrementalBackupFigures {
  backupId?: string;
  kind: string;
  reason: string | null;
  base: { backupId: string } | null;
  durationMs: number;
  bytesRead: number;
  bytesChanged: number;
  bytesNew: number;
  bytesStored: number;
  allocatedBytes: number;
  peakRssBytes: number;
}

export interface IncrementalResult {
  label: string;
  diskBytes: number;
  pageSize: number;
  /** Bytes the bench overwrote between the two backups, and in how many extents. */
  changedBytes: number;
  extents: number;
  full: IncrementalBackupFigures;
  incremental: IncrementalBackupFigures;
  /** The incremental restored byte-identical to the disk's second state. */
  restoredOk: boolean;
  restic?: { first: ResticResult; second: ResticResult };
  resticNote?: string;
}

/**
 * Non-overlapping extents covering `fraction` of the disk: 64 KiB … 2 MiB (log-uniform, 4 KiB aligned,
 * as a file system writes files), one per equal slot of the disk at a random aligned place in it.
 */
export function changeExtents(diskBytes: number, fraction: number, seed = 21): DiskRegion[] {
  const rand = prng(seed);
  const target = Math.round((diskBytes * fraction) / (4 * KiB)) * 4 * KiB; // page blobs take 512-byte multiples
  const sizes: number[] = [];
  for (let total = 0; total < target; ) {
    const size = Math.exp(Math.log(64 * KiB) + rand() * (Math.log(2 * MiB) - Math.log(64 * KiB)));
    const aligned = Math.min(target - total, Math.max(4 * KiB, Math.floor(size / (4 * KiB)) * 4 * KiB));
    sizes.push(aligned);
    total += aligned;
  }
  const slot = Math.floor(diskBytes / sizes.length / (4 * KiB)) * 4 * KiB;
  return sizes.map((length, k) => {
    const room = Math.max(0, slot - length);
    const offset = k * slot + Math.floor((rand() * room) / (4 * KiB)) * 4 * KiB;
    return { offset, length: Math.min(length, slot), kind: 'random' as const, seed: 90_000 + k };
  });
}

/** Writes the extents into the page blob and its local image (the disk's next state); returns the bytes written. */
export async function applyChange(client: PageBlobClient, imagePath: string, extents: DiskRegion[]): Promise<number> {
  const image = await fs.open(imagePath, 'r+');
  let written = 0;
  try {
    for (const extent of extents) {
      for (let at = 0; at < extent.length; at += 4 * MiB) {
        const length = Math.min(4 * MiB, extent.length - at);
        const bytes = regionBytes(extent, at, length);
        await Promise.all([client.uploadPages(bytes, extent.offset + at, length), image.write(bytes, 0, length, extent.offset + at)]);
        written += length;
      }
    }
  } finally {
    await image.close();
  }
  return written;
}

function figures(run: ChildRun): IncrementalBackupFigures {
  const r = run.output.result as IncrementalBackupFigures;
  const { kind, reason, base, durationMs, bytesRead, bytesChanged, bytesNew, bytesStored, allocatedBytes } = r;
  return { kind, reason, base, durationMs, bytesRead, bytesChanged, bytesNew, bytesStored, allocatedBytes, peakRssBytes: run.peakRssBytes };
}

export async function benchIncremental(azurite: AzuriteInstance, o: IncrementalOptions): Promise<IncrementalResult> {
  const label = `${formatBytes(o.diskBytes)} full, mixed; ${(o.changeFraction * 100).toFixed(0)} % changed`;
  o.log(`— incremental case: ${label}, page size ${formatBytes(o.pageSize)}`);
  const disks = azurite.accounts.src.service.getContainerClient('disks');
  await disks.createIfNotExists();
  const client = disks.getPageBlobClient('i.vhd');
  const imagePath = path.join(o.work, 'i.img');
  await writeBenchDisk(client, { key: 'i', label, diskBytes: o.diskBytes, regions: fullMixed(o.diskBytes, 17) }, imagePath);
  // A vault of its own, without a marker: its first backup makes it version 2.
  await azurite.accounts.vault.service.getContainerClient('vault-i').create();
  const common = {
    vault: { url: azurite.sasUrl('vault', 'vault-i') },
    userKeyHex: randomBytes(32).toString('hex'),
    // Snapshots are taken and released: the source SAS may create and delete.
    source: { url: azurite.sasUrl('src', 'disks', 'i.vhd', { permissions: 'racwd' }) },
    cacheBytes: o.cacheBytes,
    pageSize: o.pageSize,
    scratchDir: path.join(o.work, 'scratch'),
    takeSnapshot: true,
  };
  const backup = async (what: string): Promise<IncrementalBackupFigures & { backupId: string }> => {
    const input: WorkerInput = { op: 'backup', ...common, backupId: `pw-${randomBytes(12).toString('hex')}` };
    const f = { ...figures(await runWorker(o.buildDir, input, { azuritePid: o.azuritePid })), backupId: input.backupId };
    o.log(`  pagewise ${what}: ${f.kind}${f.reason ? ` (${f.reason})` : ''}, ${(f.durationMs / 1000).toFixed(1)} s, read ${formatBytes(f.bytesRead)}, new ${formatBytes(f.bytesNew)}`);
    return f;
  };

  const full = await backup('backup 1');
  const extents = changeExtents(o.diskBytes, o.changeFraction);
  let changedBytes = 0;
  const change = async () => {
    changedBytes = await applyChange(client, imagePath, extents);
    o.log(`  changed ${formatBytes(changedBytes)} in ${extents.length} extents`);
  };
  let restic: IncrementalResult['restic'];
  let resticNote: string | undefined;
  if (o.restic) {
    try {
      restic = await resticIncremental(o.restic, imagePath, change);
      o.log(`  restic: image 1 ${(restic.first.ms / 1000).toFixed(1)} s, image 2 (incremental) ${(restic.second.ms / 1000).toFixed(1)} s`);
    } catch (err) {
      resticNote = `restic failed: ${(err as Error).message.slice(0, 300)}`;
    }
  } else {
    resticNote = 'restic not installed';
  }
  if (changedBytes === 0) await change(); // restic absent or failed before the change
  const incremental = await backup('backup 2');

  const restored = path.join(o.work, 'i.restored');
  await runWorker(o.buildDir, { op: 'restore', vault: common.vault, userKeyHex: common.userKeyHex, backupId: incremental.backupId, target: restored }, {});
  const restoredOk = (await fileSha256(restored)) === (await fileSha256(imagePath));
  rmSync(restored, { force: true });
  o.log(`  restore of the incremental: ${restoredOk ? 'bytes identical to the second state' : 'RESTORED BYTES DIFFER'}`);
  return { label, diskBytes: o.diskBytes, pageSize: o.pageSize, changedBytes, extents: extents.length, full, incremental, restoredOk, ...(restic ? { restic } : {}), ...(resticNote ? { resticNote } : {}) };
}
