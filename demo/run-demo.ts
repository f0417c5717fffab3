/**
 * `npm run demo`: Pagewise end to end on this machine, through the real `pagewise` command.
 *
 * Starts Azurite with two accounts ("src" plays the cloud account holding the VM disk, "vault" the
 * separate storage for the secondary copy), writes a realistic 1 GiB sample VM disk (holes, zero pages,
 * compressible and incompressible regions, repeated pages) — or, with `--image <file>`, uploads one's
 * own raw disk image with `pagewise upload` — then runs `node bin/pagewise.js` for
 * keygen → init (a version-2 vault for the key) → backup --snapshot (full; 4 MiB pages through a 64 MiB
 * scratch cache, 1/16 of the disk) → verify (every block read) → restore to a new page blob and to a
 * local sparse file; then changes a few percent of the disk's pages (writes and clears) and runs the same
 * backup again — incremental: it reads only the touched pages, releases the older snapshot — restores it
 * and lists both under the disk. Then file-level restore (demo/file-restore.ts): a small GPT disk (EFI vfat
 * when mkfs.vfat is there, ext4 with a change only in its journal) uploaded and backed up, read back with
 * `pagewise ls`, `extract` and `cat` straight from the vault (skipped, saying why, when e2fsprogs/fdisk cannot
 * be had). Then vault-wide dedupe (demo/clone-disk.ts, #15): a clone of the first disk with a few pages changed,
 * a new disk backed up into the same vault — new bytes only its changed chunks, the rest found through the
 * vault's content index — with `list` (stored bytes unique/shared per disk, the vault total), `rebuild-index
 * --dry-run` (0 unplaced chunks) and a restore. Checks every figure and restore byte for byte, prints a summary
 * and exits non-zero when anything does not match.
 *
 * Credentials: the source is read through a SAS URL that may also take and delete its snapshots, the
 * vault and the restore target through connection strings in the child's environment; neither is ever
 * printed.
 */
