/**
 * The demo's file-level restore step (#14): a small GPT disk (an EFI vfat partition when mkfs.vfat is there, an
 * ext4 one holding an OS-like tree and a change written only into its journal) uploaded, backed up, and read
 * back file by file with `pagewise ls`, `extract` and `cat`, straight from the vault.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ensureTools, findTool } from '../testkit/debian-tools';
import { debugfs, describeTree, fileBlocks, journalWrite, makeExtImage, makePartitionedImage, makeTree, MadePartition, osLikeTree, PartitionSpec, TreeEntry } from '../testkit/fs-images';
import { BackupResult, ExtractResult, FileEntry, formatBytes, VolumeSummary } from '../core';
import { Check, DemoContext, MiB, pagewise, pagewiseRaw, secs, shapeFor, timed } from './demo-cli';

const DISK_BYTES = 256 * MiB;
const EFI_BYTES = 32 * MiB;
const ROOT_BYTES = 200 * MiB;
const BLOCK = 4096;
/** The file the VM rewrote just before its crash: the new bytes are only in a committed journal transaction. */
const JOURNALED_FILE = '/etc/hostname';
const JOURNALED_TEXT = 'vm-99\n';
/** What is extracted: two directories (the journaled file among them) and the 10 MiB random file. */
const EXTRACTED = ['/etc', '/usr', '/home/user/big.bin'];
const LISTED = '/etc';
/** Bytes fetched for an extract: the file bytes, the partial pages at the two ends, and the metadata of the open. */
const METADATA_ALLOWANCE = 4 * MiB;

export type FileRestoreContext = DemoContext;

export type FileRestoreOutcome = { skipped: string } | { rows: Array<[string, string]>; checks: Check[]; ms: number; backup: BackupResult };

/** The disk built and uploaded (or why not); settled, never rejected, so it can run unawaited beside other steps. */
export type PreparedFileDisk = { skipped: string } | { error: unknown } | { disk: BuiltDisk; blob: string; writtenBytes: number; buildMs: number; uploadMs: number };

/**
 * Builds the disk and uploads it with `pagewise upload`, printing nothing: it touches only the source account, so
 * the demo runs it beside its retention steps (their CLI start-ups leave a core idle). `skipped` (with the reason)
 * when the Debian tools it builds the disk with cannot be had.
 */
export async function prepareFileDisk(ctx: FileRestoreContext): Promise<PreparedFileDisk> {
  try {
    ensureTools(['mkfs.ext4', 'debugfs', 'sfdisk']); // installed with apt-get when missing and root
  } catch (err) {
    return { skipped: err instanceof Error ? err.message : String(err) };
  }
  try {
    const t = Date.now();
    const disk = await buildDisk(ctx.tmp, findTool('mkfs.vfat')); // the EFI partition only when the tool is already there
    const buildMs = Date.now() - t;
    const blob = 'vm2-files.vhd';
    const up = await pagewise<{ diskBytes: number; writtenBytes: number }>(['upload', disk.image, ctx.az.sasUrl('src', 'disks', blob), '--json'], {
      PAGEWISE_STORAGE_ENDPOINTS: ctx.env.PAGEWISE_STORAGE_ENDPOINTS,
    });
    return { disk, blob, writtenBytes: up.writtenBytes, buildMs, uploadMs: Date.now() - t - buildMs };
  } catch (error) {
    return { error };
  }
}

