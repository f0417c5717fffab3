/**
 * File-level restore straight from the vault (docs/FILES.md): `pagewise ls` (the volumes, or a directory),
 * `pagewise extract` (files and trees into a local directory), `pagewise cat` (one file's bytes to stdout).
 */
import { Command } from 'commander';
import {
  BackupFiles,
  extractFiles,
  FileEntry,
  formatBytes,
  journalNotes,
  loadUserKey,
  MAX_LIST_LIMIT,
  PagewiseError,
  printable,
  redact,
  replayedVolumes,
  validateBackupId,
  volumeSummary,
  VolumeSummary,
} from '../../core';
import { storageLocation } from '../locations';
import { parseCount, parseSize } from '../options';
import { printJson, printLines } from '../output';
import { CommandContext, DefineCommand } from './context';

interface VaultOptions {
  vault: string;
  keyFile: string;
  cache?: string;
}

/** Skipped entries listed by a human extract before "and N more". */
const MAX_SKIPPED_LINES = 20;

function vaultOptions(command: Command): Command {
  return command
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'user key file the backup was made with')
    .option('--cache <size>', 'memory for blocks read from the vault (default 64MiB)');
}

/** The backup's files, opened from the vault; checked options first, before any network call. */
async function openFiles(ctx: CommandContext, id: string, opts: VaultOptions): Promise<BackupFiles> {
  const backupId = validateBackupId(id);
  const vault = storageLocation(opts.vault, 'vault', ctx.io.env);
  const cacheBytes = parseSize(opts.cache, '--cache');
  const userKey = await loadUserKey(opts.keyFile);
  return BackupFiles.open({ vault, backupId, userKey, ...(cacheBytes !== undefined ? { cacheBytes } : {}), abortSignal: ctx.io.interruptSignal?.() });
}

/** Runs `use` on the opened files, says any journal replay on stderr, and closes them whatever happens. */
async function withFiles<T>(ctx: CommandContext, id: string, opts: VaultOptions, use: (files: BackupFiles) => Promise<T>): Promise<T> {
  const files = await openFiles(ctx, id, opts);
  try {
    const result = await use(files);
    for (const note of journalNotes(files)) ctx.io.stderr(`${printable(redact(note))}\n`);
    return result;
  } finally {
    await files.close();
  }
}

