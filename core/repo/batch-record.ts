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
  batchIndex: number;
  firstPage: number;
  pageCount: number;
  bytesRead: number;
  bytesStaged: number;
  zeroPages: number;
  dedupedPages: number;
  pages: PageRecord[];
}

export async function readBatchRecord(vault: Vault, backupId: string, batch: number): Promise<BatchRecord | undefined> {
  const name = layout.batch(backupId, batch);
  if (!(await vault.exists(name))) return undefined;
  const record = await vault.getJson<BatchRecord>(name);
  if (record.format !== 'pagewise-batch' || record.version !== 1 || record.batchIndex !== batch || !Array.isArray(record.pages)) {
    throw new PagewiseError('Corrupt', `the record of batch ${batch} of backup ${backupId} is damaged`);
  }
  return record;
}
