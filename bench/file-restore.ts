/**
 * `npm run bench:files` — file-level restore (#14) from a large, mostly empty disk: a 64 GiB sparse ext4 image
 * (an OS-like tree, a 10 MiB file, a 1 GiB file; mkfs.ext4 -d with lazy init, so it stays sparse) uploaded
 * sparsely to Azurite and backed up (default 4 MiB pages). Then, each from a fresh BackupFiles:
 *   1. extract the 10 MiB file: bytes fetched from the vault, requests, seconds, fetched ÷ the file's size;
 *   2. cat (read and discard) the 1 GiB file: throughput;
 * and, as the baseline of each, the same run's raw ranged GETs of exactly the pack bytes of the pages under
 * that file (one chunk per GET, one in flight; no decryption), and its rate.
 *
 * Options: --disk-gib=64 --huge-mib=1024 --big-mib=10 --page-kib=4096.
 * Results: bench/results/file-restore-<date>.md (and .json).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, promises as fs, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backupDisk, BackupFiles, configureStorageEndpointsFromEnv, extractFiles, formatBytes, MiB, openBackupSource, uploadImage, type StorageLocation } from '../core';
// Internals the bench reads the vault with (allowed in test/rules.public-api.test.ts): where a chunk's pack lies.
import { v2names } from '../core/repo/v2/names';
import type { PageRecord2 } from '../core/repo/v2/records';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { fileBlocks, makeExtImage, makeTree, osLikeTree } from '../testkit/fs-images';
import { machine, revision } from './lib/run-facts';

const argv = process.argv.slice(2);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const GiB = 1024 * MiB;
const DISK_BYTES = Number(option('disk-gib') ?? 64) * GiB;
const HUGE_BYTES = Number(option('huge-mib') ?? 1024) * MiB;
const BIG_BYTES = Number(option('big-mib') ?? 10) * MiB;
const PAGE_SIZE = Number(option('page-kib') ?? 4096) * 1024;
const BLOCK = 4096;
const RESULTS = path.resolve(__dirname, 'results');
const log = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const seconds = (ms: number) => Number((ms / 1000).toFixed(2));
const mibPerS = (bytes: number, ms: number) => Number((bytes / MiB / (ms / 1000)).toFixed(1));

interface FileFigures {
  file: string;
  fileBytes: number;
  /** The restore through BackupFiles: open + stat (mount, journal check, lookup), then the read. */
  openMs: number;
  openBytesFetched: number;
  openPiecesFetched: number;
  bytesFetched: number;
  requests: number;
  piecesFetched: number;
  ms: number;
  readMs: number;
  fetchedPerFileByte: number;
  /** File bytes ÷ the read's time (the open excluded). */
  mibPerS: number;
  /** Raw ranged GETs of the pack bytes of the pages under the file. */
  pages: number;
  rawBytes: number;
  rawRequests: number;
  rawMs: number;
  rawMibPerS: number;
}

/** Writes `bytes` of random data to `file` in 16 MiB steps (never the whole file in memory). */
async function writeRandomFile(file: string, bytes: number): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const handle = await fs.open(file, 'w');
  try {
    for (let at = 0; at < bytes; at += 16 * MiB) await handle.write(randomBytes(Math.min(16 * MiB, bytes - at)), 0, undefined, at);
  } finally {
    await handle.close();
  }
}

/** The pages under a file, from its blocks as debugfs reports them. */
function pagesOf(image: string, filePath: string): number[] {
  const pages = new Set<number>();
  for (const block of fileBlocks(image, filePath)) pages.add(Math.floor((block * BLOCK) / PAGE_SIZE));
  return [...pages].sort((a, b) => a - b);
}

/** Downloads the pack bytes of `pages` as the backup's tables place them: one chunk per ranged GET, one in flight. */
async function rawGet(azurite: AzuriteInstance, vault: StorageLocation, backupId: string, userKey: Buffer, pages: number[]) {
  const source = await openBackupSource(vault, backupId, userKey);
  const wanted = new Set(pages);
  const chunks: Array<{ pack: string; offset: number; storedLength: number }> = [];
  for await (const { entries } of source.groups()) {
    for (const record of entries as PageRecord2[]) if (wanted.has(record.page)) chunks.push(...record.chunks);
  }
  const container = azurite.accounts.vault.service.getContainerClient('vault');
  const started = performance.now();
  let bytes = 0;
  for (const c of chunks) bytes += (await container.getBlobClient(v2names.pack(c.pack)).downloadToBuffer(c.offset, c.storedLength)).length;
  return { rawBytes: bytes, rawRequests: chunks.length, rawMs: performance.now() - started };
}

