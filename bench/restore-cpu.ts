/**
 * `npm run bench:restore-cpu -- --mode=restore|read|raw --mib=128 --n=3`: where a restore's CPU goes (#17).
 * Backs up a mixed disk to Azurite, then repeats one way N times and prints the CPU seconds of this process
 * and of Azurite's (from /proc) over those repetitions only:
 *   restore — core restoreBackup to a fresh page blob (the CLI's path);
 *   read    — the read side alone: every run read (GET, decrypt, decompress, content-ID check), nothing written;
 *   raw     — the baseline: Put Page of exactly the bytes a restore writes (held in memory beforehand).
 * --profile=<dir> also writes V8 CPU profiles of both processes over the same span (client.cpuprofile and
 * azurite-<pid>.cpuprofile; open them in Chrome DevTools). Linux only (/proc). It runs from a plain-JavaScript
 * build of the sources on bare node, as the engine ships (bench/lib/build.ts); --sources runs it under ts-node.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import * as path from 'node:path';
import { backupDisk, configureStorageEndpoints, generateKey, MiB, openBackupSource, restoreBackup, type StorageLocation } from '../core';
import { forEachLimited } from '../core/concurrency';
import { nonZeroRuns, putPages } from '../core/restore/restore';
import { startAzurite } from '../testkit/azurite';
import { writeDisk } from '../testkit/sample-disk';
import { fullMixed } from './lib/disks';
import { startBuilt } from './lib/run-built';
import { cpuMs } from './lib/process-cpu';
import { machine, revision } from './lib/run-facts';

const argv = process.argv.slice(2);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const DISK_BYTES = Number(option('mib') ?? 128) * MiB;
const TIMES = Number(option('n') ?? 3);
const MODE = option('mode') ?? 'restore';
const PROFILE_DIR = option('profile') && path.resolve(option('profile')!);
const PAGE_SIZE = 4 * MiB;
const CONCURRENCY = 4;

async function main(): Promise<void> {
  if (!['restore', 'read', 'raw'].includes(MODE)) throw new Error(`--mode is restore, read or raw, not ${MODE}`);
  if (PROFILE_DIR) {
    mkdirSync(PROFILE_DIR, { recursive: true });
    process.env.NODE_OPTIONS = `--require ${path.join(__dirname, 'lib', 'cpu-profile-preload.js')}`;
    process.env.PAGEWISE_PROFILE_DIR = PROFILE_DIR;
  }
  const az = await startAzurite({ accounts: ['src', 'vault'] });
  delete process.env.NODE_OPTIONS;
  try {
    const azurite = az.pid;
    configureStorageEndpoints(az.storageEndpoints.split(','), 'PAGEWISE_STORAGE_ENDPOINTS');
    for (const [account, container] of [['src', 'disks'], ['vault', 'vault'], ['vault', 'restores']] as const) await az.accounts[account].service.getContainerClient(container).create();
    const userKey = generateKey();
    const vault: StorageLocation = { url: az.sasUrl('vault', 'vault') };
    const restores = az.accounts.vault.service.getContainerClient('restores');
    await writeDisk(az.accounts.src.service.getContainerClient('disks').getPageBlobClient('bench.vhd'), DISK_BYTES, fullMixed(DISK_BYTES));
    const { backupId } = await backupDisk({ source: { url: az.sasUrl('src', 'disks', 'bench.vhd', { permissions: 'r' }) }, vault, userKey, pageSize: PAGE_SIZE });

    // Every run of the backup read and checked, one after another; `keep` sees each page's plaintext.
    const readAll = async (keep?: (page: number, plain: Buffer) => void) => {
      const reader = await openBackupSource(vault, backupId, userKey);
      for await (const { entries } of reader.groups()) {
        for (const run of reader.runs(entries)) {
          for (const { entry, plain, error } of await reader.readRun(run)) {
            if (error) throw error;
            keep?.(entry.page, plain!);
          }
        }
      }
    };
    const parts: Array<{ offset: number; data: Buffer }> = [];
    if (MODE === 'raw') await readAll((page, plain) => { for (const r of nonZeroRuns(plain)) parts.push({ offset: page * PAGE_SIZE + r.start, data: plain.subarray(r.start, r.end) }); });

    const session = new Session();
    session.connect();
    const post = <T>(method: string) => new Promise<T>((resolve, reject) => session.post(method, (err, result) => (err ? reject(err) : resolve(result as T))));
    if (PROFILE_DIR) {
      await post('Profiler.enable');
      await post('Profiler.start');
      process.kill(azurite, 'SIGUSR2');
    }
    const client0 = process.cpuUsage();
    const azurite0 = cpuMs(azurite);
    const started = Date.now();
    for (let i = 0; i < TIMES; i++) {
      const at = Date.now();
      if (MODE === 'restore') await restoreBackup({ backupId, vault, userKey, target: { url: az.sasUrl('vault', 'restores', `restore-${i}.vhd`) }, concurrency: CONCURRENCY });
      else if (MODE === 'read') await readAll();
      else {
        const client = restores.getPageBlobClient(`raw-${i}.vhd`);
        await client.create(DISK_BYTES);
        await forEachLimited(parts, CONCURRENCY, (p) => putPages(client, p.offset, p.data, 'the raw target'));
      }
      process.stdout.write(`${MODE} ${i + 1}: ${Date.now() - at} ms\n`);
    }
    const client = process.cpuUsage(client0);
    const azuriteMs = cpuMs(azurite) - azurite0;
    const wallMs = Date.now() - started;
    if (PROFILE_DIR) {
      const { profile } = await post<{ profile: unknown }>('Profiler.stop');
      writeFileSync(path.join(PROFILE_DIR, 'client.cpuprofile'), JSON.stringify(profile));
      process.kill(azurite, 'SIGUSR2');
      await new Promise((resolve) => setTimeout(resolve, 2000)); // Azurite writes its profile
    }
    const per = (ms: number) => (ms / TIMES / 1000).toFixed(2);
    process.stdout.write(
      `${revision()}; ${machine()}; ${DISK_BYTES / MiB} MiB disk, ${MODE} × ${TIMES}: per ${MODE} ${per(wallMs)} s wall, ` +
        `client CPU ${per((client.user + client.system) / 1000)} s (user ${per(client.user / 1000)}, system ${per(client.system / 1000)}), Azurite CPU ${per(azuriteMs)} s (load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})\n`,
    );
  } finally {
    await az.stop();
  }
}

startBuilt(__filename, argv, main).catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
