/**
 * The Bicep templates as text, for test/infra.*.test.ts. Text-level on purpose: the Bicep compiler (`az bicep`, a .NET
 * binary fetched from GitHub) cannot be installed on this machine, so the tests read what the templates say rather than
 * what `bicep build` would make of them; what a compiler or a what-if deployment would check is listed in infra/README.md.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

export const infraText = (file: string): string => readFileSync(path.join(__dirname, '..', '..', 'infra', file), 'utf8');

/** The text from `start` (first occurrence) up to the next `end` after it. */
export function slice(text: string, start: string, end: string): string {
  const from = text.indexOf(start);
  if (from < 0) throw new Error(`"${start}" not found`);
  const to = text.indexOf(end, from + start.length);
  if (to < 0) throw new Error(`"${end}" not found after "${start}"`);
  return text.slice(from, to);
}

/** The app settings block of one app in main.bicep: keys written as `NAME: value` lines. */
export function settingsBlock(main: string, app: 'backup' | 'prune'): { text: string; keys: string[] } {
  const text = app === 'backup' ? slice(main, 'var pagewiseSettings =', 'var pagewiseSettingsList') : slice(main, 'var pruneSettings =', 'var pruneSettingsList');
  const keys = [...text.matchAll(/^\s*(?:[^/\n]*\{\s*)?([A-Za-z_][A-Za-z0-9_]*): /gm)].map((m) => m[1]);
  return { text, keys };
}

/** A module's or resource's declaration body: from its `module|resource <name>` line to the next top-level declaration. */
export function declaration(text: string, kind: 'module' | 'resource', name: string): string {
  const start = text.search(new RegExp(`^${kind} ${name} `, 'm'));
  if (start < 0) throw new Error(`${kind} ${name} not found`);
  const rest = text.slice(start + 1);
  const next = rest.search(/^(module|resource|output|var|param|\/\/ ---)/m);
  return text.slice(start, next < 0 ? undefined : start + 1 + next);
}
