/** `pagewise restore <backup-id> --vault <container-url> --key-file <f> --to <page-blob-url | file> [--force]` */
import { displayUrl, formatBytes, isBlobTarget, loadUserKey, restoreBackup, validateBackupId } from '../../core';
import { restoreTarget, storageLocation } from '../locations';
import { parseConcurrency } from '../options';
import { printJson, printLines, progressBar, rate, seconds } from '../output';
import { DefineCommand } from './context';

interface RestoreOptions {
  vault: string;
  keyFile: string;
  to: string;
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
    .requiredOption('--to <page-blob-url|file>', 'target: page-blob URL (SAS, or PAGEWISE_TARGET_CONNECTION_STRING) or file path')
    .option('--force', 'overwrite an existing target')
    .option('--concurrency <n>', 'pages in flight at once')
    .option('--json', 'print the result as one JSON object')
    .action(async (id: string, opts: RestoreOptions) => {
      const { io } = ctx;
      const backupId = validateBackupId(id);
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const target = restoreTarget(opts.to, io.env);
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
          overwrite: opts.force ?? false,
          concurrency,
          onProgress: (done, total) => bar.update(done, total),
        });
      } finally {
        bar.stop();
      }
      if (opts.json) {
        printJson(io, result);
        return;
      }
      const where = isBlobTarget(opts.to) ? displayUrl(opts.to) : result.target;
      printLines(io, [
        `restored ${result.backupId} to ${where}`,
        `  ${formatBytes(result.diskBytes)} disk, ${result.pagesWritten} pages (${formatBytes(result.bytesWritten)}) written in ${seconds(result.durationMs)} (${rate(result.bytesWritten, result.durationMs)})`,
      ]);
    });
};
