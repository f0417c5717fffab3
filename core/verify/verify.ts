/**
 * Verify a backup from the vault alone: the manifest's MAC, every page-table chunk (hash, authentication),
 * every entry's place in its segment, each segment's committed size (version 2: every table's size and
 * hash, each pack its tables name present and long enough), and with `readData` every block
 * (fetched, decrypted, decompressed, hash-checked). Optionally the backup is also compared page by page
 * with its source disk, read through a scratch cache like the backup itself. Problems name the page.
 * In one process: the plan, then its windows in order (the steps the verify orchestration runs as
 * activities, #17), then their sum.
 */
import { OperationProgress, VerifyRequest, VerifyResult } from '../types';
import { formatBytes } from '../units';
import { openVerification, VerifyPlanRequest } from './verify-plan';
import { addVerifySummaries, NO_VERIFY_WINDOWS, verifyResultOf } from './verify-summary';
import { checkWindow } from './verify-window';

export async function verifyBackup(req: VerifyRequest & Pick<VerifyPlanRequest, 'windowBytes'>): Promise<VerifyResult> {
  const started = Date.now();
  const { plan, reader, source } = await openVerification(req);
  const progress: OperationProgress = { phase: 'verifying', pagesDone: 0, pagesTotal: plan.pagesTotal, bytesDone: 0, bytesTotal: plan.bytesTotal };
  const onChecked = (pages: number, bytes: number, report: boolean) => {
    progress.pagesDone += pages;
    progress.bytesDone += bytes;
    if (report) req.onProgress?.({ ...progress });
  };
  const options = { readData: plan.readData, windowPages: plan.windowPages, concurrency: req.concurrency, scratchDir: req.scratchDir, abortSignal: req.abortSignal, onChecked };
  let windows = NO_VERIFY_WINDOWS;
  for (let w = 0; w < plan.windowCount; w++) windows = addVerifySummaries(windows, await checkWindow(reader, w, options, source));
  return verifyResultOf(plan, windows, Date.now() - started);
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