async function main(): Promise<void> {
  const started = Date.now();
  mkdirSync(RESULTS, { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), 'pagewise-bench-files-'));
  let azurite: AzuriteInstance | undefined;
  const loadAtStart = os.loadavg()[0];
  try {
    // The image: an OS-like tree with the 10 MiB file, and the 1 GiB file beside it.
    let t = performance.now();
    const tree = path.join(work, 'tree');
    await makeTree(tree, osLikeTree({ bigFileBytes: BIG_BYTES }));
    await writeRandomFile(path.join(tree, 'srv/huge.bin'), HUGE_BYTES);
    const image = path.join(work, 'disk.img');
    await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: DISK_BYTES, label: 'rootfs', extended: ['lazy_itable_init=1', 'lazy_journal_init=1', 'nodiscard'] });
    const allocated = (await fs.stat(image)).blocks * 512;
    // The pages under each file, found before the long steps so a failure here costs nothing.
    const pagesUnder = { big: pagesOf(image, '/home/user/big.bin'), huge: pagesOf(image, '/srv/huge.bin') };
    await fs.rm(tree, { recursive: true });
    const buildMs = performance.now() - t;
    log(`image: ${formatBytes(DISK_BYTES)} ext4, ${formatBytes(allocated)} allocated, built in ${seconds(buildMs)} s`);

    azurite = await startAzurite({ accounts: ['src', 'vault'] });
    process.env.PAGEWISE_STORAGE_ENDPOINTS = azurite.storageEndpoints;
    configureStorageEndpointsFromEnv(process.env);
    await azurite.accounts.src.service.getContainerClient('disks').create();
    await azurite.accounts.vault.service.getContainerClient('vault').create();
    const vault = { url: azurite.sasUrl('vault', 'vault') };
    const userKey = randomBytes(32);

    t = performance.now();
    const uploaded = await uploadImage(image, { url: azurite.sasUrl('src', 'disks', 'disk.vhd') });
    const uploadMs = performance.now() - t;
    log(`upload: ${formatBytes(uploaded.writtenBytes)} written in ${seconds(uploadMs)} s`);
    t = performance.now();
    const backup = await backupDisk({ source: { url: azurite.sasUrl('src', 'disks', 'disk.vhd', { permissions: 'r' }) }, vault, userKey, pageSize: PAGE_SIZE });
    const backupMs = performance.now() - t;
    log(`backup ${backup.backupId}: ${formatBytes(backup.bytesRead)} read in ${seconds(backupMs)} s`);

    const measure = async (file: string, fileBytes: number, how: 'extract' | 'cat', pages: number[]): Promise<FileFigures> => {
      const t0 = performance.now();
      const files = await BackupFiles.open({ vault, backupId: backup.backupId, userKey });
      let stats;
      let opened;
      let openMs;
      try {
        if ((await files.stat(file)).size !== fileBytes) throw new Error(`${file} is not ${fileBytes} bytes`);
        opened = files.stats();
        openMs = performance.now() - t0;
        if (how === 'extract') {
          const to = path.join(work, `out-${path.basename(file)}`);
          const result = await extractFiles({ files, paths: [file], to });
          if (result.bytes !== fileBytes) throw new Error(`extracted ${result.bytes} bytes of ${file}, not ${fileBytes}`);
          await fs.rm(to, { recursive: true });
        } else {
          let bytes = 0;
          for await (const piece of files.read(file)) bytes += piece.length;
          if (bytes !== fileBytes) throw new Error(`read ${bytes} bytes of ${file}, not ${fileBytes}`);
        }
        stats = files.stats();
      } finally {
        await files.close();
      }
      const ms = performance.now() - t0;
      const raw = await rawGet(azurite!, vault, backup.backupId, userKey, pages);
      const figures: FileFigures = {
        file,
        fileBytes,
        openMs,
        openBytesFetched: opened.bytesFetched,
        openPiecesFetched: opened.piecesFetched,
        bytesFetched: stats.bytesFetched,
        requests: stats.requests,
        piecesFetched: stats.piecesFetched,
        ms,
        readMs: ms - openMs,
        fetchedPerFileByte: Number((stats.bytesFetched / fileBytes).toFixed(4)),
        mibPerS: mibPerS(fileBytes, ms - openMs),
        pages: pages.length,
        ...raw,
        rawMibPerS: mibPerS(raw.rawBytes, raw.rawMs),
      };
      log(
        `${how} ${file}: ${formatBytes(stats.bytesFetched)} fetched (${figures.fetchedPerFileByte} × the file) in ${stats.requests} requests (${stats.piecesFetched} pieces), ${seconds(ms)} s (open + lookup ${seconds(openMs)} s, ${formatBytes(opened.bytesFetched)}; read ${figures.mibPerS} MiB/s); ` +
          `raw GET of its ${pages.length} pages' pack bytes: ${formatBytes(raw.rawBytes)} in ${raw.rawRequests} requests, ${seconds(raw.rawMs)} s = ${figures.rawMibPerS} MiB/s`,
      );
      return figures;
    };
    const big = await measure('/home/user/big.bin', BIG_BYTES, 'extract', pagesUnder.big);
    const huge = await measure('/srv/huge.bin', HUGE_BYTES, 'cat', pagesUnder.huge);

    const out = {
      revision: revision(),
      machine: machine(),
      date: new Date().toISOString(),
      command: `npm run bench:files -- ${argv.join(' ')}`.trim(),
      loadAverage: { start: loadAtStart, end: os.loadavg()[0] },
      disk: { bytes: DISK_BYTES, allocatedInImage: allocated, writtenToBlob: uploaded.writtenBytes, pageSize: PAGE_SIZE, buildMs, uploadMs, backupMs, backupBytesRead: backup.bytesRead },
      extract10MiB: big,
      cat1GiB: huge,
      totalMs: Date.now() - started,
    };
    const base = path.join(RESULTS, `file-restore-${new Date().toISOString().slice(0, 10)}`);
    writeFileSync(`${base}.json`, JSON.stringify(out, null, 2));
    writeFileSync(`${base}.md`, render(out));
    log(`results: ${base}.md`);
  } finally {
    await azurite?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

function render(out: {
  revision: string;
  machine: string;
  date: string;
  command: string;
  loadAverage: { start: number; end: number };
  disk: { bytes: number; allocatedInImage: number; writtenToBlob: number; pageSize: number; buildMs: number; uploadMs: number; backupMs: number; backupBytesRead: number };
  extract10MiB: FileFigures;
  cat1GiB: FileFigures;
}): string {
  const row = (what: string, f: FileFigures) =>
    `| ${what} | ${formatBytes(f.fileBytes)} | ${f.pages} | ${formatBytes(f.bytesFetched)} (${f.bytesFetched}) | ${f.fetchedPerFileByte} | ${f.piecesFetched} | ${f.requests} | ${seconds(f.openMs)} s, ${formatBytes(f.openBytesFetched)} | ${seconds(f.readMs)} | ${f.mibPerS} | ${formatBytes(f.rawBytes)} | ${f.rawRequests} | ${seconds(f.rawMs)} | ${f.rawMibPerS} | ${(f.mibPerS / f.rawMibPerS).toFixed(2)} |`;
  return [
    `# File-level restore bench — ${out.date.slice(0, 10)}`,
    '',
    `- command: \`${out.command}\``,
    `- revision: ${out.revision}`,
    `- machine: ${out.machine} (load average ${out.loadAverage.start.toFixed(1)} at the start, ${out.loadAverage.end.toFixed(1)} at the end)`,
    `- date: ${out.date}`,
    '',
    '## The disk',
    '',
    `A ${formatBytes(out.disk.bytes)} ext4 file system (mkfs.ext4 -d, lazy inode-table and journal init, nodiscard): an OS-like tree, a ${formatBytes(out.extract10MiB.fileBytes)} and a ${formatBytes(out.cat1GiB.fileBytes)} random file; ${formatBytes(out.disk.allocatedInImage)} allocated in the image, ${formatBytes(out.disk.writtenToBlob)} written to the page blob (zero chunks skipped). Built in ${seconds(out.disk.buildMs)} s, uploaded in ${seconds(out.disk.uploadMs)} s, backed up in ${seconds(out.disk.backupMs)} s (${formatBytes(out.disk.backupBytesRead)} read) at ${out.disk.pageSize / 1024} KiB pages, Azurite on loopback.`,
    '',
    '## Restoring one file',
    '',
    'Each from a fresh `BackupFiles.open` (mount, journal check, lookup included). "fetched" = the bytes the vault returned (the metered store); "raw" = ranged GETs of exactly the pack bytes of the pages under the file, one chunk per GET, one in flight, no decryption or decoding (the floor of any reader of this format on this machine).',
    '',
    '| what | file | pages under it | fetched (all) | fetched ÷ file | pieces fetched | requests | open + lookup | read s | read MiB/s | raw bytes | raw GETs | raw s | raw MiB/s | read ÷ raw |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('extract', out.extract10MiB),
    row('cat', out.cat1GiB),
    '',
    `For the ${formatBytes(out.extract10MiB.fileBytes)} file, ${formatBytes(out.extract10MiB.bytesFetched)} fetched = the ${out.extract10MiB.pages} whole pages under it (${formatBytes(out.extract10MiB.rawBytes)}: a file fetches whole pieces, here 4 MiB pages) + ${formatBytes(out.extract10MiB.bytesFetched - out.extract10MiB.rawBytes)} else: ${formatBytes(out.extract10MiB.openBytesFetched)} by the open and lookup (${out.extract10MiB.openPiecesFetched} pieces: the pages holding the superblock, group descriptors, inodes, directories and the journal's superblock; plus the manifest and tables), and the read fetched ${out.extract10MiB.piecesFetched - out.extract10MiB.openPiecesFetched} pieces for the ${out.extract10MiB.pages} pages under the file (more = the read-ahead of the piece after its last page, or pages the open had already fetched). Nothing else of the ${formatBytes(out.disk.bytes)} disk is read; a smaller page size shrinks both ends (test/files.e2e.test.ts at 256 KiB pages: 1.02 × the file).`,
    '',
  ].join('\n');
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
