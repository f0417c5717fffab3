/**
 * Verify a backup from the vault alone: the manifest's MAC, every page-table chunk (hash, authentication),
 * every entry's place in its segment, each segment's committed size (version 2: every table's size and
 * hash, each pack its tables name present and long enough), and with `readData` every block
 * (fetched, decrypted, decompressed, hash-checked). Optionally the backup is also compared page by page
 * with its source disk, read through a scratch cache like the backup itself. Problems name the page.
 */
import { ScratchCache } from '../cache/scratch-cache';
import { PseudoDisk } from '../cache/pseudo-disk';
import { forEachLimited } from '../concurrency';
import { PAGE_CONCURRENCY } from '../limits';
import { isPagewiseError, throwIfAborted } from '../errors';
import { BackupSource, openBackupSource, PageRef } from '../repo/backup-source';
import { PageGrid, pagesOfRangesAsync, ByteRange } from '../source/page-grid';
import { SourceDisk } from '../source/source-disk';
import { allowedEndpointOf } from '../storage/clients';
import { OperationProgress, VerifyRequest, VerifyResult } from '../types';
import { formatBytes } from '../units';

const MAX_PROBLEMS = 100;

export async function verifyBackup(req: VerifyRequest): Promise<VerifyResult> {
  const started = Date.now();
  // An interruption ends the verification without a verdict: it is not a problem of the backup.
  const signal = req.abortSignal;
  const stopIfAborted = () => throwIfAborted(signal, 'the verification was interrupted');
  stopIfAborted();
  // A source off the allowed endpoints is bad input, refused before anything is read (not a "problem").
  if (req.source) allowedEndpointOf(req.source, 'blob', 'the source disk URL');
  const reader = await openBackupSource(req.vault, req.backupId, req.userKey, { abortSignal: signal }).catch((err: unknown) => {
    stopIfAborted(); // a vault request the abort cancelled: the verification was interrupted
    throw err;
  });
  const problems: string[] = [];
  const note = (p: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  let pagesChecked = 0;
  let blocksChecked = 0;
  let bytesChecked = 0;
  const readData = req.readData ?? true;

  for (const container of reader.containers()) {
    try {
      const problem = await container.problem();
      if (problem) note(problem);
    } catch (err) {
      stopIfAborted();
      note(`${container.name} could not be checked (${(err as Error).message})`);
    }
  }

  // A last page table that cannot be read is a problem the loop below notes, not a reason to stop here.
  const bytesTotal = await reader.entryBytes().catch(() => {
    stopIfAborted();
    return reader.entryCount * reader.pageSize;
  });
  const progress: OperationProgress = { phase: 'verifying', pagesDone: 0, pagesTotal: reader.entryCount, bytesDone: 0, bytesTotal };
  /** Counts checked entries (each page's real length in the bytes); `report` tells onProgress. */
  const count = (entries: PageRef[], report = true) => {
    pagesChecked += entries.length;
    progress.pagesDone = pagesChecked;
    for (const e of entries) progress.bytesDone += reader.pageLength(e.page);
    if (report) req.onProgress?.({ ...progress });
  };
  const segmentCount = Math.ceil(reader.pageCount / reader.groupPages);
  let compared = 0; // segments compared with the source so far
  let source: SourceDisk | null | undefined; // opened once, on first use; null when it does not match
  const compareUpTo = async (segment: number, entries: PageRef[]) => {
    if (!req.source) return;
    if (source === undefined) {
      source = await SourceDisk.open(req.source);
      if (source.diskBytes !== reader.diskBytes) {
        note(`the source is ${source.diskBytes} bytes, the backup ${reader.diskBytes}`);
        source = null;
      }
    }
    if (source === null) return;
    for (; compared < segment; compared++) await compareWithSource(source, reader, compared, [], note, req.concurrency, req.scratchDir, stopIfAborted);
    if (compared === segment && segment < segmentCount) await compareWithSource(source, reader, compared++, entries, note, req.concurrency, req.scratchDir, stopIfAborted);
  };
  try {
    for await (const { group: segment, entries } of reader.groups()) {
      stopIfAborted();
      const sound: PageRef[] = [];
      const structural = await reader.entryProblems(entries);
      entries.forEach((entry, k) => {
        if (structural[k]) {
          note(structural[k]!);
          count([entry], false);
        } else sound.push(entry);
      });
      if (readData) {
        await forEachLimited(reader.runs(sound), req.concurrency ?? PAGE_CONCURRENCY.default, async (run: PageRef[]) => {
          stopIfAborted();
          for (const { entry, plain, error } of await reader.readRun(run)) {
            if (error) note(error.message);
            else {
              blocksChecked += reader.blocksOf(entry);
              bytesChecked += plain!.length;
            }
            count([entry]);
          }
        });
      } else {
        count(sound); // structure only: the entries are sound and their segments (packs) whole
      }
      await compareUpTo(segment, entries);
    }
    await compareUpTo(segmentCount, []);
  } catch (err) {
    stopIfAborted(); // whatever the abort broke on its way, the verification was interrupted
    if (!isPagewiseError(err)) throw err;
    note(err.message);
  }

  return {
    backupId: req.backupId,
    formatVersion: reader.formatVersion,
    ok: problems.length === 0,
    readData,
    comparedWithSource: req.source !== undefined,
    pagesChecked,
    segmentsChecked: reader.checked.containers,
    packsChecked: reader.checked.packs,
    tablesChecked: reader.checked.tables,
    blocksRelocated: reader.checked.relocated,
    blocksChecked,
    bytesChecked,
    problems,
    durationMs: Date.now() - started,
  };
}

/** One line saying exactly what a verification checked (CLI output; the same facts as the result's fields). */
export function describeVerification(result: VerifyResult): string {
  const structure =
    result.formatVersion === 2
      ? `structure checked: manifest, ${result.tablesChecked} page table(s), ${result.pagesChecked} page records, ${result.packsChecked} pack(s) present and long enough${result.blocksRelocated ? ` (${result.blocksRelocated} block(s) found through the vault index: their hinted packs were repacked)` : ''}`
      : `structure checked: manifest, ${result.pagesChecked} page-table entries, ${result.segmentsChecked} segment(s) present and whole`;
  const data = result.readData
    ? `${result.blocksChecked} blocks (${formatBytes(result.bytesChecked)}) read, decrypted and hash-checked`
    : 'no data read (--read-data reads and hash-checks every block)';
  return `${structure}; ${data}${result.comparedWithSource ? '; compared with the source' : ''}`;
}

/**
 * Compares the source's allocated pages in one segment's window with the backup's entries of that
 * segment: a page must hash the same, or be all zeros and a hole.
 */
async function compareWithSource(
  source: SourceDisk,
  reader: BackupSource,
  segment: number,
  entries: PageRef[],
  note: (p: string) => void,
  concurrency = PAGE_CONCURRENCY.default,
  scratchDir?: string,
  stopIfAborted: () => void = () => undefined,
): Promise<void> {
  const grid = new PageGrid(reader.diskBytes, reader.pageSize);
  const byPage = new Map(entries.map((e) => [e.page, e]));
  const window: ByteRange = { offset: segment * reader.groupPages * reader.pageSize, length: reader.groupPages * reader.pageSize };
  const cache = await ScratchCache.create({ capacityBytes: reader.pageSize * concurrency, pageSize: reader.pageSize, dir: scratchDir });
  try {
    const disk = new PseudoDisk(source, grid, cache);
    await forEachLimited(pagesOfRangesAsync(grid, source.allocatedRanges(window)), cache.slotCount, async ({ page, ranges: pageRanges }) => {
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

