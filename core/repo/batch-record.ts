/** Batch records (docs/FORMAT.md §5): written once every block of a batch is staged. */
import { PagewiseError } from '../errors';
import { Codec } from './block-codec';
import { layout } from './layout';
import { Vault } from './vault';

export interface PageRecord {
  /** page index */
  i: number;
  /** SHA-256 of the plaintext, hex */
  h: string;
  /** plaintext length */
  n: number;
  /** page whose staged block holds the data */
  b: number;
  /** codec */
  c: Codec;
  /** stored block length */
  l: number;
}

export interface BatchRecord {
  format: 'pagewise-batch';
  version: 1;
  backupId: string;
  /** The record covers pages [batchNumber·pagesPerBatch, …); stored as `batchIndex` (FORMAT.md §5). */
  batchNumber: number;
  firstPage: number;
  pageCount: number;
  bytesRead: number;
  bytesStaged: number;
  zeroPages: number;
  dedupedPages: number;
  pages: PageRecord[];
}

/** The record as stored: version 1 names the batch number `batchIndex`. */
type StoredBatchRecord = Omit<BatchRecord, 'batchNumber'> & { batchIndex: number };

/** The JSON body of a batch record, in the stored field names. */
export function storedBatchRecord({ format, version, backupId, batchNumber, ...counts }: BatchRecord): StoredBatchRecord {
  return { format, version, backupId, batchIndex: batchNumber, ...counts };
}

export async function readBatchRecord(vault: Vault, backupId: string, batch: number): Promise<BatchRecord | undefined> {
  const name = layout.batch(backupId, batch);
  if (!(await vault.exists(name))) return undefined;
  const stored = await vault.getJson<StoredBatchRecord | null>(name);
  const { batchIndex, ...rest } = stored ?? ({} as StoredBatchRecord); // `null` is valid JSON, and damaged
  if (rest.format !== 'pagewise-batch' || rest.version !== 1 || batchIndex !== batch || !Array.isArray(rest.pages)) {
    throw new PagewiseError('Corrupt', `the record of batch ${batch} of backup ${backupId} is damaged`);
  }
  return { ...rest, batchNumber: batchIndex };
}
