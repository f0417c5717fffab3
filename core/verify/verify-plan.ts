/**
 * The first step of a verification (#17): open the backup, run the checks that concern it whole (its
 * containers: version 1's segments present and whole; the source's size), and cut the disk into windows
 * of pages that verify-window.ts checks one by one — in one process (verifyBackup) or as activities.
 */
import { isPagewiseError, throwIfAborted } from '../errors';
import { RESTORE_WINDOW_BYTES, windowPagesFor } from '../restore/restore-plan';
import { BackupSource, openBackupSource } from '../repo/backup-source';
import { SourceDisk } from '../source/source-disk';
import { allowedEndpointOf } from '../storage/clients';
import { SECTOR } from '../limits';
import type { VerifyRequest } from '../types';
import { MAX_PROBLEMS, noteInto } from './verify-summary';

/** What a verification's plan hands its windows and its result: facts and counts, no secret, no page data. */
export interface VerifyPlan {
  backupId: string;
  formatVersion: 1 | 2;
  readData: boolean;
  /** A source was given: the result says the backup was compared with it. */
  comparedWithSource: boolean;
  /** The windows compare with the source (false without one, or when its size is not the backup's: a problem noted here). */
  compare: boolean;
  diskBytes: number;
  pageSize: number;
  pageCount: number;
  /** Window w checks pages [w·windowPages, min(pageCount, (w+1)·windowPages)). */
  windowPages: number;
  windowCount: number;
  /** The progress totals: the backup's entries (non-hole pages) and their bytes at their real lengths. */
  pagesTotal: number;
  bytesTotal: number;
  /** Version 2: the manifest's blob name, so each window opens it without listing the vault's manifests. */
  manifestName?: string;
  /** Containers the plan checked (version 1: its segments). */
  segmentsChecked: number;
  /** Problems the plan found (containers, the source's size), at most MAX_PROBLEMS. */
  problems: string[];
}

export interface VerifyPlanRequest extends Omit<VerifyRequest, 'onProgress'> {
  /** Bytes of the disk per window (RESTORE_WINDOW_BYTES; default 1 GiB): whole pages, at least one. */
  windowBytes?: number;
}

/** Plans a verification; `reader` is the opened backup (verifyBackup keeps using it, an activity drops it). */
export async function openVerification(req: VerifyPlanRequest): Promise<{ plan: VerifyPlan; reader: BackupSource; source?: SourceDisk }> {
  const signal = req.abortSignal;
  const stopIfAborted = () => throwIfAborted(signal, 'the verification was interrupted');
  stopIfAborted();
  const windowBytes = req.windowBytes ?? RESTORE_WINDOW_BYTES.default;
  windowPagesFor(windowBytes, SECTOR); // its bounds, before anything is read
  // A source off the allowed endpoints is bad input, refused before anything is read (not a "problem").
  if (req.source) allowedEndpointOf(req.source, 'blob', 'the source disk URL');
  const reader = await openBackupSource(req.vault, req.backupId, req.userKey, { abortSignal: signal }).catch((err: unknown) => {
    stopIfAborted(); // a vault request the abort cancelled: the verification was interrupted
    throw err;
  });
  const problems: string[] = [];
  const note = noteInto(problems);
  for (const container of reader.containers()) {
    try {
      const problem = await container.problem();
      if (problem) note(problem);
    } catch (err) {
      stopIfAborted();
      note(`${container.name} could not be checked (${(err as Error).message})`);
    }
  }
  // A last page table that cannot be read is a problem its window notes, not a reason to stop here.
  const bytesTotal = await reader.entryBytes().catch(() => {
    stopIfAborted();
    return reader.entryCount * reader.pageSize;
  });
  let source: SourceDisk | undefined;
  if (req.source) {
    try {
      source = await SourceDisk.open(req.source);
      if (source.diskBytes !== reader.diskBytes) {
        note(`the source is ${source.diskBytes} bytes, the backup ${reader.diskBytes}`);
        source = undefined;
      }
    } catch (err) {
      stopIfAborted();
      if (!isPagewiseError(err)) throw err;
      note(err.message);
    }
  }
  const windowPages = windowPagesFor(windowBytes, reader.pageSize);
  const plan: VerifyPlan = {
    backupId: req.backupId,
    formatVersion: reader.formatVersion,
    readData: req.readData ?? true,
    comparedWithSource: req.source !== undefined,
    compare: source !== undefined,
    diskBytes: reader.diskBytes,
    pageSize: reader.pageSize,
    pageCount: reader.pageCount,
    windowPages,
    windowCount: Math.ceil(reader.pageCount / windowPages),
    pagesTotal: reader.entryCount,
    bytesTotal,
    ...(reader.manifestName ? { manifestName: reader.manifestName } : {}),
    segmentsChecked: reader.checked.containers,
    problems: problems.slice(0, MAX_PROBLEMS),
  };
  return { plan, reader, ...(source ? { source } : {}) };
}

/** The plan alone (the plan activity): the backup opened and checked whole, its windows counted. */
export async function planVerify(req: VerifyPlanRequest): Promise<VerifyPlan> {
  return (await openVerification(req)).plan;
}
