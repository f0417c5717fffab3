/**
 * `npm run demo`: Pagewise end to end on this machine, through the real `pagewise` command.
 *
 * Starts Azurite with two accounts ("src" plays the cloud account holding the VM disk, "vault" the
 * separate storage for the secondary copy), writes a realistic 1 GiB sample VM disk (holes, zero pages,
 * compressible and incompressible regions, repeated pages) — or, with `--image <file>`, uploads one's
 * own raw disk image with `pagewise upload` — then runs `node bin/pagewise.js` for
 * keygen → backup (4 MiB pages through a 64 MiB scratch cache, 1/16 of the disk) → list → verify (every
 * block read) → restore to a new page blob and to a local sparse file, checks both restores byte for byte
 * against the disk, prints a summary and exits non-zero when anything does not match.
 *
 * Credentials: the source is read through a read-only SAS URL, the vault and the restore target through
 * connection strings in the child's environment; neither is ever printed.
 */
import { createReadStream, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { sampleVmLayout, writeDisk } from '../testkit/sample-disk';
import { DiskHash, fileSha256, pageBlobSha256 } from '../testkit/disk-hash';
import { BackupListing, BackupResult, formatBytes, printable, redact, RestoreResult, VerifyResult } from '../core';
import { startPagewise } from '../testkit/pagewise-process';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SAMPLE_DISK_BYTES = 1 * GiB;

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

/** 4 MiB pages and a cache of 1/16 of the disk; a small image gets smaller pages so 1/16 holds one. */
function shapeFor(diskBytes: number): { pageSize: number; cacheBytes: number } {
  let pageSize = 4 * MiB;
  while (pageSize > 512 && pageSize > diskBytes / 16) pageSize /= 2;
  return { pageSize, cacheBytes: Math.max(pageSize, Math.floor(diskBytes / 16 / pageSize) * pageSize) };
}
/**
 * By default the backup runs as the durable orchestration on the local runtime (the product's shape);
 * `npm run demo -- --engine inline` runs the single-process engine instead.
 */
const ENGINE = (() => {
  const at = process.argv.indexOf('--engine');
  return at > 0 ? process.argv[at + 1] ?? 'local' : 'local';
})();

const mibps = (bytes: number, ms: number) => (ms > 0 ? `${(bytes / MiB / (ms / 1000)).toFixed(1)} MiB/s` : '—');
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function say(text: string): void {
  process.stdout.write(`${printable(redact(text))}\n`);
}

/** Runs `node bin/pagewise.js args` with the given environment; resolves to its parsed --json output. */
async function pagewise<T>(args: string[], env: Record<string, string>): Promise<T> {
  const { code, stdout, stderr } = await startPagewise(args, { env }).done;
  if (code !== 0) throw new Error(`pagewise ${args[0]} exited with ${code}: ${redact(stderr.trim()) || '(no message)'}`);
  try {
    return JSON.parse(stdout) as T;
  } catch {
    throw new Error(`pagewise ${args[0]} did not print one JSON object`);
  }
}

async function timed<T>(label: string, work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  process.stdout.write(`  ${printable(label)} ... `);
  const started = Date.now();
  const value = await work();
  const ms = Date.now() - started;
  process.stdout.write(`done (${secs(ms)})\n`);
  return { value, ms };
}

interface Check {
  what: string;
  ok: boolean;
  detail: string;
}

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
  const sourceUrl = az.sasUrl('src', 'disks', 'vm1.vhd', { permissions: 'r' }); // read-only SAS
  const vaultUrl = `${az.accounts.vault.endpoint}/vault`; // no SAS: connection string from the environment
  const targetUrl = `${az.accounts.vault.endpoint}/restores/vm1-restored.vhd`;
  const env = {
    PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints, // the emulator's endpoints, named explicitly
    PAGEWISE_VAULT_CONNECTION_STRING: az.accounts.vault.connectionString,
    PAGEWISE_TARGET_CONNECTION_STRING: az.accounts.vault.connectionString,
  };
  const restoredFile = path.join(tmp, 'vm1-restored.img');

  const keygen = await timed('pagewise keygen', () => pagewise<{ keyId: string }>(['keygen', keyFile, '--json'], env));
  await timed('pagewise init (creates the vault)', () => pagewise<{ containerCreated: boolean }>(['init', '--vault', vaultUrl, '--json'], env));
  const backup = await timed(`pagewise backup --engine ${ENGINE} (pages ${formatBytes(pageSize)}, cache ${formatBytes(cacheBytes)})`, () =>
    pagewise<BackupResult>(
      ['backup', sourceUrl, '--vault', vaultUrl, '--key-file', keyFile, '--page-size', pageSizeArg, '--cache', String(cacheBytes), '--scratch-dir', scratch, '--engine', ENGINE, '--json'],
      env,
    ),
  );
  const b = backup.value;
  const list = await timed('pagewise list', () => pagewise<{ backups: BackupListing[] }>(['list', '--vault', vaultUrl, '--json'], env));
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
  const leftInScratch = (await fs.readdir(scratch)).length;

  const checks: Check[] = [
    { what: 'bytes read = allocated bytes', ok: b.bytesRead === disk.allocatedBytes && b.allocatedBytes === disk.allocatedBytes, detail: `${b.bytesRead} = ${disk.allocatedBytes}` },
    { what: 'cache capacity ≤ 1/16 of the disk', ok: b.cacheCapacityBytes <= diskBytes / 16, detail: formatBytes(b.cacheCapacityBytes) },
    { what: 'cache high-water ≤ capacity', ok: b.cacheHighWaterBytes > 0 && b.cacheHighWaterBytes <= b.cacheCapacityBytes, detail: formatBytes(b.cacheHighWaterBytes) },
    { what: 'backup listed in the vault', ok: list.value.backups.some((x) => x.backupId === b.backupId), detail: `${list.value.backups.length} backup(s)` },
    { what: 'verify (all data read)', ok: verify.value.ok && verify.value.blocksChecked > 0, detail: verify.value.ok ? 'OK' : `${verify.value.problems.length} problem(s): ${verify.value.problems.slice(0, 3).join('; ')}` },
    { what: 'restored page blob identical', ok: hashes.value.blob === disk.sha256, detail: hashes.value.blob.slice(0, 16) },
    { what: 'restored sparse file identical', ok: hashes.value.file === disk.sha256 && fileStat.size === diskBytes, detail: hashes.value.file.slice(0, 16) },
    { what: 'scratch cache cleaned up', ok: leftInScratch === 0, detail: `${leftInScratch} file(s) left` },
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
    ['deduplicated pages', String(b.dedupedPages)],
    ['blocks stored', `${b.storedBlocks} in ${b.segments} segment(s)`],
    ['bytes stored', `${formatBytes(b.bytesStored)} (${((100 * b.bytesStored) / b.bytesRead).toFixed(1)}% of bytes read; compressed + encrypted)`],
    ['cache capacity', `${formatBytes(b.cacheCapacityBytes)} (1/${Math.round(b.diskBytes / b.cacheCapacityBytes)} of the disk)`],
    ['cache high-water', `${formatBytes(b.cacheHighWaterBytes)} (≤ 1/16 of the disk: ${yes(b.cacheHighWaterBytes <= b.diskBytes / 16)})`],
    ['disk write (setup)', `${secs(diskStep.ms)}`],
    ['backup', `${secs(b.durationMs)} engine, ${secs(backup.ms)} with CLI start; ${mibps(b.bytesRead, b.durationMs)} of allocated data`],
    ['verify', `${verify.value.ok ? 'OK' : 'FAILED'}: ${verify.value.blocksChecked} blocks, ${formatBytes(verify.value.bytesChecked)} in ${secs(verify.value.durationMs)} (${mibps(verify.value.bytesChecked, verify.value.durationMs)})`],
    ['restore → page blob', `${toBlob.value.pagesWritten} pages, ${formatBytes(toBlob.value.bytesWritten)} in ${secs(toBlob.value.durationMs)} (${mibps(toBlob.value.bytesWritten, toBlob.value.durationMs)}); identical: ${yes(hashes.value.blob === disk.sha256)}`],
    ['restore → sparse file', `${formatBytes(fileStat.size)} file, ${formatBytes(fileOnDisk)} on disk, in ${secs(toFile.value.durationMs)} (${mibps(toFile.value.bytesWritten, toFile.value.durationMs)}); identical: ${yes(hashes.value.file === disk.sha256)}`],
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
