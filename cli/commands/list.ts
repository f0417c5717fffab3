/** `pagewise list --vault <container-url> [--key-file <f>] [--json]`: the backups in a vault, complete ones first. */
import { BackupListing, displayUrl, formatBytes, listBackups, loadUserKey } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineList: DefineCommand = (program, ctx) => {
  program
    .command('list')
    .description('list the backups in a vault: complete ones, then incomplete and damaged ones')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .option('--key-file <file>', "check each manifest's MAC with this key: a tampered manifest is listed as damaged")
    .option('--json', 'print one JSON object: { vault, backups: [...] } (each with its status)')
    .action(async (opts: { vault: string; keyFile?: string; json?: boolean }) => {
      const { io } = ctx;
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const userKey = opts.keyFile === undefined ? undefined : await loadUserKey(opts.keyFile);
      const backups = await listBackups(vault, { userKey });
      if (opts.json) {
        printJson(io, { vault: displayUrl(opts.vault), backups });
        return;
      }
      if (backups.length === 0) {
        printLines(io, [`no backups in ${displayUrl(opts.vault)}`]);
        return;
      }
      const rows = [['BACKUP ID', 'STATUS', 'COMPLETED', 'DISK', 'PAGE', 'STORED', 'SOURCE'], ...backups.map(row)];
      const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
      const table = rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  '));
      // Why each of the others cannot be restored, one line each under the table.
      const problems = backups.flatMap((b) => (b.status === 'complete' ? [] : [`${b.backupId}: ${b.problem}`]));
      printLines(io, problems.length > 0 ? [...table, '', ...problems] : table);
    });
};

function row(b: BackupListing): string[] {
  const size = (n: number | undefined) => (n === undefined ? '-' : formatBytes(n));
  if (b.status === 'complete') return [b.backupId, b.status, b.completedAt, size(b.diskBytes), size(b.pageSize), size(b.bytesStored), b.source];
  return [b.backupId, b.status, '-', size(b.diskBytes), size(b.pageSize), '-', b.source ?? '-'];
}
