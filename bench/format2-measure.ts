/**
 * Format-2 measurements (issue #11 item 2): whole pages vs FastCDC chunks inside pages, dedupe within a
 * disk and across two generations of it, and the codecs (stored, lz4, zstd 1 and 3) — size and speed on
 * this machine — over the bench disks generated in memory. Prints markdown and writes it to a file.
 *
 *   npm run bench:format2 -- [--disks=a,b,c,vm,fs] [--size=256] [--vm-size=1024] [--sparse-size=4096] [--fs-size=1024]
 *                            [--change=3] [--shifts=50] [--schemes=all|chunk-sets] [--codecs=stored,lz4,zstd-1,zstd-3]
 *                            [--passes=3] [--out=bench/results/format2-<date>.md]   (sizes in MiB)
 * Disk fs is a real ext4 image of files from this machine (bench/lib/fs-disk.ts). `--schemes=chunk-sets`
 * measures the FastCDC sizes of #15 (32K/128K/512K, 64K/256K/1M, 128K/512K/2M) against 4 MiB pages.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { compressSync, uncompressSync } from 'lz4-napi';
import { compress as zstdCompress, decompress as zstdDecompress, init as zstdInit } from '@bokuweb/zstd-wasm';
import { MiB } from '../core';
import { DiskRegion, regionBytes, sampleVmLayout } from '../testkit/sample-disk';
import { prng } from '../testkit/prng';
import { fullMixed, fullRandom, sparseScattered } from './lib/disks';
import { FastCdc } from './lib/fastcdc';
import { makeFsImage, makeFsTree } from './lib/fs-disk';

const KiB = 1024;
const FRAME = 4 * MiB; // the largest page measured; every scheme cuts inside one frame at a time

// ---------------------------------------------------------------------------------------------------
// Options

interface Options {
  disks: string[];
  sizeMiB: number;
  fsSizeMiB: number;
  passes: number;
  schemes: 'all' | 'chunk-sets';
  codecs: string[];
  vmSizeMiB: number;
  sparseSizeMiB: number;
  changePercent: number;
  /** Of the changed pages, the share (%) changed by an insertion rather than an overwrite. */
  shiftPercent: number;
  out: string;
}

