/** What every bench result records of the run it comes from: the revision measured and the machine. */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatBytes } from '../../core';

const REPO = path.resolve(__dirname, '..', '..');

let measured: string | undefined;

/**
 * The short commit, and whether core/ differs from it (figures of uncommitted code say so). Read once, at
 * the first call (the bench calls it when it builds what it measures): the tree may change during a run.
 */
export function revision(): string {
  // A bench rerun from a build (lib/build.ts rerunCompiled) gets the checkout's revision from its parent.
  measured ??= process.env.PAGEWISE_BENCH_REVISION || readRevision();
  return measured;
}

function readRevision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'core'], { cwd: REPO, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return `${head}${dirty ? ' (core/ has uncommitted changes)' : ''}`;
  } catch {
    return 'unknown';
  }
}

export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${formatBytes(os.totalmem())} RAM, ${os.platform()} ${os.release()}, node ${process.version}`;
}

/** Where a bench writes its results: this checkout's bench/results, also when it runs from a build (lib/build.ts rerunCompiled). */
export function resultsDir(benchDir: string): string {
  return process.env.PAGEWISE_BENCH_RESULTS ?? path.join(benchDir, 'results');
}
