/** The files of a backed-up disk: its volumes, each opened on first use (journal replayed in memory), listed, read and walked. */
import { isPagewiseError, PagewiseError, throwIfAborted } from '../errors';
import { sliceReader, type DiskReader } from './disk-reader';
import { parseExtSuperblock, EXT_SUPERBLOCK_BYTES, EXT_SUPERBLOCK_OFFSET } from './ext-superblock';
import { replayExtJournal, type JournalReplay } from './ext-journal';
import { ExtVolume, type FileEntry } from './ext-volume';
import { parseVolumePath, type VolumePath } from './file-path';
import { DEFAULT_OVERLAY_MAX_BYTES, OverlayDisk } from './overlay-disk';
import { readPartitionTable, type Partition, type PartitionLayout } from './partition-table';
import { VaultDisk, type OpenVaultDiskRequest, type VaultDiskStats } from './vault-disk';
import { identifyVolume, type VolumeIdentity } from './volume-kind';

export interface VolumeView {
  /** 'p1'…, or 'disk' for a bare file system. */
  name: string;
  offset: number;
  size: number;
  partition?: Partition;
  identity: VolumeIdentity;
  /** Set once the volume is opened. */
  journal?: JournalReplay;
}

export interface FileRestoreStats extends VaultDiskStats {
  volumesOpened: number;
  journalsReplayed: number;
}

export interface FileListing {
  volume: string;
  path: string;
  entries: FileEntry[];
  /** Cursor for the next page (the last name of this one); absent on the last page. */
  next?: string;
}

export interface OpenBackupFilesRequest extends OpenVaultDiskRequest {
  overlayMaxBytes?: number;
}

/** What walk() yields: an entry, its volume, its names below the walk's start; `skip` when walk did not descend into a directory, and why. */
export type WalkEntry = FileEntry & { volume: string; relative: string[]; skip?: string };

export const DEFAULT_LIST_LIMIT = 1000;
export const MAX_LIST_LIMIT = 10_000;
/** walk() descends at most this many directories below its start. */
export const MAX_WALK_DEPTH = 256;
/**
 * Names walk() holds at once, over all the directories it is inside (each level's sorted names wait while
 * the level below is walked): one directory may hold millions (MAX_DIRECTORY_BYTES) and a hostile image may
 * nest such directories, so the sum is bounded, not each alone. ~60 bytes a name: about 250 MB at most.
 */
export const MAX_WALK_HELD_NAMES = 4_000_000;

const NO_VAULT_STATS: VaultDiskStats = { bytesFetched: 0, requests: 0, piecesFetched: 0, cacheHits: 0, holeReads: 0, cacheBytes: 0, cacheHighWaterBytes: 0, tablesRead: 0 };

export class BackupFiles {
  private readonly mounted = new Map<string, Promise<ExtVolume>>();
  private volumesOpened = 0;
  private journalsReplayed = 0;
  private closed = false;

  private constructor(
    private readonly disk: DiskReader,
    /** The disk in messages ('backup …', an image path). */
    readonly what: string,
    readonly layout: PartitionLayout,
    private readonly views: VolumeView[],
    private readonly overlayMaxBytes: number,
  ) {}

  /** The files of a backup in the vault, read through the vault pseudo-disk. */
  static async open(req: OpenBackupFilesRequest): Promise<BackupFiles> {
    const disk = await VaultDisk.open(req);
    return BackupFiles.openDisk(disk, `backup ${req.backupId}`, { overlayMaxBytes: req.overlayMaxBytes });
  }

  /** The files of any disk: the partition table read and each volume identified now; nothing mounted yet. */
  static async openDisk(disk: DiskReader, what: string, options: { overlayMaxBytes?: number } = {}): Promise<BackupFiles> {
    const overlayMaxBytes = options.overlayMaxBytes ?? DEFAULT_OVERLAY_MAX_BYTES;
    if (!Number.isSafeInteger(overlayMaxBytes) || overlayMaxBytes <= 0) throw new PagewiseError('BadInput', `overlayMaxBytes ${overlayMaxBytes} must be a positive whole number of bytes`);
    const layout = await readPartitionTable(disk);
    const views: VolumeView[] = [];
    if (layout.scheme === 'none') {
      views.push({ name: 'disk', offset: 0, size: disk.size, identity: await identifyVolume(disk, 'the disk') });
    } else {
      for (const partition of layout.partitions) {
        const window = sliceReader(disk, partition.offset, partition.size, partition.name);
        views.push({ name: partition.name, offset: partition.offset, size: partition.size, partition, identity: await identifyVolume(window, partition.name) });
      }
    }
    return new BackupFiles(disk, what, layout, views, overlayMaxBytes);
  }

