/**
 * Processing a cached page for backup: an all-zero page becomes a hole (no block); otherwise the
 * plaintext is hashed (SHA-256), looked up in the segment's dedupe index (identical pages are stored
 * once), and encoded into a block (compress + encrypt). Hashing and encoding run off the event loop.
 */
import { encodeBlock, EncodedBlock } from '../repo/block-codec';
import { sha256 } from './async-crypto';

export type ProcessedPage =
  | { kind: 'zero'; page: number; plainLength: number }
  | { kind: 'duplicate'; page: number; plainLength: number; hash: string; sameAs: number }
  | { kind: 'block'; page: number; plainLength: number; hash: string; block: EncodedBlock };

/** Where the processor looks up and remembers staged blocks by hash. */
export interface DedupeLookup {
  lookup(segment: number, hash: string): number | undefined;
  remember(segment: number, hash: string, page: number): void;
}

/** Hash → page whose block is staged, per segment (the dedupe scope of format v1). */
export class DedupeIndex implements DedupeLookup {
  private readonly segments = new Map<number, Map<string, number>>();

  lookup(segment: number, hash: string): number | undefined {
    return this.segments.get(segment)?.get(hash);
  }

  /** Called only after the block is staged, so a reference never points at a block that is not there. */
  remember(segment: number, hash: string, page: number): void {
    let map = this.segments.get(segment);
    if (!map) this.segments.set(segment, (map = new Map()));
    if (!map.has(hash)) map.set(hash, page);
  }

  forgetSegment(segment: number): void {
    this.segments.delete(segment);
  }

  /** Takes in every entry of `other` that this index does not have yet. */
  absorb(other: DedupeIndex): void {
    for (const [segment, map] of other.segments) for (const [hash, page] of map) this.remember(segment, hash, page);
  }
}

/**
 * One batch's view of dedupe: its own staged blocks, plus those of batches whose record is written.
 * A page may only refer to a block that a resumed backup is sure to find again: a batch whose record
 * exists is never redone, while a batch still running (or killed before its record) is redone from
 * scratch and may then stage its identical pages in another order.
 */
export class BatchDedupe implements DedupeLookup {
  private readonly own = new DedupeIndex();

  constructor(private readonly recorded: DedupeIndex) {}

  lookup(segment: number, hash: string): number | undefined {
    return this.own.lookup(segment, hash) ?? this.recorded.lookup(segment, hash);
  }

  remember(segment: number, hash: string, page: number): void {
    this.own.remember(segment, hash, page);
  }

  /** The batch's record is written: later batches may refer to its blocks. */
  publish(): void {
    this.recorded.absorb(this.own);
  }
}

/** Tells all-zero pages (holes to be) apart, against one zero buffer grown to the largest page seen. */
export class ZeroTest {
  private zeros = Buffer.alloc(0);

  isZero(plain: Buffer): boolean {
    if (this.zeros.length < plain.length) this.zeros = Buffer.alloc(plain.length);
    return plain.equals(this.zeros.subarray(0, plain.length));
  }
}

export class PageProcessor {
  private readonly zeros = new ZeroTest();

  constructor(
    private readonly dataKey: Buffer,
    private readonly backupId: string,
    private readonly dedupe: DedupeLookup,
    private readonly pagesPerSegment: number,
  ) {}

  isZero(plain: Buffer): boolean {
    return this.zeros.isZero(plain);
  }

  async process(page: number, plain: Buffer): Promise<ProcessedPage> {
    if (this.isZero(plain)) return { kind: 'zero', page, plainLength: plain.length };
    const hash = (await sha256(plain)).toString('hex');
    const sameAs = this.dedupe.lookup(Math.floor(page / this.pagesPerSegment), hash);
    if (sameAs !== undefined) return { kind: 'duplicate', page, plainLength: plain.length, hash, sameAs };
    const block = await encodeBlock(plain, this.dataKey, this.backupId);
    return { kind: 'block', page, plainLength: plain.length, hash, block };
  }

  /** Records a staged block as the one to reuse for identical pages of its segment. */
  stored(page: number, hash: string): void {
    this.dedupe.remember(Math.floor(page / this.pagesPerSegment), hash, page);
  }
}
