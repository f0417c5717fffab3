/**
 * Reading and creating the user key file with the care ssh takes with a private key: the key opens
 * every backup made with it, so a file others may read (or replace) is refused, not used.
 *
 * Symlinks are followed (secret mounts and dotfile managers place keys behind links), and the checks
 * apply to what the link points at, taken from the opened descriptor so the file checked is the file
 * read. Only a regular file is read: a FIFO or a device is refused without blocking on it, and the
 * read is capped, so a wrong path cannot hang the command or fill memory.
 */
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PagewiseError } from '../errors';
import { removeAtExit } from '../exit-cleanup';
import { assertUnsharedDir } from '../shared-dir';

/** A key file is ~120 bytes; anything far larger is the wrong file. */
export const MAX_KEY_FILE_BYTES = 4096;

const POSIX = process.platform !== 'win32';

function kindOf(stat: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

function refuse(message: string): PagewiseError {
  return new PagewiseError('BadKeyFile', message);
}

/** The text of a key file, after the checks above; `BadKeyFile` naming the file and the fix otherwise. */
export async function readKeyFileText(file: string): Promise<string> {
  let handle: fs.FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO without a writer returns at once (it is refused below, never read).
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw refuse(`cannot read the key file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw refuse(`the key file ${file} is ${kindOf(stat)}, not a key file`);
    if (POSIX) {
      const mode = stat.mode & 0o777;
      if ((mode & 0o077) !== 0) {
        throw refuse(`the key file ${file} has mode ${mode.toString(8).padStart(4, '0')}: group or others may access it; run chmod 600 ${file}`);
      }
      const uid = process.getuid?.();
      if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) {
        throw refuse(`the key file ${file} belongs to another user (uid ${stat.uid}); use a key file of your own`);
      }
    }
    if (stat.size > MAX_KEY_FILE_BYTES) throw refuse(`the key file ${file} is ${stat.size} bytes; a Pagewise key file is under ${MAX_KEY_FILE_BYTES} bytes`);
    await refuseSharedDirOf(file);
    // Read at most the cap (+1 to notice a file that grew since the stat).
    const buffer = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_KEY_FILE_BYTES) throw refuse(`the key file ${file} is over ${MAX_KEY_FILE_BYTES} bytes; a Pagewise key file is under ${MAX_KEY_FILE_BYTES} bytes`);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** The directory holding the key (links resolved): another user able to rearrange it could swap the key for theirs. */
async function refuseSharedDirOf(file: string): Promise<void> {
  const real = await fs.realpath(file).catch(() => undefined); // /proc/self/fd/N of a pipe: refused above already
  if (real === undefined) return;
  try {
    await assertUnsharedDir(path.dirname(real), 'the directory');
  } catch (err) {
    throw refuse(`the key file ${file} is unsafe: ${(err as Error).message}`);
  }
}

/**
 * Creates `file` exclusively (never over an existing file, nor through a planted symlink: O_EXCL
 * fails on any existing name) with mode 0600, writes and syncs `text`; a failed write removes the
 * partial file, so no half key is ever left to be mistaken for one.
 */
export async function createKeyFileExclusive(file: string, text: string): Promise<void> {
  try {
    await assertUnsharedDir(path.dirname(path.resolve(file)), 'the directory');
  } catch (err) {
    throw new PagewiseError('BadInput', `cannot write the key file ${file} there: ${(err as Error).message}`);
  }
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new PagewiseError('TargetExists', `the key file ${file} already exists; refusing to overwrite a key`);
    throw new PagewiseError('BadInput', `cannot write the key file ${file} (${code ?? 'error'})`);
  }
  const forget = removeAtExit(file); // a signal mid-write leaves no half key behind
  try {
    if (POSIX) await handle.chmod(0o600); // whatever the umask: exactly owner read/write
    await handle.writeFile(text);
    await handle.sync();
    await handle.close();
    forget();
  } catch (err) {
    forget();
    await handle.close().catch(() => undefined);
    await fs.unlink(file).catch(() => undefined);
    throw new PagewiseError('BadInput', `cannot write the key file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
