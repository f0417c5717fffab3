/** `pagewise list --vault <container-url> [--json]`: complete backups in a vault. */
import { displayUrl, formatBytes, listBackups } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineList: DefineCommand = (program, ctx) => {
  program
    .command('list')
    .description('list the complete backups in a vault')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .option('--json', 'print one JSON object: { vault, backups: [...] }')
    .action(async (opts: { vault: string; json?: boolean }) => {
      const { io } = ctx;
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const backups = await listBackups(vault);
      if (opts.json) {
        printJson(io, { vault: displayUrl(opts.vault), backups });
        return;
      }
      if (backups.length === 0) {
        printLines(io, [`no complete backups in ${displayUrl(opts.vault)}`]);
        return;
      }
      const rows = [
        ['BACKUP ID', 'COMPLETED', 'DISK', 'PAGE', 'STORED', 'SOURCE'],
        ...backups.map((b) => [b.backupId, b.completedAt, formatBytes(b.diskBytes), formatBytes(b.pageSize), formatBytes(b.bytesStored), b.source]),
      ];
      const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
      printLines(io, rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')));
    });
};
