/** Local fixtures a hostile user leaves around, made when a case's input is built (idempotently). */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';

/** A directory everyone may write, without the sticky bit (mode 0777). */
export function sharedDirIn(parent: string, name: string): string {
  const dir = path.join(parent, name);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  return dir;
}

/** A FIFO no one writes to. */
export function fifoIn(parent: string, name: string): string {
  const fifo = path.join(parent, name);
  if (!existsSync(fifo)) execFileSync('mkfifo', [fifo]);
  return fifo;
}

/** Escape sequences that clear the screen and set the window title, a right-to-left override and a newline. */
export const TERMINAL_ESCAPES = 'x\u001b[2J\u001b]0;owned\u0007\u202e\ny';
