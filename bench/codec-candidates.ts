/**
 * Codec candidates for version-2 blocks (#15): compress/decompress MiB/s and ratio of each zstd binding that
 * installs from the registry without a download, zstd-wasm levels 1/3/6 and lz4-napi, on one and on two
 * worker threads, over the FastCDC chunks of bench disk data; the chunker's and the chunk pool's MiB/s.
 * `npx ts-node --transpile-only bench/codec-candidates.ts [--mib 64] [--candidates DIR]` (DIR: a scratch
 * install of the registry candidates, one folder per package; see the results file).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { chunkLengths, chunkPoolFor, closeChunkPools, DEFAULT_CHUNKING, gearTable, Keyring, MiB } from '../core';
import { regionBytes, sampleVmLayout, type DiskRegion } from '../testkit/sample-disk';
import { fullMixed } from './lib/disks';

const ROOT = path.resolve(__dirname, '..');

/** What the registry holds and why a binding is or is not a candidate (checked 2026-12-01 with `npm view <pkg> scripts` and `npm install --ignore-scripts` in a scratch folder). */
const REGISTRY = [
  ['@bokuweb/zstd-wasm 0.0.27', 'yes (in use)', 'WebAssembly in the tarball, no install script'],
  ['@toondepauw/node-zstd 2.0.0', 'yes', 'napi-rs: the binary ships in the optional package @toondepauw/node-zstd-linux-x64-gnu, no install script; sync and async (libuv pool) calls'],
  ['@mongodb-js/zstd 1.2.2', 'yes', 'napi-rs: binary in @mongodb-js/zstd-linux-x64-gnu, no install script; async calls only (libuv pool)'],
  ['@mongodb-js/zstd 7.0.0 (latest)', 'no', 'install runs `prebuild-install` (a download) else node-gyp with `etc/install-zstd.sh`; with --ignore-scripts: "Cannot find module ../build/Debug/zstd.node"'],
  ['zstd-napi 0.0.13', 'no', 'install runs `prebuild-install -r napi || node-gyp rebuild`: no binary in the tarball; with --ignore-scripts: "Cannot find module ./build/Release/binding.node"'],
  ['zstd-codec 0.1.5', 'yes', 'Emscripten build (asm.js and WebAssembly) in the tarball, no install script'],
  ['@hpcc-js/wasm-zstd 1.12.5', 'yes', 'WebAssembly bundled in the tarball, no install script'],
  ['cppzst 2.0.12, fast-zstd 1.0.5', 'no', 'node-gyp / make of bundled sources at install (a compiler; not a prebuilt binary)'],
  ['simple-zstd, zstd.ts', 'no', 'spawn the system `zstd` program: not in-process, and a dependency on the host'],
  ['node:zlib zstd', 'no', 'only from Node 22.15 / 23.8; Pagewise runs on Node 20'],
] as const;

interface Candidate {
  name: string;
  /** JavaScript run in each worker: defines `codec = { c(buf), d(buf, size) }` (may be async); `req(name)` resolves a package. */
  setup: string;
  /** Where its package is: the repository's node_modules or the candidates folder. */
  needs: string;
}

function candidates(dir: string): Candidate[] {
  const zstdWasm = (level: number): Candidate => ({
    name: `zstd-wasm level ${level}`,
    needs: path.join(ROOT, 'node_modules', '@bokuweb/zstd-wasm'),
    setup: `const z = require(NEEDS); await z.init(); codec = { c: (b) => z.compress(b, ${level}), d: (b) => z.decompress(b) };`,
  });
  return [
    zstdWasm(1),
    zstdWasm(3),
    zstdWasm(6),
    { name: 'lz4-napi', needs: path.join(ROOT, 'node_modules', 'lz4-napi'), setup: `const l = require(NEEDS); codec = { c: (b) => l.compressSync(b), d: (b) => l.uncompressSync(b) };` },
    {
      name: '@toondepauw/node-zstd level 3 (sync)',
      // a dependency since #15 speed (the writer's binding): the repository's own install
      needs: path.join(ROOT, 'node_modules', '@toondepauw', 'node-zstd'),
      setup: `const z = require(NEEDS); const e = new z.Encoder(3); const d = new z.Decoder(); codec = { c: (b) => e.encodeSync(b), d: (b) => d.decodeSync(b) };`,
    },
    {
      name: '@mongodb-js/zstd 1.2.2 level 3 (async, one call at a time)',
      needs: path.join(dir, '_mongodb-js_zstd_1.2.2', 'node_modules', '@mongodb-js', 'zstd'),
      setup: `const z = require(NEEDS); codec = { c: (b) => z.compress(b, 3), d: (b) => z.decompress(b) };`,
    },
    {
      name: 'zstd-codec level 3',
      needs: path.join(dir, 'zstd-codec_0.1.5', 'node_modules', 'zstd-codec'),
      setup: `const { ZstdCodec } = require(NEEDS); const s = await new Promise((r) => ZstdCodec.run((z) => r(new z.Simple()))); codec = { c: (b) => s.compress(b, 3), d: (b) => s.decompress(b) };`,
    },
    {
      name: '@hpcc-js/wasm-zstd level 3',
      needs: path.join(dir, '_hpcc-js_wasm-zstd_1.12.5', 'node_modules', '@hpcc-js', 'wasm-zstd'),
      setup: `const { Zstd } = require(NEEDS); const z = await Zstd.load(); codec = { c: (b) => z.compress(b, 3), d: (b) => z.decompress(b) };`,
    },
  ];
}

