/**
 * The `pagewise` command. `main(process.argv)` is what bin/pagewise.js calls: it runs the command,
 * sets the exit code and ends the process. `run(args, io)` is the same without touching the process:
 * it takes the arguments after the program name and an IO (see io.ts) and resolves to the exit code,
 * so tests and the demo can call the real CLI in-process.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { defineBackup } from './commands/backup';
import { defineBackupVm } from './commands/backup-vm';
import { CommandContext } from './commands/context';
import { defineInit } from './commands/init';
import { defineKeygen } from './commands/keygen';
import { defineList } from './commands/list';
import { defineRestore } from './commands/restore';
import { defineServe } from './commands/serve';
import { defineVerify } from './commands/verify';
import { defineUpload } from './commands/upload';
import { defineUpgrade } from './commands/upgrade';
import { defineForget } from './commands/forget';
import { defineFiles } from './commands/files';
import { definePrune } from './commands/prune';
import { defineRebuildIndex } from './commands/rebuild-index';
import { defineUndelete } from './commands/undelete';
import { EXIT_CODE_HELP, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, printError, reportError, STOP_SIGNALS, StopSignal } from './errors';
import { CliIO, processIO } from './io';
import { configureRequestsPerAccount, configureStorageEndpointsFromEnv, PagewiseError } from '../core';

export type { CliIO, CapturedIO } from './io';
export { captureIO } from './io';
export { EXIT_CODES } from './errors';

function version(): string {
  for (const dir of [path.join(__dirname, '..'), path.join(__dirname, '..', '..')]) {
    try {
      return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // try the next candidate (sources vs dist/)
    }
  }
  return 'unknown';
}

export function buildProgram(ctx: CommandContext): Command {
  const program = new Command('pagewise');
  program
    .description('Back up Azure VM disks (page blobs) page by page through a bounded scratch cache into an encrypted vault.')
    .version(version(), '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => ctx.io.stdout(text),
      writeErr: (text) => ctx.io.stderr(text),
      outputError: () => undefined, // reported once, as one line, by reportError
    })
    .showSuggestionAfterError(true)
    .allowExcessArguments(false) // inherited by every command: a stray argument is refused, not ignored
    .addHelpText('after', EXIT_CODE_HELP);
  for (const define of [defineKeygen, defineInit, defineUpgrade, defineUpload, defineBackup, defineBackupVm, defineRestore, defineFiles, defineVerify, defineList, defineForget, defineUndelete, definePrune, defineRebuildIndex, defineServe]) define(program, ctx);
  return program;
}

/** Runs one command; resolves to the exit code (never rejects). */
export async function run(args: string[], io: CliIO = processIO()): Promise<number> {
  const ctx: CommandContext = { io, exitCode: EXIT_OK };
  if (args.length === 0) {
    printError(io, 'missing command: keygen, init, upgrade, upload, backup, backup-vm, restore, ls, extract, cat, verify, list, forget, undelete, prune, rebuild-index or serve (see pagewise --help)');
    return EXIT_USAGE;
  }
  try {
    configureRequestsPerAccount(io.env);
    configureStorageEndpointsFromEnv(io.env); // the endpoints besides Azure's own this run may use (SSRF guard)
    const program = buildProgram(ctx);
    await program.parseAsync(args, { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    // A command stopped by a signal failed because it was stopped, whatever its cancelled request said.
    return reportError(io, io.interruption?.() ?? err, ctx.hint);
  }
}

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.writableLength === 0) resolve();
    else stream.write('', () => resolve());
  });
}

/** Entry point for bin/pagewise.js: `argv` as in process.argv (node, script, args...). */
export async function main(argv: string[] = process.argv): Promise<void> {
  const controller = new AbortController();
  let claimed = false;
  let stoppedBy: StopSignal | undefined;
  // SIGINT and SIGTERM: a command that can stop cleanly (it asked for the signal) is aborted, removes its
  // scratch and reports "interrupted"/"terminated"; any other command, or a second signal while one
  // stops, ends the process at once (the exit hook still removes scratch and partial files).
  const onSignal = (signal: StopSignal) => {
    if (!claimed || stoppedBy) {
      if (!stoppedBy) process.stderr.write(`pagewise: ${STOP_SIGNALS[signal].word}\n`);
      process.exit(STOP_SIGNALS[stoppedBy ?? signal].code);
    }
    stoppedBy = signal;
    controller.abort(new PagewiseError('Aborted', STOP_SIGNALS[signal].word));
  };
  const handlers = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  let code: number;
  try {
    const io = processIO(
      () => ((claimed = true), controller.signal),
      () => (stoppedBy ? controller.signal.reason : undefined),
    );
    code = await run(argv.slice(2), io);
  } catch {
    code = 1; // run() does not reject; belt and braces
  }
  if (stoppedBy && code === EXIT_INTERRUPTED) code = STOP_SIGNALS[stoppedBy].code;
  for (const [signal, handler] of handlers) process.off(signal, handler);
  process.exitCode = code;
  // Exit now rather than when the last keep-alive socket or SDK timer goes away.
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
  process.exit(code);
}
