/**
 * `pagewise list --vault <container-url> [--key-file <f>] [--json]`: the backups in a vault grouped by
 * disk, each disk's newest first — when, full or incremental and on which base, logical size, bytes read
 * and bytes newly stored. Without the key a version-2 backup shows as locked (only its blob name is known).
 * A forgotten backup (pagewise forget) is listed "deleted, recoverable until …" while its grace lasts.
 * With usage (the default; --no-usage skips reading every page table): each backup's stored bytes only it
 * names (UNIQUE) and those it shares, each disk's, and the vault's totals (#15). #18: VERIFIED, when each was
 * last verified and whether it passed (`never`; shown when the key opens the vault's verification records).
 */
import { BackupListing, BackupUsage, displayUrl, DiskBackups, DiskUsage, formatBytes, listBackups, groupByDisk, listVmBackupStates, loadUserKey, PagewiseError, parseVmId, VaultUsage, vaultUsageAt, VmBackupListing, withLastVerified } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineList: DefineCommand = (program, ctx) => {
  program
    .command('list')
    .description('list the backups in a vault by disk, newest first: full or incremental, base, size, bytes read and newly stored')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .option('--key-file <file>', "open version-2 manifests (without it they are listed locked) and check each manifest's MAC: a tampered one is listed as damaged")
    .option('--json', 'print one JSON object: { vault, disks: [{ disk, backups }], backups, usage } (disks newest first; backups: the same, ungrouped; usage: bytes per backup, disk and vault)')
    .option('--no-usage', "skip the stored bytes unique and shared per backup and disk (reading every page table once, which a large vault's listing may not want)")
    .option('--scratch-dir <dir>', "directory for the usage count's spill files (default: OS temp dir)")
    .option('--vm <vm-resource-id>', 'list the whole-VM backups of this VM instead (pagewise backup-vm), newest first: time, consistency, capture, each disk with kind and bytes; needs --key-file')
    .action(async (opts: { vault: string; keyFile?: string; json?: boolean; usage: boolean; scratchDir?: string; vm?: string }) => {
      const { io } = ctx;
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const userKey = opts.keyFile === undefined ? undefined : await loadUserKey(opts.keyFile);
      if (opts.vm !== undefined) {
        parseVmId(opts.vm, '--vm');
        if (!userKey) throw new PagewiseError('BadInput', '--vm needs --key-file: VM backups are found by a keyed tag of the VM ID and their manifests are encrypted');
        const vms = await listVmBackupStates(vault, userKey, opts.vm);
        const vmBackups = vms.map(({ manifest, ...state }) => ({ ...manifest, ...state }));
        if (opts.json) printJson(io, { vault: displayUrl(opts.vault), vmId: opts.vm, vmBackups });
        else printLines(io, vms.length === 0 ? [`no VM backups of ${opts.vm} in ${displayUrl(opts.vault)}`] : vmLines(opts.vm, vms));
        return;
      }
      // #18: each backup's newest verification record (only when the key opens the vault's records).
      const verified = await withLastVerified(vault, userKey, await listBackups(vault, { userKey }));
      const backups = verified.backups;
      const disks = groupByDisk(backups);
      const usage = opts.usage ? await vaultUsageAt(vault, userKey, { scratchDir: opts.scratchDir, abortSignal: io.interruptSignal?.() }) : undefined;
      if (opts.json) {
        printJson(io, { vault: displayUrl(opts.vault), disks, backups, ...(usage ? { usage } : {}) });
        return;
      }
      if (backups.length === 0) {
        printLines(io, [`no backups in ${displayUrl(opts.vault)}`, ...(usage ? ['', vaultLine(usage)] : [])]);
        return;
      }
      const lines = disks.flatMap((group, k) => [...(k > 0 ? [''] : []), ...diskLines(group, usage, verified.readable)]);
      // Why each of the others cannot be restored, one line each under the tables.
      const problems = backups.flatMap((b) => (b.status === 'complete' ? [] : [`${b.backupId}: ${b.problem}`]));
      const locked = backups.some((b) => b.status === 'complete' && b.locked);
      const deleted = backups.some((b) => b.status === 'complete' && b.deleted);
      printLines(io, [
        ...lines,
        ...(problems.length > 0 ? ['', ...problems] : []),
        ...(locked ? ['', 'locked: a version-2 backup listed without --key-file (only its disk tag and completion time are readable)'] : []),
        ...(deleted ? ['', 'deleted: forgotten, still restorable; pagewise undelete brings it back until then, pagewise prune deletes it after'] : []),
        ...verificationLines(backups, verified.problems),
        ...(usage ? ['', ...usageLines(usage)] : []),
      ]);
    });
};

