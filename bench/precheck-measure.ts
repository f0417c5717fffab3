/**
 * The codec pre-check (#15 speed, docs/FORMAT.md §16) against plain zstd on every chunk: stored bytes and
 * codec time over the FastCDC chunks of bench disks a and b (--mib each) and of real files of this machine.
 * `npx ts-node --transpile-only bench/precheck-measure.ts [--mib 256] [--files /usr/lib]`
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { chunkLengths, DEFAULT_CHUNKING, gearTable, mayCompress, MiB, zstdBinding, zstdEncodeSync, zstdReady } from '../core';
import { regionBytes, type DiskRegion } from '../testkit/sample-disk';
import { fullMixed, fullRandom } from './lib/disks';

const argv = process.argv.slice(2);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const MIB = Number(option('mib') ?? 256);
const FILES = option('files') ?? '/usr/lib';

function diskBytes(regions: DiskRegion[], bytes: number): Buffer {
  return Buffer.concat(regions.map((r) => regionBytes(r, r.offset, Math.min(r.length, bytes - r.offset))));
}

/** Up to `bytes` of the files under `dir` (depth first, sorted), as a disk would hold them. */
function filesBytes(dir: string, bytes: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (total >= bytes) return;
      const full = path.join(d, name);
      const st = statSync(full, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(full);
      else if (st.isFile() && st.size > 0) {
        const b = readFileSync(full);
        parts.push(b);
        total += b.length;
      }
    }
  };
  walk(dir);
  return Buffer.concat(parts).subarray(0, bytes);
}

function measure(name: string, data: Buffer): string {
  const gear = gearTable(Buffer.alloc(32, 1));
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += 4 * MiB) {
    const page = data.subarray(at, at + 4 * MiB);
    let o = 0;
    for (const len of chunkLengths(page, DEFAULT_CHUNKING, gear)) {
      const c = page.subarray(o, o + len);
      o += len;
      if (c.some((x) => x !== 0)) chunks.push(c);
    }
  }
  const size = (c: Buffer) => Math.min(c.length, zstdEncodeSync(c).length);
  let t = performance.now();
  const plain = chunks.reduce((s, c) => s + size(c), 0);
  const plainMs = performance.now() - t;
  t = performance.now();
  let skipped = 0;
  const checked = chunks.reduce((s, c) => {
    if (mayCompress(c)) return s + size(c);
    skipped++;
    return s + c.length;
  }, 0);
  const checkedMs = performance.now() - t;
  const pct = ((checked - plain) / plain) * 100;
  return `| ${name} | ${(data.length / MiB).toFixed(0)} | ${chunks.length} | ${skipped} | ${(plain / MiB).toFixed(2)} | ${(checked / MiB).toFixed(2)} | ${pct >= 0 ? '+' : ''}${pct.toFixed(3)} % | ${plainMs.toFixed(0)} | ${checkedMs.toFixed(0)} |`;
}

(async () => {
  await zstdReady();
  const bytes = MIB * MiB;
  console.log(`zstd binding: ${zstdBinding()}, level 3; chunks FastCDC 64K/256K/1M in 4 MiB pages, zero chunks left out\n`);
  console.log('| data | MiB | chunks | skipped by pre-check | zstd on all (MiB) | with pre-check (MiB) | stored Δ | zstd on all ms | with pre-check ms |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  console.log(measure('a) incompressible', diskBytes(fullRandom(bytes), bytes)));
  console.log(measure('b) mixed', diskBytes(fullMixed(bytes), bytes)));
  console.log(measure(`files under ${FILES}`, filesBytes(FILES, bytes)));
})();
