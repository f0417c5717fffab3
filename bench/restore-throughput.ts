/**
 * `npm run bench:restore` — restore throughput (#17 R): a disk of N MiB (default 256, a realistic mix of
 * text, random, zero and repeated content; 4 MiB pages) backed up to Azurite, then restored to fresh page
 * blobs, alternating in each round:
 *   raw     — the baseline: the same run's Put Page of exactly the bytes a restore writes (each page's
 *             non-zero runs, plaintext already in memory), at the streaming restore's concurrency (4) and
 *             at the fan-out's total (windows in flight × 4);
 *   stream  — core restoreBackup (one process, the CLI's path);
 *   fan-out — the restore orchestration through the local durable runtime (plan → windows → finalize).
 * Every restored blob is checked against the disk. Ratios: stream ÷ raw(4), fan-out ÷ raw(windows × 4).
 *
 * Where the restores go (--target): `own` (default) — a disk account served by an emulator process of its
 * own, as a restore's target is in Azure (the user's disk account, not the vault's: a Put Page there does not
 * wait behind the vault serving the restore's reads); `vault` — a container of the vault's own account, one
 * emulator process for both (the raw write then has that process to itself while a restore shares it with
 * its reads: Azurite is one JavaScript thread, so this measures the emulator's serving as much as Pagewise).
 *
 * What is measured runs from a plain-JavaScript build of the sources on bare node (bench/lib/build.ts), as
 * the CLI and the Functions app ship: under ts-node, every collection V8 makes also marks the TypeScript
 * compiler's heap, which a restore's buffer churn makes it do often (--sources measures it that way).
 *
 * --target-first (Linux): this process (the client) and the vault's emulator run at niceness 10, so the
 * target's emulator gets a core whenever it wants one — for the raw writes and the restores alike. In Azure
 * the target is a storage account on machines of its own; on one 2-core machine the restore's own CPU
 * (reading, decrypting, decompressing, hashing, and the vault emulator serving the reads) otherwise takes
 * turns with the target emulator's Put Page CPU, which the raw write does not have to. The client side still
 * gets every cycle the target leaves, so this does not hide the client's CPU: it decides who waits.
 * Every sample also records the CPU seconds of the client, the target's emulator and the vault's emulator.
 *
 * Options: --mib=256 --window-mib=32 --rounds=2 --target=own|vault --windows-in-flight=2 (PAGEWISE_BATCHES_IN_FLIGHT) --target-first --sources.
 * Results: bench/results/restore-throughput-<date>.md (and .json).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { PageBlobClient } from '@azure/storage-blob';
import { backupDisk, BATCHES_IN_FLIGHT, configureStorageEndpoints, generateKey, MiB, openBackupSource, PAGE_CONCURRENCY, restoreBackup, decodeThreads, type StorageLocation } from '../core';
// Internals the bench writes the baseline with: the engine's lazy bounded fan-out and its Put Page writer.
import { forEachLimited } from '../core/concurrency';
import { nonZeroRuns, putPages } from '../core/restore/restore';
import { Orchestrators, RestoreOrchestrationOutput } from '../orchestrations/contracts';
import { startLocalApp } from '../runtime/localApp';
import { startAzurite } from '../testkit/azurite';
import { writeDisk } from '../testkit/sample-disk';
import { fullMixed } from './lib/disks';
import { startBuilt } from './lib/run-built';
import { cpuMs, setNiceness } from './lib/process-cpu';
import { machine, resultsDir, revision } from './lib/run-facts';

const argv = process.argv.slice(2);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const DISK_BYTES = Number(option('mib') ?? 256) * MiB;
const WINDOW_BYTES = Number(option('window-mib') ?? 32) * MiB;
const ROUNDS = Number(option('rounds') ?? 2);
const TARGET = option('target') ?? 'own';
if (!['own', 'vault'].includes(TARGET)) throw new Error(`--target is own or vault, not ${TARGET}`);
const TARGET_FIRST = argv.includes('--target-first');
if (TARGET_FIRST && TARGET !== 'own') throw new Error('--target-first needs --target=own (the target in an emulator process of its own)');
/** The niceness of the client and the vault's emulator under --target-first. */
const YIELDING_NICENESS = 10;
const PAGE_SIZE = 4 * MiB;
const CONCURRENCY = PAGE_CONCURRENCY.default;
const WINDOWS_IN_FLIGHT = Number(option('windows-in-flight') ?? BATCHES_IN_FLIGHT.default);
const RESULTS = resultsDir(__dirname);
const log = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const mibPerS = (bytes: number, ms: number) => Number((bytes / MiB / (ms / 1000)).toFixed(1));

interface Sample {
  way: string;
  round: number;
  ms: number;
  bytesWritten: number;
  mibPerS: number;
  /** CPU seconds over the sample: this process (the client), the target's emulator, the vault's emulator. */
  cpu: { client: number; target: number; vault: number };
}

