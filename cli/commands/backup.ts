/** `pagewise backup <source-page-blob-url> --vault <container-url> --key-file <f> [...]` */
import { backupDisk, BackupResult, displayUrl, formatBytes, initVault, loadUserKey, SourceDisk, TRANSIENT_CODES, validateBackupId } from '../../core';
import { kindLine } from '../backupKind';
import { backupWithLocalEngine, ENGINES, parseEngine, TASKHUB_ENV } from '../engines';
import { storageLocation } from '../locations';
import { engineSettings } from '../options';
import { printJson, printLines, progressBar, rate, seconds, table } from '../output';
import { DefineCommand } from './context';

interface BackupOptions {
  vault: string;
  keyFile: string;
  pageSize?: string;
  cache?: string;
  concurrency?: string;
  scratchDir?: string;
  backupId?: string;
  engine?: string;
  snapshot?: boolean;
  full?: boolean;
  chunking?: string;
  codec?: string;
  vaultDedupe?: boolean;
  createVault?: boolean;
  json?: boolean;
}

export const defineBackup: DefineCommand = (program, ctx) => {
  program
    .command('backup')
    .description('back up a page blob (VM disk) page by page into the encrypted vault')
    .argument('<source-page-blob-url>', 'the disk: a page-blob URL (a SAS in it, or PAGEWISE_SOURCE_CONNECTION_STRING)')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'user key file (see pagewise keygen)')
    .option('--page-size <size>', 'page size, a multiple of 512 (e.g. 4MiB)', '4MiB')
    .option('--cache <size>', 'scratch cache capacity; at least one page, smaller than the disk', '256MiB')
    .option('--concurrency <n>', 'pages in flight at once (1-64)')
    .option('--scratch-dir <dir>', 'directory for the scratch cache (default: OS temp dir)')
    .option('--backup-id <id>', 'backup ID (default: derived from the disk state, so a rerun resumes)')
    .option('--snapshot', 'back up a snapshot Pagewise takes first (for a disk in use; needs write and delete permission on it); kept as the base of the next backup, older ones Pagewise took are deleted')
    .option('--full', 'read and store the whole disk even when an incremental backup is possible (default: incremental on the newest backup of the same disk)')
    .option('--chunking <scheme>', 'how pages are cut into chunks: page (one chunk per page), fastcdc (64KiB,256KiB,1MiB) or fastcdc:<min>,<avg>,<max>; a change makes the next backup full', 'fastcdc')
    .option('--codec <codec>', 'compression of new blocks: zstd, lz4 or stored', 'zstd')
    .option('--no-vault-dedupe', "store every chunk not in this disk's base or batch, without looking it up in the vault's content index")
    .option('--engine <engine>', `${ENGINES.join(' | ')}: run in this process, or as the durable orchestration on the local runtime (state in ${TASKHUB_ENV} or the vault account)`, 'inline')
    .option('--create-vault', 'create the vault container first if it does not exist (as pagewise init does)')
    .option('--json', 'print the result as one JSON object')
    .action(async (sourceUrl: string, opts: BackupOptions) => {
      const { io } = ctx;
      ctx.hint = backupHint;
      const source = storageLocation(sourceUrl, 'source', io.env);
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const settings = engineSettings(opts);
      const backupId = opts.backupId === undefined ? undefined : validateBackupId(opts.backupId);
      const engine = parseEngine(opts.engine);
      const userKey = await loadUserKey(opts.keyFile);
      if (opts.createVault) {
        await SourceDisk.open(source); // a bad source fails before a vault is made for it
        await initVault(vault);
      }
      const bar = progressBar(io, opts.json ?? false, 'backup', engine === 'local' ? 'batches' : 'pages');
      const abortSignal = io.interruptSignal?.();
      let result: BackupResult;
      try {
        if (engine === 'local') {
          result = await backupWithLocalEngine({ source, vault, userKey, backupId, settings, takeSnapshot: opts.snapshot, full: opts.full, env: io.env, abortSignal, onBatches: (done, total) => bar.update(done, total) });
        } else {
          result = await backupDisk({
            source,
            vault,
            userKey,
            backupId,
            pageSize: settings.pageSize,
            cacheBytes: settings.cacheBytes,
            concurrency: settings.concurrency,
            scratchDir: settings.scratchDir,
            chunking: settings.chunking,
            codec: settings.codec,
            vaultDedupe: settings.vaultDedupe,
            takeSnapshot: opts.snapshot,
            ...(opts.full ? { full: true } : {}),
            abortSignal,
            onProgress: (p) => bar.show(p),
          });
        }
      } finally {
        bar.stop();
      }
      if (opts.json) {
        printJson(io, result);
        return;
      }
      printLines(io, [
        result.alreadyExisted
          ? `backup ${result.backupId} already exists (made ${result.completedAt}), nothing read: ${displayUrl(sourceUrl)} → ${displayUrl(opts.vault)}`
          : `backup ${result.backupId} complete: ${displayUrl(sourceUrl)} → ${displayUrl(opts.vault)}`,
        ...table([
          ['kind', kindLine(result)],
          ['disk', `${formatBytes(result.diskBytes)} (${formatBytes(result.allocatedBytes)} allocated)`],
          // A backup that already existed read nothing: no read speed, no cache use to report.
          ...(result.alreadyExisted ? [] : [['read', readLine(result)] as [string, string]]),
          ['pages', `${result.pages} of ${formatBytes(result.pageSize)} (${result.zeroPages} zero, ${result.dedupedPages} deduplicated)`],
          ['stored', `${formatBytes(result.bytesStored)} in ${result.storedBlocks} blocks, ${result.segments} ${result.formatVersion === 2 ? 'pack' : 'segment'}(s)`],
          ...(result.formatVersion === 2 && result.chunks !== undefined ? [['chunks', chunksLine(result)] as [string, string]] : []),
          ...(result.alreadyExisted ? [] : [['cache', `${formatBytes(result.cacheCapacityBytes)} capacity, ${formatBytes(result.cacheHighWaterBytes)} high water`] as [string, string]]),
          ...(result.sourceSnapshot ? [['snapshot', snapshotLine(result)] as [string, string]] : []),
        ]),
      ]);
    });
};

