/**
 * `pagewise undelete <backup-id>… --vault <url> --key-file <f>`: brings forgotten backups back while their
 * grace lasts (removes the tombstone; needs the delete right). One never forgotten is left as it is; one
 * whose grace ended may already be pruned and is not brought back (exit 1, BackupExpired).
 * `--vm-backup <id>…`: whole-VM backups, every disk backup of each (FORMAT §27.6).
 */
import { displayUrl, loadUserKey, PagewiseError, undeleteBackups, undeleteVmBackups, validateBackupId } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineUndelete: DefineCommand = (program, ctx) => {
  program
    .command('undelete')
    .description('bring forgotten backups back while their grace lasts (see pagewise list: "deleted, recoverable until …")')
    .argument('[backup-id...]', 'forgotten backups to bring back')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'the user key the backups were made with')
    .option('--vm-backup <vm-backup-id...>', 'bring back these forgotten whole-VM backups (every disk backup of each)')
    .option('--json', 'print one JSON object: { vault, restored, notForgotten, expired }')
    .action(async (ids: string[], opts: { vault: string; keyFile: string; json?: boolean; vmBackup?: string[] }) => {
      const { io } = ctx;
      const backupIds = ids.map(validateBackupId);
      if ((backupIds.length > 0) === (opts.vmBackup !== undefined)) throw new PagewiseError('BadInput', 'give the forgotten backups to bring back, or --vm-backup IDs: one of the two');
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const userKey = await loadUserKey(opts.keyFile);
      const result = opts.vmBackup !== undefined ? await undeleteVmBackups(vault, userKey, opts.vmBackup) : await undeleteBackups({ vault, userKey, backupIds });
      if (opts.json) printJson(io, { vault: displayUrl(opts.vault), ...result });
      else {
        printLines(io, [
          ...result.restored.map((id) => `restored ${id}: no longer forgotten`),
          ...result.notForgotten.map((id) => `${id} is not forgotten; nothing changed`),
          ...(result.problems ?? []).map((p) => `problem: ${'backupId' in p ? p.backupId : p.id}: ${p.problem}`),
        ]);
      }
      if (result.expired.length > 0) {
        throw new PagewiseError('BackupExpired', `${result.expired.join(', ')}: the grace has ended, so prune may already have deleted ${result.expired.length === 1 ? 'it' : 'them'}; not brought back`);
      }
    });
};
