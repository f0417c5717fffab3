/**
 * The rule that no committed file outside test/ carries a SAS signature or an account key. Bench results,
 * docs and examples are written from real runs: a run against real storage would write a real SAS, and one
 * did write the emulator's into a results JSON (the vault of each repeated backup). Test fixtures are
 * made-up secrets, written to be redacted, and are skipped.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const SECRETS: Array<[string, RegExp]> = [
  ['a SAS signature', /[?&]sig=[A-Za-z0-9%+/=]{20,}/],
  ['an account key', /AccountKey=[A-Za-z0-9+/=]{20,}/],
];

/** The committed files; in a copy without git (an unpacked archive), every file but the installed and the generated. */
function committedFiles(): string[] {
  try {
    return execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] }).split('\0').filter(Boolean);
  } catch {
    const skip = new Set(['node_modules', '.git', 'dist']);
    const walk = (dir: string): string[] =>
      readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (skip.has(e.name) ? [] : walk(path.join(dir, e.name))) : e.isFile() ? [path.join(dir, e.name)] : []));
    return walk('');
  }
}

test('no committed file outside test/ holds a SAS signature or an account key', () => {
  const files = committedFiles().filter((f) => !f.startsWith('test/') && /\.(md|json|ts|js|txt|yml|yaml|bicep|sh)$/.test(f));
  expect(files.length).toBeGreaterThan(100); // the listing worked: this is the repository, not an empty one
  const found: string[] = [];
  for (const file of files) {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    for (const [what, pattern] of SECRETS) if (pattern.test(text)) found.push(`${file}: ${what}`);
  }
  expect(found).toEqual([]);
});
