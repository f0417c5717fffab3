/**
 * The clone case: two disks cloned from one ext4 image (bench/lib/fs-disk.ts), each changed a little, backed
 * up one after the other into ONE vault — what a fleet made from one OS image stores. Pagewise's figure is
 * the sum of both backups' stored bytes (the second finds the shared chunks through the vault index once
 * #15's writer dedupes against the whole vault); restic and borg back up both images into one repository.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { formatBytes } from '../../core';
import type { AzuriteInstance } from '../../testkit/azurite';
import { runWorker } from './child';
import { digestRegionsOfFile, WrittenDisk } from './disks';
import { makeClone, writeImageDisk } from './fs-disk';
import { borgSeries, BorgMode, BorgResult } from './borg';
import { resticSeries, ResticResult } from './restic';
import type { WorkerInput } from '../worker';

export interface CloneBackup {
  backupId: string;
  kind: string;
  reason: string | null;
  durationMs: number;
  allocatedBytes: number;
  bytesRead: number;
  bytesNew: number;
  bytesStored: number;
  /** #15 writer: chunks and bytes found through the vault index (absent before it). */
  bytesReusedFromVault?: number;
  peakRssBytes: number;
}

export interface ClonesResult {
  label: string;
  diskBytes: number;
  /** Bytes each clone's changes wrote. */
  changedBytes: number[];
  backups: CloneBackup[];
  restoredOk: boolean;
  restic?: ResticResult[];
  resticNote?: string;
  borg?: Partial<Record<BorgMode, BorgResult[]>>;
  borgNote?: string;
}

export interface ClonesOptions {
  /** The base image (made by the fs disk) and where clones go. */
  baseImage: string;
  work: string;
  cacheBytes: number;
  pageSize?: number;
  buildDir: string;
  azuritePid?: number;
  restic?: string;
  borg?: string;
  log: (line: string) => void;
}

export async function benchClones(azurite: AzuriteInstance, o: ClonesOptions): Promise<ClonesResult> {
  const disks = azurite.accounts.src.service.getContainerClient('disks');
  await disks.createIfNotExists();
  const clones: WrittenDisk[] = [];
  const changedBytes: number[] = [];
  for (const k of [1, 2]) {
    const image = path.join(o.work, `g${k}.img`);
    const change = await makeClone(o.baseImage, image, k, path.join(o.work, 'clone-scratch'));
    changedBytes.push(change.writtenBytes);
    clones.push(await writeImageDisk(disks.getPageBlobClient(`g${k}.vhd`), `g${k}`, `clone ${k}`, image));
  }
  const label = `2 clones of the fs image (${formatBytes(clones[0].spec.diskBytes)}), ${changedBytes.map((b) => formatBytes(b)).join(' + ')} written into each`;
  o.log(`— clone case: ${label}`);
  await azurite.accounts.vault.service.getContainerClient('vault-g').create();
  const vault = { url: azurite.sasUrl('vault', 'vault-g') };
  const userKeyHex = randomBytes(32).toString('hex');
  const backups: CloneBackup[] = [];
  for (const [k, clone] of clones.entries()) {
    const input: WorkerInput = {
      op: 'backup',
      vault,
      userKeyHex,
      backupId: `pw-${randomBytes(12).toString('hex')}`,
      source: { url: azurite.sasUrl('src', 'disks', `${clone.spec.key}.vhd`, { permissions: 'r' }) },
      cacheBytes: o.cacheBytes,
      ...(o.pageSize ? { pageSize: o.pageSize } : {}),
      scratchDir: path.join(o.work, 'scratch'),
    };
    const run = await runWorker(o.buildDir, input, { azuritePid: o.azuritePid });
    const r = run.output.result as CloneBackup;
    backups.push({ ...r, backupId: input.backupId, peakRssBytes: run.peakRssBytes });
    o.log(`  pagewise clone ${k + 1}: ${r.kind}${r.reason ? ` (${r.reason})` : ''}, ${(r.durationMs / 1000).toFixed(1)} s, new ${formatBytes(r.bytesNew)}, stored ${formatBytes(r.bytesStored)}${r.bytesReusedFromVault !== undefined ? `, reused from the vault ${formatBytes(r.bytesReusedFromVault)}` : ''}`);
  }
  const restored = path.join(o.work, 'g2.restored');
  await runWorker(o.buildDir, { op: 'restore', vault, userKeyHex, backupId: backups[1].backupId, target: restored }, {});
  const restoredOk = (await digestRegionsOfFile(restored, clones[1].spec.regions)) === clones[1].allocatedDigest;
  rmSync(restored, { force: true });
  o.log(`  restore of clone 2: ${restoredOk ? 'bytes identical' : 'RESTORED BYTES DIFFER'}`);

  const images = clones.map((c) => c.imagePath);
  const result: ClonesResult = { label, diskBytes: clones[0].spec.diskBytes, changedBytes, backups, restoredOk };
  if (o.restic) {
    try {
      result.restic = await resticSeries(o.restic, images);
      o.log(`  restic: repository after both clones ${formatBytes(result.restic[1].repoBytes ?? 0)}`);
    } catch (err) {
      result.resticNote = `restic failed: ${(err as Error).message.slice(0, 300)}`;
    }
  }
  if (o.borg) {
    result.borg = {};
    for (const mode of ['default', 'zstd3'] as const) {
      try {
        result.borg[mode] = await borgSeries(o.borg, images, mode);
        o.log(`  borg (${mode}): repository after both clones ${formatBytes(result.borg[mode]![1].repoBytes ?? 0)}`);
      } catch (err) {
        result.borgNote = `borg failed: ${(err as Error).message.slice(0, 300)}`;
      }
    }
  }
  return result;
}
