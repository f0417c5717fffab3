/**
 * `pagewise forget <backup-id>… | --keep-daily 7 … [--disk D] --vault <url> --key-file <f>`: soft-deletes
 * backups (a tombstone each; nothing is deleted until prune, after the grace) — named ones, or per disk
 * those the keep rules (restic's) do not keep. `--dry-run` shows per disk what goes and which rule keeps
 * each kept backup; `--prune` prunes afterwards. `--vm <id> --keep-*` / `--vm-backup <id>…`: whole-VM
 * backups, each forgotten with all its disk backups (FORMAT §27.6). docs/RETENTION.md.
 */
import { Command } from 'commander';
import { DAY_MS, displayUrl, forgetBackups, ForgetReport, forgetVmBackups, forgetVmBackupsByPolicy, parseVmId, VmForgetReport, loadUserKey, PagewiseError, parseKeepPolicy, KeepPolicy, validateBackupId } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';
import { parseMaxUnused, pruneLines, runPrune } from './prune';

const MAX_GRACE_DAYS = 3650;

interface ForgetCliOptions {
  vault: string;
  keyFile: string;
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  disk?: string;
  vm?: string;
  vmBackup?: string[];
  graceDays?: string;
  grace: boolean;
  dryRun?: boolean;
  prune?: boolean;
  maxUnused?: string;
  repack: boolean;
  json?: boolean;
}

const KEEP_OPTIONS = [
  ['keepLast', 'last', '--keep-last', 'keep the n newest backups'],
  ['keepHourly', 'hourly', '--keep-hourly', 'keep the newest backup of each of the n newest hours with one (UTC)'],
  ['keepDaily', 'daily', '--keep-daily', 'keep the newest backup of each of the n newest days with one (UTC)'],
  ['keepWeekly', 'weekly', '--keep-weekly', 'keep the newest backup of each of the n newest weeks with one'],
  ['keepMonthly', 'monthly', '--keep-monthly', 'keep the newest backup of each of the n newest months with one'],
  ['keepYearly', 'yearly', '--keep-yearly', 'keep the newest backup of each of the n newest years with one'],
] as const;

/** A keep count: a whole number, or -1 for unlimited (restic's convention). */
function keepCount(text: string, option: string): number {
  if (!/^\s*(-1|\d{1,7})\s*$/.test(text)) throw new PagewiseError('BadInput', `${option} "${text.slice(0, 16)}" must be a whole number (or -1 for unlimited)`);
  return Number(text);
}

/** The keep rules of the command line, checked by core; undefined when none is given. */
export function keepPolicyOf(opts: Partial<ForgetCliOptions>): KeepPolicy | undefined {
  const raw: Record<string, unknown> = {};
  for (const [key, rule, option] of KEEP_OPTIONS) {
    const value = opts[key];
    if (value !== undefined) raw[rule] = keepCount(value, option);
  }
  if (opts.keepWithin !== undefined) raw.within = opts.keepWithin;
  return Object.keys(raw).length === 0 ? undefined : parseKeepPolicy(raw);
}

/** `--grace-days N` (1–3650) or `--no-grace` (0: prune may delete at once); undefined: core's default (14 days). */
export function graceMsOf(opts: Pick<ForgetCliOptions, 'graceDays' | 'grace'>): number | undefined {
  if (!opts.grace) {
    if (opts.graceDays !== undefined) throw new PagewiseError('BadInput', '--grace-days and --no-grace contradict each other; give one');
    return 0;
  }
  if (opts.graceDays === undefined) return undefined;
  if (!/^\s*\d{1,4}\s*$/.test(opts.graceDays)) throw new PagewiseError('BadInput', `--grace-days "${opts.graceDays.slice(0, 16)}" must be a whole number of days`);
  const days = Number(opts.graceDays);
  if (days === 0) throw new PagewiseError('BadInput', '--grace-days 0 would make the backups unrecoverable at the next prune; say so with --no-grace');
  if (days > MAX_GRACE_DAYS) throw new PagewiseError('BadInput', `--grace-days ${days} is more than ${MAX_GRACE_DAYS}`);
  return days * DAY_MS;
}

