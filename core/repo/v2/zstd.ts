/** zstd (block codec 2, docs/FORMAT.md §16): decoding one frame whose header states its content size, bounded before any allocation. */
import { compress, decompress, init } from '@bokuweb/zstd-wasm';

let ready: Promise<void> | undefined;

function loaded(): Promise<void> {
  ready ??= init().then(() => {
    isLoaded = true;
  });
  return ready;
}

const FRAME_MAGIC = 0xfd2fb528;

/** The content size a zstd frame header states, or undefined when the header states none or is malformed (RFC 8878 §3.1.1.1). */
export function zstdContentSize(frame: Buffer): number | undefined {
  if (frame.length < 6 || frame.readUInt32LE(0) !== FRAME_MAGIC) return undefined;
  const fhd = frame[4];
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  if ((fhd >> 3) & 1) return undefined; // reserved bit
  const dictBytes = [0, 1, 2, 4][fhd & 3];
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
  if (fcsBytes === 0) return undefined;
  const at = 5 + (singleSegment ? 0 : 1) + dictBytes;
  if (frame.length < at + fcsBytes) return undefined;
  if (fcsBytes === 1) return frame[at];
  if (fcsBytes === 2) return frame.readUInt16LE(at) + 256;
  if (fcsBytes === 4) return frame.readUInt32LE(at);
  const big = frame.readBigUInt64LE(at);
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : undefined;
}

/** Decodes one zstd frame of exactly `expected` bytes; throws (a plain Error) on anything else. */
export async function zstdDecode(frame: Buffer, expected: number): Promise<Buffer> {
  const size = zstdContentSize(frame);
  if (size !== expected) throw new Error(`the zstd frame states ${size ?? 'no'} content size, expected ${expected}`);
  await loaded();
  const out = Buffer.from(decompress(frame));
  if (out.length !== expected) throw new Error(`zstd gave ${out.length} bytes, expected ${expected}`);
  return out;
}

/** The level the writer uses (§24.5; not recorded in the format, decoders need none). */
export const ZSTD_LEVEL = 3;

/** Loads the WebAssembly module (once per thread): zstdEncodeSync needs it first. */
export function zstdReady(): Promise<void> {
  return loaded();
}

let isLoaded = false;

/** One zstd frame of `plain` (with its content size), synchronously: for worker threads, after zstdReady(). */
export function zstdEncodeSync(plain: Uint8Array, level = ZSTD_LEVEL): Buffer {
  if (!isLoaded) throw new Error('zstd is not loaded yet: await zstdReady() first');
  const out = compress(plain as Buffer, level);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** One zstd frame of `plain`. */
export async function zstdEncode(plain: Buffer, level = ZSTD_LEVEL): Promise<Buffer> {
  await loaded();
  return zstdEncodeSync(plain, level);
}
