/**
 * Sample VM disks for the demo, tests and benchmarks: page blobs written region by region (Put Page
 * requests of at most 4 MiB) with deterministic content, plus the SHA-256 of the whole logical disk so a
 * restore can be checked byte for byte. Unwritten ranges stay unallocated (sparse holes).
 */
import { PageBlobClient } from '@azure/storage-blob';
import { MiB } from '../core';
import { DiskHash } from './disk-hash';

export type RegionKind = 'random' | 'text' | 'zero' | 'repeat';

export interface DiskRegion {
  offset: number;
  length: number;
  kind: RegionKind;
  seed?: number;
}

export interface SampleDisk {
  diskBytes: number;
  allocatedBytes: number;
  regions: DiskRegion[];
  sha256: string;
}

/** xorshift32: cheap deterministic bytes. */
function fillRandom(buf: Buffer, seed: number): void {
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
}

const WORDS = 'the quick brown fox jumps over lazy dog kernel inode block journal superblock etc passwd usr lib systemd'.split(' ');

function fillText(buf: Buffer, seed: number): void {
  let x = seed >>> 0 || 7;
  let at = 0;
  while (at < buf.length) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const word = WORDS[x % WORDS.length] + (x % 11 === 0 ? '\n' : ' ');
    at += buf.write(word, at, 'ascii');
  }
}

/** The bytes of one region (for `repeat`, the same 64 KiB pattern again and again). */
export function regionBytes(region: DiskRegion, from: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const seed = (region.seed ?? 1) + 0;
  switch (region.kind) {
    case 'zero':
      return buf;
    case 'random':
      fillRandom(buf, seed * 2654435761 + from / 512);
      return buf;
    case 'text':
      fillText(buf, seed * 40503 + from / 512);
      return buf;
    case 'repeat': {
      const pattern = Buffer.alloc(64 * 1024);
      fillRandom(pattern, seed * 97 + 13);
      for (let i = 0; i < length; i += pattern.length) pattern.copy(buf, i, 0, Math.min(pattern.length, length - i));
      return buf;
    }
  }
}

/** Creates the page blob and writes the regions (512-aligned, non-overlapping, ascending). */
export async function writeDisk(client: PageBlobClient, diskBytes: number, regions: DiskRegion[]): Promise<SampleDisk> {
  await client.create(diskBytes);
  const sorted = [...regions].sort((a, b) => a.offset - b.offset);
  let allocatedBytes = 0;
  sorted.forEach((region, k) => {
    const next = sorted[k + 1];
    if (next && region.offset + region.length > next.offset) throw new Error(`regions at ${region.offset} and ${next.offset} overlap`);
  });
  for (const region of sorted) {
    if (region.offset % 512 !== 0 || region.length % 512 !== 0 || region.offset + region.length > diskBytes) {
      throw new Error(`region ${region.offset}+${region.length} is not 512-aligned inside the disk`);
    }
    for (let at = 0; at < region.length; at += 4 * MiB) {
      const length = Math.min(4 * MiB, region.length - at);
      await client.uploadPages(regionBytes(region, at, length), region.offset + at, length);
    }
    allocatedBytes += region.length;
  }
  return { diskBytes, allocatedBytes, regions: sorted, sha256: diskSha256(diskBytes, sorted) };
}

/** SHA-256 of the logical disk: regions' bytes, zeros elsewhere. */
export function diskSha256(diskBytes: number, regions: DiskRegion[]): string {
  const disk = new DiskHash();
  for (const region of regions) {
    disk.zeroTo(region.offset);
    for (let r = 0; r < region.length; r += 4 * MiB) disk.update(regionBytes(region, r, Math.min(4 * MiB, region.length - r)));
  }
  return disk.digest(diskBytes);
}

/**
 * A realistic VM disk layout scaled to `diskBytes` (≥ 4 MiB): boot sector and partition table, a
 * text-heavy OS area, incompressible data (media, encrypted files), runs of explicitly written zeros,
 * repeated pages (copies of the same file), tiny scattered metadata writes, and large unallocated holes.
 * About 20% of the disk is allocated.
 */
export function sampleVmLayout(diskBytes: number, seed = 1): DiskRegion[] {
  const unit = Math.floor(diskBytes / 64 / 65536) * 65536; // 1/64 of the disk, 64 KiB-aligned
  if (unit < 65536) throw new Error('the sample VM layout needs a disk of at least 4 MiB');
  const regions: DiskRegion[] = [
    { offset: 0, length: 64 * 1024, kind: 'text', seed },                         // boot + partition table
    { offset: 1 * MiB, length: 3 * unit, kind: 'text', seed: seed + 1 },          // OS files
    { offset: 1 * MiB + 3 * unit, length: unit, kind: 'zero' },                    // zeroed, still allocated
    { offset: 8 * unit, length: 3 * unit, kind: 'random', seed: seed + 2 },       // incompressible data
    { offset: 16 * unit, length: 2 * unit, kind: 'repeat', seed: seed + 3 },      // repeated pages
    { offset: 24 * unit, length: unit, kind: 'text', seed: seed + 4 },            // logs
    { offset: 40 * unit, length: 2 * unit, kind: 'repeat', seed: seed + 3 },      // another copy of the same
    { offset: 56 * unit, length: unit, kind: 'random', seed: seed + 5 },
  ];
  // Tiny scattered metadata writes (512 B .. 4 KiB) in the holes between.
  const stride = Math.max(8192, Math.floor((12 * unit) / 24 / 8192) * 8192);
  for (let k = 0; k < 24; k++) {
    regions.push({ offset: 44 * unit + k * stride + (k % 3) * 512, length: 512 * (1 + (k % 8)), kind: k % 2 ? 'text' : 'random', seed: seed + 100 + k });
  }
  regions.push({ offset: diskBytes - 64 * 1024, length: 64 * 1024, kind: 'random', seed: seed + 6 }); // backup GPT header
  return regions.sort((a, b) => a.offset - b.offset);
}
