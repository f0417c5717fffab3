/**
 * Local restore targets. A file restore writes a new sparse file beside the target — created
 * exclusively, never through a link, mode 0600, under an unpredictable name — and renames it into
 * place when complete; only nothing or a regular file may be there (a device, FIFO, socket, directory
 * or link is refused before anything is read from the vault). A block device is written in place,
 * only when asked for explicitly (`device`): never created, truncated or renamed over.
 */
import { constants, promises as fs, Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { PagewiseError } from '../errors';
import { removeAtExit } from '../exit-cleanup';
import { assertUnsharedDir } from '../shared-dir';

/** Where restored pages go; `dense` sinks keep old content where nothing is written, so zeros are written too. */
export interface PageSink {
  dense: boolean;
  /**
   * `abortSignal` cancels a request in flight (a page blob's Put Page); a local write is short and finishes.
   * `data` is the writer's again once the promise settles (writePages reuses its memory): keep no reference.
   */
  write(offset: number, data: Buffer, abortSignal?: AbortSignal): Promise<void>;
  commit(): Promise<void>;
  abandon(): Promise<void>;
}

/** A target checked before the backup is read; `open` makes the sink once the disk's size is known. */
export interface PreparedTarget {
  display: string;
  open(diskBytes: number): Promise<PageSink>;
}

async function writeAll(handle: fs.FileHandle, offset: number, data: Buffer): Promise<void> {
  let done = 0;
  while (done < data.length) done += (await handle.write(data, done, data.length - done, offset + done)).bytesWritten;
}

function kindOf(stat: Stats): string {
  if (stat.isSymbolicLink()) return 'a symbolic link';
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'error';
}

async function lstatOrNothing(file: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(file);
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw new PagewiseError('BadInput', `cannot examine ${file} (${errno(err)})`);
  }
}

/** Only nothing, or a regular file with `overwrite`, may be replaced; the link itself is examined, never its target. */
function refuseUnlessReplaceable(target: string, stat: Stats | undefined, overwrite: boolean): void {
  if (!stat) return;
  if (stat.isBlockDevice()) {
    throw new PagewiseError('BadInput', `${target} is a block device; pass --to-device to write it in place (a file restore never replaces a device)`);
  }
  if (!stat.isFile()) {
    throw new PagewiseError('BadInput', `${target} is ${kindOf(stat)}; a file restore writes only a new or regular file (it never follows or replaces anything else)`);
  }
  if (!overwrite) throw new PagewiseError('TargetExists', `${target} already exists; pass --force to overwrite it`);
}

/** A file target as checked before the vault is read: its real path, and what was there (a file replaced with overwrite). */
export interface CheckedFileTarget {
  target: string;
  before?: Stats;
}

/** Checks a file target without reading the vault: only nothing, or a regular file with overwrite, may be there. */
export async function checkFileTarget(file: string, overwrite: boolean, keep: string[] = []): Promise<CheckedFileTarget> {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  const dirStat = await fs.stat(dir).catch((err: unknown) => {
    throw new PagewiseError('BadInput', `the directory ${dir} of the restore target cannot be used (${errno(err)})`);
  });
  if (!dirStat.isDirectory()) throw new PagewiseError('BadInput', `${dir} is not a directory`);
  // The directory's real path, once: a link on the way that is changed later does not move the restore.
  const realDir = await fs.realpath(dir);
  await assertUnsharedDir(realDir, 'the directory of the restore target');
  const real = path.join(realDir, path.basename(target));
  const before = await lstatOrNothing(real);
  // The partial file's name is the target's plus a tag: too long a name would fail only after the vault was read.
  const room = NAME_MAX - PARTIAL_TAG.length - 2 * PARTIAL_RANDOM_BYTES;
  if (Buffer.byteLength(path.basename(real)) > room) {
    throw new PagewiseError('BadInput', `the file name of ${real} is too long for a restore target (at most ${room} bytes: the partial file beside it adds ${NAME_MAX - room})`);
  }
  refuseUnlessReplaceable(real, before, overwrite);
  await refuseKeptFile(real, before, keep);
  return { target: real, ...(before ? { before } : {}) };
}

