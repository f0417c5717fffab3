/**
 * `pagewise upgrade --vault <container-url> --key-file <f>`: makes a version-1 vault version 2 (docs/FORMAT.md
 * §12.2) so its next backups can be incremental. The version-1 backups stay as they are and restorable;
 * nothing is rewritten. On a version-2 vault it only checks the key has a slot there.
 */
import { displayUrl, loadUserKey, upgradeVaultAt } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineUpgrade: DefineCommand = (program, ctx) => {
  program
    .command('upgrade')
    .description('make a version-1 vault version 2 (incremental backups); its earlier backups stay restorable')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'the user key (see pagewise keygen): it gets the version-2 key slot')
    .option('--json', 'print one JSON object')
    .action(async (opts: { vault: string; keyFile: string; json?: boolean }) => {
      const vault = storageLocation(opts.vault, 'vault', ctx.io.env);
      const userKey = await loadUserKey(opts.keyFile);
      const { upgraded } = await upgradeVaultAt(vault, userKey);
      const shown = displayUrl(opts.vault);
      if (opts.json) {
        printJson(ctx.io, { vault: shown, upgraded, formatVersion: 2 });
        return;
      }
      printLines(ctx.io, [upgraded ? `upgraded ${shown} to version 2: its next backups are incremental; earlier backups stay restorable` : `${shown} is already version 2 and this key has its slot; nothing changed`]);
    });
};