export const defineFiles: DefineCommand = (program, ctx) => {
  vaultOptions(
    program
      .command('ls')
      .description("list a backup's volumes (partitions and what they hold), or the entries of a directory in it, straight from the vault")
      .argument('<backup-id>', 'the backup (see pagewise list)')
      .argument('[path]', "p1:/etc (volume and path; '/etc' when the disk holds one file system; 'p1:' its root)"),
  )
    .option('--limit <n>', `entries listed at most (default 1000, at most ${MAX_LIST_LIMIT})`)
    .option('--after <name>', 'list the entries after this name (the "next" of a listing cut at --limit)')
    .option('--json', 'print one JSON object: { volumes | entries, journalReplayed, stats }')
    .action(async (id: string, path: string | undefined, opts: VaultOptions & { limit?: string; after?: string; json?: boolean }) => {
      const limit = parseCount(opts.limit, '--limit');
      if (limit !== undefined && (limit < 1 || limit > MAX_LIST_LIMIT)) throw new PagewiseError('BadInput', `--limit ${limit} must be from 1 to ${MAX_LIST_LIMIT}`);
      await withFiles(ctx, id, opts, async (files) => {
        const volumes = files.volumes();
        // The table when there is a choice to make, or nothing to open (it says why); else the one file system's root.
        if (path === undefined && (files.layout.scheme !== 'none' || volumes.length !== 1 || !volumes[0].identity.openable)) {
          if (opts.after !== undefined || limit !== undefined) throw new PagewiseError('BadInput', '--limit and --after apply to a directory: give a path (p1:/…)');
          const summaries = volumes.map(volumeSummary);
          if (opts.json) return printJson(ctx.io, { backupId: id, scheme: files.layout.scheme, volumes: summaries, warnings: files.layout.warnings, journalReplayed: replayedVolumes(files), stats: files.stats() });
          for (const warning of files.layout.warnings) ctx.io.stderr(`${printable(redact(`partition table: ${warning}`))}\n`);
          return printLines(ctx.io, volumeLines(files.layout.scheme, summaries));
        }
        const target = path ?? `${volumes[0].name}:/`;
        const entry = await files.stat(target);
        const listing =
          entry.type === 'directory'
            ? await files.list(target, { ...(limit !== undefined ? { limit } : {}), ...(opts.after !== undefined ? { after: opts.after } : {}) })
            : { volume: entry.volume, path: entry.path, entries: [entry as FileEntry], next: undefined };
        if (opts.json) return printJson(ctx.io, { ...listing, journalReplayed: replayedVolumes(files), stats: files.stats() });
        printLines(ctx.io, entryLines(listing.entries));
        if (listing.next !== undefined) ctx.io.stderr(`${printable(`more entries follow: pagewise ls … --after '${listing.next}'`)}\n`);
      });
    });

  vaultOptions(
    program
      .command('extract')
      .description('copy files and directory trees out of a backup into a local directory, straight from the vault')
      .argument('<backup-id>', 'the backup (see pagewise list)')
      .argument('<path...>', 'p1:/etc/fstab, p1:/home … (each lands under --to by its last name, as cp -r does)'),
  )
    .requiredOption('--to <dir>', 'local directory to write into (created if missing; its parent must exist)')
    .option('--force', 'overwrite files that already exist under --to')
    .option('--keep-setid', 'keep setuid/setgid bits (dropped by default)')
    .option('--json', 'print the result as one JSON object')
    .action(async (id: string, paths: string[], opts: VaultOptions & { to: string; force?: boolean; keepSetid?: boolean; json?: boolean }) => {
      if (opts.to.trim() === '') throw new PagewiseError('BadInput', '--to is empty; give the directory to extract into');
      await withFiles(ctx, id, opts, async (files) => {
        const result = await extractFiles({ files, paths, to: opts.to, overwrite: opts.force ?? false, keepSetid: opts.keepSetid ?? false, abortSignal: ctx.io.interruptSignal?.() });
        if (opts.json) return printJson(ctx.io, result);
        const s = result.stats;
        printLines(ctx.io, [
          `extracted ${count(result.files, 'file')}, ${count(result.directories, 'directory', 'directories')}, ${count(result.symlinks, 'symlink')} (${formatBytes(result.bytes)}) to ${result.to}`,
          `  ${formatBytes(s.bytesFetched)} fetched from the vault in ${count(s.requests, 'request')}`,
          ...skippedLines(result.skipped, result.skippedCount),
        ]);
      });
    });

  vaultOptions(
    program
      .command('cat')
      .description("write one file's bytes from a backup to stdout, straight from the vault")
      .argument('<backup-id>', 'the backup (see pagewise list)')
      .argument('<file>', 'p1:/etc/fstab'),
  )
    .option('--raw', 'write to a terminal even bytes that would act on it (escape sequences, controls)')
    .action(async (id: string, file: string, opts: VaultOptions & { raw?: boolean }) => {
      const write = ctx.io.stdoutBytes;
      if (!write) throw new PagewiseError('BadInput', 'this output cannot take bytes; use pagewise extract');
      await withFiles(ctx, id, opts, async (files) => {
        const entry = await files.stat(file);
        if (entry.type !== 'file') throw new PagewiseError('BadInput', `${entry.volume}:${entry.path} is a ${entry.type}, not a regular file (pagewise ls lists a directory)`);
        try {
          // To a terminal, the image's bytes (the VM owner's: maybe hostile) stop before the first that would act
          // on it (ESC, C1, other controls): a file must not drive the operator's terminal.
          const guard = ctx.io.stdoutIsTerminal && !opts.raw;
          let at = 0;
          let before = -1;
          for await (const chunk of files.read(file, { abortSignal: ctx.io.interruptSignal?.() })) {
            const bad = guard ? terminalControlAt(chunk, before) : -1;
            if (bad >= 0) {
              if (bad > 0) await write(chunk.subarray(0, bad));
              throw new PagewiseError('BadInput', `${entry.volume}:${entry.path} holds a byte that would act on the terminal (at byte ${at + bad}): stopped there; send it to a file or a pipe, or use --raw`);
            }
            if (chunk.length > 0) before = chunk[chunk.length - 1];
            at += chunk.length;
            await write(chunk);
          }
        } catch (err) {
          // The reader of the pipe went away (`pagewise cat … | head`): it has what it wanted; stop quietly, as cat does.
          if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err;
        }
      });
    });
};