function parseOptions(argv: string[]): Options {
  const get = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const num = (name: string, fallback: number): number => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, not ${JSON.stringify(raw)}`);
    return n;
  };
  const date = new Date().toISOString().slice(0, 10);
  const options: Options = {
    disks: (get('disks') ?? 'a,b,c,vm').split(',').filter(Boolean),
    sizeMiB: num('size', 256),
    fsSizeMiB: num('fs-size', 1024),
    passes: Math.round(num('passes', 3)),
    schemes: get('schemes') === 'chunk-sets' ? 'chunk-sets' : 'all',
    codecs: (get('codecs') ?? 'stored,lz4,zstd-1,zstd-3').split(',').filter(Boolean),
    vmSizeMiB: num('vm-size', 1024),
    sparseSizeMiB: num('sparse-size', 4096),
    changePercent: num('change', 3),
    shiftPercent: get('shifts') === '0' ? 0 : num('shifts', 50),
    out: get('out') ?? path.join('bench', 'results', `format2-${date}.md`),
  };
  if (options.shiftPercent > 100) throw new Error(`--shifts is a share of the changed pages, 0..100, not ${options.shiftPercent}`);
  for (const size of [options.sizeMiB, options.vmSizeMiB, options.sparseSizeMiB]) {
    if (size % 4 !== 0) throw new Error(`disk sizes must be multiples of 4 MiB, not ${size}`);
  }
  for (const d of options.disks) if (!['a', 'b', 'c', 'vm', 'fs'].includes(d)) throw new Error(`unknown disk ${d} (a, b, c, vm, fs)`);
  if (!options.codecs.includes(BASELINE.codec)) throw new Error(`--codecs must include the baseline ${BASELINE.codec}`);
  for (const c of options.codecs) if (!ALL_CODECS.some((x) => x.name === c)) throw new Error(`unknown codec ${c} (${ALL_CODECS.map((x) => x.name).join(', ')})`);
  return options;
}

// ---------------------------------------------------------------------------------------------------
// Disks in memory: allocated 4 MiB frames only (unallocated frames are holes and never read)

interface Disk {
  key: string;
  label: string;
  diskBytes: number;
  frames: Map<number, Buffer>;
}

function materialize(key: string, label: string, diskBytes: number, regions: DiskRegion[]): Disk {
  const frames = new Map<number, Buffer>();
  for (const region of [...regions].sort((a, b) => a.offset - b.offset)) {
    // Generated in the 4 MiB steps the bench writer uses: a region's bytes depend on the steps.
    for (let at = 0; at < region.length; at += 4 * MiB) {
      const length = Math.min(4 * MiB, region.length - at);
      const bytes = regionBytes(region, at, length);
      let done = 0;
      while (done < length) {
        const offset = region.offset + at + done;
        const f = Math.floor(offset / FRAME);
        let frame = frames.get(f);
        if (!frame) frames.set(f, (frame = Buffer.alloc(Math.min(FRAME, diskBytes - f * FRAME))));
        const n = Math.min(length - done, frame.length - (offset - f * FRAME));
        bytes.copy(frame, offset - f * FRAME, done, done + n);
        done += n;
      }
    }
  }
  return { key, label, diskBytes, frames };
}

/** The fs disk: the ext4 image read in 4 MiB frames; all-zero frames are holes (never read). */
async function fsDisk(o: Options): Promise<Disk> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-format2-fs-'));
  try {
    const size = o.fsSizeMiB * MiB;
    const facts = await makeFsTree(path.join(work, 'tree'), size);
    const image = path.join(work, 'fs.img');
    await makeFsImage(path.join(work, 'tree'), image, size);
    await fs.rm(path.join(work, 'tree'), { recursive: true, force: true });
    const frames = new Map<number, Buffer>();
    const fh = await fs.open(image, 'r');
    try {
      for (let f = 0; f * FRAME < size; f++) {
        const frame = Buffer.alloc(Math.min(FRAME, size - f * FRAME));
        await fh.read(frame, 0, frame.length, f * FRAME);
        if (!isZero(frame)) frames.set(f, frame);
      }
    } finally {
      await fh.close();
    }
    const label = `fs: ${o.fsSizeMiB} MiB ext4 of real files (${(facts.packageBytes / MiB).toFixed(0)} MiB packages, the node_modules part twice, ${(facts.logBytes / MiB).toFixed(0)} MiB logs, ${(facts.archiveBytes / MiB).toFixed(0)} MiB tar.gz; ${facts.files} files)`;
    return { key: 'fs', label, diskBytes: size, frames };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

async function benchDisk(key: string, o: Options): Promise<Disk> {
  const size = o.sizeMiB * MiB;
  switch (key) {
    case 'fs':
      return fsDisk(o);
    case 'a':
      return materialize('a', `a: ${o.sizeMiB} MiB, all random`, size, fullRandom(size));
    case 'b':
      return materialize('b', `b: ${o.sizeMiB} MiB, mixed (text, random, zeros, repeats)`, size, fullMixed(size));
    case 'c':
      return materialize('c', `c: ${o.sparseSizeMiB} MiB sparse, ~2 % allocated`, o.sparseSizeMiB * MiB, sparseScattered(o.sparseSizeMiB * MiB));
    default:
      return materialize('vm', `vm: ${o.vmSizeMiB} MiB sample VM layout, ~20 % allocated`, o.vmSizeMiB * MiB, sampleVmLayout(o.vmSizeMiB * MiB));
  }
}

interface Generation {
  frames: Map<number, Buffer>;
  changed: number[];
  /** Bytes the mutations wrote or moved (what changed on the disk). */
  touchedBytes: number;
}

/**
 * The next generation: `percent` of the allocated frames changed, half by an overwrite (a file written in
 * place: 4 KiB-aligned, 4–256 KiB of new text or random bytes), half by an insertion that shifts the rest
 * of the frame by 1–8192 bytes (a file rewritten with bytes inserted; what content-defined chunks resync on).
 */
function nextGeneration(disk: Disk, percent: number, shiftPercent: number, seed = 42): Generation {
  const rand = prng(seed);
  const allocated = [...disk.frames.keys()].sort((a, b) => a - b);
  const count = Math.max(1, Math.round((allocated.length * percent) / 100));
  const chosen = new Set<number>();
  while (chosen.size < Math.min(count, allocated.length)) chosen.add(allocated[Math.floor(rand() * allocated.length)]);
  const frames = new Map(disk.frames);
  let touchedBytes = 0;
  let k = 0;
  for (const f of [...chosen].sort((a, b) => a - b)) {
    const frame = Buffer.from(disk.frames.get(f)!);
    const kind = rand() < 0.5 ? 'text' : 'random';
    // Evenly interleaved: page k is shifted when the running share of shifts falls below shiftPercent.
    const shifted = Math.floor(((k + 1) * shiftPercent) / 100) > Math.floor((k * shiftPercent) / 100);
    k++;
    if (!shifted) {
      const length = Math.min(frame.length, (1 + Math.floor(rand() * 64)) * 4 * KiB);
      const at = Math.floor((rand() * (frame.length - length)) / (4 * KiB)) * 4 * KiB;
      regionBytes({ offset: 0, length, kind, seed: 9000 + f }, 0, length).copy(frame, at);
      touchedBytes += length;
    } else {
      const shift = 1 + Math.floor(rand() * 8192);
      const at = Math.floor(rand() * (frame.length - shift));
      frame.copy(frame, at + shift, at, frame.length - shift);
      regionBytes({ offset: 0, length: 8192, kind, seed: 9500 + f }, 0, 8192).copy(frame, at, 0, shift);
      touchedBytes += frame.length - at;
    }
    frames.set(f, frame);
  }
  return { frames, changed: [...chosen].sort((a, b) => a - b), touchedBytes };
}

// ---------------------------------------------------------------------------------------------------
// Chunking schemes and codecs

interface Scheme {
  name: string;
  cut(frame: Buffer): Buffer[];
}

function fixed(size: number): (frame: Buffer) => Buffer[] {
  return (frame) => {
    const out: Buffer[] = [];
    for (let at = 0; at < frame.length; at += size) out.push(frame.subarray(at, Math.min(frame.length, at + size)));
    return out;
  };
}

function cdc(chunker: FastCdc): (frame: Buffer) => Buffer[] {
  return (frame) => {
    const out: Buffer[] = [];
    let at = 0;
    for (const n of chunker.lengths(frame)) out.push(frame.subarray(at, (at += n)));
    return out;
  };
}

const cdcIn4M = (min: number, avg: number, max: number): Scheme => ({
  name: `CDC ${min / KiB}K/${avg >= MiB ? `${avg / MiB}M` : `${avg / KiB}K`}/${max >= MiB ? `${max / MiB}M` : `${max / KiB}K`} in 4 MiB pages`,
  cut: cdc(new FastCdc({ minSize: min, avgSize: avg, maxSize: max })),
});

const ALL_SCHEMES: Scheme[] = [
  { name: 'page 4 MiB', cut: fixed(4 * MiB) },
  { name: 'page 1 MiB', cut: fixed(1 * MiB) },
  cdcIn4M(256 * KiB, 1 * MiB, 4 * MiB),
  cdcIn4M(64 * KiB, 256 * KiB, 1 * MiB),
];

/** #15's chunk-size choice: three FastCDC sets, against whole 4 MiB pages (the baseline). */
const CHUNK_SETS: Scheme[] = [{ name: 'page 4 MiB', cut: fixed(4 * MiB) }, cdcIn4M(32 * KiB, 128 * KiB, 512 * KiB), cdcIn4M(64 * KiB, 256 * KiB, 1 * MiB), cdcIn4M(128 * KiB, 512 * KiB, 2 * MiB)];

let SCHEMES: Scheme[] = ALL_SCHEMES;

interface Codec {
  name: string;
  compress(plain: Buffer): Uint8Array;
  decompress(packed: Uint8Array, plainLength: number): Uint8Array;
}

const ALL_CODECS: Codec[] = [
  { name: 'stored', compress: (p) => p, decompress: (p) => p },
  { name: 'lz4', compress: (p) => compressSync(p), decompress: (p) => uncompressSync(Buffer.from(p.buffer, p.byteOffset, p.byteLength)) },
  { name: 'zstd-1', compress: (p) => zstdCompress(p, 1), decompress: (p) => zstdDecompress(p) },
  { name: 'zstd-3', compress: (p) => zstdCompress(p, 3), decompress: (p) => zstdDecompress(p) },
];
let CODECS: Codec[] = ALL_CODECS;
const BASELINE = { scheme: 'page 4 MiB', codec: 'lz4' };

const ZERO = Buffer.alloc(FRAME);
const isZero = (b: Buffer): boolean => b.equals(ZERO.subarray(0, b.length));
const contentKey = (b: Buffer): string => createHash('sha256').update(b).digest('base64');

const PROBE = 64 * KiB;

/** The writer's rule (FORMAT.md §6.2, per codec): a large chunk whose middle sample does not shrink 3 % is stored. */
function encode(codec: Codec, plain: Buffer): { packed: Uint8Array | undefined; bytes: number } {
  if (codec.name === 'stored') return { packed: undefined, bytes: plain.length };
  if (plain.length >= 4 * PROBE) {
    const at = Math.floor((plain.length - PROBE) / 2 / 512) * 512;
    if (codec.compress(plain.subarray(at, at + PROBE)).length > PROBE * 0.97) return { packed: undefined, bytes: plain.length };
  }
  const packed = codec.compress(plain);
  return packed.length < plain.length ? { packed, bytes: packed.length } : { packed: undefined, bytes: plain.length };
}

// ---------------------------------------------------------------------------------------------------
// Measurement

interface CodecResult {
  codec: string;
  storedBytes: number;
  compressMs: number;
  decompressMs: number;
  nextNewStoredBytes: number;
}

interface SchemeResult {
  scheme: string;
  chunks: number;
  zeroChunks: number;
  nonZeroBytes: number;
  uniqueChunks: number;
  uniqueBytes: number;
  chunkMs: number;
  nextNewChunks: number;
  nextNewBytes: number;
  codecs: CodecResult[];
}

interface DiskResult {
  disk: Disk;
  allocatedFrames: number;
  changedFrames: number;
  touchedBytes: number;
  schemes: SchemeResult[];
}

function measureScheme(scheme: Scheme, disk: Disk, next: Generation): SchemeResult {
  const unique = new Map<string, Buffer>();
  let chunks = 0;
  let zeroChunks = 0;
  let nonZeroBytes = 0;
  let chunkMs = 0;
  for (const f of [...disk.frames.keys()].sort((a, b) => a - b)) {
    const t = performance.now();
    const pieces = scheme.cut(disk.frames.get(f)!);
    chunkMs += performance.now() - t;
    for (const piece of pieces) {
      if (isZero(piece)) {
        zeroChunks++;
        continue;
      }
      chunks++;
      nonZeroBytes += piece.length;
      const key = contentKey(piece);
      if (!unique.has(key)) unique.set(key, piece);
    }
  }
  // The next generation: only changed frames are read; their chunks not stored before are new.
  const fresh = new Map<string, Buffer>();
  for (const f of next.changed) {
    for (const piece of scheme.cut(next.frames.get(f)!)) {
      if (isZero(piece)) continue;
      const key = contentKey(piece);
      if (!unique.has(key) && !fresh.has(key)) fresh.set(key, piece);
    }
  }
  const uniqueChunks = [...unique.values()];
  const freshChunks = [...fresh.values()];
  const codecs = CODECS.map((codec) => measureCodec(codec, uniqueChunks, freshChunks));
  const sum = (list: Buffer[]): number => list.reduce((s, b) => s + b.length, 0);
  return {
    scheme: scheme.name,
    chunks,
    zeroChunks,
    nonZeroBytes,
    uniqueChunks: uniqueChunks.length,
    uniqueBytes: sum(uniqueChunks),
    chunkMs,
    nextNewChunks: freshChunks.length,
    nextNewBytes: sum(freshChunks),
    codecs,
  };
}

/** Timed passes per codec; the fastest is reported (the machine is shared, so a slow pass is noise). `--passes=` sets it. */
let PASSES = 3;

function measureCodec(codec: Codec, chunks: Buffer[], fresh: Buffer[]): CodecResult {
  // Warm up first (WebAssembly memory growth, lazy native init) so the first chunk is not timed cold.
  for (const chunk of chunks.slice(0, 2)) codec.decompress(codec.compress(chunk), chunk.length);
  let packed: Array<Uint8Array | undefined> = [];
  let storedBytes = 0;
  let compressMs = Infinity;
  let decompressMs = Infinity;
  for (let pass = 0; pass < PASSES; pass++) {
    let t = performance.now();
    packed = [];
    storedBytes = 0;
    for (const chunk of chunks) {
      const e = encode(codec, chunk);
      packed.push(e.packed);
      storedBytes += e.bytes;
    }
    compressMs = Math.min(compressMs, performance.now() - t);
    t = performance.now();
    const restored: Array<Uint8Array | undefined> = packed.map((p, k) => (p ? codec.decompress(p, chunks[k].length) : undefined));
    decompressMs = Math.min(decompressMs, performance.now() - t);
    restored.forEach((r, k) => {
      if (r && !Buffer.from(r.buffer, r.byteOffset, r.byteLength).equals(chunks[k])) throw new Error(`${codec.name} did not round-trip chunk ${k}`);
    });
  }
  const nextNewStoredBytes = fresh.reduce((s, chunk) => s + encode(codec, chunk).bytes, 0);
  return { codec: codec.name, storedBytes, compressMs, decompressMs, nextNewStoredBytes };
}

function measureDisk(disk: Disk, o: Options): DiskResult {
  const next = nextGeneration(disk, o.changePercent, o.shiftPercent);
  const schemes = SCHEMES.map((scheme) => {
    process.stderr.write(`  ${disk.key}: ${scheme.name}\n`);
    return measureScheme(scheme, disk, next);
  });
  return { disk, allocatedFrames: disk.frames.size, changedFrames: next.changed.length, touchedBytes: next.touchedBytes, schemes };
}

// ---------------------------------------------------------------------------------------------------
// Report

const mib = (n: number): string => (n / MiB).toFixed(1);
const rate = (bytes: number, ms: number): string => (ms < 0.5 ? '—' : ((bytes / MiB) / (ms / 1000)).toFixed(0));
const ratio = (n: number, base: number): string => (base > 0 ? (n / base).toFixed(3) : '—');

function baselineOf(r: DiskResult): CodecResult {
  return r.schemes.find((s) => s.scheme === BASELINE.scheme)!.codecs.find((c) => c.codec === BASELINE.codec)!;
}

function diskTables(r: DiskResult): string {
  const base = baselineOf(r);
  const lines: string[] = [];
  lines.push(`### ${r.disk.label}`, '');
  lines.push(
    `Allocated 4 MiB pages: ${r.allocatedFrames} (${mib(r.allocatedFrames * FRAME)} MiB read). Next generation: ${r.changedFrames} pages changed ` +
      `(${mib(r.changedFrames * FRAME)} MiB of 4 MiB pages; ${mib(r.touchedBytes)} MiB of bytes written or shifted).`,
    '',
  );
  lines.push('| scheme | chunks | avg KiB | zero chunks | unique MiB | dedupe saves | chunking MiB/s | next gen: new chunks | new MiB | new ÷ changed pages |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of r.schemes) {
    lines.push(
      `| ${s.scheme} | ${s.chunks} | ${s.chunks ? (s.nonZeroBytes / s.chunks / KiB).toFixed(0) : '—'} | ${s.zeroChunks} | ${mib(s.uniqueBytes)} | ` +
        `${s.nonZeroBytes ? (100 * (1 - s.uniqueBytes / s.nonZeroBytes)).toFixed(1) : '0'} % | ${s.scheme.startsWith('CDC') ? rate(s.nonZeroBytes, s.chunkMs) : '—'} | ` +
        `${s.nextNewChunks} | ${mib(s.nextNewBytes)} | ${ratio(s.nextNewBytes, r.changedFrames * FRAME)} |`,
    );
  }
  lines.push('');
  lines.push(`Stored bytes after dedupe and compression; ratios against ${BASELINE.codec} over whole ${BASELINE.scheme.replace('page ', '')} pages of the same run (first generation ${mib(base.storedBytes)} MiB, next generation's new data ${mib(base.nextNewStoredBytes)} MiB).`, '');
  lines.push('| scheme | codec | stored MiB | ÷ baseline | compress MiB/s | decompress MiB/s | next gen new MiB | ÷ baseline |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const s of r.schemes) {
    for (const c of s.codecs) {
      lines.push(
        `| ${s.scheme} | ${c.codec} | ${mib(c.storedBytes)} | ${ratio(c.storedBytes, base.storedBytes)} | ${c.codec === 'stored' ? '—' : rate(s.uniqueBytes, c.compressMs)} | ` +
          `${c.codec === 'stored' ? '—' : rate(s.uniqueBytes, c.decompressMs)} | ${mib(c.nextNewStoredBytes)} | ${ratio(c.nextNewStoredBytes, base.nextNewStoredBytes)} |`,
      );
    }
  }
  lines.push('');
  return lines.join('\n');
}

