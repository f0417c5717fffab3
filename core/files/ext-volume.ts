/** An ext2/3/4 file system read through libext2fs (the `ext2fs` WASM package) over any DiskReader, read-only. */
import { mount, umount, type Ext2Fs, type Ext2Stats } from 'ext2fs';
import { Disk, type ReadResult, type WriteResult } from 'file-disk';
import { Limiter } from '../concurrency';
import { isPagewiseError, PagewiseError, throwIfAborted } from '../errors';
import { MiB } from '../limits';
import type { DiskReader } from './disk-reader';
import { fallsBack, planFileData, readFileData } from './ext-file-data';
import { EXT_SUPERBLOCK_BYTES, EXT_SUPERBLOCK_OFFSET, parseExtSuperblock, type ExtSuperblock } from './ext-superblock';

export type FileType = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device' | 'unknown';

export interface FileEntry {
  name: string;
  /** Absolute in the volume. */
  path: string;
  type: FileType;
  size: number;
  /** Permission bits: st_mode & 0o7777. */
  mode: number;
  mtime: string;
  mtimeMs: number;
  atimeMs: number;
  uid: number;
  gid: number;
  ino: number;
  nlink: number;
  /** A symlink's target, verbatim. */
  target?: string;
}

/** A read of a file moves this many bytes per libext2fs call unless told otherwise. */
export const FILE_CHUNK_BYTES = MiB;
/** A directory larger than this is refused: its names are all held in memory to sort them (≥ 12 bytes a name on disk). */
export const MAX_DIRECTORY_BYTES = 128 * MiB;

/**
 * One ext2fs call at a time, process-wide. The package queues its WASM calls, but its JS wrappers keep
 * per-call scratch memory under a module-global "current call" id across awaits, so two calls interleaved
 * can free each other's buffers; and a failed disk read is only attributable to the call that made it
 * when calls do not overlap.
 */
const EXT2FS_CALLS = new Limiter(1);

const S_IFMT = 0o170000;
const TYPES: Record<number, FileType> = {
  0o100000: 'file',
  0o040000: 'directory',
  0o120000: 'symlink',
  0o010000: 'fifo',
  0o140000: 'socket',
  0o020000: 'char-device',
  0o060000: 'block-device',
};

export function fileTypeOf(stMode: number): FileType {
  return TYPES[stMode & S_IFMT] ?? 'unknown';
}

/**
 * Whether a name read from a directory can be used as one path component: not empty, not '.'/'..', no '/'
 * or NUL, valid UTF-8. libext2fs hands back whatever bytes the entry holds; a hostile image may hold any.
 * Returns why not, or undefined when usable.
 */
export function unusableName(name: string): string | undefined {
  if (name === '') return 'the name is empty';
  if (name === '.' || name === '..') return `the name is "${name}"`;
  if (name.includes('/')) return 'the name holds a "/"';
  if (name.includes('\0')) return 'the name holds a NUL byte';
  if (name.includes('\uFFFD')) return 'the name is not valid UTF-8';
  return undefined;
}

/** Joins an absolute volume path and one usable name. */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/**
 * The DiskReader as file-disk's Disk (what libext2fs reads through): read-only with writes recorded in
 * memory, so a write libext2fs makes (it updates the superblock at unmount) never reaches the reader.
 * libext2fs turns any failed read into a bare EIO; the reader's own error is kept here to be rethrown.
 */
class ReaderDisk extends Disk {
  failure: unknown;

  constructor(
    readonly reader: DiskReader,
    private readonly what: string,
  ) {
    super(true, true, false, false);
  }

  /** The first read failure since the last call, cleared. */
  takeFailure(): unknown {
    const failure = this.failure;
    this.failure = undefined;
    return failure;
  }

  protected async _getCapacity(): Promise<number> {
    return this.reader.size;
  }

  protected async _read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<ReadResult> {
    try {
      if (fileOffset < 0 || fileOffset + length > this.reader.size) {
        throw new OutsideVolume(this.what, `bytes ${fileOffset}–${fileOffset + length} of ${this.reader.size}`);
      }
      const bytes = await this.reader.read(fileOffset, length);
      bytes.copy(buffer, bufferOffset, 0, length);
      return { bytesRead: length, buffer };
    } catch (err) {
      this.failure ??= err;
      throw err;
    }
  }

  protected async _write(): Promise<WriteResult> {
    throw new PagewiseError('BadInput', `${this.what} is opened read-only`);
  }

  protected async _flush(): Promise<void> {}
}

/** A read libext2fs asked for outside the volume: a damaged (or hostile) block number. */
class OutsideVolume extends PagewiseError {
  constructor(
    what: string,
    readonly range: string,
  ) {
    super('Corrupt', `${what}: the file system points outside its volume (${range})`);
  }
}

interface ErrnoError {
  code?: string;
}

export class ExtVolume {
  private closed = false;

