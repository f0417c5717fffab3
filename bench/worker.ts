/**
 * The benchmark's child process: runs one Pagewise operation (backup, restore or verify) so the parent
 * can measure this process alone (peak RSS via /usr/bin/time and process.resourceUsage, CPU time,
 * event-loop utilization, timing spans). Input: a JSON file named by argv[2]. Output: one line
 * `BENCH_RESULT <json>` on stdout.
 *
 * The parent runs a plain-JavaScript build of this file and of core/ (see lib/build.ts), so ts-node and
 * the TypeScript compiler are not loaded and the RSS is what a deployed worker would use.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Spans } from './lib/spans';

export interface WorkerInput {
  op: 'backup' | 'restore' | 'verify' | 'prune' | 'trailers';
  source?: { url: string; connectionString?: string };
  vault: { url: string; connectionString?: string };
  userKeyHex: string;
  backupId: string;
  cacheBytes?: number;
  pageSize?: number;
  concurrency?: number;
  scratchDir?: string;
  /** Take a snapshot first and keep it as the next backup's base (the incremental case). */
  takeSnapshot?: boolean;
  /** Force a full backup. */
  full?: boolean;
  /** restore target (local file) */
  target?: string;
  spans?: boolean;
  /** prune: the injected clock's time (ms since the epoch; it stands still during the run), GC parameters, repack */
  nowMs?: number;
  params?: { abandonAfterMs?: number; deleteAfterMs?: number; maxUnused?: number };
  repack?: boolean;
}

export interface WorkerOutput {
  op: string;
  wallMs: number;
  result: unknown;
  /** RSS after loading the engine, before any work, bytes */
  baselineRssBytes: number;
  /** process.resourceUsage().maxRSS, bytes */
  maxRssBytes: number;
  userCpuMs: number;
  systemCpuMs: number;
  /** fraction of the wall time the main thread's event loop was busy */
  eventLoopUtilization: number;
  eventLoopDelayP99Ms: number;
  spans?: Record<string, unknown>;
  /** peaks of process.memoryUsage() sampled every 20 ms during the operation, bytes */
  memoryPeaks: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number; rssAnon: number; rssFile: number };
  /** HTTP requests the operation sent, by kind (LIST = a GET with comp=list) */
  requests: Record<string, number>;
  /** prune: ms from the start to the first progress report of each step (gather ends at the first) */
  stepStartsMs?: Record<string, number>;
}

/**
 * Counts every HTTP request of this process by kind: the Azure SDK's Node client calls
 * `http.request` / `https.request` through the module object, so wrapping them sees each one.
 */
function countRequests(): Record<string, number> {
  const counts: Record<string, number> = {};
  /* eslint-disable @typescript-eslint/no-var-requires */
  for (const mod of [require('node:http'), require('node:https')] as Array<Record<string, unknown>>) {
    const original = mod.request as (...a: unknown[]) => unknown;
    mod.request = function (this: unknown, ...args: unknown[]) {
      const options = (typeof args[0] === 'object' && args[0] !== null && !(args[0] instanceof URL) ? args[0] : args[1]) as { method?: string; path?: string } | undefined;
      const method = (options?.method ?? 'GET').toUpperCase();
      const kind = method === 'GET' && /[?&]comp=list/.test(options?.path ?? '') ? 'LIST' : method;
      counts[kind] = (counts[kind] ?? 0) + 1;
      return original.apply(this, args);
    };
  }
  /* eslint-enable @typescript-eslint/no-var-requires */
  return counts;
}

