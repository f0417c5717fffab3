/**
 * One window of a verification (#17): the pages [w·windowPages, (w+1)·windowPages) checked group by
 * group (one page table in memory at a time) — each entry's structure, with `readData` its blocks
 * fetched, decoded and hash-checked, and optionally the window compared with the source through a
 * bounded scratch cache. Read-only: running it twice finds the same. A page table is counted, and a
 * table that cannot be read named, by the window holding its first page, so windows add up without
 * double counts.
 */
import { ScratchCache } from '../cache/scratch-cache';
import { PseudoDisk } from '../cache/pseudo-disk';
import { forEachLimited } from '../concurrency';
import { isPagewiseError, PagewiseError, throwIfAborted } from '../errors';
import { PAGE_CONCURRENCY } from '../limits';
import { BackupSource, openBackupSource, PageRef } from '../repo/backup-source';
import { PageGrid, pagesOfRangesAsync } from '../source/page-grid';
import { SourceDisk } from '../source/source-disk';
import { allowedEndpointOf } from '../storage/clients';
import type { StorageLocation } from '../types';
import { noteInto, NO_VERIFY_WINDOWS, VerifyWindowSummary } from './verify-summary';

/** How a window is checked: the plan's facts it needs, and this process's limits. */
export interface VerifyWindowOptions {
  readData: boolean;
  windowPages: number;
  concurrency?: number;
  scratchDir?: string;
  abortSignal?: AbortSignal;
  /** Called as entries are checked: how many, their bytes, and whether to report now (verifyBackup's onProgress). */
  onChecked?: (pages: number, bytes: number, report: boolean) => void;
}

/** A window checked by an activity: the backup opened again (by its manifest's name when given). */
export interface VerifyWindowRequest extends Omit<VerifyWindowOptions, 'onChecked'> {
  backupId: string;
  vault: StorageLocation;
  userKey: Buffer;
  /** The plan's manifestName (version 2). */
  manifestName?: string;
  /** The source to compare with; only when the plan's `compare` says so. */
  source?: StorageLocation;
  window: number;
}

export async function verifyWindow(req: VerifyWindowRequest): Promise<VerifyWindowSummary> {
  const stopIfAborted = () => throwIfAborted(req.abortSignal, 'the verification was interrupted');
  stopIfAborted();
  if (req.source) allowedEndpointOf(req.source, 'blob', 'the source disk URL');
  const reader = await openBackupSource(req.vault, req.backupId, req.userKey, { abortSignal: req.abortSignal, ...(req.manifestName ? { manifestName: req.manifestName } : {}) }).catch((err: unknown) => {
    stopIfAborted();
    throw err;
  });
  const problems: string[] = [];
  let source: SourceDisk | undefined;
  if (req.source) {
    // The plan opened it and found the sizes equal: a source gone or resized since is this window's problem.
    try {
      source = await SourceDisk.open(req.source);
      if (source.diskBytes !== reader.diskBytes) {
        noteInto(problems)(`the source is ${source.diskBytes} bytes, the backup ${reader.diskBytes}`);
        source = undefined;
      }
    } catch (err) {
      stopIfAborted();
      if (!isPagewiseError(err)) throw err;
      noteInto(problems)(err.message);
    }
  }
  const found = await checkWindow(reader, req.window, req, source);
  return { ...found, problems: [...problems, ...found.problems] };
}

/**
 * Checks window `window` of an opened backup with a reader of its own (`reader.fork()`), so its
 * counts are this window's alone.
 */
export async function checkWindow(opened: BackupSource, window: number, options: VerifyWindowOptions, source?: SourceDisk): Promise<VerifyWindowSummary> {
  const { windowPages } = options;
  if (!Number.isSafeInteger(windowPages) || windowPages < 1) throw new PagewiseError('BadInput', `the window of ${windowPages} pages is not a positive whole number of pages`);
  const first = window * windowPages;
  if (!Number.isSafeInteger(window) || window < 0 || first >= opened.pageCount) {
    throw new PagewiseError('BadInput', `window ${window} of ${windowPages} pages is not within the backup's ${opened.pageCount} pages`);
  }
  const end = Math.min(opened.pageCount, first + windowPages);
  const reader = opened.fork();
  const stopIfAborted = () => throwIfAborted(options.abortSignal, 'the verification was interrupted');
  const problems: string[] = [];
  const note = noteInto(problems);
  const sum: VerifyWindowSummary = { ...NO_VERIFY_WINDOWS, windows: 1, problems };
  const count = (entries: PageRef[], report = true) => {
    let bytes = 0;
    for (const e of entries) bytes += reader.pageLength(e.page);
    sum.pagesChecked += entries.length;
    sum.pageBytes += bytes;
    options.onChecked?.(entries.length, bytes, report);
  };
  try {
    for (let group = Math.floor(first / reader.groupPages); group * reader.groupPages < end; group++) {
      stopIfAborted();
      const from = Math.max(first, group * reader.groupPages);
      const to = Math.min(end, (group + 1) * reader.groupPages);
      const ownsTable = group * reader.groupPages >= first;
      const entries = await groupSlice(reader, group, from, to, ownsTable, note, () => sum.tablesChecked++);
      if (entries === undefined) continue; // its table cannot be read: named by the window holding its first page
      await checkEntries(reader, entries, options, note, count, sum, stopIfAborted);
      if (source) await compareWithSource(source, reader, from, to, entries, note, options, stopIfAborted);
    }
  } catch (err) {
    stopIfAborted(); // whatever the abort broke on its way, the verification was interrupted
    if (!isPagewiseError(err)) throw err;
    note(err.message);
  }
  sum.segmentsChecked = reader.checked.containers;
  sum.packsChecked = reader.checked.packs;
  sum.blocksRelocated = reader.checked.relocated;
  return sum;
}