/** Checks a file target without reading the vault; the sink it opens writes beside it and renames. */
export async function prepareFileTarget(file: string, overwrite: boolean, keep: string[] = []): Promise<PreparedTarget> {
  const { target, before } = await checkFileTarget(file, overwrite, keep);
  return { display: target, open: (diskBytes) => openFileSink(target, diskBytes, overwrite, before) };
}

/** The key file (under any name: a hard link, another spelling) is never the target: overwriting it loses every backup made with it. */
async function refuseKeptFile(target: string, stat: Stats | undefined, keep: string[]): Promise<void> {
  if (!stat) return;
  for (const file of keep) {
    const kept = await fs.stat(file).catch(() => undefined);
    if (kept && kept.dev === stat.dev && kept.ino === stat.ino) {
      throw new PagewiseError('BadInput', `${target} is the key file ${file}; a restore never overwrites the key (every backup made with it would be lost)`);
    }
  }
}

const PARTIAL_TAG = '.pagewise-partial-';
const PARTIAL_RANDOM_BYTES = 8;
/** The longest file name common file systems take (ext4, XFS, btrfs, tmpfs, APFS). */
const NAME_MAX = 255;

const EXCLUSIVE = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW;

/**
 * Creates the partial file beside `target`: unpredictable and created exclusively (a link planted at a
 * guessed name is never followed), mode 0600, sparse at the disk's size. Removed again on failure.
 */
export async function createPartialFile(target: string, diskBytes: number): Promise<{ partial: string; handle: fs.FileHandle }> {
  const partial = `${target}${PARTIAL_TAG}${randomBytes(PARTIAL_RANDOM_BYTES).toString('hex')}`;
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(partial, EXCLUSIVE, 0o600);
    await handle.truncate(diskBytes); // sparse: holes are never written
  } catch (err) {
    await handle?.close().catch(() => undefined);
    if (handle) await fs.rm(partial, { force: true });
    throw new PagewiseError('BadInput', `cannot create a file beside ${target} (${errno(err)})`);
  }
  return { partial, handle };
}

/** Whether `partial` is a name createPartialFile gives for `target` (a step of a fan-out restore is handed it back). */
export function isPartialOf(partial: string, target: string): boolean {
  return partial.startsWith(`${target}${PARTIAL_TAG}`) && new RegExp(`^[0-9a-f]{${2 * PARTIAL_RANDOM_BYTES}}$`).test(partial.slice(target.length + PARTIAL_TAG.length));
}

/**
 * Opens a partial file again for writing (a later step of a fan-out restore): never through a link,
 * never created; it must still be a regular file of this user, 0600, one link, the disk's size.
 */
