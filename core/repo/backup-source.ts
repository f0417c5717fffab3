/** What restore and verify read of a complete backup, whatever the vault's format version: one interface, one opener. */
import { StorageLocation } from '../types';
import { isPagewiseError, PagewiseError } from '../errors';
import { CallOptions } from './store/blob-store';
import type { StoreMeter } from './store/wrappers';
import { BackupReader } from './backup-reader';
import { validateBackupId } from './backup-id';
import { Vault } from './vault';
import { openKeyring } from './v2/keyring';
import { readVaultMarkerIfAny } from './v2/marker';
import { BackupReader2 } from './v2/backup-reader2';

/** A page of the backup's page table: version 1 a PageEntry (one block), version 2 a PageRecord2 (its chunks). */
export interface PageRef {
  page: number;
}

export interface PageRead<E extends PageRef = PageRef> {
  entry: E;
  plain?: Buffer;
  error?: PagewiseError;
}

/** A stretch of a page read on its own: [at, at + length) of the page; a zero piece is zeros, never fetched. */
export interface PagePiece {
  at: number;
  length: number;
  zero: boolean;
}

/** What a reader checked so far (verify's counts). */
export interface SourceChecks {
  /** Version 1: segments HEAD-checked; version 2: distinct packs HEAD-checked. */
  containers: number;
  /** Version 2: distinct packs HEAD-checked (0 for version 1). */
  packs: number;
  /** Page tables (version 1: page-table chunks) read and checked against the manifest by groups(). */
  tables: number;
  /** Version 2: blocks whose hinted pack was gone, found through the vault index (a repack moved them); 0 for version 1. */
  relocated: number;
}

/**
 * A complete backup opened for reading: its facts, its page entries group by group (version 1 a
 * segment's page-table chunk, version 2 one page table; one group in memory at a time), and its pages.
 */
export interface BackupSource<E extends PageRef = PageRef> {
  readonly formatVersion: 1 | 2;
  readonly backupId: string;
  readonly diskBytes: number;
  readonly pageSize: number;
  readonly pageCount: number;
  /** Pages per group: group g covers pages [g·groupPages, (g+1)·groupPages). */
  readonly groupPages: number;
  /** Non-hole pages (entries) of the backup, from the manifest. */
  readonly entryCount: number;
  readonly checked: SourceChecks;
  /** The real length of a page: the disk's last page may be short. */
  pageLength(page: number): number;
  /** Plaintext bytes of all entries, each page at its real length. */
  entryBytes(): Promise<number>;
  /** The groups holding entries, ascending; each group's entries in page order, checked against the manifest as read. */
  groups(): AsyncGenerator<{ group: number; entries: E[] }>;
  /** Blobs to check present and whole before the pages (version 1: its segments; version 2: none, packs are checked as tables name them). */
  containers(): Array<{ name: string; problem(): Promise<string | undefined> }>;
  /** Structural problem of each entry (where its blocks lie, its length), undefined when sound; version 2 HEADs each new pack once. */
  entryProblems(entries: E[]): Promise<Array<string | undefined>>;
  /** Splits entries (page order) into runs each read with few ranged GETs, bounded in stored and plaintext bytes. */
  runs(entries: E[]): E[][];
  /**
   * The plaintext of each page of a run, fully checked, or the error naming the page (an abort throws).
   * With `memory`, version 2 reads each page into a buffer it takes from there (a caller that reuses its
   * memory: the page writer); version 1 allocates its own.
   */
  readRun(run: E[], memory?: RunMemory): Promise<Array<PageRead<E>>>;
  /** Blocks a page's read decodes (version 1: 1; version 2: its non-zero chunks). */
  blocksOf(entry: E): number;
  /** Whether a page read from elsewhere (the source disk) is the page the backup holds. */
  matches(entry: E, plain: Buffer): Promise<boolean>;
  /**
   * One group's entries (its page table / page-table chunk), checked as groups() checks them; [] when the
   * backup holds none for the group (all holes). Random access for the pseudo-disk.
   */
  groupEntries(group: number): Promise<E[]>;
  /** How a page is read in pieces, in order, covering [0, entry length): v1 one piece; v2 one per chunk (zero chunks zero: true). */
  pieces(entry: E): PagePiece[];
  /**
   * Plaintext of pieces `which` (ascending indexes into pieces(entry)) of one page: only those blocks
   * fetched (v2: adjacent chunks in one ranged GET; gone packs through the vault index as readRun does),
   * decoded, content-checked. Throws Corrupt naming page and disk offset.
   */
  readPieces(entry: E, which: number[]): Promise<Buffer[]>;
  /** Version 2: the manifest's blob name (a verify window reopens the backup by it, without listing the vault's manifests). */
  readonly manifestName?: string;
  /** The same backup with checks of its own (`checked`, packs HEAD-checked once): one per verify window, so counts add up the same in one process and across activities. */
  fork(): BackupSource<E>;
}

