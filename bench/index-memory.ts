/**
 * `npm run bench:index` — the vault index at scale (docs/SCALE.md §6c): N entries written as packs and their
 * deltas into Azurite, then compacted into a generation (time, peak RSS over the run's start, spill records),
 * then a ContentIndex opened on it (memoryBytes against contentIndexBound) and asked for known and unknown
 * content IDs (frames read, filter "no"s, lookups per second).
 *
 * Options: --entries=1000000 --per-pack=1000 --lookups=10000. Results: bench/results/index-memory-<date>.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { compactIndex, configureStorageEndpoints, ContentIndex, contentIndexBound, formatBytes, Keyring } from '../core';
// The bench writes the vault directly (no marker, a keyring of its own), as the index tests do.
import { Vault } from '../core/repo/vault';
import { startAzurite } from '../testkit/azurite';
import { storePacks } from '../test/harness/index-fixture';
import { machine, revision } from './lib/run-facts';

const argv = process.argv.slice(2);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const ENTRIES = Number(option('entries') ?? 1_000_000);
const PER_PACK = Number(option('per-pack') ?? 1000);
const LOOKUPS = Number(option('lookups') ?? 10_000);
const WRITERS = 8;
const log = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

/** Peak RSS while `work` runs (sampled every 20 ms), and its time. */
async function measured<T>(work: () => Promise<T>): Promise<{ value: T; ms: number; peakRss: number; startRss: number }> {
  global.gc?.();
  const startRss = process.memoryUsage().rss;
  let peakRss = startRss;
  const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
  const t = Date.now();
  try {
    const value = await work();
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    return { value, ms: Date.now() - t, peakRss, startRss };
  } finally {
    clearInterval(timer);
  }
}

async function main(): Promise<void> {
  const az = await startAzurite({ accounts: ['vault'] });
  try {
    configureStorageEndpoints(az.storageEndpoints.split(','), 'the bench');
    await az.accounts.vault.service.getContainerClient('index').create();
    const vault = Vault.open({ url: az.sasUrl('vault', 'index') });
    const keyring = Keyring.create();
    log(`writing ${ENTRIES} entries in packs of ${PER_PACK}`);
    const known: Buffer[] = [];
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, w) => {
        const share = Math.ceil(ENTRIES / WRITERS);
        for (let at = w * share; at < Math.min(ENTRIES, (w + 1) * share); at += PER_PACK * 10) {
          const ids = Array.from({ length: Math.min(PER_PACK * 10, Math.min(ENTRIES, (w + 1) * share) - at) }, () => randomBytes(32));
          if (known.length < LOOKUPS) known.push(...ids.slice(0, 50));
          await storePacks(vault, keyring, ids, PER_PACK);
        }
      }),
    );
    const writeMs = Date.now() - t0;
    log(`written in ${writeMs} ms; compacting`);
    const compaction = await measured(() => compactIndex(vault, keyring, {}));
    log(`compacted in ${compaction.ms} ms`);
    const opened = await measured(() => ContentIndex.open(vault, keyring));
    const index = opened.value;
    const openedBytes = index.memoryBytes();
    const bound = contentIndexBound(compaction.value.entries, index.coveredDeltas);
    const unknown = Array.from({ length: LOOKUPS }, () => randomBytes(32));
    const tk = Date.now();
    let hits = 0;
    for (const id of known.slice(0, LOOKUPS)) hits += (await index.candidates(id)).length > 0 ? 1 : 0;
    const knownMs = Date.now() - tk;
    const afterKnown = index.stats;
    const tu = Date.now();
    for (const id of unknown) if ((await index.candidates(id)).length > 0) throw new Error('a random content ID was found');
    const unknownMs = Date.now() - tu;
    const s = index.stats;
    const c = compaction.value;
    const lines = [
      `# Vault index at ${ENTRIES.toLocaleString('en')} entries (${new Date().toISOString().slice(0, 10)})`,
      '',
      `Revision ${revision()}; ${machine()}; Azurite on the same machine (shared with other work).`,
      `Command: \`npm run bench:index -- --entries=${ENTRIES} --per-pack=${PER_PACK} --lookups=${LOOKUPS}\``,
      '',
      '| step | result |',
      '|---|---|',
      `| write | ${c.deltasCovered} packs + deltas, ${(writeMs / 1000).toFixed(1)} s |`,
      `| compaction | ${c.entries} entries, ${c.shards} shards, ${c.spillRecords} spill records, ${formatBytes(c.bytesWritten)} written, ${(compaction.ms / 1000).toFixed(1)} s, peak RSS ${formatBytes(compaction.peakRss)} (+${formatBytes(compaction.peakRss - compaction.startRss)} over its start) |`,
      `| ContentIndex.open | ${(opened.ms / 1000).toFixed(2)} s, memoryBytes ${formatBytes(openedBytes)} right after open (filter + fences + covered names), RSS +${formatBytes(opened.peakRss - opened.startRss)} |`,
      `| ${known.slice(0, LOOKUPS).length} known IDs | ${hits} found, ${afterKnown.framesRead} frames read, ${(knownMs / 1000).toFixed(2)} s |`,
      `| ${LOOKUPS} unknown IDs | ${s.filterNo - afterKnown.filterNo} filter "no", ${s.framesRead - afterKnown.framesRead} frames read, ${(unknownMs / 1000).toFixed(2)} s |`,
      `| memory | memoryBytes ${formatBytes(index.memoryBytes())} after the lookups (frames cached: at most 16 MiB); contentIndexBound ${formatBytes(bound)} (default frame cache and delta budget) |`,
      '',
    ];
    const out = path.resolve(__dirname, 'results', `index-memory-${new Date().toISOString().slice(0, 10)}.md`);
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, lines.join('\n'));
    process.stdout.write(lines.join('\n'));
  } finally {
    await az.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
