/**
 * Benchmark disks: layouts for (a) a fully allocated incompressible disk, (b) a fully allocated mixed
 * disk (text, random, zero, repeated pages, regions not aligned to pages) and (c) a large sparse disk
 * with ~2% allocated in scattered extents; and a fast writer (4 MiB Put Page requests, several in
 * flight) that also writes a local sparse image of the same bytes (the input of the restic reference)
 * and a digest of the allocated bytes (to check a restore).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { PageBlobClient } from '@azure/storage-blob';
// An internal the benchmark needs: the engine's lazy bounded fan-out (p-limit would queue every range up front).
import { forEachLimited } from '../../core/concurrency';
import { MiB } from '../../core';
import { DiskRegion, RegionKind, regionBytes } from '../../testkit/sample-disk';
import { prng } from '../../testkit/prng';

export interface DiskSpec {
  key: string;
  label: string;
  diskBytes: number;
  regions: DiskRegion[];
}

function pick<T>(rand: () => number, weighted: Array<[T, number]>): T {
  const total = weighted.reduce((s, [, w]) => s + w, 0);
  let x = rand() * total;
  for (const [v, w] of weighted) if ((x -= w) < 0) return v;
  return weighted[weighted.length - 1][0];
}

/** (a) Every byte allocated, every byte random. */
export function fullRandom(diskBytes: number): DiskRegion[] {
  return [{ offset: 0, length: diskBytes, kind: 'random', seed: 11 }];
}

/**
 * (b) Every byte allocated, a realistic mix: text (OS files, logs) ~40%, random (media, encrypted or
 * compressed files) ~30%, explicitly written zeros ~12%, repeated content (copies of the same files,
 * dedupes inside a segment) ~18%. Region lengths 1..48 MiB (scaled with the disk), boundaries on 64 KiB,
 * so pages often straddle two kinds.
 */
export function fullMixed(diskBytes: number, seed = 5): DiskRegion[] {
  const rand = prng(seed);
  const scale = Math.max(1, diskBytes / (1024 * MiB));
  const regions: DiskRegion[] = [];
  let at = 0;
  let k = 0;
  while (at < diskBytes) {
    const kind = pick<RegionKind>(rand, [['text', 40], ['random', 30], ['zero', 12], ['repeat', 18]]);
    const want = Math.round(((1 + rand() * 47) * MiB * Math.min(scale, 1)) / 65536) * 65536 || 65536;
    const length = Math.min(want, diskBytes - at);
    // repeats share a few seeds so identical pages recur; others get fresh seeds
    regions.push({ offset: at, length, kind, seed: kind === 'repeat' ? 300 + (k % 3) : 1000 + k });
    at += length;
    k++;
  }
  return regions;
}

/**
 * (c) A big, mostly empty disk: extents of 4 KiB .. 8 MiB (log-uniform, 4 KiB aligned) scattered over
 * the whole disk until `fraction` of it is allocated. Content: text 40%, random 40%, repeat 10%, zero 10%.
 */
export function sparseScattered(diskBytes: number, fraction = 0.02, seed = 9): DiskRegion[] {
  const rand = prng(seed);
  const target = Math.round(diskBytes * fraction);
  const sizes: number[] = [];
  let total = 0;
  while (total < target) {
    const size = Math.min(target - total, Math.round(Math.exp(Math.log(4096) + rand() * (Math.log(8 * MiB) - Math.log(4096))) / 4096) * 4096 || 4096);
    const aligned = Math.max(4096, Math.floor(size / 4096) * 4096);
    sizes.push(aligned);
    total += aligned;
  }
  // One extent per equal slot of the disk, at a random 4 KiB-aligned place inside the slot.
  const slot = Math.floor(diskBytes / sizes.length / 4096) * 4096;
  const regions: DiskRegion[] = sizes.map((length, k) => {
    const room = Math.max(0, slot - length);
    const offset = k * slot + Math.floor((rand() * room) / 4096) * 4096;
    const kind = pick<RegionKind>(rand, [['text', 40], ['random', 40], ['repeat', 10], ['zero', 10]]);
    return { offset, length: Math.min(length, diskBytes - offset), kind, seed: kind === 'repeat' ? 77 : 5000 + k };
  });
  return regions.filter((r) => r.length > 0);
}

export interface WrittenDisk {
  spec: DiskSpec;
  allocatedBytes: number;
  /** SHA-256 over the allocated regions' bytes, in offset order (holes excluded). */
  allocatedDigest: string;
  /** Local sparse file with the same bytes at the same offsets. */
  imagePath: string;
  writeMs: number;
}

/**
 * Creates the page blob and writes every region in ≤ 4 MiB Put Page requests, `parallel` in flight,
 * generating the bytes in order (so the digest and the local image are built in the same pass).
 */
export async function writeBenchDisk(client: PageBlobClient, spec: DiskSpec, imagePath: string, parallel = 6): Promise<WrittenDisk> {
  const started = Date.now();
  await client.create(spec.diskBytes);
  const image = await fs.open(imagePath, 'w', 0o600);
  await image.truncate(spec.diskBytes);
  const hash = createHash('sha256');
  let allocatedBytes = 0;
  function* chunks(): Generator<{ region: DiskRegion; at: number; length: number }> {
    for (const region of [...spec.regions].sort((a, b) => a.offset - b.offset)) {
      for (let at = 0; at < region.length; at += 4 * MiB) yield { region, at, length: Math.min(4 * MiB, region.length - at) };
    }
  }
  try {
    await forEachLimited(chunks(), parallel, async ({ region, at, length }) => {
      const bytes = regionBytes(region, at, length); // generated synchronously, in order
      hash.update(bytes);
      allocatedBytes += length;
      const offset = region.offset + at;
      await Promise.all([client.uploadPages(bytes, offset, length), region.kind === 'zero' ? undefined : image.write(bytes, 0, length, offset)]);
    });
  } finally {
    await image.close();
  }
  return { spec, allocatedBytes, allocatedDigest: hash.digest('hex'), imagePath, writeMs: Date.now() - started };
}

/** SHA-256 over the given regions of a local file, in offset order (to check a restored image). */
export async function digestRegionsOfFile(file: string, regions: DiskRegion[]): Promise<string> {
  const hash = createHash('sha256');
  const fh = await fs.open(file, 'r');
  const buf = Buffer.allocUnsafe(4 * MiB);
  try {
    for (const region of [...regions].sort((a, b) => a.offset - b.offset)) {
      for (let at = 0; at < region.length; at += buf.length) {
        const n = Math.min(buf.length, region.length - at);
        let done = 0;
        while (done < n) {
          const { bytesRead } = await fh.read(buf, done, n - done, region.offset + at + done);
          if (bytesRead === 0) throw new Error(`${file} is shorter than expected`);
          done += bytesRead;
        }
        hash.update(buf.subarray(0, n));
      }
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}
