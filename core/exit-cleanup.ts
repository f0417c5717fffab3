/**
 * Local files that hold disk data (scratch directories, a restore's partial file) are removed by the
 * code that made them, in its `finally`. This registry is the last line: when the process exits before
 * that code ran (a second Ctrl-C, `process.exit` on a signal), the paths still registered are removed
 * synchronously from the 'exit' event. A SIGKILL runs nothing; the next start sweeps what it left
 * (see cache/scratch-dir.ts).
 */
import { rmSync } from 'node:fs';

const registered = new Set<string>();
let hooked = false;

/** Removes `path` (recursively, never following links) if the process exits before `forget()` is called. */
export function removeAtExit(path: string): () => void {
  registered.add(path);
  if (!hooked) {
    hooked = true;
    process.on('exit', removeRegisteredNow);
  }
  return () => void registered.delete(path);
}

/** True while `path` is registered (it belongs to this process and is in use). */
export function isRegisteredForExit(path: string): boolean {
  return registered.has(path);
}

function removeRegisteredNow(): void {
  for (const path of registered) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // the process is ending; nothing else can be done here
    }
  }
  registered.clear();
}
