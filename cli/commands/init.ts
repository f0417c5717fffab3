/**
 * `pagewise init --vault <container-url> [--key-file <f>]`: makes a vault — creates the container where
 * absent and, with a key, writes the version-2 vault marker and the key's slot (docs/FORMAT.md §12). A
 * backup never creates a container by itself (a mistyped URL would silently start a new one), as restic
 * requires `init`. Running it on a vault changes nothing.
 */
import { displayUrl, initVault, loadUserKey } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineInit: DefineCommand = (program, ctx) => {
  program
    .command('init')
    .description('make a vault: create the container (if absent) and, with --key-file, mark it as a version-2 Pagewise vault')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .option('--key-file <file>', "the user key (see pagewise keygen): writes the version-2 marker and this key's slot; without it only the container is created and the first backup marks it")
    .option('--json', 'print one JSON object')
    .action(async (opts: { vault: string; keyFile?: string; json?: boolean }) => {
      const vault = storageLocation(opts.vault, 'vault', ctx.io.env);
      const userKey = opts.keyFile === undefined ? undefined : await loadUserKey(opts.keyFile);
      const done = await initVault(vault, userKey ? { userKey } : {});
      const shown = displayUrl(opts.vault);
      if (opts.json) {
        printJson(ctx.io, { vault: shown, ...done });
        return;
      }
      // Without a key no marker is written: the first backup (with its key) makes it a version-2 vault.
      const unmarked = 'no --key-file, so no vault marker: the first backup (or pagewise init --key-file) makes it a version-2 vault';
      const what = done.markerWritten
        ? `${done.containerCreated ? 'created' : 'marked the existing container'} ${shown} as a version-2 Pagewise vault for this key`
        : !userKey
          ? `${done.containerCreated ? 'created the container' : 'the container exists:'} ${shown}; ${unmarked}`
          : `${shown} is already a Pagewise vault; nothing changed (pagewise upgrade makes a version-1 vault version 2)`;
      printLines(ctx.io, [what]);
    });
};