function summaryTable(results: DiskResult[]): string {
  const lines = ['### All disks together', '', '| scheme | codec | stored MiB | ÷ baseline | next gen new MiB | ÷ baseline | index entries (first gen) |', '|---|---|---:|---:|---:|---:|---:|'];
  const baseStored = results.reduce((s, r) => s + baselineOf(r).storedBytes, 0);
  const baseNext = results.reduce((s, r) => s + baselineOf(r).nextNewStoredBytes, 0);
  for (const scheme of SCHEMES) {
    for (const codec of CODECS) {
      let stored = 0;
      let next = 0;
      let entries = 0;
      for (const r of results) {
        const s = r.schemes.find((x) => x.scheme === scheme.name)!;
        const c = s.codecs.find((x) => x.codec === codec.name)!;
        stored += c.storedBytes;
        next += c.nextNewStoredBytes;
        entries += s.uniqueChunks;
      }
      lines.push(`| ${scheme.name} | ${codec.name} | ${mib(stored)} | ${ratio(stored, baseStored)} | ${mib(next)} | ${ratio(next, baseNext)} | ${entries} |`);
    }
  }
  lines.push('');
  return lines.join('\n');
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** The version installed (the zstd package's `exports` hide its package.json from require.resolve). */
async function installedVersion(name: string): Promise<string> {
  const file = path.resolve(__dirname, '..', 'node_modules', name, 'package.json');
  return (JSON.parse(await fs.readFile(file, 'utf8')) as { version: string }).version;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  SCHEMES = o.schemes === 'chunk-sets' ? CHUNK_SETS : ALL_SCHEMES;
  PASSES = o.passes;
  CODECS = ALL_CODECS.filter((c) => o.codecs.includes(c.name));
  await zstdInit();
  const started = new Date();
  // Read now: the tree may change while the run goes on.
  const revision = `${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain']) ? ' (with uncommitted changes)' : ''} (branch ${git(['rev-parse', '--abbrev-ref', 'HEAD'])})`;
  const results: DiskResult[] = [];
  for (const key of o.disks) {
    process.stderr.write(`disk ${key}: generating\n`);
    const disk = await benchDisk(key, o);
    results.push(measureDisk(disk, o));
  }
  const zstdVersion = await installedVersion('@bokuweb/zstd-wasm');
  const lz4Version = await installedVersion('lz4-napi');
  const header = [
    `# Format-2 measurements, ${started.toISOString().slice(0, 10)}`,
    '',
    `- revision: ${revision}`,
    `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, ${os.platform()} ${os.release()}; node ${process.version} (the \`node\` kind of /work/.library/env: 2 cores shared with other sessions, so speeds are noisy)`,
    `- date: ${started.toISOString()}, took ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s; load average at the end ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} (1 / 5 / 15 min)`,
    `- command: \`npm run bench:format2 -- ${process.argv.slice(2).join(' ')}\``,
    `- codecs: lz4-napi ${lz4Version} (block format), @bokuweb/zstd-wasm ${zstdVersion} (zstd in WebAssembly, single thread); chunker: bench/lib/fastcdc.ts (FastCDC 2016, NC 2)`,
    `- every scheme dedupes by SHA-256 of the chunk over the whole disk; all-zero chunks are holes (not stored); compression per unique chunk with the v1 rule (a chunk ≥ 256 KiB whose middle 64 KiB does not shrink 3 % is stored; so is one that does not shrink). Speeds are MiB of plaintext (all unique chunks, stored ones included) per second of one thread, the fastest of ${PASSES} passes; — where nothing was compressed.`,
    `- next generation: ${o.changePercent} % of the allocated 4 MiB pages changed: ${100 - o.shiftPercent} % of them overwritten in place (4–256 KiB, 4 KiB aligned), ${o.shiftPercent} % with 1–8192 bytes inserted and the rest of the page shifted; "new" = chunks of the changed pages not already stored.`,
    '',
  ].join('\n');
  const body = results.map(diskTables).join('\n') + '\n' + summaryTable(results);
  const text = header + '\n' + body;
  process.stdout.write(text + '\n');
  await fs.mkdir(path.dirname(o.out), { recursive: true });
  await fs.writeFile(o.out, text + '\n');
  process.stderr.write(`written to ${o.out}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