/** Per disk: the backups that go, then the kept ones with the rules that keep them. */
export function forgetLines(report: ForgetReport): string[] {
  const disks = [...new Set([...report.forgotten.map((f) => f.disk), ...report.kept.map((k) => k.disk)])];
  const verb = report.dryRun ? 'would forget' : 'forgot';
  const lines: string[] = [];
  for (const disk of disks) {
    const gone = report.forgotten.filter((f) => f.disk === disk);
    const kept = report.kept.filter((k) => k.disk === disk);
    if (lines.length > 0) lines.push('');
    lines.push(`disk ${disk}: ${verb} ${gone.length}, keep ${kept.length}`);
    for (const f of gone) lines.push(`  forget  ${f.backupId}  recoverable until ${f.graceEndsAt}`);
    for (const k of kept) lines.push(`  keep    ${k.backupId}  ${k.reasons.join(', ') || '-'}`);
  }
  if (report.alreadyForgotten.length > 0) lines.push('', `already forgotten (their earlier grace stands): ${report.alreadyForgotten.join(', ')}`);
  for (const p of report.problems ?? []) lines.push(`problem: ${p.backupId}: ${p.problem}`);
  if (lines.length === 0) lines.push('nothing to forget');
  else if (!report.dryRun && report.forgotten.length > 0) lines.push('', 'pagewise undelete <backup-id> brings one back while its grace lasts; pagewise prune deletes them after it');
  return lines;
}

/** The VM backups that go, then the kept ones with the rules that keep them (§27.6). */
export function vmForgetLines(report: VmForgetReport): string[] {
  const verb = report.dryRun ? 'would forget' : 'forgot';
  const lines = [`VM backups: ${verb} ${report.forgotten.length}, keep ${report.kept.length}`];
  for (const f of report.forgotten) lines.push(`  forget  ${f.vmBackupId}  recoverable until ${f.graceEndsAt} (disk backups ${f.diskBackups.join(', ')})`);
  for (const k of report.kept) lines.push(`  keep    ${k.vmBackupId}  ${k.reasons.join(', ') || '-'}`);
  if (report.alreadyForgotten.length > 0) lines.push('', `already forgotten (their earlier grace stands): ${report.alreadyForgotten.join(', ')}`);
  for (const p of report.problems ?? []) lines.push(`problem: ${p.id}: ${p.problem}`);
  if (!report.dryRun && report.forgotten.length > 0) lines.push('', 'pagewise undelete --vm-backup <id> brings one back while its grace lasts; pagewise prune deletes its disk backups after it');
  return lines;
}

