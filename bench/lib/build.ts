/**
 * A plain-JavaScript build of the engine for the bench's measured processes, made with the TypeScript
 * compiler's transpile step (no type check; seconds). What runs from it runs on bare node, as the CLI
 * (`npm run build`) and the Functions app do: no ts-node and no TypeScript compiler in its memory, so its
 * RSS is the engine's, and V8's collections do not mark the compiler's ~40 MB of heap each time (measured:
 * a 256 MiB restore from the sources spends 0.4 s more CPU, most of it collecting).
 */
import { copyFileSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';

export const ROOT = path.resolve(__dirname, '..', '..');

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) {
      if (name !== 'results' && name !== 'node_modules') out.push(...filesUnder(full));
    } else out.push(full);
  }
  return out;
}

/**
 * Transpiles `files` (TypeScript, under ROOT) into a fresh directory and copies the plain files beside them
 * (JavaScript preloads, JSON, host.json); node_modules is linked. Returns the directory.
 */
function transpileInto(files: string[], plain: string[]): string {
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'pagewise-bench-build-'));
  const target = (file: string) => {
    const to = path.join(outDir, path.relative(ROOT, file));
    mkdirSync(path.dirname(to), { recursive: true });
    return to;
  };
  for (const file of files) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, resolveJsonModule: true },
      fileName: file,
    });
    writeFileSync(target(file).replace(/\.ts$/, '.js'), outputText);
  }
  for (const file of plain) copyFileSync(file, target(file));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(outDir, 'node_modules'), 'dir');
  return outDir;
}

/** The engine and the bench's child (bench/worker.ts); the worker is `<dir>/bench/worker.js`. */
export function buildWorker(): string {
  const core = filesUnder(path.join(ROOT, 'core'));
  return transpileInto([...core.filter(isSource), path.join(ROOT, 'bench', 'worker.ts'), path.join(ROOT, 'bench', 'lib', 'spans.ts')], core.filter(isPlain));
}

/**
 * The engine, the orchestrations, the Functions app, the local runtime, the test kit and the bench: a
 * bench script run from it (`<dir>/bench/<name>.js`) measures the engine as it ships, beside the local
 * durable runtime. host.json comes along (the runtime reads its queue settings).
 */
export function buildBench(): string {
  const dirs = ['core', 'orchestrations', 'functions', 'runtime', 'testkit', 'bench'].flatMap((d) => filesUnder(path.join(ROOT, d)));
  return transpileInto(dirs.filter(isSource), [...dirs.filter(isPlain), path.join(ROOT, 'host.json'), path.join(ROOT, 'package.json')]);
}

function isSource(file: string): boolean {
  return file.endsWith('.ts') && !file.endsWith('.d.ts');
}

function isPlain(file: string): boolean {
  return /\.(js|json|wasm|wat)$/.test(file);
}

/**
 * Runs the bench script `scriptFile` (a .ts file under ROOT) again from buildBench() on bare node, with the
 * same arguments; resolves with its exit code. Whether to is bench/lib/run-built.ts's call (startBuilt).
 * Import this module lazily: it loads the TypeScript compiler. The built run writes its results into this
 * checkout's bench/results and records this checkout's revision.
 */
export async function rerunCompiled(scriptFile: string, argv: string[]): Promise<number> {
  const { revision } = await import('./run-facts');
  const rev = revision();
  const dir = buildBench();
  const script = path.join(dir, path.relative(ROOT, scriptFile)).replace(/\.ts$/, '.js');
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    // PAGEWISE_BENCH_NODE_FLAGS: V8/node flags for the built run (e.g. --trace-gc, which NODE_OPTIONS refuses).
    const flags = (process.env.PAGEWISE_BENCH_NODE_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
    const child = spawn(process.execPath, [...flags, script, ...argv], {
      stdio: 'inherit',
      cwd: ROOT,
      env: { ...process.env, PAGEWISE_BENCH_REVISION: rev, PAGEWISE_BENCH_RESULTS: path.join(ROOT, 'bench', 'results') },
    });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}
