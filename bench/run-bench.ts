/**
 * `npm run bench` — Pagewise backup throughput against a raw-read ceiling, a naive baseline and (where
 * installed) restic, on disks it creates in an embedded Azurite (disk persistence):
 *   a) fully allocated, incompressible          1 GiB   (--quick: 256 MiB)
 *   b) fully allocated, realistic mix            1 GiB   (--quick: 256 MiB)
 *   c) 64 GiB logical, ~2% allocated, scattered          (--quick: 8 GiB)
 *   f) fs: a real ext4 image of files from this machine 1 GiB (--quick: 256 MiB; bench/lib/fs-disk.ts)
 *   g) clones: two disks cloned from the fs image, each changed a little, backed up into one vault
 *   i) incremental: a fully allocated disk (1 GiB; --quick: 256 MiB) backed up, 2 % of it overwritten,
 *      backed up again (incremental), against restic's second backup of the same two images
 * Stored bytes are compared with restic (its defaults: zstd auto) and borg (its defaults: lz4, buzhash
 * ~2 MiB chunks; and --compression zstd,3) backing up the same local images.
 * or, with BENCH_SOURCE_URL / BENCH_VAULT_URL, against real storage accounts (nothing is created).
 * See bench/README.md for the columns. Results go to bench/results/ (JSON + Markdown).
 *
 * Options: --quick, --only=a,b,c, --profile (V8 CPU profiles of a backup and of Azurite),
 *          --no-restic, --no-borg, --no-raw-sweep (one raw trial: 4 × 16 MiB), --incremental-only, --no-incremental,
 *          --incremental-page-size=<bytes> (default 64 KiB).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PageBlobClient } from '@azure/storage-blob';
import { configureStorageEndpointsFromEnv, formatBytes, GiB, MiB, SourceDisk, type BackupResult } from '../core';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { digestRegionsOfFile, DiskSpec, fullMixed, fullRandom, sparseScattered, writeBenchDisk, WrittenDisk } from './lib/disks';
import { listAllocated, naiveBackup, NaiveResult, rawCopy, rawRead, RawTrial } from './lib/baselines';
// Internals the benchmark measures against (allowed in test/rules.public-api.test.ts): the baselines
// write to the vault through the engine's own container client, and the report states the engine's run shape.
import { vaultContainerClient } from '../core/storage/clients';
import { runShape } from '../core/backup/run-batch';
import { buildWorker } from './lib/build';
import { machine, revision } from './lib/run-facts';
import { ChildRun, findAzuritePid, processCpuSeconds, runWorker } from './lib/child';
import { ensureRestic, resticBackup, ResticResult } from './lib/restic';
import { borgBackup, BorgMode, BorgResult, ensureBorg } from './lib/borg';
import { makeFsImage, makeFsTree, writeImageDisk } from './lib/fs-disk';
import { benchClones, ClonesResult } from './lib/clones';
import { summarizeProfile, ProfileSummary } from './lib/cpuprofile';
import type { WorkerInput } from './worker';
import { benchIncremental, IncrementalResult } from './lib/incremental';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const QUICK = flag('quick');
const INCREMENTAL_ONLY = flag('incremental-only');
/** Pagewise backups per disk; the median by time is the one reported (runs vary by ±25 % on a shared 2-core box). */
const REPEAT = Math.max(1, Number(option('repeat') ?? (QUICK ? 1 : 3)));
const PROFILE = flag('profile');
const RESULTS = path.resolve(__dirname, 'results');
const log = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

interface Target {
  key: string;
  label: string;
  source: { url: string; connectionString?: string };
  vault: { url: string; connectionString?: string };
  written?: WrittenDisk;
  cacheBytes: number;
  /** A new, empty vault for the k-th repeated backup (k ≥ 1), so that every measured backup is a fresh one; absent against real storage. */
  freshVault?: (k: number) => Promise<{ url: string; connectionString?: string }>;
}

/** A maker of new, empty vault containers beside `container` in the emulator's vault account. */
function newVault(azurite: AzuriteInstance, container: string): Target['freshVault'] {
  return async (k) => {
    const name = `${container}-r${k}`;
    await azurite.accounts.vault.service.getContainerClient(name).create();
    return { url: azurite.sasUrl('vault', name) };
  };
}

/** The median of a disk's paired PW÷copy ratios, or '-' (a result from before they were measured). */
function pairedRatio(r: DiskResult): string {
  const ratios = [...(r.copy.pairedRatios ?? [])].sort((x, y) => x - y);
  return ratios.length ? ratios[Math.floor((ratios.length - 1) / 2)].toFixed(2) : '-';
}

export interface DiskResult {
  key: string;
  label: string;
  diskBytes: number;
  allocatedBytes: number;
  allocatedRanges: number;
  writeMs?: number;
  listMs: number;
  raw: { trials: RawTrial[]; best: RawTrial; clientCpuSeconds: number; azuriteCpuSeconds?: number };
  /**
   * paired: one more copy at the best trial's settings just before each Pagewise backup; pairedRatios:
   * each backup's MiB/s ÷ its copy's. The emulator spends more CPU per staged MiB the more it has stored, so
   * copy trials made before everything else flatter the copy. (Every repeat backs up into an empty vault of
   * its own; against real storage, where none can be made, only the first backup is fresh and paired.)
   */
  copy: { trials: RawTrial[]; best: RawTrial; paired?: RawTrial[]; pairedRatios?: number[] };
  naive?: NaiveResult;
  backup: ChildRun & { result: BackupResultShape; backupId?: string; runs?: Array<{ durationMs: number; peakRssBytes: number; bytesStored: number }> };
  restore?: ChildRun & { restoredOk?: boolean };
  verify?: ChildRun;
  restic?: ResticResult;
  resticNote?: string;
  borg?: Partial<Record<BorgMode, BorgResult>>;
  borgNote?: string;
  profiles?: ProfileSummary[];
  /** the engine's download shape for this cache: runs in flight × pages per run */
  shape: { runPages: number; runsInFlight: number };
}

/** What the bench reads of a backup result (the child reports core's BackupResult). */
type BackupResultShape = Omit<BackupResult, 'backupId' | 'segments' | 'pageSize'> & { pageSize?: number };

const mibps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