export const defineForget: DefineCommand = (program, ctx) => {
  const command: Command = program
    .command('forget')
    .description('soft-delete backups: the named ones, or per disk those the --keep-* rules do not keep (recoverable with pagewise undelete until pruned after the grace)')
    .argument('[backup-id...]', 'backups to forget (see pagewise list); or give --keep-* rules instead')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'the user key the backups were made with');
  for (const [, , option, help] of KEEP_OPTIONS) command.option(`${option} <n>`, `${help} (-1: all)`);
  command
    .option('--keep-within <duration>', 'keep every backup within this duration of the newest one, e.g. 30d, 2w, 1y6m')
    .option('--disk <disk>', 'apply the rules to this disk only (as pagewise list names it); default every disk')
    .option('--vm <vm-resource-id>', "apply the --keep-* rules to this VM's whole-VM backups (pagewise list --vm): each forgotten with all its disk backups")
    .option('--vm-backup <vm-backup-id...>', 'forget these whole-VM backups, each with all its disk backups')
    .option('--grace-days <n>', 'days a forgotten backup stays recoverable (default 14)')
    .option('--no-grace', 'no grace: the next prune may delete the forgotten backups')
    .option('--dry-run', 'show per disk what would be forgotten and which rule keeps each kept backup; write nothing')
    .option('--prune', 'run pagewise prune afterwards (a dry-run prune with --dry-run)')
    .option('--max-unused <percent>', 'with --prune: as pagewise prune --max-unused')
    .option('--no-repack', 'with --prune: as pagewise prune --no-repack')
    .option('--json', 'print one JSON object: { vault, forget: <report>, prune?: <report> }')
    .addHelpText('after', '\nExamples:\n  pagewise forget pw-0123456789abcdef01234567 --vault … --key-file key.json\n  pagewise forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run --vault … --key-file key.json\n  pagewise forget --vm /subscriptions/…/virtualMachines/vm1 --keep-daily 7 --vault … --key-file key.json\n  pagewise forget --vm-backup vm-20261201t020000000z-0123456789ab --vault … --key-file key.json\n')
    .action(async (ids: string[], opts: ForgetCliOptions) => {
      const { io } = ctx;
      const backupIds = ids.map(validateBackupId);
      const policy = keepPolicyOf(opts);
      if (opts.vm !== undefined || opts.vmBackup !== undefined) {
        await forgetVms(ctx.io, opts, backupIds.length > 0, policy);
        return;
      }
      if (backupIds.length > 0 && policy) throw new PagewiseError('BadInput', 'give backup IDs or --keep-* rules, not both');
      if (backupIds.length === 0 && !policy) throw new PagewiseError('BadInput', 'give the backups to forget, or --keep-* rules (see pagewise forget --help)');
      if (backupIds.length > 0 && opts.disk !== undefined) throw new PagewiseError('BadInput', '--disk goes with --keep-* rules, not with backup IDs');
      if (!opts.prune && (opts.maxUnused !== undefined || !opts.repack)) throw new PagewiseError('BadInput', '--max-unused and --no-repack go with --prune');
      const graceMs = graceMsOf(opts);
      parseMaxUnused(opts.maxUnused);
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const userKey = await loadUserKey(opts.keyFile);
      const report = await forgetBackups({
        vault,
        userKey,
        ...(backupIds.length > 0 ? { backupIds } : {}),
        ...(policy ? { policy } : {}),
        ...(opts.disk !== undefined ? { disk: opts.disk } : {}),
        ...(graceMs !== undefined ? { graceMs } : {}),
        dryRun: opts.dryRun ?? false,
      });
      const pruned = opts.prune ? await runPrune(io, vault, userKey, { dryRun: opts.dryRun, maxUnused: opts.maxUnused, repack: opts.repack }) : undefined;
      if (opts.json) {
        printJson(io, { vault: displayUrl(opts.vault), forget: report, ...(pruned ? { prune: pruned } : {}) });
        return;
      }
      printLines(io, [...forgetLines(report), ...(pruned ? ['', ...pruneLines(pruned)] : [])]);
    });
};

/** `forget --vm <id> --keep-*` or `forget --vm-backup <id>…`: whole-VM backups (core forgetVmBackups). */
async function forgetVms(io: Parameters<DefineCommand>[1]['io'], opts: ForgetCliOptions, withIds: boolean, policy: KeepPolicy | undefined): Promise<void> {
  if (withIds || opts.disk !== undefined) throw new PagewiseError('BadInput', '--vm and --vm-backup go without disk backup IDs and --disk');
  if (opts.vm !== undefined && opts.vmBackup !== undefined) throw new PagewiseError('BadInput', '--vm (with --keep-* rules) and --vm-backup contradict each other; give one');
  if (opts.vm !== undefined && !policy) throw new PagewiseError('BadInput', '--vm needs --keep-* rules (or name VM backups with --vm-backup)');
  if (opts.vmBackup !== undefined && policy) throw new PagewiseError('BadInput', 'give --vm-backup IDs or --keep-* rules with --vm, not both');
  if (opts.prune) throw new PagewiseError('BadInput', '--prune goes with disk backups; run pagewise prune after forgetting VM backups');
  if (opts.vm !== undefined) parseVmId(opts.vm, '--vm');
  const graceMs = graceMsOf(opts);
  const vault = storageLocation(opts.vault, 'vault', io.env);
  const userKey = await loadUserKey(opts.keyFile);
  const o = { ...(graceMs !== undefined ? { graceMs } : {}), dryRun: opts.dryRun ?? false };
  const report = opts.vm !== undefined ? await forgetVmBackupsByPolicy(vault, userKey, opts.vm, policy!, o) : await forgetVmBackups(vault, userKey, opts.vmBackup!, o);
  if (opts.json) printJson(io, { vault: displayUrl(opts.vault), forgetVm: report });
  else printLines(io, vmForgetLines(report));
}