/** Where a run's pages are read into: a buffer of exactly `bytes` per page, whatever it held (every byte of a page returned is overwritten). */
export interface RunMemory {
  take(bytes: number): Buffer;
}

/** How openBackupSource opens the vault: a call's signal, and a meter counting its requests and bytes read. */
export interface OpenSourceOptions extends CallOptions {
  meter?: StoreMeter;
  /** Version 2: the backup's manifest blob name, as an earlier open gave it (`manifestName`): read directly, checked to be this backup's. */
  manifestName?: string;
}

/**
 * Opens a complete backup for reading with the user key. Dispatches on the vault marker (§12): a
 * version-1 vault by the Part I rules; a version-2 vault through its keyring and the backup's manifest;
 * an upgraded vault also holds version-1 backups under backups/.
 */
export async function openBackupSource(vaultLocation: StorageLocation, backupId: string, userKey: Buffer, options: OpenSourceOptions = {}): Promise<BackupSource> {
  validateBackupId(backupId);
  const vault = Vault.open(vaultLocation, { meter: options.meter });
  const call = { abortSignal: options.abortSignal };
  const v1 = { ...call, meter: options.meter };
  // No marker: a container written before markers existed reads as version 1 (its reads fail as they always did).
  const marker = await readVaultMarkerIfAny(vault);
  if (marker?.version !== 2) return BackupReader.open(vaultLocation, backupId, userKey, v1);
  const upgraded = marker.upgradedFrom === 1;
  let reader: BackupReader2 | undefined;
  let noSlot: PagewiseError | undefined;
  try {
    const keyring = await openKeyring(vault, marker, userKey);
    reader = options.manifestName ? await BackupReader2.openNamed(vault, keyring, backupId, options.manifestName, call) : await BackupReader2.open(vault, keyring, backupId, call);
  } catch (err) {
    // A key without a slot may still be the key of the version-1 backups an upgraded vault keeps.
    if (!(upgraded && isPagewiseError(err, 'WrongKey'))) throw err;
    noSlot = err;
  }
  if (reader) return reader;
  if (!upgraded) throw new PagewiseError('BackupNotFound', `backup ${backupId} does not exist in the vault ${vault.display}`);
  // An upgraded vault keeps its version-1 backups under backups/ (§12.4).
  return BackupReader.open(vaultLocation, backupId, userKey, v1).catch((err: unknown) => {
    throw noSlot && isPagewiseError(err, 'BackupNotFound') ? noSlot : err;
  });
}


/**
 * The entries of pages [first, first + count), in page order, one group's table in memory at a time:
 * only the tables of the groups the range overlaps are read (a restore window reads its own, not the set).
 */
export async function* entriesInRange<E extends PageRef>(source: BackupSource<E>, first: number, count: number): AsyncGenerator<E[]> {
  const end = Math.min(source.pageCount, first + count);
  if (first < 0 || end <= first) return;
  for (let group = Math.floor(first / source.groupPages); group * source.groupPages < end; group++) {
    const entries = (await source.groupEntries(group)).filter((e) => e.page >= first && e.page < end);
    if (entries.length > 0) yield entries;
  }
}
