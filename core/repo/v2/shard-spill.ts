/**
 * Fixed-size records spilled to 256 local files by their first byte, then read back one shard at a time,
 * sorted: how Pagewise sorts or aggregates more records than it may hold in memory (index compaction and
 * rebuild, vault usage). Records are keyed content IDs (uniformly random), so shards come out about equal;
 * memory is the write buffers (256 × SPILL_BUFFER_BYTES) plus one shard at a time.
 * The files live in a private scratch directory (mode 0700, removed on dispose or at exit).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createScratchDir, ScratchDir } from '../../cache/scratch-dir';

/** Bytes buffered per shard before they are appended to its file (256 shards: 4 MiB in all). */
export const SPILL_BUFFER_BYTES = 16 * 1024;

export interface SpilledShard {
  /** the first byte of every record in it */
  shard: number;
  /** the records, ascending by bytewise comparison of the whole record */
  records: Buffer;
  count: number;
}

export class ShardSpill {
  private readonly buffers: Buffer[] = [];
  private readonly fill: number[] = new Array(256).fill(0);
  private readonly onDisk: number[] = new Array(256).fill(0);
  private pending: Promise<void> = Promise.resolve();
  private added = 0;
  private disposed = false;

  private constructor(readonly recordBytes: number, private readonly dir: ScratchDir) {}

  /** A spill for records of `recordBytes` bytes (at least 1) under `parentDir` (default: the OS temp dir). */
  static async create(recordBytes: number, parentDir?: string): Promise<ShardSpill> {
    if (!Number.isSafeInteger(recordBytes) || recordBytes < 1 || recordBytes > SPILL_BUFFER_BYTES) throw new RangeError(`a spilled record is 1 to ${SPILL_BUFFER_BYTES} bytes, not ${recordBytes}`);
    return new ShardSpill(recordBytes, await createScratchDir(parentDir));
  }

  /** Records added so far. */
  get count(): number {
    return this.added;
  }

  /** Adds one record (copied); resolves once any write it caused is done. */
  async add(record: Buffer): Promise<void> {
    if (this.disposed) throw new Error('the spill was disposed');
    if (record.length !== this.recordBytes) throw new RangeError(`a record of this spill is ${this.recordBytes} bytes, not ${record.length}`);
    const shard = record[0];
    const buf = (this.buffers[shard] ??= Buffer.alloc(Math.floor(SPILL_BUFFER_BYTES / this.recordBytes) * this.recordBytes));
    record.copy(buf, this.fill[shard]);
    this.fill[shard] += this.recordBytes;
    this.added++;
    if (this.fill[shard] === buf.length) await this.flush(shard);
  }

  /** Shards in ascending order (empty ones skipped), each read whole and sorted; the spill may not be added to after. */
  async *shards(): AsyncGenerator<SpilledShard> {
    for (let s = 0; s < 256; s++) await this.flush(s);
    await this.pending;
    for (let shard = 0; shard < 256; shard++) {
      const count = this.onDisk[shard] / this.recordBytes;
      if (count === 0) continue;
      const raw = await fs.readFile(this.fileOf(shard));
      if (raw.length !== this.onDisk[shard]) throw new Error(`spill shard ${shard} holds ${raw.length} bytes, ${this.onDisk[shard]} were written`);
      yield { shard, records: sortRecords(raw, this.recordBytes), count };
    }
  }

  /** Removes the files (idempotent). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.pending.catch(() => undefined);
    await this.dir.remove();
  }

  private fileOf(shard: number): string {
    return path.join(this.dir.path, shard.toString(16).padStart(2, '0'));
  }

  private flush(shard: number): Promise<void> {
    const n = this.fill[shard];
    if (n === 0) return this.pending;
    const bytes = Buffer.from(this.buffers[shard].subarray(0, n)); // the buffer is reused at once
    this.fill[shard] = 0;
    this.onDisk[shard] += n;
    this.pending = this.pending.then(() => fs.appendFile(this.fileOf(shard), bytes, { mode: 0o600 }));
    return this.pending;
  }
}

/** The records of `raw` (each `recordBytes` long), ascending by bytewise comparison. */
export function sortRecords(raw: Buffer, recordBytes: number): Buffer {
  const n = raw.length / recordBytes;
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => raw.compare(raw, b * recordBytes, (b + 1) * recordBytes, a * recordBytes, (a + 1) * recordBytes));
  const out = Buffer.allocUnsafe(raw.length);
  order.forEach((from, to) => raw.copy(out, to * recordBytes, from * recordBytes, (from + 1) * recordBytes));
  return out;
}
