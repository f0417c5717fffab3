/**
 * The rule that keeps core/index.ts the public API: no source file outside core/ and test/ imports a
 * core module by its path, only `core` itself. The benchmark's few measured internals are listed here,
 * each with why, so a new one is a decision and not an accident.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const CORE = path.join(ROOT, 'core');
/** Not production code, or not ours: unit tests may import a module's internals to test it. */
const SKIPPED_DIRS = new Set(['core', 'test', 'node_modules', 'dist', '.git']);

/** Internals a file outside core may import (paths relative to core/, no extension), and why. */
const ALLOWED: Record<string, { modules: string[]; why: string }> = {
  'bench/worker.ts': {
    modules: [
      'source/source-disk',
      'cache/scratch-cache',
      'processor/page-processor',
      'repo/vault',
      'repo/block-codec',
      'processor/async-crypto',
      'backup/plan-backup',
      'backup/finalize-backup',
      'backup/run-batch',
      'prune/prune',
      'repo/v2/marker',
      'repo/v2/pack-writer',
      'concurrency',
    ],
    why: 'timing spans wrap internal functions and methods in place; bench:prune runs the prune and the pack-trailer floor in this child',
  },
  'bench/ratio-measure.ts': {
    modules: ['repo/block-codec', 'repo/v2/block', 'repo/v2/chunker', 'repo/v2/zstd'],
    why: "the storage-ratio measurement runs the writer's own chunker and codec rules (and the older per-page probe it compares them with) over the bench disks, without a vault",
  },
  'bench/file-restore.ts': {
    modules: ['repo/v2/names', 'repo/v2/records'],
    why: "the file-restore bench's baseline GETs exactly the pack bytes under a file, located through the backup's tables",
  },
  'bench/prune.ts': {
    modules: ['repo/vault', 'repo/v2/marker', 'retention/keep-policy', 'retention/forget', 'prune/prune', 'prune/protocol'],
    why: 'the prune bench drives the policy and forget night by night and opens the vault to account for its bytes',
  },
  'bench/index-memory.ts': {
    modules: ['repo/vault'],
    why: 'the index bench writes packs and deltas into a bare container with a keyring of its own, as the index tests do',
  },
  'testkit/vault-accounting.ts': {
    modules: ['repo/v2/keyring', 'repo/v2/manifest', 'repo/v2/pack-writer', 'repo/v2/page-table', 'repo/v2/records', 'repo/vault'],
    why: "an account of a vault's bytes made without the prune's code reads manifests, tables and pack trailers itself",
  },
  'bench/profile-incremental.ts': {
    modules: [
      'storage/endpoints',
      'repo/vault',
      'source/source-disk',
      'backup/plan-backup',
      'backup/v2/plan',
      'backup/v2/batch',
      'backup/finalize-backup',
      'backup/v2/finalize',
      'backup/v2/base',
      'backup/v2/context',
      'repo/v2/manifest',
      'repo/v2/page-table',
      'repo/v2/staging',
      'repo/v2/marker',
      'repo/v2/keyring',
      'backup/vault-version',
      'source/snapshot-lifecycle',
    ],
    why: "the incremental's profile wraps the version-2 engine's steps and the vault and source calls in place to time them",
  },
  'bench/run-bench.ts': {
    modules: ['storage/clients', 'backup/run-batch'],
    why: "the baselines use the engine's container client; the report states its run shape",
  },
  'bench/lib/baselines.ts': {
    modules: ['concurrency'],
    why: "the engine's lazy bounded fan-out",
  },
  'bench/lib/disks.ts': {
    modules: ['concurrency'],
    why: "the engine's lazy bounded fan-out",
  },
  'bench/lib/fs-disk.ts': {
    modules: ['concurrency'],
    why: "the engine's lazy bounded fan-out (uploading an image's data ranges)",
  },
  'bench/restore-throughput.ts': {
    modules: ['concurrency', 'restore/restore'],
    why: "the restore bench's baseline writes exactly a restore's bytes (each page's non-zero runs) with the engine's Put Page writer and fan-out",
  },
  'bench/restore-cpu.ts': {
    modules: ['concurrency', 'restore/restore'],
    why: "the restore CPU bench's raw-write baseline is the same as bench/restore-throughput.ts's",
  },
};

