/**
 * The access keys of `pagewise serve`, as the Functions host has them: a master key (every route,
 * and the only key for `/admin/*`), a function key for the `authLevel: 'function'` routes, and the
 * system keys of the durable and Event Grid webhooks. Random for every start; written for the user
 * to a 0600 file in a private 0700 directory (a file, not the terminal: scripts read it, and a
 * service manager would copy a terminal line into its log).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PagewiseError } from '../core';

/** The shape `az functionapp keys list` prints, so the same scripts read both. */
export interface ServeKeys {
  masterKey: string;
  functionKeys: { default: string };
  systemKeys: { durabletask_extension: string; eventgrid_extension: string };
  /** #18: reusable sign-in tokens, one per role, exchanged at POST /.auth/login for a session cookie. */
  loginTokens: LoginTokens;
}

/** A sign-in token per role (runtime/serveSessions.ts). */
export interface LoginTokens {
  reader: string;
  operator: string;
  restorer: string;
  admin: string;
}

/** Which key a route requires: the function key, a system key, or the master key (admin). */
export type KeyLevel = 'function' | 'durabletask' | 'eventgrid' | 'admin';

export function newKey(): string {
  return randomBytes(32).toString('base64url');
}

export function generateServeKeys(): ServeKeys {
  return {
    masterKey: newKey(),
    functionKeys: { default: newKey() },
    systemKeys: { durabletask_extension: newKey(), eventgrid_extension: newKey() },
    loginTokens: { reader: newKey(), operator: newKey(), restorer: newKey(), admin: newKey() },
  };
}

/** The keys a route accepts: its own, and the master key (as in Azure). */
function acceptedKeys(keys: ServeKeys, level: KeyLevel): string[] {
  switch (level) {
    case 'function':
      return [keys.functionKeys.default, keys.masterKey];
    case 'durabletask':
      return [keys.systemKeys.durabletask_extension, keys.masterKey];
    case 'eventgrid':
      return [keys.systemKeys.eventgrid_extension, keys.masterKey];
    case 'admin':
      return [keys.masterKey];
  }
}

/** Constant-time comparison (digests first, so lengths do not show either). */
export function sameSecret(presented: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(expected));
}

/** Whether the presented key opens a route of this level; every accepted key is compared, no early exit. */
export function keyOpens(keys: ServeKeys, level: KeyLevel, presented: string | undefined): boolean {
  let ok = false;
  for (const key of acceptedKeys(keys, level)) ok = sameSecret(presented ?? '', key) || ok;
  return ok && !!presented;
}

export function defaultKeysDir(): string {
  return path.join(os.homedir(), '.pagewise', 'serve');
}

/** Creates the keys directory 0700; an existing one must be a real directory of this user that nobody else can enter. */
export async function prepareKeysDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const stat = await fs.lstat(dir);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    throw new PagewiseError('BadInput', `the keys directory ${dir} must be a directory of this user with mode 0700 (chmod 700 it)`);
  }
}

/** Writes the keys to `<dir>/keys-<port>.json` (0600) in a directory prepareKeysDir accepted. */
export async function writeKeysFile(dir: string, port: number, keys: ServeKeys): Promise<string> {
  const file = path.join(dir, `keys-${port}.json`);
  // O_NOFOLLOW: a link planted at the name is refused, never followed.
  const handle = await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(`${JSON.stringify(keys, null, 2)}\n`);
  } finally {
    await handle.close();
  }
  return file;
}

export async function removeKeysFile(file: string): Promise<void> {
  await fs.rm(file, { force: true });
}
