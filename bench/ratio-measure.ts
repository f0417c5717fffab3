/**
 * Stored bytes of the writer's codec rules (§16) on the bench disks, without Azure: the real chunker and
 * codecs over the same pages the bench backs up; dedupe by content over the whole disk, +60 B per block.
 * Usage: ts-node --transpile-only bench/ratio-measure.ts [--disks=f,b,c,a] [--stream]
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compressSync } from 'lz4-napi';
import { MiB } from '../core';
import { probeSample, sampleIncompressible } from '../core/repo/block-codec';
import { BLOCK2_OVERHEAD, compressChunk } from '../core/repo/v2/block';
import { chunkLengths, DEFAULT_CHUNKING, gearTable, type Chunking } from '../core/repo/v2/chunker';
import { zstdEncodeSync, zstdReady } from '../core/repo/v2/zstd';
import { DiskRegion, regionBytes } from '../testkit/sample-disk';
import { fullMixed, fullRandom, sparseScattered } from './lib/disks';
import { makeFsImage, makeFsTree } from './lib/fs-disk';

const PAGE = 4 * MiB;
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const DISKS = (arg('disks') ?? 'f,b,c,a').split(',');
const gear = gearTable(Buffer.alloc(32, 7));

type Rule = 'page-probe' | 'chunk-probe' | 'chunk-lz4' | 'chunk-strided' | 'chunk-gate' | 'chunk-zstd';
const RULES: Rule[] = (arg('rules') ?? 'page-probe,chunk-probe,chunk-lz4,chunk-strided,chunk-zstd').split(',') as Rule[];

/** Pages of a region-described disk, generated page by page (only pages some region touches). */
function* regionPages(diskBytes: number, regions: DiskRegion[]): Generator<Buffer> {
  const byPage = new Map<number, DiskRegion[]>();
  for (const r of regions) for (let p = Math.floor(r.offset / PAGE); p * PAGE < r.offset + r.length; p++) byPage.set(p, [...(byPage.get(p) ?? []), r]);
  for (const p of [...byPage.keys()].sort((a, b) => a - b)) {
    const page = Buffer.alloc(Math.min(PAGE, diskBytes - p * PAGE));
    for (const r of byPage.get(p)!) {
      const from = Math.max(r.offset, p * PAGE);
      const to = Math.min(r.offset + r.length, p * PAGE + page.length);
      regionBytes(r, from - r.offset, to - from).copy(page, from - p * PAGE);
    }
    yield page;
  }
}

async function* filePages(file: string): AsyncGenerator<Buffer> {
  const fh = await fs.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    for (let at = 0; at < size; at += PAGE) {
      const page = Buffer.alloc(Math.min(PAGE, size - at));
      await fh.read(page, 0, page.length, at);
      yield page;
    }
  } finally {
    await fh.close();
  }
}

const isZero = (b: Buffer) => b.every((x) => x === 0);

interface Tally { chunks: number; unique: number; uniqueBytes: number; stored: Record<Rule, number>; ms: Record<Rule, number>; blocksStoredRaw: Record<Rule, number> }

/** The per-chunk probe: lz4 on the chunk's own middle sample (at most 64 KiB). */
function chunkLooksIncompressible(chunk: Buffer): boolean {
  const n = Math.min(chunk.length, 64 * 1024);
  const at = Math.floor((chunk.length - n) / 2);
  const s = chunk.subarray(at, at + n);
  return compressSync(s).length > s.length * 0.97;
}

/** Strided probe: 4 KiB samples every 32 KiB; incompressible only if none shrinks 3 %. */
function stridedIncompressible(chunk: Buffer): boolean {
  for (let at = 0; at < chunk.length; at += 32 * 1024) {
    const s = chunk.subarray(at, Math.min(chunk.length, at + 4096));
    if (compressSync(s).length <= s.length * 0.97) return false;
  }
  return true;
}

/** Gate: strided lz4 finds no matches and the sampled bytes' order-0 entropy is ≥ 7.9 bits (zstd's Huffman gains nothing). */
function gateIncompressible(chunk: Buffer): boolean {
  if (!stridedIncompressible(chunk)) return false;
  const counts = new Uint32Array(256);
  let n = 0;
  for (let at = 0; at < chunk.length; at += 32 * 1024) {
    const end = Math.min(chunk.length, at + 4096);
    for (let i = at; i < end; i++) counts[chunk[i]]++;
    n += end - at;
  }
  let bits = 0;
  for (const c of counts) if (c) bits -= (c / n) * Math.log2(c / n);
  return bits >= 7.9;
}

