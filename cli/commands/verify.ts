/**
 * `pagewise verify <backup-id> --vault <container-url> --key-file <f> [--read-data] [--source <url>]`. #18: every
 * verification that ran (OK, failed, or stopped by a damaged backup) leaves its record in the vault (docs/FORMAT.md §28).
 */
import { describeVerification, isPagewiseError, loadUserKey, validateBackupId, verificationRecord, verifyBackup, writeVerificationRecord } from '../../core';
import type { StorageLocation, VerificationRecord } from '../../core';
import type { CliIO } from '../io';
import { EXIT_FAILURE, printError } from '../errors';
import { storageLocation } from '../locations';
import { parseConcurrency } from '../options';
import { printJson, printLines, progressBar, seconds } from '../output';
import { DefineCommand } from './context';

interface VerifyOptions {
  vault: string;
  keyFile: string;
  source?: string;
  quick?: boolean;
  readData?: boolean;
  concurrency?: string;
  json?: boolean;
}

export const defineVerify: DefineCommand = (program, ctx) => {
  program
    .command('verify')
    .description('check a backup: manifest, page tables, segments present and whole; with --read-data every block read, decrypted and hash-checked')
    .argument('<backup-id>', 'the backup (see pagewise list)')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'user key file the backup was made with')
    .option('--source <page-blob-url>', 'also compare with the source disk (SAS, or PAGEWISE_SOURCE_CONNECTION_STRING)')
    .option('--read-data', 'read, decrypt, decompress and hash-check every block (the thorough check)')
    .option('--quick', 'structure and presence only (the default; kept for scripts)')
    .option('--concurrency <n>', 'pages in flight at once')
    .option('--json', 'print the result as one JSON object')
    .action(async (id: string, opts: VerifyOptions) => {
      const { io } = ctx;
      const backupId = validateBackupId(id);
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const source = opts.source === undefined ? undefined : storageLocation(opts.source, 'source', io.env);
      const concurrency = parseConcurrency(opts.concurrency);
      const userKey = await loadUserKey(opts.keyFile);
      const bar = progressBar(io, opts.json ?? false, 'verify');
      const readData = (opts.readData ?? false) && !opts.quick;
      const record = (ok: boolean, problems: string[]) => verificationRecord(backupId, { at: new Date().toISOString(), ok, by: 'cli', readData, problems });
      let result;
      try {
        result = await verifyBackup({
          backupId,
          vault,
          userKey,
          source,
          readData,
          concurrency,
          abortSignal: io.interruptSignal?.(),
          onProgress: (p) => bar.show(p),
        });
      } catch (err) {
        // A backup too damaged to open is a failed verification too: recorded, then reported as before.
        if (isPagewiseError(err, 'Corrupt')) await recordVerification(io, vault, userKey, record(false, [(err as Error).message]));
        throw err;
      } finally {
        bar.stop();
      }
      await recordVerification(io, vault, userKey, record(result.ok, result.problems));
      if (opts.json) printJson(io, result);
      else if (result.ok) {
        printLines(io, [`backup ${result.backupId} is OK`, `  ${describeVerification(result)}, in ${seconds(result.durationMs)}`]);
      }
      if (!result.ok) {
        for (const problem of result.problems) printError(io, `problem: ${problem}`);
        printError(io, `backup ${result.backupId} FAILED verification: ${result.problems.length} problem(s)`);
        ctx.exitCode = EXIT_FAILURE;
      }
    });
};

/**
 * Writes the record (a version-1 vault takes none: nothing is said, FORMAT §28); a write that fails is said
 * on stderr and changes no exit code: the verification's verdict stands.
 */
async function recordVerification(io: CliIO, vault: StorageLocation, userKey: Buffer, record: VerificationRecord): Promise<void> {
  try {
    await writeVerificationRecord(vault, userKey, record);
  } catch (err) {
    printError(io, `warning: the verification record was not written: ${String(err instanceof Error ? err.message : err)}`);
  }
}
