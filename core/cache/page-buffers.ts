/**
 * A few page-sized buffers, reused for the pages being processed, instead of a fresh buffer per page
 * read back from the cache. Each fresh 4 MiB buffer is external memory to V8, and their churn is what
 * makes it collect: on a sparse disk (1,565 pages read back for 1.28 GiB of data) the garbage collector
 * took 20 % of the main thread's samples. A page is processed by at most `keep` callers at once (the
 * processing limit), so that many buffers are enough; more are allocated only if it is exceeded.
 */
export class PageBuffers {
  private readonly free: Buffer[] = [];

  constructor(
    readonly pageSize: number,
    readonly keep: number,
  ) {}

  /** A buffer of `length` ≤ pageSize bytes with unspecified contents; give it back with `give`. */
  take(length: number): Buffer {
    if (length > this.pageSize) throw new RangeError(`a page buffer holds ${this.pageSize} bytes, not ${length}`);
    return (this.free.pop() ?? Buffer.allocUnsafeSlow(this.pageSize)).subarray(0, length);
  }

  give(buffer: Buffer): void {
    if (this.free.length < this.keep) this.free.push(Buffer.from(buffer.buffer, buffer.byteOffset, this.pageSize));
  }
}
