/**
 * Copies files out of a backed-up disk into a local directory, as `cp -r a b… to/` would, treating every
 * name, link and mode from the image as hostile: nothing is written outside `to`, no link is followed, a
 * file appears under its real name only once complete.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PagewiseError, throwIfAborted } from '../errors';
import type { BackupFiles, FileRestoreStats, WalkEntry } from './backup-files';
import { FILE_CHUNK_BYTES, unusableName, type FileType } from './ext-volume';
import { MAX_VOLUME_PATH_BYTES } from './file-path';

export interface ExtractRequest {
  files: BackupFiles;
  paths: string[];
  to: string;
  overwrite?: boolean;
  keepSetid?: boolean;
  abortSignal?: AbortSignal;
  onProgress?: (p: { files: number; bytes: number; path: string }) => void;
}

export interface ExtractResult {
  to: string;
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  /** The first MAX_SKIPPED_KEPT entries not extracted, and why. */
  skipped: Array<{ path: string; reason: string }>;
  /** How many entries were not extracted in all (skipped holds the first of them). */
  skippedCount: number;
  /** Volumes whose journal was replayed to read them. */
  journalReplayed: string[];
  stats: FileRestoreStats;
}

const NOT_EXTRACTED: Partial<Record<FileType, string>> = {
  fifo: 'a FIFO (named pipe) is not extracted',
  socket: 'a socket is not extracted',
  'char-device': 'a character device is not extracted',
  'block-device': 'a block device is not extracted',
  unknown: 'an entry of unknown type is not extracted',
};

/**
 * Skipped entries kept in the result: a hostile image may hold millions (device nodes hard-linked over
 * and over, each with a path up to 4 KiB): past this they are only counted.
 */
export const MAX_SKIPPED_KEPT = 1000;

/** Linux's PATH_MAX less its NUL: a longer local path cannot be made (Node has no openat to go deeper). */
const LOCAL_PATH_MAX = 4095;

/** A directory created (or entered) whose mode and times are set once its contents are in. */
interface OpenDirectory {
  relative: string[];
  local: string;
  entry: WalkEntry;
}

/**
 * The directories being extracted, from the landing down to the current entry's parent, each with the
 * names already placed in it (a hostile directory may hold one name twice). A directory leaves once its
 * contents are in, and its names with it: what is held is O(depth × one directory), never O(the tree).
 */
export class OpenDirectories<D extends { relative: string[] }> {
  private readonly stack: Array<{ dir: D; names: Set<string> }> = [];

  /** Leaves (in order, deepest first) every directory `relative` is not inside, handing each to `close`. */
  async leaveUntilInside(relative: string[], close: (dir: D) => Promise<void>): Promise<void> {
    while (this.stack.length > 0 && !isInside(relative, this.stack[this.stack.length - 1].dir.relative)) await close(this.stack.pop()!.dir);
  }

  /** Records `name` in the innermost open directory; false when it was placed there already. */
  claim(name: string): boolean {
    const top = this.stack[this.stack.length - 1];
    if (!top) return true; // a landing: the requested paths' landings are distinct, checked up front
    if (top.names.has(name)) return false;
    top.names.add(name);
    return true;
  }

  enter(dir: D): void {
    this.stack.push({ dir, names: new Set() });
  }

  /** Directories and names held now (tests: the bound). */
  held(): { directories: number; names: number } {
    return { directories: this.stack.length, names: this.stack.reduce((n, d) => n + d.names.size, 0) };
  }
}