import { createReadStream, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { sampleVmLayout, writeDisk } from '../testkit/sample-disk';
import { DiskHash, fileSha256, pageBlobSha256 } from '../testkit/disk-hash';
import { BackupListing, BackupResult, DiskBackups, formatBytes, printable, redact, RestoreResult, VerifyResult } from '../core';
import { Check, mibps, MiB, pagewise, say, secs, shapeFor, timed } from './demo-cli';
import { changeDisk } from './change-disk';
import { fileRestoreStep, prepareFileDisk } from './file-restore';
import { cloneStep, prepareClone } from './clone-disk';

const GiB = 1024 * MiB;
const SAMPLE_DISK_BYTES = 1 * GiB;
/** Share of the disk's pages the demo changes between its two backups. */
const CHANGE_FRACTION = 0.03;

/** `npm run demo -- --image <file>` backs up one's own raw disk image instead of the generated sample. */
const IMAGE = (() => {
  const at = process.argv.indexOf('--image');
  if (at < 0) return undefined;
  const file = process.argv[at + 1];
  // `--image` alone (or followed by another option) must not quietly run the sample disk instead.
  if (file === undefined || file === '' || file.startsWith('-')) {
    process.stderr.write('demo: --image needs the path of a raw disk image (npm run demo -- --image <file>)\n');
    process.exit(2);
  }
  return file;
})();

/**
 * By default the backup runs as the durable orchestration on the local runtime (the product's shape);
 * `npm run demo -- --engine inline` runs the single-process engine instead.
 */
const ENGINE = (() => {
  const at = process.argv.indexOf('--engine');
  return at > 0 ? process.argv[at + 1] ?? 'local' : 'local';
})();

async function demo(az: AzuriteInstance, tmp: string): Promise<boolean> {
  const src = az.accounts.src.service.getContainerClient('disks');
  await src.create();
  await az.accounts.vault.service.getContainerClient('restores').create(); // the vault is made by pagewise init below

  say(`Pagewise demo: Azurite on 127.0.0.1:${az.port}, accounts "src" (cloud) and "vault" (secondary copy)`);
  const diskStep = IMAGE
    ? await timed(`pagewise upload ${IMAGE} (sparse page blob src/disks/vm1.vhd)`, () => uploadOwnImage(az, IMAGE))
    : await timed(`writing a ${formatBytes(SAMPLE_DISK_BYTES)} sample VM disk (page blob src/disks/vm1.vhd)`, () =>
        writeDisk(src.getPageBlobClient('vm1.vhd'), SAMPLE_DISK_BYTES, sampleVmLayout(SAMPLE_DISK_BYTES)),
      );
  const disk = diskStep.value;
  const diskBytes = disk.diskBytes;
  const { pageSize, cacheBytes } = shapeFor(diskBytes);
  const pageSizeArg = String(pageSize);

  const keyFile = path.join(tmp, 'user.key');
  const scratch = path.join(tmp, 'scratch');
  await fs.mkdir(scratch);
  // Read, and take and delete snapshots of this blob: --snapshot keeps each backup's as the next one's base.
  const sourceUrl = az.sasUrl('src', 'disks', 'vm1.vhd', { permissions: 'racwd' });
  const vaultUrl = `${az.accounts.vault.endpoint}/vault`; // no SAS: connection string from the environment
  const targetUrl = `${az.accounts.vault.endpoint}/restores/vm1-restored.vhd`;
  const env = {
    PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints, // the emulator's endpoints, named explicitly
    PAGEWISE_VAULT_CONNECTION_STRING: az.accounts.vault.connectionString,
    PAGEWISE_TARGET_CONNECTION_STRING: az.accounts.vault.connectionString,
  };
  const restoredFile = path.join(tmp, 'vm1-restored.img');
  const restoredFile2 = path.join(tmp, 'vm1-restored-2.img');

  const keygen = await timed('pagewise keygen', () => pagewise<{ keyId: string }>(['keygen', keyFile, '--json'], env));
  const init = await timed('pagewise init --key-file (makes a version-2 vault for the key)', () =>
    pagewise<{ containerCreated: boolean; markerWritten: boolean }>(['init', '--vault', vaultUrl, '--key-file', keyFile, '--json'], env),
  );
  const backupArgs = ['backup', sourceUrl, '--vault', vaultUrl, '--key-file', keyFile, '--snapshot', '--page-size', pageSizeArg, '--cache', String(cacheBytes), '--scratch-dir', scratch, '--engine', ENGINE, '--json'];
  const backup = await timed(`pagewise backup --snapshot --engine ${ENGINE} (pages ${formatBytes(pageSize)}, cache ${formatBytes(cacheBytes)})`, () =>
    pagewise<BackupResult>(backupArgs, env),
  );
  const b = backup.value;
  const verify = await timed('pagewise verify (every block read, decrypted, hash-checked)', () =>
    pagewise<VerifyResult>(['verify', b.backupId, '--vault', vaultUrl, '--key-file', keyFile, '--read-data', '--json'], env),
  );
  const toBlob = await timed('pagewise restore → new page blob', () =>
    pagewise<RestoreResult>(['restore', b.backupId, '--vault', vaultUrl, '--key-file', keyFile, '--to', targetUrl, '--json'], env),
  );
  const toFile = await timed('pagewise restore → local sparse file', () =>
    pagewise<RestoreResult>(['restore', b.backupId, '--vault', vaultUrl, '--key-file', keyFile, '--to', restoredFile, '--json'], env),
  );
  const hashes = await timed('comparing both restores with the disk (SHA-256)', async () => ({
    file: await fileSha256(restoredFile),
    blob: await pageBlobSha256(az.accounts.vault.service.getContainerClient('restores').getPageBlobClient('vm1-restored.vhd'), diskBytes),
  }));
  const fileStat = await fs.stat(restoredFile);
  const fileOnDisk = fileStat.blocks * 512;

  // The disk's next state: a few percent of its pages written or cleared, then the same backup again.
  const diskClient = src.getPageBlobClient('vm1.vhd');
  const change = await timed(`changing ${(CHANGE_FRACTION * 100).toFixed(0)} % of the disk's pages (Put Page, Clear Pages)`, () =>
    changeDisk(diskClient, diskBytes, pageSize, CHANGE_FRACTION),
  );
  const c = change.value;
  const disk2Sha = await pageBlobSha256(diskClient, diskBytes);
  const backup2 = await timed('pagewise backup --snapshot (the same command again: incremental)', () => pagewise<BackupResult>(backupArgs, env));
  const b2 = backup2.value;
  const toFile2 = await timed('pagewise restore (the incremental) → local sparse file', () =>
    pagewise<RestoreResult>(['restore', b2.backupId, '--vault', vaultUrl, '--key-file', keyFile, '--to', restoredFile2, '--json'], env),
  );
  const file2Sha = await fileSha256(restoredFile2);
  // File-level restore's disk (#14) is built and uploaded to the source account beside the steps below, which
  // touch only the vault; its backup and reads come after them, so their figures and checks stay as they were.
  const fileStep = { az, tmp, vaultUrl, keyFile, env, engine: ENGINE, scratch };
  const fileDisk = prepareFileDisk(fileStep);
  // The clone (#15) is copied from the disk in its final state and changed, beside the same steps; backed up after them.
  const cloneDisk = prepareClone(fileStep, diskClient, diskBytes);
  const list = await timed('pagewise list --key-file', () =>
    pagewise<{ disks: DiskBackups[]; backups: BackupListing[] }>(['list', '--vault', vaultUrl, '--key-file', keyFile, '--json'], env),
  );
  // Retention: forget the first backup (soft delete), see it listed as deleted, bring it back; a policy
  // that keeps only the newest, as a dry run; a prune dry run (nothing is old enough to go yet).
  const vaultArgs = ['--vault', vaultUrl, '--key-file', keyFile, '--json'];
  const forget = await timed('pagewise forget <first backup> (soft delete, 14-day grace)', () =>
    pagewise<{ forget: { forgotten: { backupId: string; graceEndsAt: string }[] } }>(['forget', b.backupId, ...vaultArgs], env),
  );
  const listDeleted = await timed('pagewise list (the forgotten backup listed as deleted)', () => pagewise<{ backups: BackupListing[] }>(['list', ...vaultArgs], env));
  const undelete = await timed('pagewise undelete <first backup>', () => pagewise<{ restored: string[] }>(['undelete', b.backupId, ...vaultArgs], env));
  const listAfter = await timed('pagewise list (back again)', () => pagewise<{ backups: BackupListing[] }>(['list', ...vaultArgs], env));
  const policy = await timed('pagewise forget --keep-last 1 --dry-run', () =>
    pagewise<{ forget: { forgotten: { backupId: string }[]; kept: { backupId: string; reasons: string[] }[] } }>(['forget', '--keep-last', '1', '--dry-run', ...vaultArgs], env),
  );
  const prune = await timed('pagewise prune --dry-run', () =>
    pagewise<{ dryRun: boolean; bytesTotal: number; bytesUnused: number; wouldDelete?: { packs: string[]; manifests: string[] } }>(['prune', '--dry-run', ...vaultArgs], env),
  );
  const deletedOf = (l: { backups: BackupListing[] }) => l.backups.find((x) => x.backupId === b.backupId) as (BackupListing & { deleted?: { graceEndsAt: string } }) | undefined;
  const wasDeleted = deletedOf(listDeleted.value)?.deleted;
  const isBack = deletedOf(listAfter.value) !== undefined && deletedOf(listAfter.value)?.deleted === undefined;
  const policyGoes = policy.value.forget.forgotten.map((x) => x.backupId);
  const policyKeeps = policy.value.forget.kept.map((x) => `${x.backupId} (${x.reasons.join(', ')})`);
  const snapshotsLeft: string[] = [];
  for await (const item of src.listBlobsFlat({ prefix: 'vm1.vhd', includeSnapshots: true })) if (item.snapshot) snapshotsLeft.push(item.snapshot);
  const firstSnapshot = b.sourceSnapshot?.snapshot;
  const secondSnapshot = b2.sourceSnapshot?.snapshot;
  const listed = list.value.disks;
  const listedIds = listed.length === 1 ? listed[0].backups.map((x) => x.backupId) : [];
  const leftInScratch = (await fs.readdir(scratch)).length;
  // File-level restore (#14): its own small GPT disk backed up and read back, after the steps above.
  const files = await fileRestoreStep(fileStep, fileDisk);
  if ('skipped' in files) say(`  file-level restore skipped: ${files.skipped}`);
  // Vault-wide dedupe (#15): a clone of the first disk, a new disk, backed up into the same vault, last.
  const clone = await cloneStep(fileStep, cloneDisk, { full: b, incremental: b2, change: c, others: 'skipped' in files ? [] : [files.backup] });

  const checks: Check[] = [
    { what: 'bytes read = allocated bytes', ok: b.bytesRead === disk.allocatedBytes && b.allocatedBytes === disk.allocatedBytes, detail: `${b.bytesRead} = ${disk.allocatedBytes}` },
    { what: 'cache capacity ≤ 1/16 of the disk', ok: b.cacheCapacityBytes <= diskBytes / 16, detail: formatBytes(b.cacheCapacityBytes) },
    { what: 'cache high-water ≤ capacity', ok: b.cacheHighWaterBytes > 0 && b.cacheHighWaterBytes <= b.cacheCapacityBytes, detail: formatBytes(b.cacheHighWaterBytes) },
    { what: 'version-2 vault, first backup full', ok: init.value.markerWritten && b.formatVersion === 2 && b.kind === 'full', detail: `format ${b.formatVersion}, ${b.kind}${b.reason ? ` (${b.reason})` : ''}` },
    { what: 'verify (all data read)', ok: verify.value.ok && verify.value.blocksChecked > 0, detail: verify.value.ok ? 'OK' : `${verify.value.problems.length} problem(s): ${verify.value.problems.slice(0, 3).join('; ')}` },
    { what: 'restored page blob identical', ok: hashes.value.blob === disk.sha256, detail: hashes.value.blob.slice(0, 16) },
    { what: 'restored sparse file identical', ok: hashes.value.file === disk.sha256 && fileStat.size === diskBytes, detail: hashes.value.file.slice(0, 16) },
    { what: 'second backup incremental on the first', ok: b2.kind === 'incremental' && b2.base?.backupId === b.backupId && b2.base.snapshot === firstSnapshot, detail: `${b2.kind}, base ${b2.base?.backupId ?? 'none'}` },
    { what: 'incremental bytes read = allocated bytes of the touched pages', ok: b2.bytesRead === c.expectedBytesRead, detail: `${b2.bytesRead} = ${c.expectedBytesRead} (${c.touchedPages} pages)` },
    // Chunks are cut inside a page (never across), and only a touched page is read: new chunks lie in touched pages.
    { what: 'incremental stored only chunks of the touched pages', ok: b2.bytesNew > 0 && b2.bytesNew <= c.touchedPages * pageSize, detail: `${formatBytes(b2.bytesNew)} new ≤ ${c.touchedPages} × ${formatBytes(pageSize)} (${formatBytes(c.bytesWritten)} written; full: ${formatBytes(b.bytesNew)})` },
    { what: 'older snapshot released, one kept', ok: firstSnapshot !== undefined && (b2.releasedSnapshots ?? []).includes(firstSnapshot) && b2.sourceSnapshot?.deleted === false && snapshotsLeft.length === 1 && snapshotsLeft[0] === secondSnapshot, detail: `released ${(b2.releasedSnapshots ?? []).length}, ${snapshotsLeft.length} left` },
    { what: 'restored incremental identical', ok: file2Sha === disk2Sha, detail: file2Sha.slice(0, 16) },
    { what: 'list: both backups under the disk', ok: listedIds.length === 2 && listedIds[0] === b2.backupId && listedIds[1] === b.backupId, detail: `${listed.length} disk(s), ${list.value.backups.length} backup(s)` },
    { what: 'forget: listed as deleted with its grace', ok: forget.value.forget.forgotten.length === 1 && wasDeleted !== undefined && wasDeleted.graceEndsAt === forget.value.forget.forgotten[0].graceEndsAt, detail: `recoverable until ${wasDeleted?.graceEndsAt ?? '—'}` },
    { what: 'undelete: listed as kept again', ok: undelete.value.restored.length === 1 && isBack, detail: `${undelete.value.restored.length} restored` },
    { what: 'policy --keep-last 1 (dry run): the first would go', ok: policyGoes.length === 1 && policyGoes[0] === b.backupId, detail: `keeps ${policyKeeps.join('; ')}` },
    { what: 'prune --dry-run: nothing to delete yet', ok: prune.value.dryRun && (prune.value.wouldDelete?.packs.length ?? 0) === 0 && (prune.value.wouldDelete?.manifests.length ?? 0) === 0, detail: `${formatBytes(prune.value.bytesTotal)} of packs, ${formatBytes(prune.value.bytesUnused)} unused` },
    { what: 'scratch cache cleaned up', ok: leftInScratch === 0, detail: `${leftInScratch} file(s) left` },
    ...('skipped' in files ? [] : files.checks),
    ...clone.checks,
  ];

  const yes = (ok: boolean) => (ok ? 'yes' : 'NO');
  const rows: Array<[string, string]> = [
    ['key ID', keygen.value.keyId],
    ['backup ID', b.backupId],
    ['engine', ENGINE === 'local' ? 'local durable runtime (orchestration, activities)' : 'inline (single process)'],
    ...(ENGINE === 'local' ? [orchestrationRow(b as unknown as OrchestrationFacts)] : []),
    ['disk size (logical)', formatBytes(b.diskBytes)],
    ['allocated', `${formatBytes(b.allocatedBytes)} (${((100 * b.allocatedBytes) / b.diskBytes).toFixed(1)}% of the disk; holes never read)`],
    ['bytes read', `${formatBytes(b.bytesRead)} (= allocated: ${yes(b.bytesRead === b.allocatedBytes)})`],
    ['page size', formatBytes(b.pageSize)],
    ['pages with data', `${b.pages} of ${Math.ceil(b.diskBytes / b.pageSize)}`],
    ['zero pages', String(b.zeroPages)],
    ['pages needing no new chunk', `${b.dedupedPages} (every chunk zero, repeated, or already in the vault)`],
    ['chunks stored', b.formatVersion === 2 ? `${b.storedBlocks} new of ${b.chunks ?? '?'} chunk references, in ${b.segments} pack(s)` : `${b.storedBlocks} blocks in ${b.segments} segment(s)`],
    ['bytes stored', `${formatBytes(b.bytesStored)} (${((100 * b.bytesStored) / b.bytesRead).toFixed(1)}% of bytes read; compressed + encrypted)`],
    ['cache capacity', `${formatBytes(b.cacheCapacityBytes)} (1/${Math.round(b.diskBytes / b.cacheCapacityBytes)} of the disk)`],
    ['cache high-water', `${formatBytes(b.cacheHighWaterBytes)} (≤ 1/16 of the disk: ${yes(b.cacheHighWaterBytes <= b.diskBytes / 16)})`],
    ['disk write (setup)', `${secs(diskStep.ms)}`],
    ['backup', `${secs(b.durationMs)} engine, ${secs(backup.ms)} with CLI start; ${mibps(b.bytesRead, b.durationMs)} of allocated data`],
    ['verify', `${verify.value.ok ? 'OK' : 'FAILED'}: ${verify.value.blocksChecked} blocks, ${formatBytes(verify.value.bytesChecked)} in ${secs(verify.value.durationMs)} (${mibps(verify.value.bytesChecked, verify.value.durationMs)})`],
    ['restore → page blob', `${toBlob.value.pagesWritten} pages, ${formatBytes(toBlob.value.bytesWritten)} in ${secs(toBlob.value.durationMs)} (${mibps(toBlob.value.bytesWritten, toBlob.value.durationMs)}); identical: ${yes(hashes.value.blob === disk.sha256)}`],
    ['restore → sparse file', `${formatBytes(fileStat.size)} file, ${formatBytes(fileOnDisk)} on disk, in ${secs(toFile.value.durationMs)} (${mibps(toFile.value.bytesWritten, toFile.value.durationMs)}); identical: ${yes(hashes.value.file === disk.sha256)}`],
    ['change', `${c.touchedPages} pages touched: ${formatBytes(c.bytesWritten)} written, ${formatBytes(c.bytesCleared)} cleared`],
    ['incremental backup', `${b2.backupId}, base ${b2.base?.backupId ?? '—'}`],
    ['  bytes read', `${formatBytes(b2.bytesRead)} (allocated bytes of the touched pages: ${formatBytes(c.expectedBytesRead)}; full: ${formatBytes(b.bytesRead)})`],
    ['  bytes changed', `${formatBytes(b2.bytesChanged)} (ranges the diff reported)`],
    ['  bytes new', `${formatBytes(b2.bytesNew)} plaintext in ${b2.storedBlocks} new chunks, ${formatBytes(b2.bytesStored)} stored`],
    ['  time', `${secs(b2.durationMs)} engine, ${secs(backup2.ms)} with CLI start (full: ${secs(b.durationMs)})`],
    ['  snapshots', `released ${(b2.releasedSnapshots ?? []).join(', ') || '—'}; kept ${secondSnapshot ?? '—'}`],
    ['restore incremental → file', `${formatBytes(toFile2.value.bytesWritten)} in ${secs(toFile2.value.durationMs)}; identical: ${yes(file2Sha === disk2Sha)}`],
    ...('skipped' in files ? [] : files.rows),
    ...clone.rows,
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  say('');
  say('Summary');
  for (const [k, v] of rows) say(`  ${k.padEnd(width)}  ${v}`);
  say('');
  say('Checks');
  const cw = Math.max(...checks.map((c) => c.what.length));
  for (const c of checks) say(`  ${c.ok ? 'PASS' : 'FAIL'}  ${c.what.padEnd(cw)}  ${c.detail}`);
  const allOk = checks.every((c) => c.ok);
  say('');
  say(allOk ? 'demo OK: everything matched' : 'demo FAILED: see the checks above');
  return allOk;
}

async function main(): Promise<number> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-demo-'));
  let az: AzuriteInstance | undefined;
  const cleanup = async () => {
    await az?.stop().catch(() => undefined);
    az = undefined;
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  };
  const onSignal = () => {
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    az = await startAzurite({ accounts: ['src', 'vault'] });
    return (await demo(az, tmp)) ? 0 : 1;
  } catch (err) {
    process.stdout.write('\n');
    process.stderr.write(`demo FAILED: ${printable(redact(err instanceof Error ? err.message : String(err)))}\n`);
    return 1;
  } finally {
    await cleanup();
  }
}

main().then((code) => process.exit(code));

interface OrchestrationFacts {
  instanceId?: string;
  activityInvocations?: number;
  historyEvents?: Record<string, number>;
}

/** One line on how the durable orchestration ran: instance, activities, history sizes. */
function orchestrationRow(facts: OrchestrationFacts): [string, string] {
  const histories = Object.values(facts.historyEvents ?? {});
  return [
    'orchestration',
    `${facts.instanceId ?? '?'}: ${facts.activityInvocations ?? '?'} activities, ${histories.length} instance(s), largest history ${histories.length ? Math.max(...histories) : '?'} events`,
  ];
}

/** Uploads the user's image with `pagewise upload`; the disk's hash is the image's, padded to 512 bytes. */
async function uploadOwnImage(az: AzuriteInstance, image: string): Promise<{ diskBytes: number; allocatedBytes: number; sha256: string }> {
  const up = await pagewise<{ diskBytes: number; writtenBytes: number }>(['upload', image, az.sasUrl('src', 'disks', 'vm1.vhd'), '--json'], { PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints });
  const disk = new DiskHash();
  for await (const chunk of createReadStream(image, { highWaterMark: 4 * MiB })) disk.update(chunk as Buffer);
  return { diskBytes: up.diskBytes, allocatedBytes: up.writtenBytes, sha256: disk.digest(up.diskBytes) };
}