  private constructor(
    private readonly fs: Ext2Fs,
    private readonly disk: ReaderDisk,
    /** The volume's name in messages ('p1', 'disk'). */
    readonly what: string,
    /** Parsed at mount for the direct file-data path; undefined (libext2fs reads every file) when unparsable. */
    private readonly sb: ExtSuperblock | undefined,
  ) {}

  /** Mounts the ext file system on `disk` (the whole reader is the volume). A write never reaches `disk`. */
  static async mount(disk: DiskReader, what: string): Promise<ExtVolume> {
    const readerDisk = new ReaderDisk(disk, what);
    let fs: Ext2Fs;
    try {
      fs = await EXT2FS_CALLS.run(() => mount(readerDisk, 0));
    } catch (err) {
      const failure = readerDisk.takeFailure();
      if (failure instanceof OutsideVolume) throw new PagewiseError('Corrupt', `${what}: the ext file system cannot be opened: it points outside its volume (${failure.range})`);
      if (failure !== undefined) throw asPagewise(failure, what);
      throw new PagewiseError('Corrupt', `${what}: the ext file system cannot be opened (libext2fs says ${(err as ErrnoError).code ?? String(err)})`, { cause: err });
    }
    return new ExtVolume(fs, readerDisk, what, await superblockOf(disk, what));
  }

  /** The entry at `path` itself (a symlink is not followed; the path's earlier components are, inside the volume). */
  async lstat(path: string): Promise<FileEntry> {
    const stats = await this.call(path, () => this.fs.promises.lstat(path));
    return this.entryOf(path, path === '/' ? '/' : path.slice(path.lastIndexOf('/') + 1), stats);
  }

  /** The entries of a directory, sorted by name (byte order), without . and .. */
  async list(dir: string): Promise<FileEntry[]> {
    const out: FileEntry[] = [];
    for (const name of await this.listNames(dir)) out.push(await this.child(dir, name));
    return out;
  }

  /** The names in a directory (a symlink to one is followed), sorted in byte order, without . and .. */
  async listNames(dir: string): Promise<string[]> {
    const stats = await this.call(dir, () => this.fs.promises.stat(dir));
    if (fileTypeOf(stats.mode) !== 'directory') throw new PagewiseError('BadInput', `${this.what}:${dir} is not a directory`);
    if (stats.size > MAX_DIRECTORY_BYTES) {
      throw new PagewiseError('LimitExceeded', `${this.what}:${dir} is a directory of ${stats.size} bytes, more than the ${MAX_DIRECTORY_BYTES} bytes Pagewise reads`);
    }
    // libext2fs's binding decodes names as UTF-8 (an invalid byte becomes U+FFFD, which unusableName refuses).
    const names = await this.call(dir, () => this.fs.promises.readdir(dir));
    return names.map((name) => ({ name, bytes: Buffer.from(name) })).sort((a, b) => Buffer.compare(a.bytes, b.bytes)).map((n) => n.name);
  }

  /** The entry `name` in `dir`; a name that cannot be a path component is returned as type 'unknown', never looked up. */
  async child(dir: string, name: string): Promise<FileEntry> {
    const path = childPath(dir, name);
    if (unusableName(name) !== undefined) {
      return { name, path, type: 'unknown', size: 0, mode: 0, mtime: new Date(0).toISOString(), mtimeMs: 0, atimeMs: 0, uid: 0, gid: 0, ino: 0, nlink: 0 };
    }
    const stats = await this.call(path, () => this.fs.promises.lstat(path));
    return this.entryOf(path, name, stats);
  }

  /**
   * A regular file's bytes in order. libext2fs resolves the path and says what the file is; its data is then
   * read straight from its blocks (ext-file-data.ts: large reads, not libext2fs's block-at-a-time), or, for
   * what that path does not take (inline data, a mismatch, a map over the bounds), through a libext2fs
   * FileHandle in steps (never libext2fs's readFile, which garbles binary files).
   */
  async *readFile(path: string, options: { chunkBytes?: number; abortSignal?: AbortSignal; /** false: libext2fs only (tests compare) */ direct?: boolean } = {}): AsyncGenerator<Buffer> {
    const chunkBytes = options.chunkBytes ?? FILE_CHUNK_BYTES;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || chunkBytes > 64 * MiB) throw new PagewiseError('BadInput', `chunkBytes ${chunkBytes} must be from 1 to ${64 * MiB}`);
    const p = this.fs.promises;
    const { fd } = await this.call(path, () => p.open(path, 'r'));
    try {
      const stats = await this.call(path, () => p.fstat(fd));
      const type = fileTypeOf(stats.mode);
      if (type !== 'file') throw new PagewiseError('BadInput', `${this.what}:${path} is ${type === 'directory' ? 'a directory' : `a ${type}`}, not a regular file`);
      const where = `${this.what}:${path}`;
      if (this.sb && options.direct !== false) {
        let yielded = false;
        try {
          const plan = await planFileData(this.disk.reader, this.sb, { ino: stats.ino, mode: stats.mode, size: stats.size }, where);
          if (plan.direct) {
            for await (const chunk of readFileData(this.disk.reader, this.sb, plan.inode, where, { chunkBytes, abortSignal: options.abortSignal })) {
              yielded = true;
              yield chunk;
            }
            return;
          }
        } catch (err) {
          if (yielded || !fallsBack(err)) throw cannotRead(err, where);
        }
      }
      for (let at = 0; at < stats.size; ) {
        throwIfAborted(options.abortSignal, `reading ${this.what}:${path} was cancelled`);
        const length = Math.min(chunkBytes, stats.size - at);
        const buffer = Buffer.alloc(length);
        const { bytesRead } = await this.call(path, () => p.read(fd, buffer, 0, length, at));
        if (bytesRead <= 0) throw new PagewiseError('Corrupt', `${this.what}:${path} ended at ${at} bytes while its inode says ${stats.size}`);
        at += bytesRead;
        yield bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
      }
    } finally {
      await EXT2FS_CALLS.run(() => p.close(fd)).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await EXT2FS_CALLS.run(() => umount(this.fs)).catch(() => undefined);
  }

