/**
 * A DiskReader that shows a base disk with some whole blocks replaced from memory: where a replayed
 * ext journal lands (never on the backed-up disk). Bounded: more than `maxBytes` of blocks is refused.
 */
import { PagewiseError } from '../errors';
import { MiB } from '../limits';
import { formatBytes } from '../units';
import { checkRead, type DiskReader } from './disk-reader';

/** How much replayed journal a volume may hold in memory unless the caller says otherwise. */
export const DEFAULT_OVERLAY_MAX_BYTES = 512 * MiB;

export class OverlayDisk implements DiskReader {
  readonly size: number;
  private readonly overlay = new Map<number, Buffer>();

  constructor(private readonly base: DiskReader, readonly blockSize: number, readonly maxBytes: number) {
    if (!Number.isSafeInteger(blockSize) || blockSize < 512 || (blockSize & (blockSize - 1)) !== 0) {
      throw new PagewiseError('BadInput', `an overlay block size must be a power of two of at least 512 bytes, got ${blockSize}`);
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new PagewiseError('BadInput', `the overlay bound must be a whole number of bytes, got ${maxBytes}`);
    this.size = base.size;
  }

  /** Bytes held in the overlay. */
  get overlayBytes(): number {
    return this.overlay.size * this.blockSize;
  }

  /** Blocks held in the overlay. */
  get blocks(): number {
    return this.overlay.size;
  }

  /** Whether `block` has been replaced. */
  has(block: number): boolean {
    return this.overlay.has(block);
  }

  putBlock(block: number, data: Buffer): void {
    if (data.length !== this.blockSize) throw new PagewiseError('BadInput', `an overlay block is ${this.blockSize} bytes, got ${data.length}`);
    if (!Number.isSafeInteger(block) || block < 0 || (block + 1) * this.blockSize > this.size) {
      throw new PagewiseError('Corrupt', `block ${block} lies outside the volume (${this.size} bytes)`);
    }
    if (!this.overlay.has(block) && this.overlayBytes + this.blockSize > this.maxBytes) {
      throw new PagewiseError('LimitExceeded', `the replayed journal needs more than ${formatBytes(this.maxBytes)} of memory (the overlay bound, overlayMaxBytes)`);
    }
    // A copy: the caller's buffer may be a slice of a larger read that must not stay alive.
    this.overlay.set(block, Buffer.from(data));
  }

  async read(position: number, length: number): Promise<Buffer> {
    checkRead(this, position, length, 'the volume');
    if (this.overlay.size === 0 || length === 0) return this.base.read(position, length);
    const out = Buffer.alloc(length);
    const end = position + length;
    let at = position;
    let baseFrom = -1; // start of a run of bytes still to be read from the base
    const flushBase = async (until: number) => {
      if (baseFrom < 0) return;
      (await this.base.read(baseFrom, until - baseFrom)).copy(out, baseFrom - position);
      baseFrom = -1;
    };
    while (at < end) {
      const block = Math.floor(at / this.blockSize);
      const blockEnd = Math.min(end, (block + 1) * this.blockSize);
      const replaced = this.overlay.get(block);
      if (replaced) {
        await flushBase(at);
        replaced.copy(out, at - position, at - block * this.blockSize, blockEnd - block * this.blockSize);
      } else if (baseFrom < 0) {
        baseFrom = at;
      }
      at = blockEnd;
    }
    await flushBase(end);
    return out;
  }
}