/** One worker: sets the codec up, compresses its chunks (fastest of `passes`), decompresses the outputs, checks them. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const NEEDS = workerData.needs;
  let codec;
  ${'${SETUP}'}
  const chunks = workerData.chunks.map((c) => Buffer.from(c));
  let best = { c: Infinity, d: Infinity }, outBytes = 0;
  for (let pass = 0; pass < workerData.passes; pass++) {
    parentPort.postMessage('ready');
    await new Promise((r) => parentPort.once('message', r));
    let t = performance.now();
    const outs = [];
    for (const c of chunks) outs.push(Buffer.from(await codec.c(c)));
    const ct = performance.now() - t;
    t = performance.now();
    for (let i = 0; i < outs.length; i++) {
      const back = Buffer.from(await codec.d(outs[i], chunks[i].length));
      if (!back.equals(chunks[i])) throw new Error('round trip differs');
    }
    const dt = performance.now() - t;
    best = { c: Math.min(best.c, ct), d: Math.min(best.d, dt) };
    outBytes = outs.reduce((s, o, i) => s + Math.min(o.length, chunks[i].length), 0);
  }
  parentPort.postMessage({ best, outBytes });
})().catch((e) => parentPort.postMessage({ error: String(e && e.message || e) }));
`;

interface Measured {
  compressMiBs: number;
  decompressMiBs: number;
  ratio: number;
}

/** Runs `threads` workers on equal shares of `chunks`, started together; MiB/s = all bytes over the slowest worker's time. */
async function measure(c: Candidate, chunks: Buffer[], threads: number, passes: number): Promise<Measured> {
  const shares: Buffer[][] = Array.from({ length: threads }, () => []);
  chunks.forEach((ch, i) => shares[i % threads].push(ch));
  const code = WORKER.replace('${SETUP}', c.setup);
  const workers = shares.map((share) => new Worker(code, { eval: true, workerData: { needs: c.needs, passes, chunks: share.map((b) => new Uint8Array(b)) } }));
  // each pass starts when every worker is ready, so two threads really run at once
  const results = await new Promise<{ best: { c: number; d: number }; outBytes: number }[]>((resolve, reject) => {
    const done: ({ best: { c: number; d: number }; outBytes: number } | undefined)[] = workers.map(() => undefined);
    let ready = 0;
    workers.forEach((w, i) => {
      w.on('error', reject);
      w.on('message', (m) => {
        if (m === 'ready') {
          if (++ready % threads === 0) workers.forEach((x) => x.postMessage('go'));
        } else if (m.error) reject(new Error(m.error));
        else {
          done[i] = m;
          if (done.every(Boolean)) resolve(done as { best: { c: number; d: number }; outBytes: number }[]);
        }
      });
    });
  });
  await Promise.all(workers.map((w) => w.terminate()));
  const bytes = chunks.reduce((s, ch) => s + ch.length, 0);
  const slowest = (k: 'c' | 'd') => Math.max(...results.map((r) => r.best[k])) / 1000;
  return { compressMiBs: bytes / MiB / slowest('c'), decompressMiBs: bytes / MiB / slowest('d'), ratio: results.reduce((s, r) => s + r.outBytes, 0) / bytes };
}

