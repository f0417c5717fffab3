/** Writes a backup's pages into a sink: the one page writer of the streaming restore and of a restore window. */
import { forEachLimited } from '../concurrency';
import { throwIfAborted } from '../errors';
import { PAGE_CONCURRENCY, SECTOR } from '../limits';
import type { BackupSource, PageRef } from '../repo/backup-source';
import type { PageSink } from './file-target';

const SECTOR_ZEROS = Buffer.alloc(SECTOR);

/** The 512-byte-aligned runs of a buffer that hold a non-zero byte, coalesced. */
export function* nonZeroRuns(data: Buffer): Generator<{ start: number; end: number }> {
  let start = -1;
  for (let at = 0; at < data.length; at += SECTOR) {
    const end = Math.min(data.length, at + SECTOR);
    const zero = data.subarray(at, end).equals(SECTOR_ZEROS.subarray(0, end - at));
    if (!zero && start < 0) start = at;
    if (zero && start >= 0) {
      yield { start, end: at };
      start = -1;
    }
  }
  if (start >= 0) yield { start, end: data.length };
}

export interface WritePagesOptions {
  /** Runs read and written at once (each a few pages at most: memory stays concurrency × run size). */
  concurrency?: number;
  abortSignal?: AbortSignal;
  /** Each data write, after it is done (bytes sent to the sink). */
  onWrite?: (bytes: number) => void;
  /** Each page, once written, with its plaintext length. */
  onPage?: (plainLength: number) => void;
}

/**
 * Reads `entries` (page order) run by run and writes each page at its offset. A dense sink gets the
 * whole page; over a zeroed target, zero runs inside a page stay unwritten (as sparse as the source).
 * Writing the same entries twice writes the same bytes: a retried window rewrites its pages.
 */
export async function writePages<E extends PageRef>(reader: BackupSource<E>, entries: E[], sink: PageSink, options: WritePagesOptions = {}): Promise<void> {
  const signal = options.abortSignal;
  const write = async (offset: number, data: Buffer) => {
    throwIfAborted(signal, 'the restore was interrupted');
    await sink.write(offset, data, signal);
    options.onWrite?.(data.length);
  };
  await forEachLimited(reader.runs(entries), options.concurrency ?? PAGE_CONCURRENCY.default, async (run: E[]) => {
    throwIfAborted(signal, 'the restore was interrupted');
    for (const { entry, plain, error } of await reader.readRun(run)) {
      if (error) throw error;
      const base = entry.page * reader.pageSize;
      if (sink.dense) await write(base, plain!);
      else for (const part of nonZeroRuns(plain!)) await write(base + part.start, plain!.subarray(part.start, part.end));
      options.onPage?.(plain!.length); // the page's real length: the disk's last page may be short
    }
  });
}
