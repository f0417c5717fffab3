/**
 * The demo's vault-wide dedupe step (#15): a second disk cloned from the first (its bytes copied page blob to page
 * blob, then a few pages changed) in the same source account, backed up into the same vault as a full backup of a
 * new disk — whose new bytes are only its changed chunks, the rest found through the vault's content index.
 */
import * as path from 'node:path';
import type { PageBlobClient } from '@azure/storage-blob';
import { fileSha256, pageBlobSha256 } from '../testkit/disk-hash';
import { BackupResult, formatBytes, RebuildReport, RestoreResult, VaultUsage } from '../core';
import { changeDisk, DiskChange } from './change-disk';
import { Check, DemoContext, MiB, pagewise, secs, shapeFor, timed } from './demo-cli';

const CLONE_BLOB = 'vm3-clone.vhd';
/** Share of the clone's pages changed after the copy: a few pages (the fleet's VMs diverge a little from their image). */
const CLONE_CHANGE_FRACTION = 0.01;
/** Another seed than the first disk's change: the clone's new bytes are its own. */
const CLONE_SEED = 90_000;
/** Bytes per Put Page when copying (the service's largest). */
const COPY_PIECE = 4 * MiB;

export type CloneContext = DemoContext;

/** The clone made (or the error); settled, never rejected, so it can run unawaited beside other steps. */
export type PreparedClone = { error: unknown } | { change: DiskChange; sha256: string; copiedBytes: number; ms: number };

/** What the clone step needs of the steps before it: the first disk's two backups and its change. */
export interface FirstDisk {
  full: BackupResult;
  incremental: BackupResult;
  change: DiskChange;
  /** The other backups in the vault (file-level restore's), for the vault's totals. */
  others: BackupResult[];
}

/**
 * Copies the first disk's allocated ranges into a new page blob of the same size, then changes a few of its pages
 * (demo/change-disk.ts, another seed). Touches only the source account: the demo runs it beside its retention steps.
 */
export async function prepareClone(ctx: CloneContext, from: PageBlobClient, diskBytes: number): Promise<PreparedClone> {
  try {
    const t = Date.now();
    const clone = ctx.az.accounts.src.service.getContainerClient('disks').getPageBlobClient(CLONE_BLOB);
    await clone.create(diskBytes);
    const { pageSize } = shapeFor(diskBytes);
    let copiedBytes = 0;
    for await (const listed of from.listPageRanges(0, diskBytes).byPage({ maxPageSize: 5000 })) {
      for (const r of listed.pageRange ?? []) {
        for (let at = r.start; at <= r.end; at += COPY_PIECE) {
          const length = Math.min(COPY_PIECE, r.end + 1 - at);
          await clone.uploadPages(await from.downloadToBuffer(at, length), at, length);
          copiedBytes += length;
        }
      }
    }
    const change = await changeDisk(clone, diskBytes, pageSize, CLONE_CHANGE_FRACTION, CLONE_SEED);
    const sha256 = await pageBlobSha256(clone, diskBytes);
    return { change, sha256, copiedBytes, ms: Date.now() - t };
  } catch (error) {
    return { error };
  }
}

/**
 * Backs the clone up (a full backup of a new disk), then at once: restores it to a file, lists the vault with its
 * usage, and rebuilds the index as a dry run; checks the reuse, the bytes per disk, 0 unplaced chunks, the restore.
 */