export async function extractFiles(req: ExtractRequest): Promise<ExtractResult> {
  const { files } = req;
  const overwrite = req.overwrite ?? false;
  const modeMask = req.keepSetid ? 0o7777 : 0o1777;
  if (req.paths.length === 0) throw new PagewiseError('BadInput', 'no path to extract was given');
  // Each requested path lands under `to` by its last component (a volume's root by the volume's name).
  const requests = req.paths.map((text) => {
    const where = files.parse(text);
    return { text, where, landing: where.path === '/' ? where.volume : where.path.slice(where.path.lastIndexOf('/') + 1) };
  });
  const landings = new Set<string>();
  for (const r of requests) {
    if (landings.has(r.landing)) throw new PagewiseError('BadInput', `two of the paths asked for would land at the same name "${r.landing}" under ${resolve(req.to)}`);
    landings.add(r.landing);
  }
  // `to` is made only once every path asked for is accepted: a refused request leaves nothing behind.
  const root = await prepareTarget(req.to);
  const result: ExtractResult = { to: root, files: 0, directories: 0, symlinks: 0, bytes: 0, skipped: [], skippedCount: 0, journalReplayed: [], stats: files.stats() };

  // Parent directories are real directories inside `to` (never a symlink), checked once each while open.
  const checkedDirs = new Set<string>([root]);
  const assertRealDir = async (dir: string) => {
    if (checkedDirs.has(dir)) return;
    const st = await fs.lstat(dir);
    if (!st.isDirectory() || (await fs.realpath(dir)) !== dir) {
      throw new PagewiseError('BadInput', `${dir} is not a plain directory inside ${root} (a symlink or a file is in the way); nothing is written through it`);
    }
    checkedDirs.add(dir);
  };

  const finish = async (dir: OpenDirectory) => {
    checkedDirs.delete(dir.local); // done with: no entry is written into it again
    await fs.chmod(dir.local, dir.entry.mode & modeMask);
    await fs.utimes(dir.local, dir.entry.atimeMs / 1000, dir.entry.mtimeMs / 1000);
  };

  for (const request of requests) {
    const open = new OpenDirectories<OpenDirectory>();
    let skipping: string[] | undefined; // a directory not extracted: what walk yields inside it is passed over
    for await (const entry of files.walk(`${request.where.volume}:${request.where.path}`, { abortSignal: req.abortSignal })) {
      throwIfAborted(req.abortSignal, 'the extraction was cancelled');
      const relative = [request.landing, ...entry.relative];
      if (skipping && isInside(relative, skipping)) continue;
      skipping = undefined;
      // Close the directories this entry is not inside: their contents are complete.
      await open.leaveUntilInside(relative, finish);
      const shownPath = `${entry.volume}:${entry.path}`;
      const skip = (reason: string) => {
        result.skippedCount++;
        if (result.skipped.length < MAX_SKIPPED_KEPT) result.skipped.push({ path: shownPath, reason });
        if (entry.type === 'directory') skipping = relative;
      };

      const name = relative[relative.length - 1];
      const parentRelative = relative.slice(0, -1);
      const bad = entry.relative.length > 0 ? unusableName(entry.name) : undefined;
      if (bad !== undefined) {
        skip(`${bad}; it is never used as a local name`);
        continue;
      }
      if (Buffer.byteLength(entry.path) > MAX_VOLUME_PATH_BYTES) {
        skip(`its path is longer than ${MAX_VOLUME_PATH_BYTES} bytes`);
        continue;
      }
      if (!open.claim(name)) {
        skip('a second entry of the same name in its directory');
        continue;
      }
      const notExtracted = NOT_EXTRACTED[entry.type];
      if (notExtracted !== undefined) {
        skip(notExtracted);
        continue;
      }
      if (entry.skip !== undefined) {
        skip(`not entered: ${entry.skip}`);
        continue;
      }

      const parent = join(root, ...parentRelative);
      const local = join(parent, name);
      if (Buffer.byteLength(local) > LOCAL_PATH_MAX) {
        skip(`its local path would be longer than ${LOCAL_PATH_MAX} bytes`);
        continue;
      }
      await assertRealDir(parent);
      if (entry.type === 'directory') {
        await makeDirectory(local, overwrite);
        await assertRealDir(local);
        open.enter({ relative, local, entry });
        result.directories++;
      } else if (entry.type === 'symlink') {
        const target = entry.target ?? '';
        if (target === '' || target.includes('\0')) {
          skip(`the link's target is ${target === '' ? 'empty' : 'holds a NUL byte'}`);
          continue;
        }
        await placeNew(local, overwrite, async (temp) => {
          await fs.symlink(target, temp);
          await fs.lutimes(temp, entry.atimeMs / 1000, entry.mtimeMs / 1000);
        });
        result.symlinks++;
      } else {
        let written = 0;
        await placeNew(local, overwrite, async (temp) => {
          const handle = await fs.open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
          try {
            for await (const chunk of files.read(shownPath, { abortSignal: req.abortSignal })) {
              // All-zero steps (a sparse file's holes) are not written: the file stays sparse here too.
              if (!isZero(chunk)) await handle.write(chunk, 0, chunk.length, written);
              written += chunk.length;
            }
            throwIfAborted(req.abortSignal, 'the extraction was cancelled');
            await handle.truncate(written);
            // Mode and times after the content, on the descriptor: never through a path.
            await handle.chmod(entry.mode & modeMask);
            await handle.utimes(entry.atimeMs / 1000, entry.mtimeMs / 1000);
          } finally {
            await handle.close();
          }
        });
        result.files++;
        result.bytes += written;
        req.onProgress?.({ files: result.files, bytes: result.bytes, path: shownPath });
      }
    }
    await open.leaveUntilInside([], finish);
  }

  result.journalReplayed = files.volumes().filter((v) => v.journal?.replayed).map((v) => v.name);
  result.stats = files.stats();
  return result;
}

