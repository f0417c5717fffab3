/**
 * `npm run bench:gear` — the FastCDC gear loop's candidates (#15 speed) on the default chunking over
 * bench disks a (random) and b (mixed), --mib each (default 256): the engine's JavaScript loop before
 * (f511664), that loop unrolled, and the WebAssembly build the engine uses (core/repo/v2/gear-cut.wat,
 * page copied in). Rounds interleave the candidates; the median of --rounds (default 5) is reported,
 * and every candidate's cuts are checked equal. Writes bench/results/gear-candidates-<date>.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { chunkLengths, DEFAULT_CHUNKING, gearTable, MiB } from '../core';
import { regionBytes, type DiskRegion } from '../testkit/sample-disk';
import { fullMixed, fullRandom } from './lib/disks';
import { gearLengthsJs, gearLengthsUnrolled } from './lib/gear-js';
import { machine, revision } from './lib/run-facts';

const argv = process.argv.slice(2);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const MIB = Number(option('mib') ?? 256);
const ROUNDS = Number(option('rounds') ?? 5);
const PAGE = 4 * MiB;

/** The disk's first `bytes` in 4 MiB pages. */
function pagesOf(regions: DiskRegion[], bytes: number): Buffer[] {
  const pages: Buffer[] = [];
  for (let at = 0; at < bytes; at += PAGE) {
    pages.push(Buffer.concat(regions.filter((r) => r.offset < at + PAGE && r.offset + r.length > at).map((r) => regionBytes(r, Math.max(at, r.offset), Math.min(at + PAGE, r.offset + r.length) - Math.max(at, r.offset)))));
  }
  return pages;
}

const gear = gearTable(Buffer.alloc(32, 5));
const candidates: Array<[string, (page: Uint8Array) => number[]]> = [
  ['JavaScript loop (before, f511664)', (p) => gearLengthsJs(p, DEFAULT_CHUNKING, gear)],
  ['JavaScript, int32 table, unrolled ×4', (p) => gearLengthsUnrolled(p, DEFAULT_CHUNKING, gear)],
  ['WebAssembly (gear-cut.wat, the engine)', (p) => chunkLengths(p, DEFAULT_CHUNKING, gear)],
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const rows: string[] = [];
for (const [disk, regions] of [['a (random)', fullRandom(MIB * MiB)], ['b (mixed)', fullMixed(MIB * MiB)]] as const) {
  const pages = pagesOf(regions, MIB * MiB);
  const expected = pages.map((p) => gearLengthsJs(p, DEFAULT_CHUNKING, gear).join());
  const ms = new Map<string, number[]>(candidates.map(([name]) => [name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, cut] of candidates) {
      const t = performance.now();
      for (const p of pages) cut(p);
      ms.get(name)!.push(performance.now() - t);
    }
  }
  for (const [name, cut] of candidates) if (pages.some((p, i) => cut(p).join() !== expected[i])) throw new Error(`${name} cuts disk ${disk} differently`);
  const before = median(ms.get(candidates[0][0])!);
  for (const [name] of candidates) {
    const m = median(ms.get(name)!);
    rows.push(`| ${disk} | ${name} | ${(m / 1000).toFixed(3)} | ${(MIB / (m / 1000)).toFixed(0)} | ${(before / m).toFixed(2)} | ${ms.get(name)!.map((x) => (x / 1000).toFixed(2)).join(' ')} |`);
  }
}
const date = new Date().toISOString();
const text = [
  `# Gear loop candidates (#15 speed) — ${date}`,
  '',
  `Revision ${revision()}; ${machine()}; load average (1 min) ${os.loadavg()[0].toFixed(1)} at the end. One thread, ${MIB} MiB per disk in 4 MiB pages, FastCDC 64K/256K/1M, ${ROUNDS} interleaved rounds; every candidate's cuts equal the loop before.`,
  '',
  '| disk | candidate | median s | MiB/s | speed-up | rounds s |',
  '|---|---|---:|---:|---:|---|',
  ...rows,
  '',
].join('\n');
process.stdout.write(text);
const dir = path.resolve(__dirname, 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, `gear-candidates-${date.slice(0, 10)}.md`), text);