export async function reopenPartialFile(partial: string, diskBytes: number): Promise<fs.FileHandle> {
  let handle: fs.FileHandle;
  try {
    // O_NONBLOCK: a FIFO put in its place fails at once instead of blocking the open (no effect on a regular file).
    handle = await fs.open(partial, constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw new PagewiseError('BadInput', `the partial restore file ${partial} cannot be opened (${errno(err)}); the restore was abandoned or its file removed`);
  }
  const stat = await handle.stat();
  const mine = typeof process.getuid !== 'function' || stat.uid === process.getuid();
  if (!stat.isFile() || !mine || (stat.mode & 0o777) !== 0o600 || stat.nlink !== 1 || stat.size !== diskBytes) {
    await handle.close();
    throw new PagewiseError('BadInput', `${partial} is not the partial file this restore made (a regular file of ${diskBytes} bytes, mode 0600, one link); nothing was written`);
  }
  return handle;
}

/** Writes all of `data` at `offset` of an open file. */
export const writeFileAt = writeAll;

async function openFileSink(target: string, diskBytes: number, overwrite: boolean, checked: Stats | undefined): Promise<PageSink> {
  const { partial, handle } = await createPartialFile(target, diskBytes);
  const h = handle;
  const forget = removeAtExit(partial); // plaintext disk data: gone even if the process exits mid-restore
  const discard = async () => {
    await h.close().catch(() => undefined);
    await fs.rm(partial, { force: true });
    forget();
  };
  return {
    dense: false,
    write: (offset, data) => writeAll(h, offset, data),
    async commit() {
      try {
        await h.sync();
        await h.close();
        await moveIntoPlace(partial, target, overwrite, checked);
        forget();
      } catch (err) {
        await discard();
        throw err;
      }
    },
    abandon: discard,
  };
}

/**
 * Without overwrite, a hard link is the no-clobber rename (it fails if anything appeared at the
 * target meanwhile); with it, the target must still be the regular file that was checked (or gone).
 */
export async function moveIntoPlace(partial: string, target: string, overwrite: boolean, checked: Pick<Stats, 'dev' | 'ino'> | undefined): Promise<void> {
  const now = await lstatOrNothing(target);
  const same = now && checked && now.isFile() && now.dev === checked.dev && now.ino === checked.ino;
  if (now && !(overwrite && same)) {
    refuseUnlessReplaceable(target, now, overwrite);
    throw new PagewiseError('TargetExists', `${target} changed during the restore (another file is there now); it was left as it is`);
  }
  if (!now && !overwrite) {
    try {
      await fs.link(partial, target);
      await fs.rm(partial, { force: true });
      return;
    } catch (err) {
      if (errno(err) === 'EEXIST') throw new PagewiseError('TargetExists', `${target} appeared during the restore; it was left as it is`);
      // A file system without hard links: fall back to rename (the lstat above saw nothing there).
    }
  }
  await fs.rename(partial, target);
}

/**
 * A block device written in place: it must exist and be a block device (a link to one, e.g.
 * /dev/disk/by-id/…, is followed: the opened descriptor is what is checked) at least as large as the disk.
 */
export async function prepareDeviceTarget(device: string): Promise<PreparedTarget> {
  const target = path.resolve(device);
  let stat: Stats;
  try {
    stat = await fs.stat(target);
  } catch (err) {
    throw new PagewiseError('BadInput', `the device ${target} cannot be used (${errno(err)})`);
  }
  refuseUnlessBlockDevice(target, stat);
  await (await openDevice(target, constants.O_RDONLY)).close(); // in use (mounted): refused before the vault is read
  return { display: target, open: (diskBytes) => openDeviceSink(target, diskBytes) };
}

function refuseUnlessBlockDevice(target: string, stat: Stats): void {
  if (stat.isBlockDevice()) return;
  const kind = stat.isFile() ? 'a regular file' : kindOf(stat);
  throw new PagewiseError('BadInput', `${target} is ${kind}, not a block device; --to-device writes only a block device (use --to for a file)`);
}

/**
 * O_EXCL on a block device (Linux) claims it exclusively, as mkfs does: it fails with EBUSY while the
 * device, or a partition of it, is mounted, used as swap or held by device-mapper or RAID — writing a
 * disk image under a mounted file system would corrupt both. The claim lasts while the restore writes.
 */
async function openDevice(device: string, flags: number): Promise<fs.FileHandle> {
  try {
    // No O_CREAT, no O_TRUNC: a mistyped path never becomes a file, and nothing past the disk is touched.
    return await fs.open(device, flags | constants.O_EXCL);
  } catch (err) {
    if (errno(err) === 'EBUSY') {
      throw new PagewiseError('BadInput', `the device ${device} is in use (mounted, or a partition of it is, or held as swap, LVM or RAID); unmount it first: a restore never writes a device in use`);
    }
    throw new PagewiseError('BadInput', `cannot open the device ${device} for writing (${errno(err)})`);
  }
}

async function openDeviceSink(device: string, diskBytes: number): Promise<PageSink> {
  const handle = await openDevice(device, constants.O_RDWR);
  try {
    refuseUnlessBlockDevice(device, await handle.stat());
    // A device's stat size is 0; it holds the disk when its last byte is readable.
    const { bytesRead } = await handle.read(Buffer.alloc(1), 0, 1, diskBytes - 1);
    if (bytesRead !== 1) throw new PagewiseError('BadInput', `the device ${device} is smaller than the disk (${diskBytes} bytes)`);
  } catch (err) {
    await handle.close();
    if (err instanceof PagewiseError) throw err;
    throw new PagewiseError('BadInput', `cannot read the size of the device ${device} (${errno(err)})`);
  }
  const h = handle;
  return {
    dense: true,
    write: (offset, data) => writeAll(h, offset, data),
    async commit() {
      await h.sync();
      await h.close();
    },
    async abandon() {
      await h.close().catch(() => undefined);
    },
  };
}