/** Backs the prepared disk up, then reads it back file by file and checks what came back. */
export async function fileRestoreStep(ctx: FileRestoreContext, preparing: Promise<PreparedFileDisk>): Promise<FileRestoreOutcome> {
  const started = Date.now();
  const prepared = await timed(`building a ${formatBytes(DISK_BYTES)} GPT disk (ext4 from mkfs.ext4 -d, one change only in its journal${findTool('mkfs.vfat') ? '; EFI vfat' : ''}) + pagewise upload, begun beside the steps above`, () => preparing);
  const p = prepared.value;
  if ('skipped' in p) return p;
  if ('error' in p) throw p.error;
  const { disk, blob } = p;
  const { pageSize, cacheBytes } = shapeFor(DISK_BYTES);
  const vaultArgs = ['--vault', ctx.vaultUrl, '--key-file', ctx.keyFile];
  const backup = await timed(`pagewise backup --engine ${ctx.engine} (pages ${formatBytes(pageSize)})`, () =>
    pagewise<BackupResult>(
      ['backup', ctx.az.sasUrl('src', 'disks', blob, { permissions: 'r' }), ...vaultArgs, '--page-size', String(pageSize), '--cache', String(cacheBytes), '--scratch-dir', ctx.scratch, '--engine', ctx.engine, '--json'],
      ctx.env,
    ),
  );
  const id = backup.value.backupId;
  const vol = disk.ext.name;
  const to = path.join(ctx.tmp, 'extracted');
  const extractPaths = EXTRACTED.map((p) => `${vol}:${p}`);
  // The four readers are independent processes: run at once, their start-up (ts-node) overlaps.
  const clock = async <T>(work: () => Promise<T>) => {
    const t = Date.now();
    const value = await work();
    return { value, ms: Date.now() - t };
  };
  const reads = await timed(`pagewise ls <id>, ls <id> ${vol}:${LISTED}, extract <id> ${extractPaths.join(' ')}, cat <id> ${vol}:${JOURNALED_FILE} (at once)`, async () => {
    const [volumes, listing, extract, cat] = await Promise.all([
      clock(() => pagewise<{ scheme: string; volumes: VolumeSummary[] }>(['ls', id, ...vaultArgs, '--json'], ctx.env)),
      clock(() => pagewise<{ entries: FileEntry[]; journalReplayed: string[] }>(['ls', id, `${vol}:${LISTED}`, ...vaultArgs, '--json'], ctx.env)),
      clock(() => pagewise<ExtractResult>(['extract', id, ...extractPaths, '--to', to, ...vaultArgs, '--json'], ctx.env)),
      clock(() => pagewiseRaw(['cat', id, `${vol}:${JOURNALED_FILE}`, ...vaultArgs], ctx.env)),
    ]);
    return { volumes, listing, extract, cat };
  });
  const { volumes, listing, extract, cat } = reads.value;

  // What each command should have found, from the tree the image was made of (the journaled file as replayed).
  const expected = disk.tree;
  const under = (dir: string) => expected.filter((e) => e.path === dir || e.path.startsWith(`${dir}/`));
  // Each extracted path lands under --to by its last name, as cp -r puts it.
  const rebase = (entries: TreeEntry[], parent: string) => entries.map((e) => ({ ...e, path: parent === '/' ? e.path : e.path.slice(parent.length) }));
  const wantExtracted = sortByPath(EXTRACTED.flatMap((p) => rebase(under(p), path.posix.dirname(p))));
  const gotExtracted = await describeTree(to);
  const wantListed = expected.filter((e) => path.posix.dirname(e.path) === LISTED).map((e) => listedFacts(path.posix.basename(e.path), e.type, e.mode, e.mtimeMs, e.size));
  const gotListed = listing.value.entries.map((e) => listedFacts(e.name, e.type, e.mode, e.mtimeMs, e.size));
  const builtVolumes = disk.partitions.map((p) => `${p.name} @${p.offset} ${formatBytes(p.size)} ${p.kind} "${p.label}" ${p.openable ? 'openable' : 'not openable'}`);
  const foundVolumes = volumes.value.volumes.map((v) => `${v.name} @${v.offset} ${formatBytes(v.size)} ${v.kind} "${v.label ?? ''}" ${v.openable ? 'openable' : 'not openable'}`);

  const x = extract.value;
  const fetched = x.stats.bytesFetched;
  const bound = x.bytes + 2 * pageSize + METADATA_ALLOWANCE;
  const catText = cat.value.stdout.toString('utf8');
  const replayNote = cat.value.stderr.split('\n').find((line) => line.startsWith(`${vol}: replayed`)) ?? '';
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const checks: Check[] = [
    { what: 'files: partitions found = partitions built', ok: volumes.value.scheme === 'gpt' && same(foundVolumes, builtVolumes), detail: `GPT, ${foundVolumes.join('; ')}` },
    { what: `files: ls ${vol}:${LISTED} = the tree's (names, types, modes, mtimes)`, ok: gotListed.length > 0 && same(gotListed, wantListed), detail: `${gotListed.length} entries` },
    {
      what: 'files: extracted byte-identical, modes and mtimes',
      ok: same(comparable(gotExtracted), comparable(wantExtracted)) && x.skipped.length === 0,
      detail: `${x.files} files, ${x.directories} dirs, ${x.symlinks} symlinks, ${formatBytes(x.bytes)} (SHA-256 each)`,
    },
    { what: 'files: bytes fetched ≤ file bytes + 2 pages + 4 MiB', ok: fetched > 0 && fetched <= bound, detail: `${fetched} ≤ ${bound} (${(fetched / x.bytes).toFixed(3)} × file bytes)` },
    { what: 'files: cat = the file as the VM last wrote it', ok: catText === JOURNALED_TEXT, detail: `${vol}:${JOURNALED_FILE} = ${JSON.stringify(catText)}` },
    {
      what: 'files: a change only in the journal is seen, and said',
      ok: disk.onDiskText === 'vm-14\n' && disk.needsRecovery && /replayed 1 journal transaction/.test(replayNote) && same(x.journalReplayed, [vol]) && same(listing.value.journalReplayed, [vol]),
      detail: `on disk ${JSON.stringify(disk.onDiskText)}, journal ${JSON.stringify(JOURNALED_TEXT)}; replayed by ls, extract, cat`,
    },
  ];
  const ms = Date.now() - started;
  const rows: Array<[string, string]> = [
    ['file-level restore', `${formatBytes(DISK_BYTES)} GPT disk, ${formatBytes(p.writtenBytes)} uploaded; backup ${id}: ${formatBytes(backup.value.bytesRead)} read`],
    ['  ls (volumes)', volumes.value.volumes.map((v) => `${v.name} ${v.type ?? '?'} (${v.description}${v.openable ? '' : ', not openable'})`).join('; ')],
    [`  ls ${vol}:${LISTED}`, listing.value.entries.map((e) => e.name).join(', ')],
    ['  extract', `${extractPaths.join(' ')}: ${x.files} files, ${formatBytes(x.bytes)}; ${formatBytes(fetched)} fetched in ${x.stats.requests} requests`],
    ['  fetched ÷ file bytes', `${(fetched / x.bytes).toFixed(3)} (bound ${(bound / x.bytes).toFixed(3)}: file bytes + 2 × ${formatBytes(pageSize)} pages + 4 MiB)`],
    [`  cat ${vol}:${JOURNALED_FILE}`, `${JSON.stringify(catText)} (on disk ${JSON.stringify(disk.onDiskText)}); stderr: ${replayNote || '—'}`],
    ['  time', `${secs(ms)} added (waited ${secs(prepared.ms)} for build + upload, backup ${secs(backup.ms)}, ls/ls/extract/cat at once ${secs(reads.ms)}); build ${secs(p.buildMs)} and upload ${secs(p.uploadMs)} ran beside the retention steps`],
  ];
  return { rows, checks, ms, backup: backup.value };
}

