/**
 * One window of a fan-out restore: writes exactly the backup's pages of that window into the target
 * the plan made (zero runs inside a page skipped, as the streaming restore does), reading only the page
 * tables the window overlaps, through the shared page writer's bounded runs. Idempotent: a retried
 * window writes the same bytes again.
 */
import { PagewiseError, throwIfAborted } from '../errors';
import { displayUrl } from '../redact';
import { entriesInRange, openBackupSource } from '../repo/backup-source';
import { targetBlobClient } from '../storage/clients';
import type { PageSink } from './file-target';
import { reopenPartialFile, writeFileAt } from './file-target';
import { putPages } from './restore';
import { assertOwnIncomplete } from './restore-marks';
import { assertPlanOf, RestorePlan, RestoreStepRequest, windowPages } from './restore-plan';
import { writePages } from './write-pages';
import { diskPageWriter } from '../vm/managed-disk-steps';

/** What a window wrote: its pages (plaintext bytes at their real length) and the bytes sent to the target. */
export interface RestoreWindowSummary {
  windows: number;
  pages: number;
  bytes: number;
  bytesWritten: number;
}

export const NO_WINDOWS: RestoreWindowSummary = { windows: 0, pages: 0, bytes: 0, bytesWritten: 0 };

export function addWindowSummaries(a: RestoreWindowSummary, b: RestoreWindowSummary): RestoreWindowSummary {
  return { windows: a.windows + b.windows, pages: a.pages + b.pages, bytes: a.bytes + b.bytes, bytesWritten: a.bytesWritten + b.bytesWritten };
}

export async function restoreWindow(req: RestoreStepRequest, plan: RestorePlan, window: number): Promise<RestoreWindowSummary> {
  throwIfAborted(req.abortSignal, 'the restore was interrupted');
  await assertPlanOf(req, plan);
  if (!Number.isSafeInteger(window) || window < 0 || window >= plan.windowCount) {
    throw new PagewiseError('BadInput', `restore window ${window} does not exist (the plan has ${plan.windowCount})`);
  }
  const sink = await openWindowSink(req, plan);
  const summary = { ...NO_WINDOWS, windows: 1 };
  try {
    const reader = await openBackupSource(req.vault, req.backupId, req.userKey, { abortSignal: req.abortSignal });
    if (reader.diskBytes !== plan.diskBytes || reader.pageSize !== plan.pageSize) {
      throw new PagewiseError('Corrupt', `backup ${req.backupId} is not the one planned (${reader.diskBytes} bytes in pages of ${reader.pageSize}, planned ${plan.diskBytes} in ${plan.pageSize})`);
    }
    const { first, count } = windowPages(plan, window);
    // One pipeline over the window's page tables: reads run ahead of writes across table boundaries.
    await writePages(reader, entriesInRange(reader, first, count), sink, {
      ...(req.concurrency ? { concurrency: req.concurrency } : {}),
      abortSignal: req.abortSignal,
      onWrite: (bytes) => (summary.bytesWritten += bytes),
      onPage: (plainLength) => {
        summary.pages++;
        summary.bytes += plainLength;
      },
    });
  } finally {
    await sink.commit();
  }
  return summary;
}

/** The target as the plan made it: this operation's incomplete page blob, or its partial file. */
async function openWindowSink(req: RestoreStepRequest, plan: RestorePlan): Promise<PageSink> {
  if (plan.kind === 'file') {
    const handle = await reopenPartialFile(plan.partial!, plan.diskBytes);
    return { dense: false, write: (offset, data) => writeFileAt(handle, offset, data), commit: () => handle.close(), abandon: () => handle.close() };
  }
  if (plan.kind === 'managedDisk') {
    // Pages through the disk's write grant, short of the footer slot (finalize writes the footer).
    const writer = diskPageWriter(req.target, plan.dataBytes!, `the managed disk ${plan.display.split('/').pop()}`);
    return { dense: false, write: async (offset, data, abortSignal) => void (await writer.write(offset, data, abortSignal)), commit: async () => {}, abandon: async () => {} };
  }
  const { client } = targetBlobClient(req.target);
  const what = `the restore target ${displayUrl(req.target.url)}`;
  await assertOwnIncomplete(client, plan.backupId, plan.operationId, what);
  return { dense: false, write: (offset, data, abortSignal) => putPages(client, offset, data, what, abortSignal), commit: async () => {}, abandon: async () => {} };
}
