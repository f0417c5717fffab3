/**
 * `pagewise init --vault <container-url>`: makes a vault — creates the container where absent and
 * writes the vault marker (docs/FORMAT.md §3). A backup never creates a vault by itself (a mistyped
 * URL would silently start a new one), as restic requires `init`. Running it on a vault changes nothing.
 */
import { displayUrl, initVault } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineInit: DefineCommand = (program, ctx) => {
  program
    .command('init')
    .description('make a vault: create the container (if absent) and mark it as a Pagewise vault')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .option('--json', 'print one JSON object')
    .action(async (opts: { vault: string; json?: boolean }) => {
      const vault = storageLocation(opts.vault, 'vault', ctx.io.env);
      const done = await initVault(vault);
      const shown = displayUrl(opts.vault);
      if (opts.json) {
        printJson(ctx.io, { vault: shown, ...done });
        return;
      }
      const what = done.containerCreated
        ? `created the vault ${shown}`
        : done.markerWritten
          ? `marked the existing container ${shown} as a Pagewise vault`
          : `${shown} is already a Pagewise vault; nothing changed`;
      printLines(ctx.io, [what]);
    });
};