/** `to` made if missing (its parent must exist), then resolved once: every later path is joined onto this. */
async function prepareTarget(to: string): Promise<string> {
  const wanted = resolve(to);
  try {
    await fs.mkdir(wanted);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PagewiseError('TargetNotFound', `${dirname(wanted)} does not exist: the directory to extract into (${wanted}) is made only inside an existing one`);
    if (code !== 'EEXIST') throw new PagewiseError('BadInput', `${wanted} cannot be made: ${code ?? String(err)}`);
  }
  const real = await fs.realpath(wanted);
  if (!(await fs.stat(real)).isDirectory()) throw new PagewiseError('BadInput', `${wanted} is not a directory`);
  return real;
}

/** `.<name>.pagewise-<random>`, the name cut (at a character) so the whole stays within NAME_MAX (255 bytes). */
function temporaryName(name: string): string {
  let short = '';
  for (const c of name) {
    if (Buffer.byteLength(short + c) > 200) break;
    short += c;
  }
  return `.${short}.pagewise-${randomBytes(6).toString('hex')}`;
}

const ZEROS = Buffer.alloc(FILE_CHUNK_BYTES);

function isZero(chunk: Buffer): boolean {
  for (let at = 0; at < chunk.length; at += ZEROS.length) {
    const part = chunk.subarray(at, at + ZEROS.length);
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

function isInside(relative: string[], dir: string[]): boolean {
  return relative.length > dir.length && dir.every((part, i) => relative[i] === part);
}

async function lstatOrUndefined(path: string) {
  try {
    return await fs.lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const exists = (path: string) => new PagewiseError('TargetExists', `${path} already exists (use --force to overwrite)`);

/** A directory at `local`: made (0700 until its contents are in), or an existing real directory kept with overwrite. */
async function makeDirectory(local: string, overwrite: boolean): Promise<void> {
  const existing = await lstatOrUndefined(local);
  if (existing) {
    if (!overwrite) throw exists(local);
    if (existing.isDirectory()) return;
    await fs.unlink(local); // a file or a symlink in the way: removed, never followed
  }
  try {
    await fs.mkdir(local, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw exists(local);
    throw err;
  }
}

/**
 * Makes a new entry at a temporary name beside `local` (`.<name>.pagewise-<random>`), then renames it into
 * place: an interrupted extraction leaves no half-file under the real name, and the temporary is removed
 * on any failure. An existing `local` is TargetExists unless `overwrite` (a directory is never replaced).
 */
async function placeNew(local: string, overwrite: boolean, make: (temp: string) => Promise<void>): Promise<void> {
  const check = async () => {
    const existing = await lstatOrUndefined(local);
    if (existing && (!overwrite || existing.isDirectory())) throw exists(local);
  };
  await check();
  const temp = join(dirname(local), temporaryName(local.slice(dirname(local).length + 1)));
  let placed = false;
  try {
    await make(temp);
    await check();
    await fs.rename(temp, local);
    placed = true;
  } finally {
    if (!placed) await fs.rm(temp, { force: true }).catch(() => undefined);
  }
}