/** `mib` MiB of a bench disk's layout: 4 MiB pages spread evenly over the whole disk. */
function diskData(regions: DiskRegion[], diskBytes: number, mib: number): Buffer {
  const pages = Math.max(1, Math.floor(mib / 4));
  const out = Buffer.alloc(pages * 4 * MiB);
  for (let k = 0; k < pages; k++) {
    const from = Math.floor((k * diskBytes) / pages / (4 * MiB)) * 4 * MiB;
    const to = from + 4 * MiB;
    for (const r of regions) {
      const a = Math.max(r.offset, from);
      const b = Math.min(r.offset + r.length, to);
      if (a < b) regionBytes(r, a - r.offset, b - a).copy(out, k * 4 * MiB + (a - from));
    }
  }
  return out;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string, dflt: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
  const mib = Number(opt('--mib', '64'));
  const dir = opt('--candidates', '/tmp/zc');
  const passes = Number(opt('--passes', '2'));
  const keyring = Keyring.create();
  const gear = gearTable(keyring.key('name'));
  const disks = [
    { key: 'b', label: 'mixed (bench disk b)', data: diskData(fullMixed(1024 * MiB), 1024 * MiB, mib) },
    { key: 'vm', label: 'sample VM (bench disk vm)', data: diskData(sampleVmLayout(4096 * MiB), 4096 * MiB, mib) },
  ];
  const lines: string[] = [];
  const log = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  let revision = 'unknown';
  try {
    revision = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim();
  } catch {
    /* not a checkout */
  }
  log(`# Codec candidates for version-2 blocks (#15)\n`);
  log(`- date: ${new Date().toISOString()}; revision ${revision}; node ${process.version}`);
  log(`- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; load average at start ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} (shared with other jobs: compare within this run only)`);
  log(`- command: \`npx ts-node --transpile-only bench/codec-candidates.ts ${argv.join(' ')}\``);
  log(`- data: ${mib} MiB of each disk (4 MiB pages spread evenly over it), cut by FastCDC ${DEFAULT_CHUNKING.min / 1024}K/${DEFAULT_CHUNKING.avg / 1024}K/${DEFAULT_CHUNKING.max / 1024}K inside 4 MiB pages (zero chunks left out); fastest of ${passes} passes; MiB/s of plaintext; ratio = stored ÷ plaintext with §16's "not smaller → stored"\n`);
  log(`## Which bindings install from the registry without downloading anything else\n`);
  log(`| package | candidate | why |`);
  log(`|---|---|---|`);
  for (const [pkg, ok, why] of REGISTRY) log(`| ${pkg} | ${ok} | ${why} |`);

  for (const disk of disks) {
    log(`\n## ${disk.label}\n`);
    const chunks: Buffer[] = [];
    let best = Infinity;
    for (let pass = 0; pass < 3; pass++) {
      chunks.length = 0;
      const t = performance.now();
      for (let at = 0; at < disk.data.length; at += 4 * MiB) {
        const page = disk.data.subarray(at, at + 4 * MiB);
        let off = 0;
        for (const n of chunkLengths(page, DEFAULT_CHUNKING, gear)) {
          const ch = page.subarray(off, off + n);
          off += n;
          if (!ch.equals(Buffer.alloc(n))) chunks.push(ch);
        }
      }
      best = Math.min(best, performance.now() - t);
    }
    log(`chunker (chunkLengths + zero check, main thread): **${(mib / (best / 1000)).toFixed(0)} MiB/s**; ${chunks.length} non-zero chunks, average ${(chunks.reduce((s, c) => s + c.length, 0) / chunks.length / 1024).toFixed(0)} KiB\n`);
    log(`| codec | ratio | compress 1 thread | compress 2 threads | decompress 1 thread | decompress 2 threads |`);
    log(`|---|---:|---:|---:|---:|---:|`);
    for (const c of candidates(dir)) {
      if (!existsSync(c.needs)) {
        log(`| ${c.name} | not installed at ${c.needs} | | | | |`);
        continue;
      }
      try {
        const one = await measure(c, chunks, 1, passes);
        const two = await measure(c, chunks, 2, passes);
        log(`| ${c.name} | ${one.ratio.toFixed(3)} | ${one.compressMiBs.toFixed(0)} | ${two.compressMiBs.toFixed(0)} | ${one.decompressMiBs.toFixed(0)} | ${two.decompressMiBs.toFixed(0)} |`);
      } catch (err) {
        log(`| ${c.name} | fails: ${(err as Error).message.slice(0, 80)} | | | | |`);
      }
    }
    // The whole pool path (chunk + name + pre-check + zstd-3 + seal), pages 4 at a time.
    for (const threads of ['0', '2']) {
      process.env.PAGEWISE_WORKER_THREADS = threads;
      const pool = chunkPoolFor(keyring);
      await pool.chunkPage(randomBytes(1024), DEFAULT_CHUNKING); // start the workers outside the timing
      const t = performance.now();
      const pages = Array.from({ length: disk.data.length / (4 * MiB) }, (_, i) => disk.data.subarray(i * 4 * MiB, (i + 1) * 4 * MiB));
      for (let i = 0; i < pages.length; i += 4) {
        await Promise.all(pages.slice(i, i + 4).map(async (p) => pool.encodeChunks(p, (await pool.chunkPage(p, DEFAULT_CHUNKING)).filter((c) => c.contentId), 'zstd')));
      }
      log(`${threads === '0' ? '\n' : ''}chunk pool, chunkPage + encodeChunks (zstd-3, sealed), ${threads} worker threads: **${(mib / ((performance.now() - t) / 1000)).toFixed(0)} MiB/s**`);
    }
  }
  await closeChunkPools();
  const out = opt('--out', path.join(ROOT, 'bench', 'results', 'codec-candidates-2026-12-01.md'));
  writeFileSync(out, `${lines.join('\n')}\n`);
  console.log(`written ${out}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