interface BuiltDisk {
  image: string;
  tree: TreeEntry[];
  partitions: Array<{ name: string; offset: number; size: number; kind: string; label: string; openable: boolean }>;
  ext: { name: string };
  /** The journaled file's data block as the volume itself holds it (before any replay). */
  onDiskText: string;
  needsRecovery: boolean;
}

/** The tree, the ext4 image (then one journal transaction rewriting /etc/hostname), the EFI image, the GPT disk. */
async function buildDisk(tmp: string, mkfsVfat: string | undefined): Promise<BuiltDisk> {
  const treeDir = path.join(tmp, 'files-tree');
  const tree = await makeTree(treeDir, osLikeTree());
  const root = path.join(tmp, 'files-root.img');
  await makeExtImage(root, treeDir, { kind: 'ext4', sizeBytes: ROOT_BYTES, label: 'rootfs' });
  const [hostBlock] = fileBlocks(root, JOURNALED_FILE);
  const block = Buffer.alloc(BLOCK);
  block.write(JOURNALED_TEXT);
  await journalWrite(root, [{ block: hostBlock, data: block }]);
  const needsRecovery = /needs_recovery/.test(debugfs(root, ['stats']));
  const onDisk = Buffer.alloc(JOURNALED_TEXT.length);
  const handle = await fs.open(root, 'r');
  try {
    await handle.read(onDisk, 0, onDisk.length, hostBlock * BLOCK);
  } finally {
    await handle.close();
  }
  // The file as the VM last wrote it: what ls, extract and cat must show.
  const host = tree.find((e) => e.path === JOURNALED_FILE)!;
  host.sha256 = createHash('sha256').update(JOURNALED_TEXT).digest('hex');
  host.size = JOURNALED_TEXT.length;

  const specs: Array<PartitionSpec & { name: string; kind: string; openable: boolean }> = [];
  if (mkfsVfat) {
    const efi = path.join(tmp, 'files-efi.img');
    await fs.writeFile(efi, '');
    await fs.truncate(efi, EFI_BYTES);
    execFileSync(mkfsVfat, ['-n', 'EFI', efi], { stdio: 'pipe' });
    specs.push({ sizeBytes: EFI_BYTES, type: 'U', name: 'EFI System Partition', image: efi, kind: 'vfat', openable: false });
  }
  specs.push({ sizeBytes: ROOT_BYTES, type: 'L', name: 'rootfs', image: root, kind: 'ext4', openable: true });
  const image = path.join(tmp, 'files-disk.img');
  const made: MadePartition[] = await makePartitionedImage(image, { scheme: 'gpt', sizeBytes: DISK_BYTES, partitions: specs });
  await fs.rm(root); // copied into the disk; the EFI image too
  if (mkfsVfat) await fs.rm(path.join(tmp, 'files-efi.img'));
  const partitions = made.map((p, i) => ({ name: `p${p.number}`, offset: p.offset, size: p.size, kind: specs[i].kind, label: specs[i].name, openable: specs[i].openable }));
  return { image, tree, partitions, ext: { name: partitions[partitions.length - 1].name }, onDiskText: onDisk.toString('utf8'), needsRecovery };
}

function listedFacts(name: string, type: string, mode: number, mtimeMs: number, size: number): string {
  return `${name} ${type} ${mode.toString(8)} ${new Date(mtimeMs).toISOString()}${type === 'directory' ? '' : ` ${size}`}`;
}

/** Everything but a directory's size (the file system's own) and atime is compared. */
const comparable = (entries: TreeEntry[]) => entries.map((e) => (e.type === 'directory' ? { ...e, size: 0 } : e));

const sortByPath = (entries: TreeEntry[]) => [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
