/** `npm run build:wasm`: compiles core/repo/v2/gear-cut.wat with wabt's wat2wasm into core/repo/v2/gear-cut-wasm.ts (the bytes, base64). */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const WAT = path.resolve(__dirname, '..', 'core', 'repo', 'v2', 'gear-cut.wat');
const OUT = path.resolve(__dirname, '..', 'core', 'repo', 'v2', 'gear-cut-wasm.ts');

/** The TypeScript module gear-cut-wasm.ts holds for the current gear-cut.wat (the test compares it with the committed one). */
export async function gearCutModuleText(): Promise<string> {
  // wabt is a development dependency: only this build and its test load it.
  const wabt = await (require('wabt') as () => Promise<{ parseWat(name: string, text: string): { toBinary(o: object): { buffer: Uint8Array }; destroy(): void } }>)();
  const parsed = wabt.parseWat('gear-cut.wat', readFileSync(WAT, 'utf8'));
  try {
    const base64 = Buffer.from(parsed.toBinary({ write_debug_names: false }).buffer).toString('base64');
    return [
      '/** Generated from gear-cut.wat by `npm run build:wasm` (tools/build-gear-wasm.ts): do not edit. */',
      `export const GEAR_CUT_WASM = '${base64}';`,
      '',
    ].join('\n');
  } finally {
    parsed.destroy();
  }
}

if (require.main === module) {
  void gearCutModuleText().then((text) => {
    writeFileSync(OUT, text);
    process.stdout.write(`wrote ${path.relative(process.cwd(), OUT)}\n`);
  });
}
