/**
 * `pagewise list --vault <container-url> [--key-file <f>] [--json]`: the backups in a vault grouped by
 * disk, each disk's newest first — when, full or incremental and on which base, logical size, bytes read
 * and bytes newly stored. Without the key a version-2 backup shows as locked (only its blob name is known).
 * A forgotten backup (pagewise forget) is listed "deleted, recoverable until …" while its grace lasts.
 */
import { BackupListing, displayUrl, DiskBackups, formatBytes, listBackups, groupByDisk, loadUserKey } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineList: DefineCommand = (program, ctx) => {
  program
    .command('list')
    .description('list the backups in a vault by disk, newest first: full or incremental, base, size, bytes read and newly stored')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .option('--key-file <file>', "open version-2 manifests (without it they are listed locked) and check each manifest's MAC: a tampered one is listed as damaged")
    .option('--json', 'print one JSON object: { vault, disks: [{ disk, backups }], backups } (disks newest first; backups: the same, ungrouped)')
    .action(async (opts: { vault: string; keyFile?: string; json?: boolean }) => {
      const { io } = ctx;
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const userKey = opts.keyFile === undefined ? undefined : await loadUserKey(opts.keyFile);
      const backups = await listBackups(vault, { userKey });
      const disks = groupByDisk(backups);
      if (opts.json) {
        printJson(io, { vault: displayUrl(opts.vault), disks, backups });
        return;
      }
      if (backups.length === 0) {
        printLines(io, [`no backups in ${displayUrl(opts.vault)}`]);
        return;
      }
      const lines = disks.flatMap((group, k) => [...(k > 0 ? [''] : []), ...diskLines(group)]);
      // Why each of the others cannot be restored, one line each under the tables.
      const problems = backups.flatMap((b) => (b.status === 'complete' ? [] : [`${b.backupId}: ${b.problem}`]));
      const locked = backups.some((b) => b.status === 'complete' && b.locked);
      const deleted = backups.some((b) => b.status === 'complete' && b.deleted);
      printLines(io, [
        ...lines,
        ...(problems.length > 0 ? ['', ...problems] : []),
        ...(locked ? ['', 'locked: a version-2 backup listed without --key-file (only its disk tag and completion time are readable)'] : []),
        ...(deleted ? ['', 'deleted: forgotten, still restorable; pagewise undelete brings it back until then, pagewise prune deletes it after'] : []),
      ]);
    });
};

const HEAD = ['COMPLETED', 'KIND', 'BASE', 'LOGICAL', 'READ', 'NEW', 'STORED', 'BACKUP ID', 'STATUS'];

/** One disk: its name, then its backups newest first in aligned columns. */
function diskLines(group: DiskBackups): string[] {
  const rows = [HEAD, ...group.backups.map(row)];
  const widths = HEAD.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const count = `${group.backups.length} backup${group.backups.length === 1 ? '' : 's'}`;
  return [`disk ${group.disk} (${count})`, ...rows.map((r) => `  ${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')}`.trimEnd())];
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
