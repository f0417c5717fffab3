/**
 * How failures reach the user: exactly one line on stderr, `pagewise: <message>`, always passed through
 * `redact()` (never a SAS signature, account key or connection string), and an exit code:
 *
 *   0    success
 *   1    operational failure: storage unreachable, the source changed, the backup is corrupt or
 *        incomplete, verification found problems, another local runtime holds the task hub, or an
 *        unexpected error
 *   2    usage or bad input: fix the command line, the URLs, the key file or the credentials
 *        (BadInput, BadUrl, BadPageSize, BadCacheSize, NotPageBlob, SourceNotFound, BackupNotFound, VaultNotFound,
 *        BadKeyFile, WrongKey, TargetExists, TargetNotFound, AccessDenied, LimitExceeded, and commander usage errors)
 *   130  interrupted (SIGINT, Ctrl-C) — a backup run again with the same arguments resumes
 *   143  terminated (SIGTERM), cleaned up as for 130
 *
 * The stack of an unexpected error is printed only with PAGEWISE_DEBUG=1.
 */
import { CommanderError } from 'commander';
import { isPagewiseError, PagewiseErrorCode, printable, redact } from '../core';
import { CliIO } from './io';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;
export const EXIT_TERMINATED = 143;

/** The signals that stop a command cleanly: the word it reports and its exit code (128 + signal number). */
export const STOP_SIGNALS = {
  SIGINT: { word: 'interrupted', code: EXIT_INTERRUPTED },
  SIGTERM: { word: 'terminated', code: EXIT_TERMINATED },
} as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

export const EXIT_CODES: Record<PagewiseErrorCode, number> = {
  BadInput: EXIT_USAGE,
  BadUrl: EXIT_USAGE,
  BadPageSize: EXIT_USAGE,
  BadCacheSize: EXIT_USAGE,
  NotPageBlob: EXIT_USAGE,
  SourceNotFound: EXIT_USAGE,
  BackupNotFound: EXIT_USAGE,
  VaultNotFound: EXIT_USAGE,
  BadKeyFile: EXIT_USAGE,
  WrongKey: EXIT_USAGE,
  TargetExists: EXIT_USAGE,
  TargetNotFound: EXIT_USAGE,
  AccessDenied: EXIT_USAGE,
  LimitExceeded: EXIT_USAGE,
  SourceUnreachable: EXIT_FAILURE,
  VaultUnreachable: EXIT_FAILURE,
  TargetUnreachable: EXIT_FAILURE,
  SourceChanged: EXIT_FAILURE,
  BackupIncomplete: EXIT_FAILURE,
  Corrupt: EXIT_FAILURE,
  BaseUnusable: EXIT_FAILURE,
  Locked: EXIT_FAILURE,
  BackupExpired: EXIT_FAILURE,
  Aborted: EXIT_INTERRUPTED,
  PathNotFound: EXIT_USAGE,
  UnsupportedFileSystem: EXIT_USAGE,
  TaskHubInUse: EXIT_FAILURE,
};

export const EXIT_CODE_HELP = `
Exit codes:
  0    success
  1    operational failure (storage unreachable, source changed, corrupt backup, verify found problems)
  2    usage or bad input (arguments, URLs, key file, credentials, unknown backup ID, target exists or
       its container missing)
  130  interrupted (Ctrl-C); run the same backup command again to resume
  143  terminated (SIGTERM); the same

Credentials: a SAS in the URL, else the connection string in PAGEWISE_SOURCE_CONNECTION_STRING,
PAGEWISE_VAULT_CONNECTION_STRING or PAGEWISE_TARGET_CONNECTION_STRING, else DefaultAzureCredential.
`;

/** One line, secrets removed, no control characters (a path may carry ESC[…). */
export function oneLine(text: string): string {
  return printable(redact(String(text)).replace(/\s*[\r\n]+\s*/g, ' ').trim());
}

export function printError(io: CliIO, message: string): void {
  io.stderr(`pagewise: ${oneLine(message)}\n`);
}

const COMMANDER_OK = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/** Reports an error and returns the exit code. */
export function reportError(io: CliIO, err: unknown, hint?: (code: PagewiseErrorCode) => string | undefined): number {
  if (err instanceof CommanderError) {
    if (COMMANDER_OK.has(err.code)) return err.exitCode;
    printError(io, err.message.replace(/^error:\s*/i, ''));
    return EXIT_USAGE;
  }
  if (isPagewiseError(err)) {
    const extra = hint?.(err.code);
    printError(io, extra ? `${err.message}; ${extra}` : err.message);
    if (io.env.PAGEWISE_DEBUG === '1' && err.cause !== undefined) debugStack(io, err.cause);
    return EXIT_CODES[err.code] ?? EXIT_FAILURE;
  }
  const message = err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err);
  printError(io, `unexpected error: ${message || 'unknown'}${io.env.PAGEWISE_DEBUG === '1' ? '' : ' (set PAGEWISE_DEBUG=1 for details)'}`);
  if (io.env.PAGEWISE_DEBUG === '1') debugStack(io, err);
  return EXIT_FAILURE;
}

function debugStack(io: CliIO, err: unknown): void {
  const stack = err instanceof Error ? err.stack ?? err.message : String(err);
  io.stderr(`${redact(stack).split('\n').map(printable).join('\n')}\n`);
}