const IMPORT_RES = [
  /\b(?:import|export)\s[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/g, // import … from '…', export … from '…'
  /\bimport\s*['"]([^'"]+)['"]/g, // import '…' (side effects only)
  /\b(?:require|import)\s*\(\s*['"]([^'"]+)['"]\s*\)/g, // require('…'), import('…')
];

/** Every module specifier a source text names. */
function specifiers(text: string): string[] {
  return IMPORT_RES.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]));
}

/** The core module a specifier names (relative to core/, no extension): '' for core itself, undefined outside core. */
function coreModuleOf(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const rel = path.relative(CORE, path.resolve(path.dirname(file), specifier));
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  const module = rel.split(path.sep).join('/').replace(/\.(ts|js)$/, '');
  return module === 'index' ? '' : module;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return dir === ROOT && SKIPPED_DIRS.has(e.name) ? [] : e.name === 'node_modules' ? [] : sourceFiles(full);
    return /\.(ts|js|mjs|cjs)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** `file: core/<module>` for each import of a core internal outside core/ and test/. */
function internalImports(): string[] {
  return sourceFiles(ROOT).flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    const rel = path.relative(ROOT, file).split(path.sep).join('/');
    return specifiers(text)
      .map((s) => coreModuleOf(file, s))
      .filter((m): m is string => m !== undefined && m !== '')
      .map((m) => `${rel}: core/${m}`);
  });
}

test('the scanner finds every import form and tells core from its internals', () => {
  const text = [
    "import { a } from '../core';",
    "import type { B } from '../core/types';",
    'import {\n  c,\n  d,\n} from "../core/repo/vault";',
    "export { e } from '../core/index';",
    "import '../core/limits';",
    "const f = require('../core/cache/scratch-cache');",
    "const g = await import('../core/verify/verify');",
    "import { h } from '@azure/storage-blob';",
    "import { i } from './core/elsewhere';",
  ].join('\n');
  const file = path.join(ROOT, 'functions', 'example.ts');
  // '' is core itself (allowed), undefined a module outside core.
  expect(specifiers(text).map((s) => coreModuleOf(file, s))).toEqual(['', 'types', 'repo/vault', '', undefined, undefined, 'limits', 'cache/scratch-cache', 'verify/verify']);
  const nested = path.join(ROOT, 'runtime', 'durable', 'example.ts');
  expect(coreModuleOf(nested, '../../core')).toBe('');
  expect(coreModuleOf(nested, '../../core/redact')).toBe('redact');
  expect(coreModuleOf(nested, '../core/redact')).toBeUndefined(); // runtime/core/redact: not core
});

test('every production folder outside core is scanned', () => {
  const scanned = new Set(sourceFiles(ROOT).map((f) => path.relative(ROOT, f).split(path.sep)[0]));
  for (const dir of ['functions', 'orchestrations', 'runtime', 'cli', 'demo', 'testkit', 'bench', 'bin']) expect(scanned).toContain(dir);
  expect(scanned).not.toContain('core');
  expect(scanned).not.toContain('test');
});

test('nothing outside core and test imports a core internal, except the listed benchmark internals', () => {
  const allowed = Object.entries(ALLOWED).flatMap(([file, { modules }]) => modules.map((m) => `${file}: core/${m}`));
  const found = internalImports();
  expect(found.filter((i) => !allowed.includes(i))).toEqual([]);
  // The list stays true: every allowed internal is still imported (remove it once it is not).
  expect(allowed.filter((a) => !found.includes(a))).toEqual([]);
});
