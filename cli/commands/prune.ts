/**
 * `pagewise prune --vault <container-url> --key-file <f> [--dry-run] [--max-unused 10%] [--no-repack] [--json]`:
 * deletes what no kept backup needs, in two phases (docs/RETENTION.md, FORMAT.md §26): a run marks what
 * is unreferenced, a later run at least the deletion delay after deletes what is still unreferenced.
 */
import { displayUrl, formatBytes, loadUserKey, PagewiseError, pruneVault, PruneReport, StorageLocation } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines, table } from '../output';
import { CliIO } from '../io';
import { DefineCommand } from './context';

export interface PruneCliOptions {
  dryRun?: boolean;
  maxUnused?: string;
  repack?: boolean;
}

/** `--max-unused 10%`: a percentage 0–100 of the vault's pack bytes, as the fraction core takes. */
export function parseMaxUnused(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^\s*(\d{1,3}(?:\.\d{1,4})?)\s*%\s*$/.exec(text);
  const percent = m ? Number(m[1]) : NaN;
  if (!(percent >= 0 && percent <= 100)) throw new PagewiseError('BadInput', `--max-unused "${text.slice(0, 16)}" must be a percentage from 0% to 100%, e.g. 10%`);
  return percent / 100;
}

/** Runs one prune as the options say (`pagewise prune`, `pagewise forget --prune`). */
export async function runPrune(io: CliIO, vault: StorageLocation, userKey: Buffer, opts: PruneCliOptions): Promise<PruneReport> {
  const maxUnused = parseMaxUnused(opts.maxUnused);
  return pruneVault({
    vault,
    userKey,
    dryRun: opts.dryRun ?? false,
    repack: opts.repack ?? true,
    ...(maxUnused !== undefined ? { params: { maxUnused } } : {}),
    abortSignal: io.interruptSignal?.(),
  });
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The report as people read it: what went (or would go), what waits for its second mark, what is locked. */
export function pruneLines(report: PruneReport): string[] {
  const d = report.deleted;
  const lines = [`prune ${report.pruneId}${report.dryRun ? ' (dry run: nothing deleted or written)' : ''}`];
  const rows: Array<[string, string]> = [];
  if (report.dryRun && report.wouldDelete) {
    const w = report.wouldDelete;
    rows.push(['would delete', `${plural(w.manifests.length, 'manifest')}, ${plural(w.tables.length, 'table')}, ${plural(w.packs.length, 'pack')}, ${plural(w.staging.length, 'staging item')}`]);
    rows.push(['would reclaim', formatBytes(report.bytesReclaimed)]);
  } else {
    rows.push(['reclaimed', `${formatBytes(report.bytesReclaimed)} (${plural(d.manifests.length, 'manifest')}, ${plural(d.tables, 'table')}, ${plural(d.packs, 'pack')}, ${plural(d.deltas, 'index delta')}, ${plural(d.stagingBlobs, 'staging blob')}, ${plural(d.marks, 'old mark')}${d.generations ? `, ${plural(d.generations, 'index generation')}` : ''})`]);
  }
  rows.push(['kept', `${plural(report.kept.manifests, 'backup')}, ${plural(report.kept.tables, 'table')}, ${plural(report.kept.packs, 'pack')}`]);
  rows.push(['unused left', `${formatBytes(report.bytesUnused)} of ${formatBytes(report.bytesTotal)} pack bytes`]);
  const p = report.pending;
  const waiting = p.packs + p.tables + p.staging;
  rows.push([
    'pending',
    waiting === 0
      ? 'nothing'
      : `${plural(p.packs, 'pack')}, ${plural(p.tables, 'table')}, ${plural(p.staging, 'staging item')} (${formatBytes(p.bytes)}) wait for their second mark${p.eligibleAt ? `: deletable from ${p.eligibleAt}` : ''}`,
  ]);
  if (report.index) rows.push(['index', `compacted into generation ${report.index.gen}: ${plural(report.index.entries, 'entry').replace(/entrys$/, 'entries')} covering ${plural(report.index.deltasCovered, 'delta')}`]);
  if (report.repacked.packs > 0) rows.push(['repacked', `${plural(report.repacked.packs, 'pack')} into ${report.repacked.newPacks} new (${formatBytes(report.repacked.bytesCopied)} copied)`]);
  rows.push(['locked', report.locked.length === 0 ? 'none' : `${plural(report.locked.length, 'blob')} under an immutability policy or legal hold, skipped`]);
  lines.push(...table(rows));
  for (const l of report.locked.slice(0, 20)) lines.push(`    ${l.name} (${l.lock})`);
  if (report.locked.length > 20) lines.push(`    … and ${report.locked.length - 20} more (--json lists them all)`);
  if (report.blocked) lines.push(`  blocked: ${report.blocked} — no table, pack or index delta was deleted this run`);
  for (const problem of report.problems.slice(0, 20)) lines.push(`  problem: ${problem}`);
  if (report.problems.length > 20) lines.push(`  … and ${report.problems.length - 20} more problems (--json lists them all)`);
  return lines;
}

export const definePrune: DefineCommand = (program, ctx) => {
  program
    .command('prune')
    .description('delete what no kept backup needs: forgotten backups past their grace, then (two-phase) unreferenced tables, packs and staging; repack mostly unused packs')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'the user key (prune reads every manifest and table)')
    .option('--dry-run', 'say what would be deleted and reclaimed; delete and write nothing')
    .option('--max-unused <percent>', 'unused share of pack bytes tolerated before repacking (default 10%)')
    .option('--no-repack', 'do not repack mostly unused packs')
    .option('--json', 'print the prune report as one JSON object')
    .action(async (opts: PruneCliOptions & { vault: string; keyFile: string; json?: boolean }) => {
      const { io } = ctx;
      const vault = storageLocation(opts.vault, 'vault', io.env);
      parseMaxUnused(opts.maxUnused); // before the key is read: a bad value is a usage error
      const userKey = await loadUserKey(opts.keyFile);
      const report = await runPrune(io, vault, userKey, opts);
      if (opts.json) printJson(io, { vault: displayUrl(opts.vault), ...report });
      else printLines(io, pruneLines(report));
    });
};
