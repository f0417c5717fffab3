/**
 * `pagewise restore <backup-id> --vault <container-url> --key-file <f> (--to <page-blob-url | file> [--force] | --to-device <block-device>)`
 */
import { displayUrl, formatBytes, isBlobTarget, loadUserKey, PagewiseError, restoreBackup, StorageLocation, validateBackupId } from '../../core';
import { restoreTarget, storageLocation } from '../locations';
import { parseConcurrency } from '../options';
import { printJson, printLines, progressBar, rate, seconds } from '../output';
import { DefineCommand } from './context';

interface RestoreOptions {
  vault: string;
  keyFile: string;
  to?: string;
  toDevice?: string;
  force?: boolean;
  concurrency?: string;
  json?: boolean;
}

export const defineRestore: DefineCommand = (program, ctx) => {
  program
    .command('restore')
    .description('restore a backup to a new page blob or a local sparse file')
    .argument('<backup-id>', 'the backup (see pagewise list)')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'user key file the backup was made with')
    .option('--to <page-blob-url|file>', 'target: page-blob URL (SAS, or PAGEWISE_TARGET_CONNECTION_STRING) or file path')
    .option('--to-device <block-device>', 'write a block device in place (at least the disk\'s size; never a file)')
    .option('--force', 'overwrite an existing page blob or regular file given with --to')
    .option('--concurrency <n>', 'pages in flight at once')
    .option('--json', 'print the result as one JSON object')
    .action(async (id: string, opts: RestoreOptions) => {
      const { io } = ctx;
      const backupId = validateBackupId(id);
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const target = targetOf(opts, io.env);
      const concurrency = parseConcurrency(opts.concurrency);
      const userKey = await loadUserKey(opts.keyFile);
      const bar = progressBar(io, opts.json ?? false, 'restore');
      let result;
      try {
        result = await restoreBackup({
          backupId,
          vault,
          userKey,
          target,
          device: opts.toDevice !== undefined,
          overwrite: opts.force ?? false,
          keepFiles: [opts.keyFile],
          concurrency,
          abortSignal: io.interruptSignal?.(),
          onProgress: (p) => bar.show(p),
        });
      } finally {
        bar.stop();
      }
      if (opts.json) {
        printJson(io, result);
        return;
      }
      const where = opts.to && isBlobTarget(opts.to) ? displayUrl(opts.to) : result.target;
      printLines(io, [
        `restored ${result.backupId} to ${where}`,
        `  ${formatBytes(result.diskBytes)} disk, ${result.pagesWritten} pages (${formatBytes(result.bytesWritten)}) written in ${seconds(result.durationMs)} (${rate(result.bytesWritten, result.durationMs)})`,
      ]);
    });
};

/** Exactly one target: `--to` (page blob or file) or `--to-device` (a block device, in place). */
function targetOf(opts: RestoreOptions, env: Record<string, string | undefined>): StorageLocation {
  if (opts.to !== undefined && opts.toDevice !== undefined) throw new PagewiseError('BadInput', '--to and --to-device exclude each other; give one target');
  if (opts.toDevice !== undefined) {
    if (opts.toDevice.trim() === '') throw new PagewiseError('BadInput', '--to-device is empty; give the path of a block device');
    return { url: opts.toDevice };
  }
  if (opts.to === undefined) throw new PagewiseError('BadInput', 'no target: give --to <page-blob-url|file> or --to-device <block-device>');
  return restoreTarget(opts.to, env);
}
