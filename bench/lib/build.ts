/**
 * A plain-JavaScript build of core/ and the worker for the child processes, made with the TypeScript
 * compiler's transpile step (no type check; seconds). The child then runs on bare node: no ts-node and
 * no TypeScript compiler in its memory, so its RSS is the engine's.
 */
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..', '..');

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...tsFiles(full));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

/** Returns the build directory; the worker is `<dir>/bench/worker.js`. */
export function buildWorker(): string {
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'pagewise-bench-build-'));
  const files = [...tsFiles(path.join(ROOT, 'core')), path.join(ROOT, 'bench', 'worker.ts'), path.join(ROOT, 'bench', 'lib', 'spans.ts')];
  for (const file of files) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      fileName: file,
    });
    const target = path.join(outDir, path.relative(ROOT, file)).replace(/\.ts$/, '.js');
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(outDir, 'node_modules'), 'dir');
  return outDir;
}
