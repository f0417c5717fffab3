/** zstd (block codec 2, docs/FORMAT.md §16): native binding (WebAssembly fallback), one frame with its content size, bounded before any allocation. */
import { isMainThread } from 'node:worker_threads';
import { compress, decompress, init } from '@bokuweb/zstd-wasm';

/** The level the writer uses (§24.5; not recorded in the format, decoders need none). */
export const ZSTD_LEVEL = 3;

/** The two bindings produce and read the same frames; the native one is 3–5× faster (#15, bench/results/speed-2026-12-01b.md). */
export type ZstdBinding = 'native' | 'wasm';

interface NativeZstd {
  Encoder: new (level: number) => { encodeSync(data: Buffer): Buffer };
  Decoder: new () => { decodeSync(data: Buffer): Buffer };
}

interface Native {
  encoders: Map<number, { encodeSync(data: Buffer): Buffer }>;
  make: (level: number) => { encodeSync(data: Buffer): Buffer };
  decoder: { decodeSync(data: Buffer): Buffer };
}

let native: Native | null | undefined;
let warned = false;
/** Set by tests to take the fallback path. */
let forced: ZstdBinding | undefined;

/** Loads `@toondepauw/node-zstd` once per thread; null when its binary does not load here (the main thread warns, once). */
function loadNative(load: () => unknown = () => require('@toondepauw/node-zstd')): Native | null {
  if (native !== undefined) return native;
  try {
    const z = load() as NativeZstd;
    const make = (level: number) => new z.Encoder(level);
    native = { encoders: new Map([[ZSTD_LEVEL, make(ZSTD_LEVEL)]]), make, decoder: new z.Decoder() };
  } catch (err) {
    native = null;
    if (!warned && isMainThread) {
      warned = true;
      process.emitWarning(`the native zstd binding (@toondepauw/node-zstd) does not load on ${process.platform}-${process.arch} (${(err as Error).message.split('\n')[0]}); using the WebAssembly one, 3–5× slower`, 'PagewiseWarning');
    }
  }
  return native;
}

/** Which binding this thread uses. */
export function zstdBinding(): ZstdBinding {
  return forced === 'wasm' || loadNative() === null ? 'wasm' : 'native';
}

/**
 * For tests: force the WebAssembly binding, or simulate a platform whose native binary does not load
 * (`load` throws) — the warning is then emitted once; `undefined` resets to the normal choice.
 */
export function useZstdBindingForTests(choice: ZstdBinding | { load: () => unknown } | undefined): void {
  native = undefined;
  warned = false;
  forced = undefined;
  if (choice === 'wasm') forced = 'wasm';
  else if (typeof choice === 'object') loadNative(choice.load);
}

let wasmReady: Promise<void> | undefined;
let wasmLoaded = false;

function wasm(): Promise<void> {
  wasmReady ??= init().then(() => {
    wasmLoaded = true;
  });
  return wasmReady;
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

/**
 * The native binding streams, so its frame header states no content size, which §16 requires (readers
 * check it before allocating). RFC 8878 §3.1.1.1: the header without a content size is FHD (FCS flag 0,
 * not single-segment), window descriptor, dictionary ID; we set FCS flag 2 and add the 4-byte size after
 * them — a zstd decoder then also checks the frame decodes to exactly that size.
 */
function withContentSize(frame: Buffer, size: number): Buffer {
  if (zstdContentSize(frame) === size) return frame;
  if (frame.length < 6 || frame.readUInt32LE(0) !== FRAME_MAGIC) throw new Error('the zstd binding returned no zstd frame');
  const fhd = frame[4];
  if (fhd >> 6 !== 0 || (fhd >> 5) & 1 || (fhd >> 3) & 1 || size > 0xffffffff) throw new Error(`unexpected zstd frame header 0x${fhd.toString(16)}`);
  const at = 6 + [0, 1, 2, 4][fhd & 3];
  const out = Buffer.allocUnsafeSlow(frame.length + 4);
  frame.copy(out, 0, 0, at);
  out[4] = fhd | (2 << 6);
  out.writeUInt32LE(size, at);
  frame.copy(out, at + 4, at);
  return out;
}

/** Decodes one zstd frame of exactly `expected` bytes; throws (a plain Error) on anything else. */
export async function zstdDecode(frame: Buffer, expected: number): Promise<Buffer> {
  if (zstdBinding() === 'wasm') await wasm();
  return zstdDecodeSync(frame, expected);
}

/** zstdDecode, synchronously (worker threads; with the WebAssembly binding after zstdReady()). */
export function zstdDecodeSync(frame: Buffer, expected: number): Buffer {
  const size = zstdContentSize(frame);
  if (size !== expected) throw new Error(`the zstd frame states ${size ?? 'no'} content size, expected ${expected}`);
  let out: Buffer;
  if (zstdBinding() === 'native') out = (native as Native).decoder.decodeSync(frame);
  else {
    if (!wasmLoaded) throw new Error('zstd is not loaded yet: await zstdReady() first');
    out = Buffer.from(decompress(frame));
  }
  if (out.length !== expected) throw new Error(`zstd gave ${out.length} bytes, expected ${expected}`);
  return out;
}

/** Makes the binding ready (once per thread; only the WebAssembly one needs it): the *Sync calls need it first. */
export async function zstdReady(): Promise<void> {
  if (zstdBinding() === 'wasm') await wasm();
}

/** One zstd frame of `plain` (with its content size), synchronously: for worker threads, after zstdReady(). */
export function zstdEncodeSync(plain: Uint8Array, level = ZSTD_LEVEL): Buffer {
  const input = Buffer.isBuffer(plain) ? plain : Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  if (zstdBinding() === 'native') {
    const n = native as Native;
    let encoder = n.encoders.get(level);
    if (!encoder) n.encoders.set(level, (encoder = n.make(level)));
    return withContentSize(encoder.encodeSync(input), input.length);
  }
  if (!wasmLoaded) throw new Error('zstd is not loaded yet: await zstdReady() first');
  const out = compress(input, level);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** One zstd frame of `plain`. */
export async function zstdEncode(plain: Buffer, level = ZSTD_LEVEL): Promise<Buffer> {
  await zstdReady();
  return zstdEncodeSync(plain, level);
}
