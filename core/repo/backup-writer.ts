/**
 * Writes one backup into the vault as docs/FORMAT.md lays it out: staged blocks (§6), batch records
 * (§5), committed segments with their page-table chunks (§6, §7) and, last, the manifest (§8). The
 * engine decides what to write; this decides where and how it is stored.
 */
import { createHash } from 'node:crypto';
import { PagewiseError } from '../errors';
import { BackupPlan } from './backup-plan';
import { BatchRecord, PageRecord, readBatchRecord, storedBatchRecord } from './batch-record';
import { blockIdOf, layout } from './layout';
import { ManifestBody, readManifest, writeManifest } from './manifest';
import { encodeChunk, PageEntry } from './page-table';
import { Vault } from './vault';

/** What committing one segment stored: its manifest entries and its counts. */
export interface CommittedSegment {
  segment: ManifestBody['segments'][number];
  index: ManifestBody['index'][number];
  /** pages with data in the segment (page-table entries) */
  dataPages: number;
}

export class BackupWriter {
  constructor(
    readonly vault: Vault,
    readonly plan: BackupPlan,
    private readonly dataKey: Buffer,
  ) {}

  get backupId(): string {
    return this.plan.backupId;
  }

  /** Stages the block of `page` in its segment (uncommitted until the segment is). */
  async stageBlock(page: number, bytes: Buffer): Promise<void> {
    const segment = Math.floor(page / this.plan.pagesPerSegment);
    await this.vault.stageBlock(layout.segment(this.backupId, segment), blockIdOf(page), bytes);
  }

  /** The record of a finished batch, once every block of it is staged. */
  async recordBatch(record: BatchRecord): Promise<void> {
    await this.vault.putJson(layout.batch(this.backupId, record.batchNumber), storedBatchRecord(record));
  }

  /** The record of batch number `batch`, or undefined when the batch has not finished. */
  batchRecord(batch: number): Promise<BatchRecord | undefined> {
    return readBatchRecord(this.vault, this.backupId, batch);
  }

  /**
   * Commits a segment's block list — the blocks of its pages in page order, identical pages of the
   * segment sharing one block — and writes its page-table chunk. `pages` are the segment's page records.
   */
  async commitSegment(segment: number, pages: PageRecord[]): Promise<CommittedSegment> {
    const sorted = [...pages].sort((a, b) => a.i - b.i);
    // The block of a hash is the staged block of the lowest page with that hash (every duplicate's
    // hash equals its block owner's, so resolving by hash also merges duplicates across batches).
    const owner = new Map<string, PageRecord>();
    for (const p of sorted) if (p.b === p.i && !owner.has(p.h)) owner.set(p.h, p);
    const committed = [...new Set(sorted.map((p) => owner.get(p.h)))].sort((a, b) => a!.i - b!.i);
    const offsets = new Map<number, number>();
    let bytes = 0;
    for (const block of committed) {
      if (!block) throw new PagewiseError('Corrupt', `segment ${segment} of backup ${this.backupId} references a block that was never staged`);
      offsets.set(block.i, bytes);
      bytes += block.l;
    }
    const segmentBlob = layout.segment(this.backupId, segment);
    await this.vault.commitBlocks(segmentBlob, committed.map((b) => blockIdOf(b!.i)));

    const entries: PageEntry[] = sorted.map((p) => {
      const block = owner.get(p.h)!;
      return {
        page: p.i,
        ref: 0,
        codec: block.c,
        segment,
        offset: offsets.get(block.i)!,
        storedLength: block.l,
        plainLength: p.n,
        sha256: Buffer.from(p.h, 'hex'),
      };
    });
    const chunk = encodeChunk(entries, segment, this.dataKey, this.backupId);
    const indexBlob = layout.index(this.backupId, segment);
    await this.vault.putBytes(indexBlob, chunk);
    return {
      segment: { index: segment, blob: segmentBlob, blocks: committed.length, bytes },
      index: { segment, blob: indexBlob, entries: entries.length, bytes: chunk.length, sha256: createHash('sha256').update(chunk).digest('hex') },
      dataPages: sorted.length,
    };
  }

  /** A manifest body for this backup's plan with no segment yet; `addSegment` fills it in. */
  newManifest(): ManifestBody {
    const { plan } = this;
    return {
      backupId: plan.backupId,
      createdAt: plan.createdAt,
      completedAt: '',
      source: plan.source,
      diskBytes: plan.diskBytes,
      pageSize: plan.pageSize,
      pageCount: plan.pageCount,
      pagesPerSegment: plan.pagesPerSegment,
      encryption: { algorithm: 'AES-256-GCM', keyId: plan.encryption.keyId, wrappedDataKey: plan.encryption.wrappedDataKey },
      references: [],
      segments: [],
      index: [],
      stats: { allocatedBytes: plan.allocatedBytes, bytesRead: 0, bytesStored: 0, storedBlocks: 0, dataPages: 0, zeroPages: 0, dedupedPages: 0 },
    };
  }

  /** Adds a committed segment to a manifest body. */
  static addSegment(body: ManifestBody, committed: CommittedSegment): void {
    body.segments.push(committed.segment);
    body.index.push(committed.index);
    body.stats.bytesStored += committed.segment.bytes;
    body.stats.storedBlocks += committed.segment.blocks;
    body.stats.dataPages += committed.dataPages;
    body.stats.dedupedPages += committed.dataPages - committed.segment.blocks;
  }

  /** The manifest exists: the backup is complete. */
  isComplete(): Promise<boolean> {
    return this.vault.exists(layout.manifest(this.backupId));
  }

  /** The complete backup's manifest, its MAC checked. */
  readManifest(userKey: Buffer): Promise<ManifestBody> {
    return readManifest(this.vault, this.backupId, userKey);
  }

  /** Writes the manifest, completed now, in one atomic write: from here the backup is complete. */
  async writeManifest(userKey: Buffer, body: ManifestBody): Promise<ManifestBody> {
    const completed = { ...body, completedAt: new Date().toISOString() };
    await writeManifest(this.vault, userKey, completed);
    return completed;
  }
}
