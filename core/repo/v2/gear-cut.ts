/** FastCDC's cut points through the WebAssembly build of the gear loop (gear-cut.wat): one instance per thread, page bytes copied in by windows. */
import { GEAR_CUT_WASM } from './gear-cut-wasm';

/** The gear table's bytes at the start of the instance's memory; page bytes follow. */
const GEAR_BYTES = 256 * 4;
/** Page bytes copied in at once (a larger chunk maximum widens it): the instance's memory stays this small whatever the page size. */
const WINDOW_BYTES = 4 * 1024 * 1024;
const WASM_PAGE = 64 * 1024;

/** The little of the WebAssembly API used here (tsconfig has no "dom" lib, and @types/node 20 does not declare it). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
};
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

type Cut = (at: number, left: number, min: number, avg: number, max: number, maskS: number, maskL: number) => number;

interface GearCut {
  memory: WasmMemory;
  cut: Cut;
}

let instance: GearCut | undefined;

function gearCut(): GearCut {
  if (!instance) {
    const module = new WebAssembly.Module(Buffer.from(GEAR_CUT_WASM, 'base64'));
    const { exports } = new WebAssembly.Instance(module, {});
    instance = { memory: exports.memory as WasmMemory, cut: exports.cut as Cut };
  }
  return instance;
}

export interface CutParameters {
  min: number;
  avg: number;
  max: number;
  maskS: number;
  maskL: number;
}

/**
 * The chunk lengths of `page` (non-empty) under FastCDC `p` with `gear` (256 entries) — the same as
 * chunker.ts's loop. Page bytes go into the instance's memory a window at a time; a chunk is cut only
 * while its `max` bytes lie in the window (or the window ends the page), so every cut sees what the
 * loop over the whole page would.
 */
export function gearCutLengths(page: Uint8Array, p: CutParameters, gear: Uint32Array): number[] {
  const { memory, cut } = gearCut();
  const window = Math.min(page.length, Math.max(p.max, WINDOW_BYTES));
  const needed = GEAR_BYTES + window;
  if (memory.buffer.byteLength < needed) memory.grow(Math.ceil((needed - memory.buffer.byteLength) / WASM_PAGE));
  const view = new DataView(memory.buffer);
  for (let i = 0; i < 256; i++) view.setUint32(i * 4, gear[i], true); // the module reads it little-endian on any host
  const bytes = new Uint8Array(memory.buffer);
  const out: number[] = [];
  let from = 0;
  while (from < page.length) {
    const windowEnd = Math.min(page.length, from + window);
    bytes.set(page.subarray(from, windowEnd), GEAR_BYTES);
    const last = windowEnd === page.length;
    let at = from;
    while (at < windowEnd && (last || windowEnd - at >= p.max)) {
      const n = cut(GEAR_BYTES + (at - from), page.length - at, p.min, p.avg, p.max, p.maskS, p.maskL);
      out.push(n);
      at += n;
    }
    from = at;
  }
  return out;
}
