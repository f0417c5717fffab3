/**
 * #18 infra: what `bicep build` would catch first, checked on the text (test/harness/infra-text.ts — the Bicep compiler
 * cannot be installed here, so this is a text-level stand-in): every module call in main.bicep passes only parameters
 * the module declares and every parameter the module requires; the example parameters name only parameters main.bicep
 * has, and give every one it requires.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { infraText } from './harness/infra-text';

interface Param {
  name: string;
  required: boolean;
}

/** `param name type [= default]` lines of a template (a `?` type or a default makes it optional). */
function paramsOf(template: string): Param[] {
  return [...template.matchAll(/^param (\w+) ([\w[\]?]+)( = .*)?$/gm)].map((m) => ({ name: m[1], required: m[3] === undefined && !m[2].endsWith('?') }));
}

/** The keys of the object literal that opens at `open` (the index of its `{`), at its top level only. */
function topLevelKeys(text: string, open: number): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[' || c === '(') depth++;
    else if (c === '}' || c === ']' || c === ')') {
      depth--;
      if (depth === 0) return keys;
    } else if (c === '\n' && depth === 1) {
      const key = /^\s*(\w+):/.exec(text.slice(i + 1, i + 200));
      if (key) keys.push(key[1]);
    }
  }
  throw new Error('unbalanced object literal');
}

const main = infraText('main.bicep');
const calls = [...main.matchAll(/^module (\w+) '(modules\/[\w-]+\.bicep)'/gm)].map((m) => ({ symbol: m[1], file: m[2], at: m.index! }));

test('main.bicep calls the modules it is made of', () => {
  expect(calls.length).toBeGreaterThanOrEqual(20);
  expect(calls.map((c) => c.symbol)).toEqual(expect.arrayContaining(['functionApp', 'pruneApp', 'alerts', 'vaultStorage', 'keyVault', 'snapshotEvents', 'blobEvents']));
});

test.each(calls.map((c) => [c.symbol, c.file, c.at] as const))('module %s (%s): passes declared parameters and every required one', (_symbol, file, at) => {
  const declared = paramsOf(infraText(file));
  const next = main.indexOf('\nmodule ', at + 1);
  const body = main.slice(at, next < 0 ? undefined : next);
  const paramsAt = body.indexOf('params: {');
  const passed = paramsAt < 0 ? [] : topLevelKeys(body, paramsAt + 'params: '.length);
  expect(passed.filter((p) => !declared.some((d) => d.name === p))).toEqual([]);
  expect(declared.filter((d) => d.required && !passed.includes(d.name)).map((d) => d.name)).toEqual([]);
});

test('the example parameters name only parameters of main.bicep and give every required one', () => {
  const example = JSON.parse(readFileSync(path.join(__dirname, '..', 'infra', 'main.parameters.example.json'), 'utf8')) as { parameters: Record<string, unknown> };
  const declared = paramsOf(main);
  const given = Object.keys(example.parameters);
  expect(given.filter((g) => !declared.some((d) => d.name === g))).toEqual([]);
  // The user key is given on the command line (a secret never goes into a parameters file).
  expect(declared.filter((d) => d.required && !given.includes(d.name)).map((d) => d.name)).toEqual([]);
  expect(given).not.toContain('userKeyBase64');
});

test('every <module>.outputs.<name> main.bicep reads is an output of that module', () => {
  const fileOf = new Map(calls.map((c) => [c.symbol, c.file]));
  const read = [...main.matchAll(/\b(\w+)\.outputs\.(\w+)/g)].map((m) => ({ module: m[1], output: m[2] }));
  expect(read.length).toBeGreaterThan(20);
  const missing = read.filter(({ module, output }) => !new RegExp(`^output ${output} `, 'm').test(infraText(fileOf.get(module) ?? `no module ${module}`)));
  expect(missing).toEqual([]);
});
