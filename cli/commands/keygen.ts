/** `pagewise keygen <key-file>`: a new random 256-bit user key; never overwrites an existing file. */
import * as path from 'node:path';
import { writeNewKeyFile } from '../../core';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineKeygen: DefineCommand = (program, ctx) => {
  program
    .command('keygen')
    .description('write a new random 256-bit user key to <key-file> (refuses to overwrite)')
    .argument('<key-file>', 'file to create (mode 0600)')
    .option('--json', 'print one JSON object')
    .action(async (keyFile: string, opts: { json?: boolean }) => {
      const keyId = await writeNewKeyFile(keyFile);
      const file = path.resolve(keyFile);
      if (opts.json) printJson(ctx.io, { keyFile: file, keyId });
      else {
        printLines(ctx.io, [
          `wrote key file ${file}`,
          `key ID ${keyId}`,
          'keep this file safe and separate from the vault: without it no backup made with it can be restored',
        ]);
      }
    });
};