function instrument(spans: Spans): void {
  // Timing spans wrap the engine's internal functions and methods in place, so this reaches into core's
  // modules by path (allowed in test/rules.public-api.test.ts); nothing else outside core does.
  /* eslint-disable @typescript-eslint/no-var-requires */
  const { SourceDisk } = require('../core/source/source-disk');
  const { CacheSlot, ScratchCache } = require('../core/cache/scratch-cache');
  const { PageProcessor } = require('../core/processor/page-processor');
  const { Vault } = require('../core/repo/vault');
  const codec = require('../core/repo/block-codec');
  const asyncCrypto = require('../core/processor/async-crypto');
  const lz4 = require('lz4-napi');
  const plan = require('../core/backup/plan-backup');
  const finalize = require('../core/backup/finalize-backup');
  const batch = require('../core/backup/run-batch');
  /* eslint-enable @typescript-eslint/no-var-requires */
  spans.wrap(plan, 'planBackup', 'phase:plan');
  spans.wrap(batch, 'runBatch', 'phase:batches');
  spans.wrap(finalize, 'finalizeBackup', 'phase:finalize');
  spans.wrap(ScratchCache.prototype, 'acquireMany', 'slotWait');
  spans.wrap(CacheSlot.prototype, 'prepare', 'slotPrepare');
  spans.wrap(SourceDisk.prototype, 'download', 'download');
  spans.wrap(CacheSlot.prototype, 'writeGathered', 'slotWrite');
  spans.wrap(CacheSlot.prototype, 'read', 'slotRead');
  spans.wrap(PageProcessor.prototype, 'process', 'process');
  spans.wrap(codec, 'encodeBlock', 'encode');
  spans.wrap(codec, 'decodeBlock', 'decode');
  spans.wrap(asyncCrypto, 'sha256', 'sha256');
  spans.wrap(lz4, 'compressSync', 'lz4');
  spans.wrap(asyncCrypto, 'aesGcmSeal', 'seal');
  spans.wrap(Vault.prototype, 'stageBlock', 'stage');
  spans.wrap(Vault.prototype, 'getBytes', 'vaultGet');
  spans.wrap(Vault.prototype, 'putBytes', 'vaultPut');
  spans.wrap(Vault.prototype, 'commitBlocks', 'commit');
  spans.wrap(Vault.prototype, 'exists', 'vaultExists');
}

/**
 * Memory experiments (BENCH_EXPERIMENT, for the profile only; the engine is unchanged):
 * - lz4-passthrough: lz4 compression returns its input (every block stored uncompressed), to see how
 *   much of the RSS is lz4-napi's output buffers.
 */
function experiment(name: string | undefined): void {
  if (!name) return;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const lz4 = require('lz4-napi');
  if (name === 'lz4-passthrough') lz4.compressSync = (b: Buffer) => b;
  else throw new Error(`unknown BENCH_EXPERIMENT ${name}`);
}

