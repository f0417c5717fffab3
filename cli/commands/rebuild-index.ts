/**
 * `pagewise rebuild-index --vault <container-url> --key-file <f> [--dry-run] [--json]`: writes a new index
 * generation from the pack trailers alone (docs/FORMAT.md §18.3) and says how many chunks of kept backups
 * no pack holds (exit 1 when any).
 */
import { displayUrl, formatBytes, loadUserKey, RebuildReport, rebuildVaultIndex } from '../../core';
import { EXIT_FAILURE, printError } from '../errors';
import { storageLocation } from '../locations';
import { printJson, printLines, table } from '../output';
import { DefineCommand } from './context';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The report as people read it. */
export function rebuildIndexLines(r: RebuildReport & { dryRun: boolean }): string[] {
  const lines = [`rebuild-index: generation ${r.gen}${r.dryRun ? ' (dry run: nothing written)' : ''}`];
  const rows: Array<[string, string]> = [
    ['packs read', `${r.packsRead}${r.packsUnreadable.length > 0 ? ` (${r.packsUnreadable.length} unreadable)` : ''}`],
    ['entries', `${r.entries} content IDs in ${plural(r.shards, 'shard')}`],
    ['covers', plural(r.deltasCovered, 'index delta')],
    [r.dryRun ? 'would write' : 'written', r.dryRun ? 'nothing' : formatBytes(r.bytesWritten)],
    ['checked', `${plural(r.manifestsChecked, 'kept backup')}: ${r.chunksUnplaced === 0 ? 'every chunk is in a pack' : `${plural(r.chunksUnplaced, 'chunk')} in no pack`}`],
  ];
  lines.push(...table(rows));
  const shown = [...r.packsUnreadable.map((p) => `pack ${p.pack}: ${p.why}`), ...r.deltasUnreadable.map((d) => `${d.delta}: ${d.why}`), ...r.problems];
  for (const p of shown.slice(0, 20)) lines.push(`  problem: ${p}`);
  if (shown.length > 20) lines.push(`  … and ${shown.length - 20} more problems (--json lists them all)`);
  return lines;
}

export const defineRebuildIndex: DefineCommand = (program, ctx) => {
  program
    .command('rebuild-index')
    .description('write a new vault index generation from the packs alone (when index deltas are lost or damaged) and check every kept backup is placed')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'the user key (rebuild reads every pack trailer, manifest and table)')
    .option('--dry-run', 'read and check everything, write nothing')
    .option('--json', 'print the report as one JSON object')
    .action(async (opts: { vault: string; keyFile: string; dryRun?: boolean; json?: boolean }) => {
      const { io } = ctx;
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const userKey = await loadUserKey(opts.keyFile);
      const report = await rebuildVaultIndex({ vault, userKey, dryRun: opts.dryRun ?? false, abortSignal: io.interruptSignal?.() });
      if (opts.json) printJson(io, { vault: displayUrl(opts.vault), ...report });
      else printLines(io, rebuildIndexLines(report));
      if (report.chunksUnplaced > 0) {
        if (!opts.json) printError(io, `${plural(report.chunksUnplaced, 'chunk')} of kept backups ${report.chunksUnplaced === 1 ? 'is' : 'are'} in no pack: verify --read-data names the backups that lost data`);
        ctx.exitCode = EXIT_FAILURE;
      }
    });
};