/**
 * Index of the first byte in `chunk` a terminal would act on rather than show: C0 controls but tab, LF and
 * CR; DEL; a C1 control in UTF-8 (0xC2 0x80–0x9F: 0x9B is CSI). `before` is the previous chunk's last byte
 * (-1 at the start), so a C1 pair split across chunks is caught. -1 when there is none.
 */
export function terminalControlAt(chunk: Buffer, before: number): number {
  for (let i = 0; i < chunk.length; i++) {
    const b = chunk[i];
    if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) return i;
    if (b >= 0x80 && b <= 0x9f && (i > 0 ? chunk[i - 1] : before) === 0xc2) return i > 0 ? i - 1 : 0;
  }
  return -1;
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The partition table (or the bare volume): one row each, then why the unopenable ones cannot be read. */
export function volumeLines(scheme: string, volumes: VolumeSummary[]): string[] {
  const head = ['NAME', 'START', 'SIZE', 'TYPE', 'HOLDS', 'OPENABLE'];
  const rows = [head, ...volumes.map((v) => [v.name, String(v.offset), formatBytes(v.size), v.type ?? '-', v.description, v.openable ? 'yes' : 'no'])];
  const why = volumes.flatMap((v) => (v.why ? [v.why] : [])); // each names its volume
  return [`${scheme === 'none' ? 'no partition table' : `${scheme.toUpperCase()} partition table`}, ${count(volumes.length, 'volume')}`, ...columns(rows, [1, 2]), ...(why.length ? ['', ...why] : [])];
}

/** `ls -l`-like rows: mode string, size, mtime (UTC), name (-> target). */
export function entryLines(entries: FileEntry[]): string[] {
  if (entries.length === 0) return ['(empty directory)'];
  return columns(
    entries.map((e) => [modeString(e.type, e.mode), String(e.size), e.mtime.replace('T', ' ').replace(/\.\d+Z$|Z$/, ''), e.target !== undefined ? `${e.name} -> ${e.target}` : e.name]),
    [1],
  );
}

/** Rows aligned in columns (the last left as it is; `right`: columns aligned right). */
function columns(rows: string[][], right: number[]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : right.includes(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  '));
}

const TYPE_LETTER: Record<string, string> = { file: '-', directory: 'd', symlink: 'l', fifo: 'p', socket: 's', 'char-device': 'c', 'block-device': 'b' };

/** `drwxr-xr-x`, with s/S (setuid, setgid) and t/T (sticky) as ls shows them. */
export function modeString(type: string, mode: number): string {
  const bits = (shift: number, special: boolean, on: string, off: string) => {
    const p = (mode >> shift) & 7;
    const x = p & 1 ? (special ? on : 'x') : special ? off : '-';
    return `${p & 4 ? 'r' : '-'}${p & 2 ? 'w' : '-'}${x}`;
  };
  return `${TYPE_LETTER[type] ?? '?'}${bits(6, (mode & 0o4000) !== 0, 's', 'S')}${bits(3, (mode & 0o2000) !== 0, 's', 'S')}${bits(0, (mode & 0o1000) !== 0, 't', 'T')}`;
}

/** The entries extraction skipped (`total` of them, `skipped` the first), at most 20 lines and a count of the rest. */
export function skippedLines(skipped: Array<{ path: string; reason: string }>, total = skipped.length): string[] {
  if (total === 0) return [];
  const shown = skipped.slice(0, MAX_SKIPPED_LINES).map((s) => `  skipped ${s.path}: ${s.reason}`);
  return [`${count(total, 'entry', 'entries')} skipped:`, ...shown, ...(total > shown.length ? [`  and ${total - shown.length} more`] : [])];
}