async function main(): Promise<void> {
  const input = JSON.parse(readFileSync(process.argv[2], 'utf8')) as WorkerInput;
  const requests = countRequests();
  experiment(process.env.BENCH_EXPERIMENT);
  const spans = input.spans ? new Spans() : undefined;
  if (spans) instrument(spans);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const core = require('../core') as typeof import('../core');
  core.configureStorageEndpointsFromEnv(process.env); // the emulator's endpoints, from the parent
  const userKey = Buffer.from(input.userKeyHex, 'hex');
  const baselineRssBytes = process.memoryUsage().rss;
  const memoryPeaks = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0, rssAnon: 0, rssFile: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    memoryPeaks.rss = Math.max(memoryPeaks.rss, m.rss);
    memoryPeaks.heapUsed = Math.max(memoryPeaks.heapUsed, m.heapUsed);
    memoryPeaks.external = Math.max(memoryPeaks.external, m.external);
    memoryPeaks.arrayBuffers = Math.max(memoryPeaks.arrayBuffers, m.arrayBuffers);
    memoryPeaks.heapTotal = Math.max(memoryPeaks.heapTotal, m.heapTotal);
    try {
      const status = readFileSync('/proc/self/status', 'utf8');
      const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
      memoryPeaks.rssAnon = Math.max(memoryPeaks.rssAnon, kb('RssAnon'));
      memoryPeaks.rssFile = Math.max(memoryPeaks.rssFile, kb('RssFile'));
    } catch {
      // not Linux
    }
  };
  const sampler = setInterval(sample, 20);
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const stepStartsMs: Record<string, number> = {};
  for (const k of Object.keys(requests)) delete requests[k]; // the operation's requests only
  let result: unknown;
  if (input.op === 'backup') {
    result = await core.backupDisk({
      source: input.source!,
      vault: input.vault,
      userKey,
      backupId: input.backupId,
      cacheBytes: input.cacheBytes,
      pageSize: input.pageSize,
      concurrency: input.concurrency,
      scratchDir: input.scratchDir,
      ...(input.takeSnapshot ? { takeSnapshot: true } : {}),
      ...(input.full ? { full: true } : {}),
    });
  } else if (input.op === 'restore') {
    result = await core.restoreBackup({ backupId: input.backupId, vault: input.vault, userKey, target: { url: input.target! }, overwrite: true, concurrency: input.concurrency });
  } else if (input.op === 'verify') {
    result = await core.verifyBackup({ backupId: input.backupId, vault: input.vault, userKey, readData: true, concurrency: input.concurrency });
  } else if (input.op === 'prune') {
    // The prune is reached by path (bench/prune.ts measures it; allowed in test/rules.public-api.test.ts).
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { pruneVault } = require('../core/prune/prune') as typeof import('../core/prune/prune');
    const nowMs = input.nowMs ?? Date.now();
    result = await pruneVault({
      vault: input.vault,
      userKey,
      clock: () => nowMs,
      params: input.params,
      repack: input.repack ?? true,
      onProgress: (step) => {
        if (!(step in stepStartsMs)) stepStartsMs[step] = performance.now() - started;
      },
    });
  } else {
    result = await packTrailers(input.vault, userKey);
  }
  const wallMs = performance.now() - started;
  clearInterval(sampler);
  sample();
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  delay.disable();
  const out: WorkerOutput = {
    op: input.op,
    wallMs,
    result,
    baselineRssBytes,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    userCpuMs: cpu.user / 1000,
    systemCpuMs: cpu.system / 1000,
    eventLoopUtilization: elu.utilization,
    eventLoopDelayP99Ms: delay.percentile(99) / 1e6,
    spans: spans?.snapshot(),
    memoryPeaks,
    requests,
    ...(input.op === 'prune' ? { stepStartsMs } : {}),
  };
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(out)}\n`);
}

/**
 * The floor of any garbage collection: list every pack and read its trailer (the index it carries,
 * FORMAT.md §17.2) — what a GC that trusted nothing else would have to read at the least.
 */
async function packTrailers(location: { url: string; connectionString?: string }, userKey: Buffer): Promise<{ packs: number; entries: number; packBytes: number }> {
  /* eslint-disable @typescript-eslint/no-var-requires */
  const { Vault } = require('../core/repo/vault') as typeof import('../core/repo/vault');
  const { openVaultKeyring } = require('../core/repo/v2/marker') as typeof import('../core/repo/v2/marker');
  const { readPackTrailer } = require('../core/repo/v2/pack-writer') as typeof import('../core/repo/v2/pack-writer');
  const { forEachLimited } = require('../core/concurrency') as typeof import('../core/concurrency');
  /* eslint-enable @typescript-eslint/no-var-requires */
  const vault = Vault.open(location);
  const keyring = await openVaultKeyring(vault, userKey);
  const packs: string[] = [];
  let packBytes = 0;
  for await (const b of vault.listDetailed('packs/')) {
    packs.push(b.name.slice(b.name.lastIndexOf('/') + 1, -'.pwp'.length));
    packBytes += b.contentLength;
  }
  let entries = 0;
  await forEachLimited(packs, 8, async (packId) => {
    const found = (await readPackTrailer(vault, keyring, packId)).length;
    entries += found; // after the await: a concurrent += would lose counts
  });
  return { packs: packs.length, entries, packBytes };
}

main().catch((err) => {
  process.stderr.write(`worker failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