function storedLength(rule: Rule, chunk: Buffer, pageIncompressible: boolean): number {
  const incompressible = rule === 'page-probe' ? pageIncompressible : rule === 'chunk-probe' ? chunkLooksIncompressible(chunk) : rule === 'chunk-lz4' ? compressSync(chunk).length > chunk.length * 0.97 : rule === 'chunk-strided' ? stridedIncompressible(chunk) : rule === 'chunk-gate' ? gateIncompressible(chunk) : false;
  return incompressible ? chunk.length : compressChunk(chunk, 'zstd').body.length;
}

async function measure(name: string, pages: AsyncIterable<Buffer> | Iterable<Buffer>, chunking: Chunking, stream: boolean): Promise<Tally> {
  const seen = new Set<string>();
  const t: Tally = { chunks: 0, unique: 0, uniqueBytes: 0, stored: { 'page-probe': 0, 'chunk-probe': 0, 'chunk-lz4': 0, 'chunk-strided': 0, 'chunk-gate': 0, 'chunk-zstd': 0 }, ms: { 'page-probe': 0, 'chunk-probe': 0, 'chunk-lz4': 0, 'chunk-strided': 0, 'chunk-gate': 0, 'chunk-zstd': 0 }, blocksStoredRaw: { 'page-probe': 0, 'chunk-probe': 0, 'chunk-lz4': 0, 'chunk-strided': 0, 'chunk-gate': 0, 'chunk-zstd': 0 } };
  const all: Buffer[] = [];
  for await (const page of pages) {
    if (isZero(page)) continue;
    if (stream) {
      all.push(page);
      continue;
    }
    await onPage(page);
  }
  if (stream) await onPage(Buffer.concat(all));
  async function onPage(page: Buffer) {
    const lengths = chunkLengths(page, chunking, gear);
    const sample = probeSample(page);
    let at = 0;
    const fresh: Buffer[] = [];
    for (const length of lengths) {
      const c = page.subarray(at, at + length);
      at += length;
      if (isZero(c)) continue;
      t.chunks++;
      const id = createHash('sha256').update(c).digest('hex');
      if (seen.has(id)) continue;
      seen.add(id);
      t.unique++;
      t.uniqueBytes += length;
      fresh.push(c);
    }
    for (const rule of RULES) {
      const started = process.hrtime.bigint();
      const pageIncompressible = rule === 'page-probe' && sample !== undefined && sampleIncompressible(sample);
      for (const c of fresh) {
        const n = storedLength(rule, c, pageIncompressible);
        t.stored[rule] += n + BLOCK2_OVERHEAD;
        if (n === c.length) t.blocksStoredRaw[rule]++;
      }
      t.ms[rule] += Number(process.hrtime.bigint() - started) / 1e6;
    }
  }
  const f = (n: number) => (n / MiB).toFixed(2);
  console.log(
    `${name}${stream ? ' (stream, no page boundaries)' : ''} ${chunking.scheme === 'page' ? 'page' : `${chunking.min / 1024}K/${chunking.avg / 1024}K/${chunking.max / 1024}K`}: chunks ${t.chunks}, unique ${t.unique} (${f(t.uniqueBytes)} MiB); ` +
      RULES.map((r) => `${r} ${f(t.stored[r])} MiB [${t.blocksStoredRaw[r]} raw] ${(t.uniqueBytes / MiB / (t.ms[r] / 1000)).toFixed(0)} MiB/s`).join('; '),
  );
  return t;
}

async function main(): Promise<void> {
  await zstdReady();
  const work = process.env.BENCH_WORK ?? path.join(os.tmpdir(), 'pw-ratio');
  await fs.mkdir(work, { recursive: true });
  const small = 256 * MiB;
  const big = 8 * 1024 * MiB;
  const chunkings: Chunking[] = [DEFAULT_CHUNKING];
  if (arg('chunkings')) {
    for (const s of arg('chunkings')!.split(',')) {
      const [min, avg, max] = s.split('/').map((k) => Number(k) * 1024);
      chunkings.push({ scheme: 'fastcdc-2016', min, avg, max, nc: 2 });
    }
  }
  for (const key of DISKS) {
    for (const chunking of chunkings) {
      for (const stream of process.argv.includes('--stream') ? [false, true] : [false]) {
        if (key === 'f') {
          const image = path.join(work, 'f.img');
          if (!existsSync(image)) {
            await makeFsTree(path.join(work, 'f-tree'), small);
            await makeFsImage(path.join(work, 'f-tree'), image, small);
          }
          await measure('f', filePages(image), chunking, stream);
        } else if (key === 'a') await measure('a', regionPages(small, fullRandom(small)), chunking, stream);
        else if (key === 'b') await measure('b', regionPages(small, fullMixed(small)), chunking, stream);
        else if (key === 'c') await measure('c', regionPages(big, sparseScattered(big, 0.02)), chunking, stream);
      }
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