/**
 * The entries of pages [from, to) of group `group`: its table read (checked against the manifest), or
 * undefined when it cannot be (a damaged table: noted once, by its owner).
 */
async function groupSlice(reader: BackupSource, group: number, from: number, to: number, ownsTable: boolean, note: (p: string) => void, counted: () => void): Promise<PageRef[] | undefined> {
  const tablesBefore = reader.checked.tables;
  try {
    const entries = await reader.groupEntries(group);
    if (ownsTable && reader.checked.tables > tablesBefore) counted();
    return entries.filter((e) => e.page >= from && e.page < to);
  } catch (err) {
    if (!isPagewiseError(err, 'Corrupt')) throw err;
    if (ownsTable) note(err.message);
    return undefined;
  }
}

/** Structure of each entry, then with readData every block of the sound ones, counting as it goes. */
async function checkEntries(
  reader: BackupSource,
  entries: PageRef[],
  options: VerifyWindowOptions,
  note: (p: string) => void,
  count: (entries: PageRef[], report?: boolean) => void,
  sum: VerifyWindowSummary,
  stopIfAborted: () => void,
): Promise<void> {
  const sound: PageRef[] = [];
  const structural = await reader.entryProblems(entries);
  entries.forEach((entry, k) => {
    if (structural[k]) {
      note(structural[k]!);
      count([entry], false);
    } else sound.push(entry);
  });
  if (!options.readData) {
    count(sound); // structure only: the entries are sound and their segments (packs) whole
    return;
  }
  await forEachLimited(reader.runs(sound), options.concurrency ?? PAGE_CONCURRENCY.default, async (run: PageRef[]) => {
    stopIfAborted();
    for (const { entry, plain, error } of await reader.readRun(run)) {
      if (error) note(error.message);
      else {
        sum.blocksChecked += reader.blocksOf(entry);
        sum.bytesChecked += plain!.length;
      }
      count([entry]);
    }
  });
}

/**
 * Compares the source's allocated pages in [from, to) with the backup's entries there: a page must
 * match (hash or content IDs), or be all zeros and a hole. Read through a scratch cache of
 * `concurrency` pages.
 */
async function compareWithSource(
  source: SourceDisk,
  reader: BackupSource,
  from: number,
  to: number,
  entries: PageRef[],
  note: (p: string) => void,
  options: VerifyWindowOptions,
  stopIfAborted: () => void,
): Promise<void> {
  const grid = new PageGrid(reader.diskBytes, reader.pageSize);
  const byPage = new Map(entries.map((e) => [e.page, e]));
  const range = { offset: from * reader.pageSize, length: (to - from) * reader.pageSize };
  const cache = await ScratchCache.create({ capacityBytes: reader.pageSize * (options.concurrency ?? PAGE_CONCURRENCY.default), pageSize: reader.pageSize, dir: options.scratchDir });
  try {
    const disk = new PseudoDisk(source, grid, cache);
    await forEachLimited(pagesOfRangesAsync(grid, source.allocatedRanges(range)), cache.slotCount, async ({ page, ranges: pageRanges }) => {
      stopIfAborted();
      await disk.load(page, pageRanges);
      const plain = await disk.readPage(page);
      disk.evict(page);
      const entry = byPage.get(page);
      byPage.delete(page);
      const isZero = plain.every((b) => b === 0);
      if (!entry) {
        if (!isZero) note(`page ${page}: has data in the source but is a hole in the backup`);
      } else if (!(await reader.matches(entry, plain))) {
        note(`page ${page}: differs between the source and the backup`);
      }
    });
  } finally {
    await cache.dispose();
  }
  for (const page of byPage.keys()) note(`page ${page}: has data in the backup but is unallocated in the source`);
}