async function main(): Promise<void> {
  const started = Date.now();
  mkdirSync(RESULTS, { recursive: true });
  const only = option('only')?.split(',');
  const realSource = process.env.BENCH_SOURCE_URL;
  const work = mkdtempSync(path.join(os.tmpdir(), 'pagewise-bench-'));
  log(`Pagewise bench — ${realSource ? 'real storage' : QUICK ? 'Azurite, quick' : 'Azurite, full'}; ${os.cpus().length} cores, ${formatBytes(os.totalmem())} RAM, node ${process.version}`);
  revision(); // read now, as the build is made: the tree may change while the bench runs
  const buildDir = buildWorker();
  let azurite: AzuriteInstance | undefined;
  // Ctrl-C or SIGTERM: the work dir holds disk images and Azurite's data; it goes, and Azurite stops.
  const onSignal = (signal: NodeJS.Signals) =>
    void (azurite?.stop() ?? Promise.resolve())
      .catch(() => undefined)
      .finally(() => {
        rmSync(work, { recursive: true, force: true });
        rmSync(buildDir, { recursive: true, force: true });
        process.exit(signal === 'SIGINT' ? 130 : 143);
      });
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const targets: Target[] = [];
  const results: DiskResult[] = [];
  // The machine may be shared: its load says how far the absolute times are to be trusted (the ratios compare runs under the same load).
  const loadAtStart = os.loadavg()[0];
  let incremental: IncrementalResult | undefined;
  let clones: ClonesResult | undefined;
  let fsImage: string | undefined;
  const notes: string[] = [];
  const profDir = path.join(RESULTS, `profile-${stamp()}`);
  try {
    if (realSource) {
      const vaultUrl = process.env.BENCH_VAULT_URL;
      if (!vaultUrl) throw new Error('BENCH_SOURCE_URL needs BENCH_VAULT_URL (a container URL with a SAS, or set BENCH_VAULT_CONNECTION_STRING)');
      const cacheBytes = Number(process.env.BENCH_CACHE_BYTES ?? 256 * MiB);
      realSource.split(',').forEach((url, k) =>
        targets.push({
          key: String.fromCharCode(97 + k),
          label: new URL(url).pathname.split('/').pop() ?? `disk ${k}`,
          source: { url, connectionString: process.env.BENCH_SOURCE_CONNECTION_STRING },
          vault: { url: vaultUrl, connectionString: process.env.BENCH_VAULT_CONNECTION_STRING },
          cacheBytes,
        }),
      );
    } else {
      if (PROFILE) {
        mkdirSync(profDir, { recursive: true });
        // node refuses --cpu-prof in NODE_OPTIONS: a preload starts the profiler through the inspector
        process.env.NODE_OPTIONS = `--require ${path.join(__dirname, 'lib', 'cpu-prof-preload.js')}`;
        process.env.BENCH_PROF_FILE = path.join(profDir, 'azurite.cpuprofile');
      }
      azurite = await startAzurite({ accounts: ['src', 'vault'] });
      // The emulator's endpoints are allowed explicitly, here and in the workers (they inherit the env).
      process.env.PAGEWISE_STORAGE_ENDPOINTS = azurite.storageEndpoints;
      configureStorageEndpointsFromEnv(process.env);
      delete process.env.NODE_OPTIONS;
      delete process.env.BENCH_PROF_FILE;
      const small = QUICK ? 256 * MiB : 1 * GiB;
      const big = QUICK ? 8 * GiB : 64 * GiB;
      const specs: DiskSpec[] = [
        { key: 'a', label: `${formatBytes(small)} full, incompressible`, diskBytes: small, regions: fullRandom(small) },
        { key: 'b', label: `${formatBytes(small)} full, mixed`, diskBytes: small, regions: fullMixed(small) },
        { key: 'c', label: `${formatBytes(big)} sparse, ~2% allocated`, diskBytes: big, regions: sparseScattered(big, 0.02) },
      ].filter((s) => !INCREMENTAL_ONLY && (!only || only.includes(s.key)));
      const disks = azurite.accounts.src.service.getContainerClient('disks');
      await disks.create();
      const wants = (key: string) => !INCREMENTAL_ONLY && (!only || only.includes(key));
      if (wants('f') || wants('g')) {
        const fsBytes = QUICK ? 256 * MiB : 1 * GiB;
        const t = performance.now();
        fsImage = path.join(work, 'f.img');
        const facts = await makeFsTree(path.join(work, 'f-tree'), fsBytes);
        await makeFsImage(path.join(work, 'f-tree'), fsImage, fsBytes);
        rmSync(path.join(work, 'f-tree'), { recursive: true, force: true });
        const label = `${formatBytes(fsBytes)} ext4 of real files`;
        log(`disk f (${label}): ${facts.files} files, ${formatBytes(facts.bytes)} (packages ${formatBytes(facts.packageBytes)}, duplicate ${formatBytes(facts.duplicateBytes)}, logs ${formatBytes(facts.logBytes)}, tar.gz ${formatBytes(facts.archiveBytes)}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
        if (wants('f')) {
          const written = await writeImageDisk(disks.getPageBlobClient('f.vhd'), 'f', label, fsImage);
          await azurite.accounts.vault.service.getContainerClient('vault-f').create();
          targets.push({
            key: 'f',
            label,
            source: { url: azurite.sasUrl('src', 'disks', 'f.vhd', { permissions: 'r' }) },
            vault: { url: azurite.sasUrl('vault', 'vault-f') },
            written,
            cacheBytes: Number(process.env.BENCH_CACHE_BYTES ?? small / 16),
            freshVault: newVault(azurite, 'vault-f'),
          });
        }
      }
      for (const spec of specs) {
        const t = performance.now();
        const written = await writeBenchDisk(disks.getPageBlobClient(`${spec.key}.vhd`), spec, path.join(work, `${spec.key}.img`));
        log(`disk ${spec.key} (${spec.label}): ${spec.regions.length} regions, ${formatBytes(written.allocatedBytes)} written in ${((performance.now() - t) / 1000).toFixed(1)} s (${mibps(written.allocatedBytes, performance.now() - t).toFixed(0)} MiB/s)`);
        const container = `vault-${spec.key}`;
        await azurite.accounts.vault.service.getContainerClient(container).create();
        targets.push({
          key: spec.key,
          label: spec.label,
          source: { url: azurite.sasUrl('src', 'disks', `${spec.key}.vhd`, { permissions: 'r' }) },
          vault: { url: azurite.sasUrl('vault', container) },
          written,
          // 1/16 of a 1 GiB disk; the sparse disk gets the same cache so peak RSS compares like for like
          cacheBytes: Number(process.env.BENCH_CACHE_BYTES ?? small / 16),
          freshVault: newVault(azurite, container),
        });
      }
    }
    const azuritePid = azurite ? findAzuritePid() : undefined;
    const resticSetup = realSource || flag('no-restic') ? { note: realSource ? 'restic needs a local image; skipped against real storage' : 'skipped (--no-restic)' } : ensureRestic(log);
    if (resticSetup.note) notes.push(`restic: ${resticSetup.note}`);
    const borgSetup = realSource || flag('no-borg') ? { note: realSource ? 'borg needs a local image; skipped against real storage' : 'skipped (--no-borg)' } : ensureBorg(log);
    if (borgSetup.note) notes.push(`borg: ${borgSetup.note}`);

    if (REPEAT > 1 && targets.some((t) => !t.freshVault)) notes.push('the repeated backups went into the first backup\'s vault (no fresh vault can be made against real storage): only the first is a fresh backup, and only it is paired with a copy');
    for (const target of targets) {
      results.push(await benchDisk(target, { buildDir, azuritePid, work, restic: resticSetup.restic, resticNote: resticSetup.note, borg: borgSetup.borg, profDir: PROFILE ? profDir : undefined }));
    }
    // The naive backup that stores its output runs after every disk's other measurements: uploading a
    // whole disk into Azurite slowed the Pagewise backups measured after it by a third on disk a (21 s
    // against 16 s, three runs each), for longer than a minute.
    if (!flag('no-naive')) {
      const storedBlobs: Array<() => Promise<unknown>> = [];
      for (const [k, target] of targets.entries()) {
        const naive = results[k].naive;
        if (!naive) continue;
        const disk = await SourceDisk.open(target.source);
        const again = await naiveBackup(disk.client, disk.diskBytes, path.join(work, `${target.key}.naive`), naive.coveredBytes, vaultContainerClient(target.vault).client);
        naive.stored = again.stored;
        const container = vaultContainerClient(target.vault).client;
        if (again.stored) storedBlobs.push(() => container.deleteBlob(again.stored!.blob).catch(() => undefined));
        log(`naive+store ${target.key}): ${((again.stored?.extrapolatedMs ?? 0) / 1000).toFixed(1)} s (download ${(again.downloadMs / 1000).toFixed(1)} s, process + upload ${((again.stored?.passMs ?? 0) / 1000).toFixed(1)} s)`);
      }
      for (const remove of storedBlobs) await remove();
    }
    if (azurite && !flag('no-incremental') && (INCREMENTAL_ONLY || !only || only.includes('i'))) {
      incremental = await benchIncremental(azurite, {
        diskBytes: QUICK ? 256 * MiB : 1 * GiB,
        pageSize: Number(option('incremental-page-size') ?? 64 * 1024),
        cacheBytes: Number(process.env.BENCH_CACHE_BYTES ?? (QUICK ? 16 * MiB : 64 * MiB)),
        changeFraction: 0.02,
        buildDir,
        work,
        azuritePid: findAzuritePid(),
        restic: resticSetup.restic,
        log,
      });
    }
    if (azurite && fsImage && !INCREMENTAL_ONLY && (!only || only.includes('g'))) {
      clones = await benchClones(azurite, {
        baseImage: fsImage,
        work,
        cacheBytes: Number(process.env.BENCH_CACHE_BYTES ?? (QUICK ? 16 * MiB : 64 * MiB)),
        buildDir,
        azuritePid: findAzuritePid(),
        restic: resticSetup.restic,
        borg: borgSetup.borg,
        log,
      });
    }
  } finally {
    await azurite?.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(buildDir, { recursive: true, force: true });
  }
  if (PROFILE && azurite) {
    try {
      const summary = summarizeProfile(path.join(profDir, 'azurite.cpuprofile'));
      results[results.length - 1].profiles = [...(results[results.length - 1].profiles ?? []), summary];
    } catch (err) {
      notes.push(`Azurite CPU profile unavailable: ${(err as Error).message}`);
    }
  }
  notes.push(`load average (1 min): ${loadAtStart.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end, on ${os.cpus().length} cores`);
  const report = render(results, incremental, clones, notes, Date.now() - started);
  process.stdout.write(`\n${report.text}\n`);
  const experiment = process.env.BENCH_EXPERIMENT;
  const base = path.join(RESULTS, `bench-${realSource ? 'real' : QUICK ? 'quick' : 'full'}${INCREMENTAL_ONLY ? '-incremental' : ''}${experiment ? `-${experiment}` : ''}-${stamp()}`);
  writeFileSync(`${base}.json`, JSON.stringify({ mode: realSource ? 'real' : QUICK ? 'quick' : 'full', machine: machine(), revision: revision(), date: new Date().toISOString(), experiment, notes, results, incremental, clones }, null, 2));
  writeFileSync(`${base}.md`, report.markdown);
  log(`wrote ${path.relative(process.cwd(), base)}.json and .md`);
}

async function benchDisk(
  target: Target,
  env: { buildDir: string; azuritePid?: number; work: string; restic?: string; resticNote?: string; borg?: string; profDir?: string },
): Promise<DiskResult> {
  const { buildDir, azuritePid, work } = env;
  const disk = await SourceDisk.open(target.source);
  const client: PageBlobClient = disk.client;
  log(`— disk ${target.key}: ${target.label}, ${formatBytes(disk.diskBytes)}`);

  // 1. raw read ceiling
  const { ranges, ms: listMs } = await listAllocated(client, disk.diskBytes);
  const allocatedBytes = ranges.reduce((s, r) => s + r.length, 0);
  const sweep = flag('no-raw-sweep') ? [[4, 16]] : [1, 2, 4, 8].flatMap((c) => [[c, 4], [c, 16]]);
  const trials: RawTrial[] = [];
  let best: RawTrial | undefined;
  let bestCpu = { client: 0, azurite: undefined as number | undefined };
  for (const [c, mib] of sweep) {
    const cpu0 = process.cpuUsage();
    const az0 = processCpuSeconds(azuritePid);
    const trial = await rawRead(client, ranges, c, mib * MiB);
    const cpu = process.cpuUsage(cpu0);
    const az1 = processCpuSeconds(azuritePid);
    trials.push(trial);
    if (!best || trial.mibPerSec > best.mibPerSec) {
      best = trial;
      bestCpu = { client: (cpu.user + cpu.system) / 1e6, azurite: az0 !== undefined && az1 !== undefined ? az1 - az0 : undefined };
    }
  }
  log(`  raw read: best ${best!.mibPerSec.toFixed(0)} MiB/s at ${best!.concurrency} × ${best!.rangeBytes / MiB} MiB (${trials.map((t) => `${t.concurrency}×${t.rangeBytes / MiB}M ${t.mibPerSec.toFixed(0)}`).join(', ')})`);

  // 1b. raw copy ceiling: download + stage, nothing else
  const vaultContainer = vaultContainerClient(target.vault).client;
  const copyTrials: RawTrial[] = [];
  for (const [c, mib] of flag('no-raw-sweep') ? [[4, 4]] : [[4, 4], [8, 4], [8, 16]]) copyTrials.push(await rawCopy(client, ranges, vaultContainer, c, mib * MiB, Number(process.env.BENCH_COPY_MAX_BYTES ?? 256 * MiB)));
  const bestCopy = copyTrials.reduce((a, t) => (t.mibPerSec > a.mibPerSec ? t : a));
  log(`  raw copy (download + stage block): ${copyTrials.map((t) => `${t.concurrency}×${t.rangeBytes / MiB}M ${t.mibPerSec.toFixed(0)}`).join(', ')} MiB/s`);

  // 2. naive baseline (whole blob; a very large disk is measured on a prefix and extrapolated)
  let naive: NaiveResult | undefined;
  const naiveMax = Number(process.env.BENCH_NAIVE_MAX_BYTES ?? (QUICK ? 2 * GiB : 8 * GiB));
  if (!flag('no-naive')) {
    naive = await naiveBackup(client, disk.diskBytes, path.join(work, `${target.key}.naive`), naiveMax);
    log(`  naive: ${(naive.extrapolatedMs / 1000).toFixed(1)} s${naive.coveredBytes < naive.diskBytes ? ` (extrapolated from the first ${formatBytes(naive.coveredBytes)})` : ''}: download ${(naive.downloadMs / 1000).toFixed(1)} s, process ${(naive.processMs / 1000).toFixed(1)} s`);
  }

  // 3. Pagewise backup (REPEAT times, each a new backup; the median is reported), restore, verify —
  //    each in a child process
  const userKeyHex = randomBytes(32).toString('hex');
  const scratchDir = path.join(work, 'scratch');
  const runs: Array<DiskResult['backup']> = [];
  const pairedCopies: RawTrial[] = [];
  const pairedRatios: number[] = [];
  const pairCopy = () => rawCopy(client, ranges, vaultContainer, bestCopy.concurrency, bestCopy.rangeBytes, Number(process.env.BENCH_COPY_MAX_BYTES ?? 256 * MiB));
  // Every repeat backs up into a vault of its own: in the first one's vault a second backup would find every
  // chunk stored already and measure nothing but dedupe. Against real storage there is no second vault to make,
  // so only the first backup is measured as a fresh one (and only it is paired).
  const vaults: Array<Target['vault']> = []; // each run's (not in the results: a vault's URL carries a SAS)
  for (let k = 0; k < REPEAT; k++) {
    const fresh = k === 0 || target.freshVault !== undefined;
    const vault = k > 0 && target.freshVault ? await target.freshVault(k) : target.vault;
    vaults.push(vault);
    const copyBefore = fresh ? await pairCopy() : undefined;
    const input: WorkerInput = { op: 'backup', vault, userKeyHex, backupId: `pw-${randomBytes(12).toString('hex')}`, source: target.source, cacheBytes: target.cacheBytes, scratchDir, spans: true };
    const run = (await runWorker(buildDir, input, { azuritePid })) as DiskResult['backup'];
    run.result = run.output.result as BackupResultShape;
    run.backupId = input.backupId;
    runs.push(run);
    const r = run.result;
    if (copyBefore) {
      pairedCopies.push(copyBefore);
      pairedRatios.push(mibps(r.allocatedBytes, r.durationMs) / copyBefore.mibPerSec);
      log(`  copy just before backup ${k + 1}: ${copyBefore.mibPerSec.toFixed(0)} MiB/s; PW÷copy (paired) ${pairedRatios[pairedRatios.length - 1].toFixed(2)}`);
    }
    log(`  pagewise backup${REPEAT > 1 ? ` ${k + 1}/${REPEAT}` : ''}: ${(r.durationMs / 1000).toFixed(1)} s, ${mibps(r.allocatedBytes, r.durationMs).toFixed(0)} MiB/s of allocated, ${mibps(r.diskBytes, r.durationMs).toFixed(0)} MiB/s logical; peak RSS ${formatBytes(run.peakRssBytes)}; scratch high-water ${formatBytes(r.cacheHighWaterBytes)} of ${formatBytes(r.cacheCapacityBytes)}`);
  }
  const backup = [...runs].sort((x, y) => x.result.durationMs - y.result.durationMs)[Math.floor((runs.length - 1) / 2)];
  backup.runs = runs.map((r) => ({ durationMs: r.result.durationMs, peakRssBytes: r.peakRssBytes, bytesStored: r.result.bytesStored }));
  const b = backup.result;
  const backupId = backup.backupId!;
  const common = { vault: vaults[runs.indexOf(backup)], userKeyHex, backupId };
  const backupInput: WorkerInput = { op: 'backup', ...common, source: target.source, cacheBytes: target.cacheBytes, scratchDir, spans: true };

  const restoreFile = path.join(work, `${target.key}.restored`);
  const restore = (await runWorker(buildDir, { op: 'restore', ...common, target: restoreFile }, { azuritePid })) as DiskResult['restore'] & object;
  if (target.written) restore.restoredOk = (await digestRegionsOfFile(restoreFile, target.written.spec.regions)) === target.written.allocatedDigest;
  rmSync(restoreFile, { force: true });
  log(`  restore: ${(restore.output.wallMs / 1000).toFixed(1)} s${restore.restoredOk === undefined ? '' : restore.restoredOk ? ', bytes identical' : ', RESTORED BYTES DIFFER'}`);
  const verify = await runWorker(buildDir, { op: 'verify', ...common }, { azuritePid });
  log(`  verify (read data): ${(verify.output.wallMs / 1000).toFixed(1)} s, ok=${(verify.output.result as { ok: boolean }).ok}`);

  // 4. restic reference
  let restic: ResticResult | undefined;
  let resticNote = env.resticNote;
  if (env.restic && target.written) {
    try {
      restic = await resticBackup(env.restic, target.written.imagePath);
      log(`  restic backup of the local image: ${(restic.ms / 1000).toFixed(1)} s`);
    } catch (err) {
      resticNote = `restic failed: ${(err as Error).message.slice(0, 300)}`;
    }
  }

  // 4b. borg reference: its defaults, and zstd,3
  let borg: DiskResult['borg'];
  let borgNote: string | undefined;
  if (env.borg && target.written) {
    borg = {};
    for (const mode of ['default', 'zstd3'] as const) {
      try {
        borg[mode] = await borgBackup(env.borg, target.written.imagePath, mode);
        log(`  borg create (${mode}) of the local image: ${(borg[mode]!.ms / 1000).toFixed(1)} s, repository ${formatBytes(borg[mode]!.repoBytes ?? 0)}`);
      } catch (err) {
        borgNote = `borg failed: ${(err as Error).message.slice(0, 300)}`;
      }
    }
  }

  // 5. optional CPU profile of a second backup of the same disk (profiling slows it down)
  let profiles: ProfileSummary[] | undefined;
  if (env.profDir) {
    const vault = (await target.freshVault?.(REPEAT)) ?? backupInput.vault;
    const prof = await runWorker(buildDir, { ...backupInput, vault, backupId: `pw-${randomBytes(12).toString('hex')}`, spans: false }, { azuritePid, cpuProfDir: env.profDir, tag: `backup-${target.key}` });
    profiles = [summarizeProfile(prof.cpuProfile!)];
  }

  return {
    key: target.key,
    label: target.label,
    diskBytes: disk.diskBytes,
    allocatedBytes,
    allocatedRanges: ranges.length,
    writeMs: target.written?.writeMs,
    listMs,
    raw: { trials, best: best!, clientCpuSeconds: bestCpu.client, azuriteCpuSeconds: bestCpu.azurite },
    copy: { trials: copyTrials, best: bestCopy, paired: pairedCopies, pairedRatios },
    naive,
    backup,
    restore,
    verify,
    restic,
    resticNote,
    borg,
    borgNote,
    profiles,
    shape: runShape(b.pageSize ?? 4 * MiB, Math.floor(b.cacheCapacityBytes / (b.pageSize ?? 4 * MiB)), 4),
  };
}

// ---------------------------------------------------------------------------------------------- report

function table(head: string[], rows: string[][]): { text: string; markdown: string } {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const text = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
  const markdown = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  return { text, markdown };
}

const f1 = (n: number) => n.toFixed(1);
const f0 = (n: number) => n.toFixed(0);
const mb = (bytes: number) => formatBytes(bytes);
const pct = (n: number) => `${(n * 100).toFixed(0)}%`;

/** The reported (median) backup's seconds, with the range of all runs when there were several. */
function backupSeconds(r: DiskResult): string {
  const median = f1(r.backup.result.durationMs / 1000);
  const runs = (r.backup.runs ?? []).map((x) => x.durationMs / 1000);
  return runs.length > 1 ? `${median} (${f1(Math.min(...runs))}–${f1(Math.max(...runs))})` : median;
}

/** The incremental case's table: read ÷ changed (goal ≤ 1.1), incremental ÷ full, incremental ÷ restic's incremental (goal ≤ 0.1). */
function renderIncremental(r: IncrementalResult): { text: string; markdown: string; notes: string[] } {
  const i = r.incremental;
  const resticSecond = r.restic?.second.ms;
  const t = table(
    ['disk', 'page', 'changed', 'extents', 'full s', 'incr s', 'incr÷full', 'incr read', 'read÷changed', 'diff changed', 'incr new', 'incr stored', 'restic 1 s', 'restic 2 s', 'incr÷restic 2', 'restored'],
    [
      [
        `i) ${r.label}`,
        mb(r.pageSize),
        mb(r.changedBytes),
        String(r.extents),
        f1(r.full.durationMs / 1000),
        f1(i.durationMs / 1000),
        (i.durationMs / r.full.durationMs).toFixed(3),
        mb(i.bytesRead),
        (i.bytesRead / Math.max(1, r.changedBytes)).toFixed(3),
        mb(i.bytesChanged),
        mb(i.bytesNew),
        mb(i.bytesStored),
        r.restic ? f1(r.restic.first.ms / 1000) : '-',
        resticSecond !== undefined ? f1(resticSecond / 1000) : '-',
        resticSecond !== undefined ? (i.durationMs / resticSecond).toFixed(3) : '-',
        r.restoredOk ? 'identical' : 'DIFFERS',
      ],
    ],
  );
  const notes = [
    `Incremental: backup 1 ${r.full.kind}${r.full.reason ? ` (${r.full.reason})` : ''} read ${mb(r.full.bytesRead)}, stored ${mb(r.full.bytesStored)}; backup 2 ${i.kind}${i.reason ? ` (${i.reason})` : ''}${i.base ? ` on ${i.base.backupId}` : ''} read ${mb(i.bytesRead)}, new ${mb(i.bytesNew)}, stored ${mb(i.bytesStored)}. Goals: read÷changed ≤ 1.1, incr÷restic 2 ≤ 0.1.`,
    `read÷changed = bytes the incremental read ÷ bytes the bench overwrote (2 % of the disk in ${r.extents} extents of 64 KiB–2 MiB at 4 KiB-aligned offsets); a changed page is re-read whole, so the page size bounds it. diff changed = what the diff reported.`,
    ...(r.restic ? [`restic 2 = restic's second backup of the same path after the change (${r.restic.second.version}); it re-reads the whole image. restic 1 repo ${mb(r.restic.first.repoBytes ?? 0)}, after 2: ${mb(r.restic.second.repoBytes ?? 0)}.`] : []),
    ...(r.resticNote ? [`restic (incremental case): ${r.resticNote}`] : []),
    ...(r.restoredOk ? [] : ['RESTORE MISMATCH on the incremental case']),
  ];
  return { ...t, notes };
}

/** PW stored ÷ another tool's repository bytes, or '-'. */
const over = (pw: number, other: number | undefined) => (other ? (pw / other).toFixed(2) : '-');

/**
 * Stored bytes against restic and borg (goal PW÷restic, PW÷borg ≤ 1.0) with the backup speed beside them:
 * one row per disk (its first backup into an empty vault) and one for the clone case (both clones, one vault).
 */
function renderStored(results: DiskResult[], clones: ClonesResult | undefined): { text: string; markdown: string; notes: string[] } {
  const rows = results.map((r) => {
    const stored = r.backup.runs?.[0]?.bytesStored ?? r.backup.result.bytesStored;
    const b = r.backup.result;
    return [
      `${r.key}) ${r.label}`,
      mb(r.allocatedBytes),
      mb(stored),
      r.restic?.repoBytes ? mb(r.restic.repoBytes) : '-',
      r.borg?.default?.repoBytes ? mb(r.borg.default.repoBytes) : '-',
      r.borg?.zstd3?.repoBytes ? mb(r.borg.zstd3.repoBytes) : '-',
      over(stored, r.restic?.repoBytes),
      over(stored, r.borg?.default?.repoBytes),
      over(stored, r.borg?.zstd3?.repoBytes),
      f1(b.durationMs / 1000),
      r.restic ? f1(r.restic.ms / 1000) : '-',
      r.borg?.default ? f1(r.borg.default.ms / 1000) : '-',
      (mibps(b.allocatedBytes, b.durationMs) / r.copy.best.mibPerSec).toFixed(2),
      pairedRatio(r),
    ];
  });
  if (clones) {
    const stored = clones.backups.reduce((s, b) => s + b.bytesStored, 0);
    const last = <T extends { repoBytes?: number }>(runs?: T[]) => runs?.[runs.length - 1]?.repoBytes;
    rows.push([
      `g) ${clones.label}`,
      mb(clones.backups.reduce((s, b) => s + b.allocatedBytes, 0)),
      `${mb(stored)} (${clones.backups.map((b) => mb(b.bytesStored)).join(' + ')})`,
      last(clones.restic) ? mb(last(clones.restic)!) : '-',
      last(clones.borg?.default) ? mb(last(clones.borg?.default)!) : '-',
      last(clones.borg?.zstd3) ? mb(last(clones.borg?.zstd3)!) : '-',
      over(stored, last(clones.restic)),
      over(stored, last(clones.borg?.default)),
      over(stored, last(clones.borg?.zstd3)),
      clones.backups.map((b) => f1(b.durationMs / 1000)).join(' + '),
      clones.restic ? clones.restic.map((x) => f1(x.ms / 1000)).join(' + ') : '-',
      clones.borg?.default ? clones.borg.default.map((x) => f1(x.ms / 1000)).join(' + ') : '-',
      '-',
      '-',
    ]);
  }
  const t = table(['disk', 'allocated', 'PW stored', 'restic repo', 'borg repo (lz4)', 'borg repo (zstd,3)', 'PW÷restic', 'PW÷borg', 'PW÷borg zstd', 'PW s', 'restic s', 'borg s', 'PW÷copy', 'PW÷copy paired'], rows);
  const version = (x?: { version: string }) => x?.version;
  const notes = [
    'Stored: PW = the bytes the first backup into an empty vault stored in packs (blocks after dedupe and compression); restic/borg = their repository on disk after backing up the same local image (`du -sb`, metadata included). Goal PW÷restic and PW÷borg ≤ 1.0.',
    `Tools: ${[version(results.find((r) => r.restic)?.restic) ?? version(clones?.restic?.[0]), version(results.find((r) => r.borg?.default)?.borg?.default) ?? version(clones?.borg?.default?.[0]), version(results.find((r) => r.borg?.zstd3)?.borg?.zstd3)].filter(Boolean).join('; ') || 'none installed'}. restic with its defaults (repository v2, compression auto = zstd fastest); borg with its defaults (lz4, buzhash 19,23,21,4095: ~2 MiB chunks), and again with --compression zstd,3.`,
    ...(clones
      ? [
          `g) clones: backups ${clones.backups.map((b) => `${b.kind}${b.reason ? ` (${b.reason})` : ''}: new ${mb(b.bytesNew)}, stored ${mb(b.bytesStored)}${b.bytesReusedFromVault !== undefined ? `, reused from the vault ${mb(b.bytesReusedFromVault)}` : ''}`).join('; ')}; clone 2 restored ${clones.restoredOk ? 'byte-identical' : 'WITH DIFFERENCES'}. restic/borg: both images into one repository (${[clones.restic?.map((x) => mb(x.repoBytes ?? 0)).join(' → '), clones.borg?.default?.map((x) => mb(x.repoBytes ?? 0)).join(' → ')].filter(Boolean).join('; borg ')}).`,
          ...(clones.resticNote ? [`g) ${clones.resticNote}`] : []),
          ...(clones.borgNote ? [`g) ${clones.borgNote}`] : []),
        ]
      : []),
    ...results.filter((r) => r.borgNote).map((r) => `borg ${r.key}): ${r.borgNote}`),
  ];
  return { ...t, notes };
}

function render(results: DiskResult[], incremental: IncrementalResult | undefined, clones: ClonesResult | undefined, notes: string[], totalMs: number): { text: string; markdown: string } {
  const incr = incremental ? renderIncremental(incremental) : undefined;
  const stored = results.length > 0 || clones ? renderStored(results, clones) : undefined;
  if (results.length === 0 && incr) {
    const footer = [...notes, ...incr.notes, `Total bench time ${f1(totalMs / 60000)} min. Pagewise revision ${revision()}.`];
    return {
      text: ['Incremental backup (issue #12)', incr.text, '', ...footer].join('\n'),
      markdown: [`# Pagewise bench (incremental) — ${new Date().toISOString()}`, '', `Machine: ${machine()}`, '', `Pagewise revision: ${revision()}`, '', '## Incremental backup (issue #12)', '', incr.markdown, '', '## Notes', '', ...footer.map((n) => `- ${n}`), ''].join('\n'),
    };
  }
  const main = table(
    ['disk', 'logical', 'allocated', 'raw MiB/s', 'copy MiB/s', 'naive s', 'naive+store s', 'PW backup s', 'PW alloc MiB/s', 'PW logical MiB/s', 'PW÷raw', 'PW÷copy', 'PW÷copy paired', 'PW÷naive', 'PW÷naive+store', 'restore s', 'verify s', 'peak RSS', 'scratch HW', 'read÷alloc', 'stored', 'restic s'],
    results.map((r) => {
      const b = r.backup.result;
      const pwMs = b.durationMs;
      const rawMs = (r.raw.best.bytes / MiB / r.raw.best.mibPerSec) * 1000;
      return [
        `${r.key}) ${r.label}`,
        mb(r.diskBytes),
        mb(r.allocatedBytes),
        `${f0(r.raw.best.mibPerSec)} (${r.raw.best.concurrency}×${r.raw.best.rangeBytes / MiB}M)`,
        `${f0(r.copy.best.mibPerSec)} (${r.copy.best.concurrency}×${r.copy.best.rangeBytes / MiB}M)`,
        r.naive ? `${f1(r.naive.extrapolatedMs / 1000)}${r.naive.coveredBytes < r.naive.diskBytes ? '*' : ''}` : '-',
        r.naive?.stored ? `${f1(r.naive.stored.extrapolatedMs / 1000)}${r.naive.coveredBytes < r.naive.diskBytes ? '*' : ''}` : '-',
        backupSeconds(r),
        f0(mibps(b.allocatedBytes, pwMs)),
        f0(mibps(b.diskBytes, pwMs)),
        (rawMs / pwMs).toFixed(2),
        (mibps(b.allocatedBytes, pwMs) / r.copy.best.mibPerSec).toFixed(2),
        pairedRatio(r),
        r.naive ? (r.naive.extrapolatedMs / pwMs).toFixed(2) : '-',
        r.naive?.stored ? (r.naive.stored.extrapolatedMs / pwMs).toFixed(2) : '-',
        r.restore ? f1(r.restore.output.wallMs / 1000) : '-',
        r.verify ? f1(r.verify.output.wallMs / 1000) : '-',
        mb(Math.max(r.backup.peakRssBytes, ...(r.backup.runs ?? []).map((x) => x.peakRssBytes))),
        mb(b.cacheHighWaterBytes),
        (b.bytesRead / Math.max(1, b.allocatedBytes)).toFixed(3),
        mb(b.bytesStored),
        r.restic ? f1(r.restic.ms / 1000) : '-',
      ];
    }),
  );
  const split = table(
    ['disk', 'wall s', 'pages in flight ≤', 'pages in memory HW', 'client CPU s', 'Azurite CPU s', 'main-thread busy', 'download', 'slot write', 'slot read', 'process', '  of it encode', 'stage', 'slot wait', 'batches/plan/final s', 'pages', 'deduped', 'zero'],
    results.map((r) => {
      const o = r.backup.output;
      const s = (o.spans ?? {}) as Record<string, { totalMs: number; busyMs: number; maxActive?: number }>;
      // average number of calls in progress over the backup (summed call time ÷ wall time)
      const avg = (k: string) => (s[k] ? `${(s[k].totalMs / o.wallMs).toFixed(1)}` : '-');
      const b = r.backup.result;
      return [
        `${r.key})`,
        f1(o.wallMs / 1000),
        `${r.shape.runsInFlight}×${r.shape.runPages}`,
        String(b.pagesInMemoryHighWater ?? '-'),
        f1((o.userCpuMs + o.systemCpuMs) / 1000),
        r.backup.azuriteCpuSeconds !== undefined ? f1(r.backup.azuriteCpuSeconds) : '-',
        pct(o.eventLoopUtilization),
        avg('download'),
        avg('slotWrite'),
        avg('slotRead'),
        avg('process'),
        avg('encode'),
        avg('stage'),
        avg('slotWait'),
        `${f1((s['phase:batches']?.totalMs ?? 0) / 1000)}/${f1((s['phase:plan']?.totalMs ?? 0) / 1000)}/${f1((s['phase:finalize']?.totalMs ?? 0) / 1000)}`,
        String(b.pages),
        String(b.dedupedPages),
        String(b.zeroPages),
      ];
    }),
  );
  const rawTable = table(
    ['disk', ...(results[0]?.raw.trials.map((t) => `read ${t.concurrency}×${t.rangeBytes / MiB}M`) ?? []), ...(results[0]?.copy.trials.map((t) => `copy ${t.concurrency}×${t.rangeBytes / MiB}M`) ?? [])],
    results.map((r) => [`${r.key})`, ...r.raw.trials.map((t) => f0(t.mibPerSec)), ...r.copy.trials.map((t) => f0(t.mibPerSec))]),
  );
  const cpuTable = table(
    ['disk', 'raw read: client CPU s', 'raw read: Azurite CPU s', 'raw read s', 'PW: client CPU s', 'PW: Azurite CPU s', 'PW s', 'restore s (MiB/s alloc)', 'verify s (MiB/s)', 'PW RSS: start/peak', 'PW peak external', 'restore RSS', 'naive dl/process s', 'naive sha/lz4/aes s'],
    results.map((r) => {
      const rawMs = (r.raw.best.bytes / MiB / r.raw.best.mibPerSec) * 1000;
      const o = r.backup.output;
      const vr = r.verify?.output.result as { bytesChecked: number } | undefined;
      return [
        `${r.key})`,
        f1(r.raw.clientCpuSeconds),
        r.raw.azuriteCpuSeconds !== undefined ? f1(r.raw.azuriteCpuSeconds) : '-',
        f1(rawMs / 1000),
        f1((o.userCpuMs + o.systemCpuMs) / 1000),
        r.backup.azuriteCpuSeconds !== undefined ? f1(r.backup.azuriteCpuSeconds) : '-',
        f1(o.wallMs / 1000),
        r.restore ? `${f1(r.restore.output.wallMs / 1000)} (${f0(mibps(r.backup.result.allocatedBytes, r.restore.output.wallMs))})` : '-',
        r.verify && vr ? `${f1(r.verify.output.wallMs / 1000)} (${f0(mibps(vr.bytesChecked, r.verify.output.wallMs))})` : '-',
        `${mb(o.baselineRssBytes)}/${mb(r.backup.peakRssBytes)}`,
        mb(o.memoryPeaks.external),
        r.restore ? mb(r.restore.peakRssBytes) : '-',
        r.naive ? `${f1(r.naive.downloadMs / 1000)}/${f1(r.naive.processMs / 1000)}` : '-',
        r.naive ? `${f1(r.naive.steps.sha256Ms / 1000)}/${f1(r.naive.steps.lz4Ms / 1000)}/${f1(r.naive.steps.aesMs / 1000)}` : '-',
      ];
    }),
  );
  const profileText: string[] = [];
  for (const r of results) {
    for (const p of r.profiles ?? []) {
      const name = path.basename(p.file);
      profileText.push(`CPU profile ${name} (disk ${r.key}, ${f1(p.totalMs / 1000)} s sampled):`);
      profileText.push(`  by category: ${p.categories.slice(0, 10).map((c) => `${c.category} ${pct(c.share)}`).join(', ')}`);
      profileText.push(`  top self time: ${p.top.slice(0, 10).map((t) => `${t.fn} (${t.where}) [${t.category}] ${pct(t.share)}`).join("; ")}`);
    }
  }
  const restic = results.filter((r) => r.restic).map((r) => `restic ${r.key}): ${f1(r.restic!.ms / 1000)} s, peak RSS ${r.restic!.peakRssBytes ? mb(r.restic!.peakRssBytes) : '?'}, CPU ${r.restic!.cpuSeconds?.toFixed(1) ?? '?'} s, repo ${r.restic!.repoBytes ? mb(r.restic!.repoBytes) : '?'} (${r.restic!.version})`);
  const allNotes = [
    ...(process.env.BENCH_EXPERIMENT ? [`EXPERIMENT ${process.env.BENCH_EXPERIMENT}: the backup child's lz4 call was swapped (see bench/README.md); not the engine as shipped.`] : []),
    ...notes,
    ...results.filter((r) => r.resticNote && !notes.some((n) => n.includes(r.resticNote!))).map((r) => `restic ${r.key}): ${r.resticNote}`),
    ...results.filter((r) => r.naive && r.naive.coveredBytes < r.naive.diskBytes).map((r) => `* naive ${r.key}) measured on the first ${mb(r.naive!.coveredBytes)} of ${mb(r.diskBytes)} and scaled linearly (${f1(r.naive!.totalMs / 1000)} s measured)`),
    ...results.filter((r) => r.restore?.restoredOk === false).map((r) => `RESTORE MISMATCH on disk ${r.key}`),
  ];
  const footer = [
    'PW÷raw = raw-read time ÷ Pagewise backup time over the same allocated bytes (1.00 = as fast as the best raw download; raw excludes listing, Pagewise includes plan + finalize).',
    'PW÷copy = Pagewise allocated MiB/s ÷ best raw copy (download + stage block, no processing) MiB/s.',
    'PW÷copy paired = each backup\'s MiB/s ÷ a copy made just before it at the best copy\'s settings: the emulator spends more CPU per staged MiB the more it has stored (npm run bench:emulator-drift), and the copy trials ran before everything else. Every repeat backs up into an empty vault of its own, and each is paired; the median is shown.',
    `PW backup s = the median of ${REPEAT} backup${REPEAT > 1 ? 's (fastest–slowest)' : ''}; ratios use the median; peak RSS = the highest of them.`,
    'PW÷naive = naive time ÷ Pagewise time (>1 = Pagewise faster); the naive baseline uploads nothing. PW÷naive+store: the same naive backup with its output uploaded to the vault (a backup that exists). Pages in flight ≤ runs in flight × pages per run (one ranged GET per run).',
    `Total bench time ${f1(totalMs / 60000)} min. Pagewise revision ${revision()}.`,
  ];
  const text = [
    'Backup throughput', main.text, '',
    ...(stored ? ['Stored bytes against restic and borg', stored.text, '', ...stored.notes, ''] : []),
    'Where the backup time goes (average calls in progress = summed call time ÷ wall time)', split.text, '',
    'Raw read and raw copy sweeps (MiB/s; concurrency × range size)', rawTable.text, '',
    'CPU and the other operations', cpuTable.text, '',
    ...(restic.length ? [...restic, ''] : []),
    ...(incr ? ['Incremental backup (issue #12)', incr.text, '', ...incr.notes, ''] : []),
    ...(profileText.length ? [...profileText, ''] : []),
    ...allNotes, ...footer,
  ].join('\n');
  const markdown = [
    `# Pagewise bench — ${new Date().toISOString()}`, '', `Machine: ${machine()}`, '', `Pagewise revision: ${revision()}`, '',
    '## Backup throughput', '', main.markdown, '',
    ...(stored ? ['## Stored bytes against restic and borg', '', stored.markdown, '', ...stored.notes.map((n) => `- ${n}`), ''] : []),
    '## Where the backup time goes (average calls in progress = summed call time ÷ wall time)', '', split.markdown, '',
    '## Raw read and raw copy sweeps (MiB/s; concurrency × range size)', '', rawTable.markdown, '',
    '## CPU and the other operations', '', cpuTable.markdown, '',
    ...(restic.length ? ['## restic', '', ...restic.map((l) => `- ${l}`), ''] : []),
    ...(incr ? ['## Incremental backup (issue #12)', '', incr.markdown, '', ...incr.notes.map((n) => `- ${n}`), ''] : []),
    ...(profileText.length ? ['## CPU profiles', '', '```', ...profileText, '```', ''] : []),
    '## Notes', '', ...[...allNotes, ...footer].map((n) => `- ${n}`), '',
  ].join('\n');
  return { text, markdown };
}


function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
}

main().catch((err) => {
  console.error('bench failed:', err);
  process.exit(1);
});