  volumes(): VolumeView[] {
    return this.views;
  }

  /** Parses a user's path against this disk's volumes (see parseVolumePath). */
  parse(path: string): VolumePath {
    return parseVolumePath(path, this.views.map((v) => ({ name: v.name, openable: v.identity.openable })));
  }

  /** One page of a directory's entries (sorted by name, byte order), after the name `after` when given. */
  async list(path: string, options: { limit?: number; after?: string } = {}): Promise<FileListing> {
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) throw new PagewiseError('BadInput', `limit ${limit} must be a whole number from 1 to ${MAX_LIST_LIMIT}`);
    const where = this.parse(path);
    const volume = await this.volume(where.volume);
    const label = `${where.volume}:${where.path}`;
    const names = await named(label, () => volume.listNames(where.path));
    let start = 0;
    if (options.after !== undefined) {
      const after = Buffer.from(options.after);
      while (start < names.length && Buffer.compare(Buffer.from(names[start]), after) <= 0) start++;
    }
    const page = names.slice(start, start + limit);
    const entries: FileEntry[] = [];
    for (const name of page) entries.push(await named(label, () => volume.child(where.path, name)));
    const listing: FileListing = { volume: where.volume, path: where.path, entries };
    if (start + limit < names.length) listing.next = page[page.length - 1];
    return listing;
  }

  /** The entry at a path (a symlink itself, not what it points to). */
  async stat(path: string): Promise<FileEntry & { volume: string }> {
    const where = this.parse(path);
    const volume = await this.volume(where.volume);
    return { ...(await named(`${where.volume}:${where.path}`, () => volume.lstat(where.path))), volume: where.volume };
  }

  /** A regular file's bytes in order; a Corrupt read is rethrown as Corrupt `file p1:/x cannot be read: …`. */
  async *read(path: string, options: { abortSignal?: AbortSignal } = {}): AsyncGenerator<Buffer> {
    const where = this.parse(path);
    const volume = await this.volume(where.volume);
    try {
      yield* volume.readFile(where.path, { abortSignal: options.abortSignal });
    } catch (err) {
      throw namedCorrupt(err, `${where.volume}:${where.path}`, 'file ');
    }
  }

  /**
   * Pre-order walk from a path (the entry itself first, directories before their entries). Symlinks are
   * entries, never followed; a directory met twice (a hard-linked directory: a loop or a fan-out a hostile
   * image may hold) or deeper than MAX_WALK_DEPTH is yielded with `skip` and not entered.
   */
  async *walk(
    path: string,
    options: { abortSignal?: AbortSignal; /** ≤ MAX_WALK_DEPTH (the default) */ maxDepth?: number; /** ≤ MAX_WALK_HELD_NAMES (the default; tests: smaller) */ maxHeldNames?: number } = {},
  ): AsyncGenerator<WalkEntry> {
    const maxDepth = options.maxDepth ?? MAX_WALK_DEPTH;
    if (!Number.isSafeInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_WALK_DEPTH) throw new PagewiseError('BadInput', `maxDepth ${maxDepth} must be a whole number from 0 to ${MAX_WALK_DEPTH}`);
    const maxHeld = options.maxHeldNames ?? MAX_WALK_HELD_NAMES;
    if (!Number.isSafeInteger(maxHeld) || maxHeld < 1 || maxHeld > MAX_WALK_HELD_NAMES) throw new PagewiseError('BadInput', `maxHeldNames ${maxHeld} must be a whole number from 1 to ${MAX_WALK_HELD_NAMES}`);
    let held = 0;
    const where = this.parse(path);
    const volume = await this.volume(where.volume);
    const seen = new Set<number>();
    const visit = async function* (entry: FileEntry, relative: string[]): AsyncGenerator<WalkEntry> {
      throwIfAborted(options.abortSignal, 'the walk was cancelled');
      if (entry.type !== 'directory') {
        yield { ...entry, volume: where.volume, relative };
        return;
      }
      if (seen.has(entry.ino)) {
        yield { ...entry, volume: where.volume, relative, skip: 'a directory already met at another path (a hard-linked directory)' };
        return;
      }
      if (relative.length > maxDepth) {
        yield { ...entry, volume: where.volume, relative, skip: `deeper than ${maxDepth} directories` };
        return;
      }
      seen.add(entry.ino);
      yield { ...entry, volume: where.volume, relative };
      const label = `${where.volume}:${entry.path}`;
      const names = await named(label, () => volume.listNames(entry.path));
      if (held + names.length > maxHeld) {
        throw new PagewiseError('LimitExceeded', `${label} holds ${names.length} entries, and the directories above it ${held}: more than the ${maxHeld} names a walk holds at once`);
      }
      held += names.length;
      try {
        for (const name of names) yield* visit(await named(label, () => volume.child(entry.path, name)), [...relative, name]);
      } finally {
        held -= names.length;
      }
    };
    yield* visit(await named(`${where.volume}:${where.path}`, () => volume.lstat(where.path)), []);
  }

  stats(): FileRestoreStats {
    const vault = this.disk instanceof VaultDisk ? this.disk.stats() : NO_VAULT_STATS;
    return { ...vault, volumesOpened: this.volumesOpened, journalsReplayed: this.journalsReplayed };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const opened = [...this.mounted.values()];
    this.mounted.clear();
    for (const volume of opened) await volume.then((v) => v.close(), () => undefined);
  }

  /** The mounted volume, opened once (concurrent first uses share the opening; a failed opening is tried again next time). */
  private volume(name: string): Promise<ExtVolume> {
    if (this.closed) return Promise.reject(new PagewiseError('BadInput', `the files of ${this.what} are closed`));
    let opening = this.mounted.get(name);
    if (!opening) {
      opening = this.openVolume(name);
      this.mounted.set(name, opening);
      opening.catch(() => this.mounted.delete(name));
    }
    return opening;
  }

  private async openVolume(name: string): Promise<ExtVolume> {
    const view = this.views.find((v) => v.name === name);
    if (!view) throw new PagewiseError('BadInput', `${this.what} has no volume ${name}`);
    if (!view.identity.openable) {
      throw new PagewiseError('UnsupportedFileSystem', view.identity.why ?? `${name} holds ${view.identity.description}; Pagewise reads ext2/3/4 only: restore the disk (pagewise restore) and mount it`);
    }
    const window = view.name === 'disk' && view.offset === 0 && view.size === this.disk.size ? this.disk : sliceReader(this.disk, view.offset, view.size, name);
    const sb = parseExtSuperblock(await window.read(EXT_SUPERBLOCK_OFFSET, EXT_SUPERBLOCK_BYTES), name);
    if (!sb) throw new PagewiseError('Corrupt', `${name}: the ext superblock is gone (no ext magic at byte ${EXT_SUPERBLOCK_OFFSET})`);
    // The overlay holds the journal's blocks as the kernel would replay them; the volume itself is never written.
    const overlay = new OverlayDisk(window, sb.blockSize, this.overlayMaxBytes);
    const label = name === 'disk' ? 'the disk' : name;
    let journal: JournalReplay;
    try {
      journal = await replayExtJournal(window, overlay, label);
    } catch (err) {
      // A journal that breaks midway (hostile or damaged): the files as the disk holds them beat no files; the overlay is dropped whole.
      if (!isPagewiseError(err, 'Corrupt')) throw err;
      journal = { needed: true, replayed: false, transactions: 0, blocks: 0, revoked: 0, warning: `${label}: ${err.message}; files are as the disk held them, maybe missing the last changes` };
    }
    view.journal = journal;
    if (journal.replayed) this.journalsReplayed++;
    const volume = await ExtVolume.mount(journal.replayed ? overlay : window, name);
    this.volumesOpened++;
    return volume;
  }
}

/**
 * A Corrupt met while reading `label` ('p1:/etc'), said so once: a disk range alone does not tell a user which
 * file or directory is lost. Other errors as they are.
 */
function namedCorrupt(err: unknown, label: string, prefix = ''): unknown {
  if (!isPagewiseError(err, 'Corrupt')) return err;
  const said = `${label} cannot be read: `;
  const detail = err.message.startsWith(said) ? err.message.slice(said.length) : err.message;
  return new PagewiseError('Corrupt', `${prefix}${said}${detail}`, { cause: err });
}

async function named<T>(label: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw namedCorrupt(err, label);
  }
}