const HEAD = ['COMPLETED', 'KIND', 'BASE', 'LOGICAL', 'READ', 'NEW', 'STORED', 'BACKUP ID', 'STATUS'];
/** With usage: UNIQUE and SHARED after STORED. */
const USAGE_HEAD = [...HEAD.slice(0, 7), 'UNIQUE', 'SHARED', ...HEAD.slice(7)];

/** One disk: its name (and, with usage, its bytes), then its backups newest first in aligned columns. */
function diskLines(group: DiskBackups, usage: VaultUsage | undefined, withVerified: boolean): string[] {
  const byId = new Map((usage?.backups ?? []).map((b) => [b.backupId, b]));
  const plain = usage ? USAGE_HEAD : HEAD;
  const head = withVerified ? withVerifiedCell(plain, 'VERIFIED') : plain;
  const cells = (b: BackupListing) => (usage ? withUsage(row(b), byId.get(b.backupId)) : row(b));
  const rows = [head, ...group.backups.map((b) => (withVerified ? withVerifiedCell(cells(b), verifiedCell(b)) : cells(b)))];
  const widths = head.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const count = `${group.backups.length} backup${group.backups.length === 1 ? '' : 's'}`;
  const disk = usage?.disks.find((d) => d.disk === group.disk);
  return [`disk ${group.disk} (${count}${disk ? `; ${diskBytes(disk)}` : ''})`, ...rows.map((r) => `  ${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')}`.trimEnd())];
}

/** #18: the VERIFIED column, before STATUS (shown when the key opens the vault's verification records). */
function withVerifiedCell(cells: string[], cell: string): string[] {
  return [...cells.slice(0, -1), cell, cells[cells.length - 1]];
}

/** When the backup was last verified (UTC, to the minute) and how: `never` when it has no record. */
function verifiedCell(b: BackupListing): string {
  if (b.status !== 'complete') return '-';
  const v = b.lastVerified;
  return v ? `${v.at.slice(0, 16)}Z ${v.ok ? 'ok' : 'FAILED'}` : 'never';
}

/** Why the last verification of a backup failed, one line each; records not trusted, one line each. */
function verificationLines(backups: BackupListing[], problems: string[]): string[] {
  const failed = backups.flatMap((b) =>
    b.status === 'complete' && b.lastVerified && !b.lastVerified.ok
      ? [`${b.backupId}: verification FAILED at ${b.lastVerified.at} (${b.lastVerified.by}): ${b.lastVerified.problems?.[0] ?? 'no reason recorded'}${(b.lastVerified.problems?.length ?? 0) > 1 ? ` (+${b.lastVerified.problems!.length - 1} more)` : ''}`]
      : [],
  );
  return [...(failed.length > 0 ? ['', ...failed] : []), ...(problems.length > 0 ? ['', ...problems.map((p) => `verification record not trusted: ${p}`)] : [])];
}

function withUsage(cells: string[], u: BackupUsage | undefined): string[] {
  const flag = u?.problem ? ' (incomplete)' : '';
  return [...cells.slice(0, 7), u ? `${formatBytes(u.uniqueBytes)}${flag}` : '-', u ? formatBytes(u.sharedBytes) : '-', ...cells.slice(7)];
}

function diskBytes(d: DiskUsage): string {
  return `stored ${formatBytes(d.referencedBytes)}: ${formatBytes(d.uniqueBytes)} its own, ${formatBytes(d.sharedBytes)} shared with other disks`;
}

