/**
 * `npm run bench:backup-cpu -- --disk=a --n=3 [--trace-gc] [--profile=<prefix>]`: where one backup's CPU goes
 * (#15). Writes a 256 MiB bench disk (a: random, b: mixed) to Azurite, then runs N full backups, each in a child
 * process on the bench's plain-JS build (bench/lib/build.ts; 2 worker threads, as the bench's backups), into a
 * fresh vault container, and prints per backup: wall time, the child's CPU (all threads) and per thread (the main
 * thread first; V8's GC helpers, the chunk pool's workers and libuv's pool are the others), Azurite's CPU over the
 * same span, and with --trace-gc the child's scavenges and mark-compacts (V8 --trace-gc). --profile=<prefix>
 * writes a V8 CPU profile of each child's main thread to <prefix>-<n>.cpuprofile.
 * --preread=N --prestage=N first do what the bench does before its backups: N sweeps of the disk in 16 MiB
 * ranged GETs, 8 in flight (the raw-read trials), and N copies of 256 MiB staged as uncommitted 4 MiB blocks
 * (the copy trials). After them the emulator is seen to spend more CPU on the current code's backups (#15).
 * --paired also copies the disk (download + Stage Block, 8 × 4 MiB in flight: the bench's copy baseline,
 * bench/lib/baselines.ts rawCopy) next to each backup — before it, then after the next, alternating — and
 * prints each pair's PW÷copy: the emulator spends more CPU per staged MiB the more it has stored
 * (`npm run bench:emulator-drift`), so a backup is compared with a copy made in the same state, not with the
 * bench's copy trials made before every backup.
 * Linux only (/proc).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { generateKey, MiB } from '../core';
import { startAzurite } from '../testkit/azurite';
import { writeDisk } from '../testkit/sample-disk';
import { buildWorker } from './lib/build';
import { rawCopy } from './lib/baselines';
import { findAzuritePid, processCpuSeconds } from './lib/child';
import { fullMixed, fullRandom } from './lib/disks';
import { machine, revision } from './lib/run-facts';

const argv = process.argv.slice(2);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const DISK = option('disk') ?? 'a';
const TIMES = Number(option('n') ?? 3);
const TRACE_GC = argv.includes('--trace-gc');
const PROFILE = option('profile');
const DISK_BYTES = 256 * MiB;
const PREREAD = Number(option('preread') ?? 0);
const PRESTAGE = Number(option('prestage') ?? 0);
const PAIRED = argv.includes('--paired');

// The child: one backup, then its threads' CPU from /proc/self/task (clock ticks of 10 ms).
const DRIVER = `
const { readFileSync, readdirSync, writeFileSync } = require('node:fs');
const core = require('./core');
core.configureStorageEndpointsFromEnv(process.env);
const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
(async () => {
  let session;
  if (process.env.BACKUP_CPU_PROFILE) {
    session = new (require('node:inspector').Session)();
    session.connect();
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 250 });
    session.post('Profiler.start');
  }
  const started = Date.now();
  const cpu0 = process.cpuUsage();
  await core.backupDisk({ source: input.source, vault: input.vault, userKey: Buffer.from(input.key, 'hex'), cacheBytes: 16 << 20, pageSize: 4 << 20, concurrency: 4, full: true });
  const wallMs = Date.now() - started;
  const cpu = process.cpuUsage(cpu0);
  const threads = [];
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      threads.push({ tid: Number(tid), name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), cpuS: (Number(f[11]) + Number(f[12])) / 100 });
    } catch {}
  }
  const done = () => { console.log('BACKUP_CPU ' + JSON.stringify({ wallMs, cpuS: (cpu.user + cpu.system) / 1e6, pid: process.pid, threads })); process.exit(0); };
  if (!session) return done();
  session.post('Profiler.stop', (err, r) => { if (!err) writeFileSync(process.env.BACKUP_CPU_PROFILE, JSON.stringify(r.profile)); done(); });
})();
`;

interface ChildReport {
  wallMs: number;
  cpuS: number;
  pid: number;
  threads: Array<{ tid: number; name: string; cpuS: number }>;
}

async function main(): Promise<void> {
  if (!['a', 'b'].includes(DISK)) throw new Error(`--disk is a or b, not ${DISK}`);
  const build = buildWorker();
  writeFileSync(path.join(build, 'backup-cpu-driver.js'), DRIVER);
  const az = await startAzurite({ accounts: ['src', 'vault'] });
  try {
    await az.accounts.src.service.getContainerClient('disks').create();
    await writeDisk(az.accounts.src.service.getContainerClient('disks').getPageBlobClient('disk.vhd'), DISK_BYTES, DISK === 'a' ? fullRandom(DISK_BYTES) : fullMixed(DISK_BYTES));
    const azuritePid = findAzuritePid();
    const disk = az.accounts.src.service.getContainerClient('disks').getPageBlobClient('disk.vhd');
    for (let sweep = 0; sweep < PREREAD; sweep++) {
      for (let at = 0; at < DISK_BYTES; at += 8 * 16 * MiB) await Promise.all(Array.from({ length: 8 }, (_, k) => disk.downloadToBuffer(at + k * 16 * MiB, 16 * MiB)));
    }
    if (PRESTAGE > 0) {
      const copies = az.accounts.vault.service.getContainerClient('copies');
      await copies.create();
      const data = await disk.downloadToBuffer(0, 4 * MiB);
      for (let copy = 0; copy < PRESTAGE; copy++) {
        const blob = copies.getBlockBlobClient(`copy-${copy}`);
        for (let k = 0; k < DISK_BYTES / (4 * MiB); k += 8) await Promise.all(Array.from({ length: 8 }, (_, j) => blob.stageBlock(Buffer.from(String(k + j).padStart(12, '0')).toString('base64'), data, data.length)));
      }
    }
    process.stdout.write(`${revision()}; ${machine()}; disk ${DISK} (256 MiB), ${TIMES} full backups, each into a new vault${PREREAD || PRESTAGE ? `, after ${PREREAD} read sweeps and ${PRESTAGE} staged copies` : ''}\n`);
    const copies = az.accounts.vault.service.getContainerClient('paired-copies');
    if (PAIRED) await copies.create();
    const copyMs = async () => (await rawCopy(disk, [{ offset: 0, length: DISK_BYTES }], copies, 8, 4 * MiB)).ms;
    const ratios: number[] = [];
    for (let n = 0; n < TIMES; n++) {
      // Copy before the backup in even pairs, after it in odd ones: the emulator's drift falls on both sides.
      const copyBefore = PAIRED && n % 2 === 0 ? await copyMs() : undefined;
      const container = `vault${n}`;
      await az.accounts.vault.service.getContainerClient(container).create();
      const inputFile = path.join(build, `backup-cpu-${n}.json`);
      const input = { source: { url: az.sasUrl('src', 'disks', 'disk.vhd', { permissions: 'r' }) }, vault: { url: az.sasUrl('vault', container) }, key: generateKey().toString('hex') };
      writeFileSync(inputFile, JSON.stringify(input), { mode: 0o600, flag: 'wx' });
      const az0 = processCpuSeconds(azuritePid);
      const child = spawnSync(process.execPath, [...(TRACE_GC ? ['--trace-gc'] : []), path.join(build, 'backup-cpu-driver.js'), inputFile], {
        env: { ...process.env, NODE_OPTIONS: '', PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints, ...(PROFILE ? { BACKUP_CPU_PROFILE: path.resolve(`${PROFILE}-${n}.cpuprofile`) } : {}) },
        encoding: 'utf8',
        maxBuffer: 64 * MiB,
      });
      const azuriteS = (processCpuSeconds(azuritePid) ?? NaN) - (az0 ?? NaN);
      const line = child.stdout.split('\n').find((l) => l.startsWith('BACKUP_CPU '));
      if (child.status !== 0 || !line) throw new Error(`backup ${n} failed (exit ${child.status}): ${child.stderr.slice(-2000)}`);
      const r = JSON.parse(line.slice('BACKUP_CPU '.length)) as ChildReport;
      const main = r.threads.find((t) => t.tid === r.pid);
      const others = r.threads.filter((t) => t.tid !== r.pid && t.cpuS >= 0.05).map((t) => t.cpuS.toFixed(2));
      const gc = TRACE_GC ? `, scavenges ${(child.stdout.match(/: Scavenge/g) ?? []).length}, mark-compacts ${(child.stdout.match(/: Mark-Compact/g) ?? []).length}` : '';
      const copy = PAIRED ? (copyBefore ?? (await copyMs())) : undefined;
      if (copy !== undefined) ratios.push(copy / r.wallMs);
      const paired = copy !== undefined ? `; its copy ${(copy / 1000).toFixed(2)} s, PW÷copy ${(copy / r.wallMs).toFixed(3)}` : '';
      process.stdout.write(
        `backup ${n + 1}: ${(r.wallMs / 1000).toFixed(2)} s wall, client CPU ${r.cpuS.toFixed(2)} s (main thread ${main?.cpuS.toFixed(2)}; other threads ≥ 0.05 s: ${others.join(' ')}), Azurite CPU ${azuriteS.toFixed(2)} s${gc}${paired}\n`,
      );
    }
    if (ratios.length > 0) {
      const sorted = [...ratios].sort((x, y) => x - y);
      process.stdout.write(`PW÷copy, paired: median ${sorted[Math.floor((sorted.length - 1) / 2)].toFixed(3)} (${ratios.map((x) => x.toFixed(3)).join(' ')})\n`);
    }
  } finally {
    await az.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