/** The snapshot this run took: kept as the next backup's base (format 2) or deleted (format 1); older ones it released. */
function snapshotLine(result: BackupResult): string {
  const taken = result.sourceSnapshot!;
  const fate = result.formatVersion === 2 && !taken.deleted ? 'kept as the base of the next backup' : taken.deleted ? 'deleted' : 'NOT deleted (delete it yourself)';
  const released = result.releasedSnapshots?.length ? `; released ${result.releasedSnapshots.length} older: ${result.releasedSnapshots.join(', ')}` : '';
  return `${taken.snapshot} taken, ${fate}${released}`;
}

/** Version 2: the chunks the backup names, how many it stored, and what it found elsewhere in the vault (#15). */
function chunksLine(result: BackupResult): string {
  const vault = result.chunksReusedFromVault ? `; ${result.chunksReusedFromVault} (${formatBytes(result.bytesReusedFromVault ?? 0)}) found in the vault's other backups` : '';
  return `${result.chunks} referenced, ${result.storedBlocks} new (${formatBytes(result.bytesNew)})${vault}`;
}

/** What this run read, at what speed; batches an earlier run read (resumed) are named apart. */
function readLine(result: BackupResult): string {
  const earlier = result.bytesRead - result.bytesReadNow;
  const now = `${formatBytes(result.bytesReadNow)} in ${seconds(result.durationMs)} (${rate(result.bytesReadNow, result.durationMs)})`;
  return earlier > 0 ? `${now}; ${formatBytes(earlier)} read by an earlier run (resumed)` : now;
}

/** Added to an interrupted or failed backup's error line. */
export function backupHint(code: string): string | undefined {
  if (code === 'VaultNotFound') return 'make it with pagewise init --vault <url>, or pass --create-vault';
  if (TRANSIENT_CODES.has(code)) {
    return 'run the same command again to resume';
  }
  return undefined;
}