/** The vault's totals and what the usage columns mean. */
function usageLines(u: VaultUsage): string[] {
  return [
    'UNIQUE: stored bytes only this backup names (forget and prune free them); SHARED: stored bytes other backups name too',
    vaultLine(u),
    ...(u.vault.forgottenOnlyBytes > 0 ? [`forgotten backups alone name ${formatBytes(u.vault.forgottenOnlyBytes)}: prune frees it once their grace ends`] : []),
    ...(u.manifestsUnread > 0 ? [`${u.manifestsUnread} version-2 backup${u.manifestsUnread === 1 ? ' is' : 's are'} not counted (locked: give --key-file with a slot in this vault; or unreadable)`] : []),
    ...u.problems.map((p) => `usage: ${p}`),
  ];
}

function vaultLine(u: VaultUsage): string {
  const v = u.vault;
  return `vault: ${formatBytes(v.totalBytes)} in all — packs ${formatBytes(v.packBytes)} (${formatBytes(v.referencedBytes)} named by backups, ${formatBytes(v.unreferencedBytes)} unreferenced: left by forgotten backups until prune, duplicates, pack trailers), tables ${formatBytes(v.tableBytes)}, index ${formatBytes(v.indexBytes)}, version 1 ${formatBytes(v.v1Bytes)}, other ${formatBytes(v.otherBytes)}`;
}

/** The STATUS column: a forgotten backup says until when it can be brought back. */
function statusOf(b: BackupListing): string {
  return b.status === 'complete' && b.deleted ? `deleted, recoverable until ${b.deleted.graceEndsAt}` : b.status;
}

function row(b: BackupListing): string[] {
  const size = (n: number | undefined) => (n === undefined ? '-' : formatBytes(n));
  if (b.status !== 'complete') return [b.createdAt ?? '-', '-', '-', size(b.diskBytes), '-', '-', '-', b.backupId, b.status];
  if (b.locked) return [b.completedAt, 'locked', '-', '-', '-', '-', '-', b.backupId, statusOf(b)];
  // A version-1 backup is always full; its bytes read are its allocated bytes, not recorded in its listing.
  const kind = b.kind ?? 'full';
  const generation = b.kind === 'incremental' && b.generation !== undefined ? ` #${b.generation}` : '';
  return [b.completedAt, `${kind}${generation}${b.formatVersion === 1 ? ' (v1)' : ''}`, b.base ?? '-', size(b.diskBytes), size(b.bytesRead), size(b.bytesNew), size(b.bytesStored), b.backupId, statusOf(b)];
}

/** A VM backup's retention state as list shows a disk backup's (§27.6); nothing for a live one. */
function vmStateText(s: VmBackupListing): string {
  if (s.state === 'forgotten') return `  deleted, recoverable until ${s.deleted!.graceEndsAt}`;
  if (s.state === 'pruned') return '  pruned: its disk backups are gone';
  if (s.state === 'partial') return `  incomplete: disk backup(s) ${s.missingDisks!.join(', ')} forgotten or pruned`;
  return '';
}

/** The VM backups of one VM, newest first: each a line, then one line per disk. */
function vmLines(vmId: string, vms: VmBackupListing[]): string[] {
  const out = [`VM ${vmId} (${vms.length} backup${vms.length === 1 ? '' : 's'})`];
  for (const s of vms) {
    const m = s.manifest;
    const capture = m.capture === 'restore-point' ? 'restore point' : 'snapshots';
    out.push(`  ${m.completedAt}  ${m.vmBackupId}  ${m.consistency}-consistent (asked ${m.requestedConsistency}), ${capture}, ${m.disks.length} disk${m.disks.length === 1 ? '' : 's'}${vmStateText(s)}`);
    for (const d of [...m.disks].sort((a, b) => (a.lun ?? -1) - (b.lun ?? -1))) {
      const why = d.reason ? ` (${d.reason})` : '';
      out.push(`    ${(d.lun === null ? 'os' : `lun ${d.lun}`).padEnd(7)}  ${d.kind}${why}  ${formatBytes(d.sizeBytes)} disk, read ${formatBytes(d.bytesRead)}, stored ${formatBytes(d.bytesStored)}  ${d.backupId}`);
    }
    if (m.notCaptured.length > 0) out.push(`    not captured: ${m.notCaptured.map((n) => n.what).join('; ')}`);
  }
  return out;
}