export async function cloneStep(ctx: CloneContext, preparing: Promise<PreparedClone>, first: FirstDisk): Promise<{ rows: Array<[string, string]>; checks: Check[] }> {
  const prepared = await timed(`copying src/disks/vm1.vhd to ${CLONE_BLOB} and changing a few of its pages, begun beside the steps above`, () => preparing);
  const p = prepared.value;
  if ('error' in p) throw p.error;
  const diskBytes = first.full.diskBytes;
  const { pageSize, cacheBytes } = shapeFor(diskBytes);
  const vaultArgs = ['--vault', ctx.vaultUrl, '--key-file', ctx.keyFile];
  const backup = await timed(`pagewise backup ${CLONE_BLOB} --engine ${ctx.engine} (a new disk, into the same vault)`, () =>
    pagewise<BackupResult>(
      ['backup', ctx.az.sasUrl('src', 'disks', CLONE_BLOB, { permissions: 'r' }), ...vaultArgs, '--page-size', String(pageSize), '--cache', String(cacheBytes), '--scratch-dir', ctx.scratch, '--engine', ctx.engine, '--json'],
      ctx.env,
    ),
  );
  const k = backup.value;
  const restoredFile = path.join(ctx.tmp, 'vm3-clone-restored.img');
  // Independent processes reading the vault: run at once, their start-up (ts-node) overlaps.
  const reads = await timed('pagewise restore <clone> → file, list --json (usage), rebuild-index --dry-run --json (at once)', async () => {
    const [restore, list, rebuild] = await Promise.all([
      pagewise<RestoreResult>(['restore', k.backupId, ...vaultArgs, '--to', restoredFile, '--json'], ctx.env),
      pagewise<{ usage?: VaultUsage }>(['list', ...vaultArgs, '--scratch-dir', ctx.scratch, '--json'], ctx.env),
      pagewise<RebuildReport>(['rebuild-index', ...vaultArgs, '--dry-run', '--json'], ctx.env),
    ]);
    return { restore, list, rebuild, sha256: await fileSha256(restoredFile) };
  });
  const { restore, list, rebuild, sha256 } = reads.value;

  const usage = list.usage;
  const diskOf = (id: string) => usage?.disks.find((d) => d.disk === usage.backups.find((b) => b.backupId === id)?.disk);
  const cloneDisk = diskOf(k.backupId);
  const firstDisk = diskOf(first.full.backupId);
  const changedBytes = p.change.touchedPages * pageSize;
  // Everything the first disk's full stored, less the pages either change touched, is the clone's too: found in the vault.
  const expectedReuse = first.full.bytesNew - (first.change.touchedPages + p.change.touchedPages) * pageSize;
  const reusedBytes = k.bytesReusedFromVault ?? 0;
  const reusedChunks = k.chunksReusedFromVault ?? 0;
  const v = usage?.vault;
  const parts = v ? v.packBytes + v.indexBytes + v.tableBytes + v.otherBytes + v.v1Bytes : NaN;
  const allBackups = [first.full, first.incremental, ...first.others, k];
  const storedByAll = allBackups.reduce((sum, b) => sum + b.bytesStored, 0);
  // Pack headers and trailers (§17): at most 1 % over the blocks the backups stored; a clone stored again would add ~80 MiB.
  const packOverhead = Math.ceil(storedByAll / 100);
  const perDisk = (d: typeof cloneDisk) => (d ? `${formatBytes(d.uniqueBytes)} unique, ${formatBytes(d.sharedBytes)} shared (${formatBytes(d.referencedBytes)} referenced, ${d.backups} backup(s))` : '—');

  const checks: Check[] = [
    { what: 'clone: a full backup of a new disk', ok: k.kind === 'full' && k.base === null && cloneDisk !== undefined && cloneDisk !== firstDisk, detail: `${k.kind} (${k.reason ?? '—'}), its own disk in the listing: ${cloneDisk !== undefined && cloneDisk !== firstDisk ? 'yes' : 'NO'}` },
    { what: "clone: new bytes ≤ the changed pages' bytes", ok: k.bytesNew > 0 && k.bytesNew <= changedBytes, detail: `${formatBytes(k.bytesNew)} new ≤ ${p.change.touchedPages} × ${formatBytes(pageSize)} (${formatBytes(k.bytesRead)} read)` },
    {
      what: "clone: the rest found in the vault (the first disk's chunks)",
      ok: reusedChunks > 0 && reusedBytes >= expectedReuse && reusedBytes > 0,
      detail: `${reusedChunks} chunks, ${formatBytes(reusedBytes)} ≥ first full's ${formatBytes(first.full.bytesNew)} new − ${first.change.touchedPages + p.change.touchedPages} changed pages = ${formatBytes(expectedReuse)}`,
    },
    {
      what: "list usage: the clone's unique bytes small, shared large",
      ok: cloneDisk !== undefined && cloneDisk.uniqueBytes <= k.bytesStored && cloneDisk.sharedBytes >= 10 * cloneDisk.uniqueBytes && firstDisk !== undefined && firstDisk.sharedBytes === cloneDisk.sharedBytes,
      detail: `clone ${perDisk(cloneDisk)}; unique ≤ its ${formatBytes(k.bytesStored)} stored; shared = the first disk's shared`,
    },
    {
      what: 'list usage: vault total = its parts; packs hold every chunk once',
      ok: v !== undefined && v.totalBytes === parts && v.referencedBytes <= v.packBytes && v.referencedBytes <= storedByAll && v.packBytes <= storedByAll + packOverhead,
      detail: v
        ? `${formatBytes(v.totalBytes)} total; ${formatBytes(v.referencedBytes)} referenced ≤ ${formatBytes(v.packBytes)} of packs = the ${allBackups.length} backups' ${formatBytes(storedByAll)} stored + ${v.packBytes - storedByAll} B (≤ ${formatBytes(packOverhead)})`
        : 'no usage in list --json',
    },
    {
      what: 'rebuild-index --dry-run: every chunk placed',
      ok: rebuild.chunksUnplaced === 0 && rebuild.packsUnreadable.length === 0 && rebuild.problems.length === 0 && rebuild.manifestsChecked === allBackups.length,
      detail: `${rebuild.chunksUnplaced} unplaced, ${rebuild.manifestsChecked} backups checked, ${rebuild.packsRead} packs read, ${rebuild.entries} entries`,
    },
    { what: 'clone restored identical', ok: sha256 === p.sha256, detail: sha256.slice(0, 16) },
  ];
  const rows: Array<[string, string]> = [
    ['clone of the first disk', `src/disks/${CLONE_BLOB}: ${formatBytes(p.copiedBytes)} copied from vm1.vhd, then ${p.change.touchedPages} pages touched (${formatBytes(p.change.bytesWritten)} written, ${formatBytes(p.change.bytesCleared)} cleared)`],
    ['  backup', `${k.backupId}: ${k.kind} (${k.reason ?? '—'}), ${formatBytes(k.bytesRead)} read, ${formatBytes(k.bytesNew)} new in ${k.storedBlocks} chunks, ${formatBytes(k.bytesStored)} stored; ${secs(k.durationMs)} engine`],
    ['  reused from the vault', `${reusedChunks} chunks, ${formatBytes(reusedBytes)} plaintext (content index hits, each chunk once per batch)`],
    ['  restore → file', `${formatBytes(restore.bytesWritten)} in ${secs(restore.durationMs)}; identical: ${sha256 === p.sha256 ? 'yes' : 'NO'}`],
    ['  rebuild-index --dry-run', `${rebuild.packsRead} packs read, ${rebuild.entries} index entries, ${rebuild.chunksUnplaced} chunks unplaced`],
    ['stored bytes: first disk', perDisk(firstDisk)],
    ['stored bytes: clone', perDisk(cloneDisk)],
    ['stored bytes: vault total', v ? `${formatBytes(v.totalBytes)}: packs ${formatBytes(v.packBytes)} (${formatBytes(v.referencedBytes)} referenced), index ${formatBytes(v.indexBytes)}, tables ${formatBytes(v.tableBytes)}, other ${formatBytes(v.otherBytes)}` : '—'],
    ['  time', `copy + change ${secs(p.ms)} beside the retention steps; backup ${secs(backup.ms)}, restore/list/rebuild-index at once ${secs(reads.ms)}`],
  ];
  return { rows, checks };
}