  /** One libext2fs call (alone: EXT2FS_CALLS): a failed disk read wins over what libext2fs made of it; errno codes become Pagewise errors naming the path. */
  private async call<T>(path: string, op: () => Promise<T>): Promise<T> {
    if (this.closed) throw new PagewiseError('BadInput', `${this.what} is closed`);
    let result: T;
    try {
      result = await EXT2FS_CALLS.run(op);
    } catch (err) {
      const failure = this.disk.takeFailure();
      if (failure !== undefined) throw asPagewise(failure, this.what);
      throw this.errnoError(path, err);
    }
    // libext2fs sometimes goes on past a failed read (zeros in place of the block): never hand those out.
    const failure = this.disk.takeFailure();
    if (failure !== undefined) throw asPagewise(failure, this.what);
    return result;
  }

  private errnoError(path: string, err: unknown): Error {
    if (isPagewiseError(err)) return err;
    const where = `${this.what}:${path}`;
    switch ((err as ErrnoError).code) {
      case 'ENOENT':
        return new PagewiseError('PathNotFound', `${where} does not exist`, { cause: err });
      case 'ENOTDIR':
        return new PagewiseError('PathNotFound', `${where} does not exist (a component of it is not a directory)`, { cause: err });
      case 'ELOOP':
        return new PagewiseError('PathNotFound', `${where} cannot be resolved: too many levels of symbolic links`, { cause: err });
      case 'ENAMETOOLONG':
        return new PagewiseError('BadInput', `${where}: a name in the path is too long`, { cause: err });
      case 'EIO':
        return new PagewiseError('Corrupt', `${where} cannot be read: the file system is damaged (EIO)`, { cause: err });
      default:
        return new PagewiseError('Corrupt', `${where} cannot be read: libext2fs says ${(err as ErrnoError).code ?? String(err)}`, { cause: err });
    }
  }

  private async entryOf(path: string, name: string, stats: Ext2Stats): Promise<FileEntry> {
    const type = fileTypeOf(stats.mode);
    const entry: FileEntry = {
      name,
      path,
      type,
      size: stats.size,
      mode: stats.mode & 0o7777,
      mtime: stats.mtime.toISOString(),
      mtimeMs: stats.mtime.getTime(),
      atimeMs: stats.atime.getTime(),
      uid: stats.uid,
      gid: stats.gid,
      ino: stats.ino,
      nlink: stats.nlink,
    };
    if (type === 'symlink') entry.target = await this.call(path, () => this.fs.promises.readlink(path));
    return entry;
  }
}

/** A damaged map as "p1:/x cannot be read: its …" (ext-inode says "p1:/x is damaged: …"): the facade names the file once. */
function cannotRead(err: unknown, where: string): unknown {
  const damaged = `${where} is damaged: `;
  if (!isPagewiseError(err, 'Corrupt') || !err.message.startsWith(damaged)) return err;
  return new PagewiseError('Corrupt', `${where} cannot be read: ${err.message.slice(damaged.length)}`, { cause: err });
}

/** The volume's superblock for the direct file-data path; undefined when it does not parse (libext2fs mounted it anyway). */
async function superblockOf(disk: DiskReader, what: string): Promise<ExtSuperblock | undefined> {
  try {
    return parseExtSuperblock(await disk.read(EXT_SUPERBLOCK_OFFSET, EXT_SUPERBLOCK_BYTES), what);
  } catch {
    return undefined;
  }
}

/** A reader's failure as thrown to callers: Pagewise errors as they are (a Corrupt names its range), anything else as Corrupt. */
function asPagewise(err: unknown, what: string): PagewiseError {
  if (isPagewiseError(err)) return err;
  return new PagewiseError('Corrupt', `${what} cannot be read: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
