/** A page-blob disk that changes night by night as a server's does, with an in-memory image to check restores against. */
import { createHash } from 'node:crypto';
import { PageBlobClient } from '@azure/storage-blob';
import { prng } from './prng';
import { RegionKind, regionBytes } from './sample-disk';

/** What one night changes (pages of the engine's page size). */
export interface ChangePattern {
  /** Pages rewritten in part every night (a database, logs): the same pages, new bytes. */
  hotPages: number;
  /** Other allocated pages rewritten in part (files edited). */
  rewrites: number;
  /** Holes written whole (the disk fills up: new files). */
  added: number;
  /** Allocated pages cleared back to a hole (files deleted, trimmed). */
  zeroed: number;
}

export interface NightChange {
  rewritten: number;
  added: number;
  zeroed: number;
  bytesWritten: number;
}

const KINDS: RegionKind[] = ['text', 'text', 'random', 'repeat'];
/** Put Page takes at most 4 MiB. */
const MAX_PUT = 4 * 1024 * 1024;

export class NightlyDisk {
  readonly pageCount: number;
  private readonly allocated: boolean[];
  private readonly hot: number[];
  private readonly rand: () => number;

  private constructor(
    readonly client: PageBlobClient,
    readonly image: Buffer,
    readonly pageSize: number,
    seed: number,
  ) {
    this.pageCount = image.length / pageSize;
    this.allocated = new Array<boolean>(this.pageCount).fill(false);
    this.hot = [];
    this.rand = prng(seed);
  }

  /**
   * Creates the page blob with `allocatedFraction` of its pages written (random places, text, random
   * and repeated content) and `hotPages` of them chosen as the nightly hot set.
   */
  static async create(client: PageBlobClient, diskBytes: number, pageSize: number, o: { allocatedFraction: number; hotPages: number; seed: number }): Promise<NightlyDisk> {
    if (diskBytes % pageSize !== 0 || pageSize % 512 !== 0) throw new Error(`disk ${diskBytes} bytes is not whole pages of ${pageSize}`);
    const disk = new NightlyDisk(client, Buffer.alloc(diskBytes), pageSize, o.seed);
    await client.create(diskBytes);
    for (let p = 0; p < disk.pageCount; p++) {
      if (disk.rand() >= o.allocatedFraction) continue;
      disk.fill(p, 0, pageSize, KINDS[Math.floor(disk.rand() * KINDS.length)], o.seed * 100_003 + p);
      disk.allocated[p] = true;
    }
    // one Put Page per run of allocated pages (≤ 4 MiB)
    for (let p = 0; p < disk.pageCount; ) {
      if (!disk.allocated[p]) {
        p++;
        continue;
      }
      let end = p + 1;
      while (end < disk.pageCount && disk.allocated[end] && (end + 1 - p) * pageSize <= MAX_PUT) end++;
      await disk.put(p * pageSize, (end - p) * pageSize);
      p = end;
    }
    const candidates = disk.pagesWhere(true);
    while (disk.hot.length < Math.min(o.hotPages, candidates.length)) {
      const p = candidates[Math.floor(disk.rand() * candidates.length)];
      if (!disk.hot.includes(p)) disk.hot.push(p);
    }
    return disk;
  }

  get allocatedPages(): number {
    return this.allocated.filter(Boolean).length;
  }

  /** Applies one night's changes to the blob and the image (deterministic for the seed and the night). */
  async night(n: number, pattern: ChangePattern): Promise<NightChange> {
    const change: NightChange = { rewritten: 0, added: 0, zeroed: 0, bytesWritten: 0 };
    const touched = new Set<number>();
    const rewrite = async (p: number, kind: RegionKind) => {
      // an extent of 1/16 … the whole page, 512-aligned, somewhere in the page
      const sectors = this.pageSize / 512;
      const length = Math.max(1, Math.ceil(sectors * (1 / 16 + this.rand() * (15 / 16)))) * 512;
      const from = Math.floor(this.rand() * (sectors - length / 512 + 1)) * 512;
      this.fill(p, from, length, kind, n * 7919 + p);
      await this.put(p * this.pageSize + from, length);
      touched.add(p);
      change.rewritten++;
      change.bytesWritten += length;
    };
    for (const p of this.hot) if (this.allocated[p]) await rewrite(p, 'random');
    const cold = this.pagesWhere(true).filter((p) => !this.hot.includes(p));
    for (let k = 0; k < pattern.rewrites && cold.length > 0; k++) {
      const p = cold[Math.floor(this.rand() * cold.length)];
      if (!touched.has(p)) await rewrite(p, 'text');
    }
    const holes = this.pagesWhere(false);
    for (let k = 0; k < pattern.added && holes.length > 0; k++) {
      const p = holes.splice(Math.floor(this.rand() * holes.length), 1)[0];
      this.fill(p, 0, this.pageSize, KINDS[Math.floor(this.rand() * KINDS.length)], n * 104_729 + p);
      await this.put(p * this.pageSize, this.pageSize);
      this.allocated[p] = true;
      touched.add(p);
      change.added++;
      change.bytesWritten += this.pageSize;
    }
    const clearable = this.pagesWhere(true).filter((p) => !this.hot.includes(p) && !touched.has(p));
    for (let k = 0; k < pattern.zeroed && clearable.length > 0; k++) {
      const p = clearable.splice(Math.floor(this.rand() * clearable.length), 1)[0];
      await this.client.clearPages(p * this.pageSize, this.pageSize);
      this.image.fill(0, p * this.pageSize, (p + 1) * this.pageSize);
      this.allocated[p] = false;
      change.zeroed++;
    }
    return change;
  }

  /** SHA-256 of the whole logical disk (holes read as zeros), as a restore to a file must reproduce. */
  sha256(): string {
    return createHash('sha256').update(this.image).digest('hex');
  }

  private pagesWhere(allocated: boolean): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.pageCount; p++) if (this.allocated[p] === allocated) out.push(p);
    return out;
  }

  private fill(page: number, from: number, length: number, kind: RegionKind, seed: number): void {
    regionBytes({ offset: 0, length, kind, seed }, 0, length).copy(this.image, page * this.pageSize + from);
  }

  private async put(offset: number, length: number): Promise<void> {
    await this.client.uploadPages(this.image.subarray(offset, offset + length), offset, length);
  }
}