async function main(): Promise<void> {
  const rev = revision();
  const az = await startAzurite({ accounts: ['src', 'vault'] });
  // The restore targets' account: an emulator process of its own, or the vault's (--target).
  const targetAz = TARGET === 'own' ? await startAzurite({ accounts: ['disks'] }) : undefined;
  try {
    if (TARGET_FIRST) {
      setNiceness(process.pid, YIELDING_NICENESS);
      setNiceness(az.pid, YIELDING_NICENESS);
    }
    const endpoints = [...az.storageEndpoints.split(','), ...(targetAz ? targetAz.storageEndpoints.split(',') : [])];
    configureStorageEndpoints(endpoints, 'PAGEWISE_STORAGE_ENDPOINTS');
    for (const [account, container] of [['src', 'disks'], ['vault', 'vault']] as const) await az.accounts[account].service.getContainerClient(container).create();
    const userKey = generateKey();
    const vault: StorageLocation = { url: az.sasUrl('vault', 'vault') };
    const restores = (targetAz ? targetAz.accounts.disks : az.accounts.vault).service.getContainerClient('restores');
    await restores.create();
    const target = (name: string) => ({ url: targetAz ? targetAz.sasUrl('disks', 'restores', name) : az.sasUrl('vault', 'restores', name) });

    log(`writing a ${DISK_BYTES / MiB} MiB mixed disk`);
    const disk = await writeDisk(az.accounts.src.service.getContainerClient('disks').getPageBlobClient('bench.vhd'), DISK_BYTES, fullMixed(DISK_BYTES));
    const backup = await backupDisk({ source: { url: az.sasUrl('src', 'disks', 'bench.vhd', { permissions: 'r' }) }, vault, userKey, pageSize: PAGE_SIZE });
    log(`backed up: ${backup.backupId}, ${backup.pages} pages`);

    // The baseline's input: every byte a restore writes (each page's non-zero runs), in memory before the clock starts.
    // Also the profile's read side: every run read (GET, decrypt, decompress, hash) one after another.
    const reader = await openBackupSource(vault, backup.backupId, userKey);
    const parts: Array<{ offset: number; data: Buffer }> = [];
    const readStarted = Date.now();
    let runCount = 0;
    for await (const { entries } of reader.groups()) {
      for (const run of reader.runs(entries)) {
        runCount++;
        for (const { entry, plain, error } of await reader.readRun(run)) {
          if (error) throw error;
          for (const r of nonZeroRuns(plain!)) parts.push({ offset: entry.page * PAGE_SIZE + r.start, data: plain!.subarray(r.start, r.end) });
        }
      }
    }
    const rawBytes = parts.reduce((s, p) => s + p.data.length, 0);
    const readMs = Date.now() - readStarted;
    log(`read side: ${runCount} runs read one by one in ${(readMs / 1000).toFixed(2)} s (${mibPerS(reader.diskBytes, readMs)} MiB/s of disk); ${parts.length} non-zero runs to write`);

    const app = await startLocalApp({
      taskHub: { connectionString: az.accounts.vault.connectionString },
      appSettings: {
        PAGEWISE_VAULT_URL: vault.url,
        PAGEWISE_USER_KEY: userKey.toString('base64'),
        PAGEWISE_ALLOWED_ACCOUNTS: endpoints.join(','),
        PAGEWISE_RESTORE_WINDOW_BYTES: String(WINDOW_BYTES),
        PAGEWISE_BATCHES_IN_FLIGHT: String(WINDOWS_IN_FLIGHT),
      },
    });
    const samples: Sample[] = [];
    let windows = 0;
    const check = async (name: string) => {
      // Streamed through the hash: a disk of 2 GiB or more is too long for one hash update (and for memory).
      const hash = createHash('sha256');
      for await (const chunk of (await restores.getPageBlobClient(name).download(0)).readableStreamBody as AsyncIterable<Buffer>) hash.update(chunk);
      if (hash.digest('hex') !== disk.sha256) throw new Error(`${name} is not the disk`);
    };
    const cpuNow = () => {
      const own = process.cpuUsage();
      return { client: (own.user + own.system) / 1000, target: targetAz ? cpuMs(targetAz.pid) : 0, vault: cpuMs(az.pid) };
    };
    let cpuAtStart = cpuNow();
    const startClock = () => {
      cpuAtStart = cpuNow();
      return Date.now();
    };
    const record = (way: string, round: number, ms: number, bytesWritten: number) => {
      const now = cpuNow();
      const seconds = (k: 'client' | 'target' | 'vault') => Number(((now[k] - cpuAtStart[k]) / 1000).toFixed(2));
      const cpu = { client: seconds('client'), target: seconds('target'), vault: seconds('vault') };
      samples.push({ way, round, ms, bytesWritten, mibPerS: mibPerS(bytesWritten, ms), cpu });
      log(`round ${round} ${way}: ${(ms / 1000).toFixed(2)} s, ${mibPerS(bytesWritten, ms)} MiB/s; CPU s client ${cpu.client}, target ${cpu.target}, vault ${cpu.vault}`);
    };
    try {
      // Not recorded: the target's emulator runs its Put Page code (a JS CRC-64) unoptimized at first, which
      // made round 1's raw(4) — the first write it ever served — 24–34 % slower than the later rounds' (7 runs of 2026-12-02).
      const warmup = restores.getPageBlobClient('warm-up.vhd');
      const warmStarted = Date.now();
      await warmup.create(DISK_BYTES);
      await forEachLimited(parts, CONCURRENCY, (p) => putPages(warmup as PageBlobClient, p.offset, p.data, 'warm-up.vhd'));
      log(`warm-up write (not recorded): ${((Date.now() - warmStarted) / 1000).toFixed(2)} s`);
      for (let round = 1; round <= ROUNDS; round++) {
        for (const concurrency of new Set([CONCURRENCY, WINDOWS_IN_FLIGHT * CONCURRENCY])) {
          const name = `raw-${concurrency}-${round}.vhd`;
          const client = restores.getPageBlobClient(name);
          const started = startClock();
          await client.create(DISK_BYTES);
          await forEachLimited(parts, concurrency, (p) => putPages(client as PageBlobClient, p.offset, p.data, name));
          record(`raw(${concurrency})`, round, Date.now() - started, rawBytes);
          await check(name);
        }

        const streamName = `stream-${round}.vhd`;
        let started = startClock();
        const streamed = await restoreBackup({ backupId: backup.backupId, vault, userKey, target: target(streamName), concurrency: CONCURRENCY });
        record('stream', round, Date.now() - started, streamed.bytesWritten);
        await check(streamName);

        const fanName = `fanout-${round}.vhd`;
        const instanceId = `restore-bench-${round}`;
        started = startClock();
        await app.runtime.startNew(Orchestrators.restoreDisk, { instanceId, input: { backupId: backup.backupId, target: target(fanName) } });
        const status = await app.runtime.waitForCompletion(instanceId, { timeoutInMs: 3_600_000 });
        if (status.runtimeStatus !== 'Completed') throw new Error(`the fan-out restore ${status.runtimeStatus}: ${String(status.output)}`);
        const output = status.output as RestoreOrchestrationOutput;
        windows = output.windows;
        record('fan-out', round, Date.now() - started, output.bytesWritten);
        await check(fanName);
      }
    } finally {
      await app.stop();
    }

    const mean = (way: string) => {
      const of = samples.filter((s) => s.way === way);
      return mibPerS(of.reduce((s, x) => s + x.bytesWritten, 0), of.reduce((s, x) => s + x.ms, 0));
    };
    const rawStream = mean(`raw(${CONCURRENCY})`);
    const rawFan = mean(`raw(${WINDOWS_IN_FLIGHT * CONCURRENCY})`);
    // Each round's own ratio (the ways of a round run back to back, under the same load), and their median.
    const median = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    };
    const roundRatios = (way: string, base: string) =>
      samples.filter((s) => s.way === way).map((s) => s.mibPerS / samples.find((b) => b.way === base && b.round === s.round)!.mibPerS);
    const perRound = { stream: roundRatios('stream', `raw(${CONCURRENCY})`), fanOut: roundRatios('fan-out', `raw(${WINDOWS_IN_FLIGHT * CONCURRENCY})`) };
    const ratios = {
      stream: Number((mean('stream') / rawStream).toFixed(2)),
      fanOut: Number((mean('fan-out') / rawFan).toFixed(2)),
      streamMedian: Number(median(perRound.stream).toFixed(2)),
      fanOutMedian: Number(median(perRound.fanOut).toFixed(2)),
    };
    const load = loadavg().map((l) => l.toFixed(1)).join(' / ');
    const date = new Date().toISOString().slice(0, 10);
    const facts = { compiled: __filename.endsWith('.js'), workerThreads: decodeThreads(), revision: rev, machine: machine(), date, target: TARGET, diskMiB: DISK_BYTES / MiB, pageSize: PAGE_SIZE, windowMiB: WINDOW_BYTES / MiB, windows, windowsInFlight: WINDOWS_IN_FLIGHT, concurrency: CONCURRENCY, rounds: ROUNDS, targetFirst: TARGET_FIRST, bytesWritten: rawBytes };
    const cpuMedian = (way: string, k: 'client' | 'target' | 'vault') => median(samples.filter((s) => s.way === way).map((s) => s.cpu[k])).toFixed(2);
    const rows = [...new Set([`raw(${CONCURRENCY})`, `raw(${WINDOWS_IN_FLIGHT * CONCURRENCY})`]), 'stream', 'fan-out'].map(
      (way) => `| ${way} | ${samples.filter((s) => s.way === way).map((s) => (s.ms / 1000).toFixed(2)).join(' / ')} | ${mean(way)} | ${cpuMedian(way, 'client')} / ${cpuMedian(way, 'target')} / ${cpuMedian(way, 'vault')} |`,
    );
    const md = [
      `# Restore throughput (${date})`,
      '',
      `Revision ${rev}; ${facts.machine}. Command: \`npm run bench:restore -- --mib=${facts.diskMiB} --window-mib=${facts.windowMiB} --rounds=${ROUNDS} --target=${TARGET}${WINDOWS_IN_FLIGHT === BATCHES_IN_FLIGHT.default ? '' : ` --windows-in-flight=${WINDOWS_IN_FLIGHT}`}${TARGET_FIRST ? ' --target-first' : ''}${facts.compiled ? '' : ' --sources'}\`.`,
      `Ran ${facts.compiled ? 'from a JavaScript build on bare node (as the engine ships)' : 'from the TypeScript sources under ts-node'}, decoding in ${facts.workerThreads ? `${facts.workerThreads} worker thread(s)` : 'the restoring thread'} (PAGEWISE_WORKER_THREADS).`,
      '',
      `A ${facts.diskMiB} MiB mixed disk (bench/lib/disks.ts fullMixed) in 4 MiB pages, backed up to Azurite, restored to fresh page blobs;`,
      `${(rawBytes / MiB).toFixed(1)} MiB written per restore (each page's non-zero runs). Fan-out: ${windows} windows of ${facts.windowMiB} MiB,`,
      `${WINDOWS_IN_FLIGHT} in flight, ${CONCURRENCY} runs each; stream and raw(${CONCURRENCY}) at ${CONCURRENCY}. Every restored blob was checked against the disk; the target emulator served one unrecorded write of the same bytes first (warm-up).`,
      TARGET === 'own'
        ? 'Targets (raw and restores): a disk account in an emulator process of its own, apart from the vault\'s (`--target=own`).'
        : 'Targets (raw and restores): a container of the vault\'s account, one emulator process for both (`--target=vault`).',
      TARGET_FIRST
        ? `Target first (\`--target-first\`): the client (this process) and the vault's emulator at niceness ${YIELDING_NICENESS}, the target's emulator at 0, for the raw writes and the restores alike.`
        : 'All at one priority: the client and both emulators share the cores as equals (the restore\'s own CPU takes turns with the target\'s).',
      '',
      '| way | seconds per round | MiB/s (all rounds) | CPU s per round, median: client / target emulator / vault emulator |',
      '|---|---|---|---|',
      ...rows,
      '',
      `Ratios (goal ≥ 0.8), all rounds: stream ÷ raw(${CONCURRENCY}) = **${ratios.stream}**; fan-out ÷ raw(${WINDOWS_IN_FLIGHT * CONCURRENCY}) = **${ratios.fanOut}**.`,
      `Per round: stream ${perRound.stream.map((r) => r.toFixed(2)).join(' / ')} (median **${ratios.streamMedian}**); fan-out ${perRound.fanOut.map((r) => r.toFixed(2)).join(' / ')} (median **${ratios.fanOutMedian}**).`,
      `Read side: ${runCount} runs read one by one (GET, decrypt, decompress, hash) in ${(readMs / 1000).toFixed(2)} s; ${parts.length} non-zero runs written. Load average at the end (1 / 5 / 15 min): ${load}.`,
      '',
    ].join('\n');
    mkdirSync(RESULTS, { recursive: true });
    // A disk or window other than the defaults is named in the file, so runs of several sizes on one day stay apart.
    const size = `${DISK_BYTES === 256 * MiB && WINDOW_BYTES === 32 * MiB ? '' : `-${DISK_BYTES / MiB}m-w${WINDOW_BYTES / MiB}m`}${WINDOWS_IN_FLIGHT === BATCHES_IN_FLIGHT.default ? '' : `-f${WINDOWS_IN_FLIGHT}`}${TARGET_FIRST ? '-tf' : ''}`;
    writeFileSync(path.join(RESULTS, `restore-throughput-${date}-${TARGET}${size}.md`), md);
    writeFileSync(path.join(RESULTS, `restore-throughput-${date}-${TARGET}${size}.json`), JSON.stringify({ facts, samples, ratios, perRound, readMs, runCount, load }, null, 2));
    process.stdout.write(`\n${md}`);
  } finally {
    await targetAz?.stop();
    await az.stop();
  }
}

startBuilt(__filename, argv, main).catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
