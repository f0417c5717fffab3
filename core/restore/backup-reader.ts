/**
 * Reads a complete backup back from the vault alone: the manifest (MAC checked with the user key), the
 * data key, the page table one segment at a time, and pages (block fetched, authenticated, decompressed,
 * hash-checked). Restore and verify are built on it; memory is bounded by one segment's table.
 */
import { createHash } from 'node:crypto';
import { unwrapDataKey } from '../crypto/keys';
import { PagewiseError } from '../errors';
import { decodeBlock } from '../processor/block-codec';
import { StorageLocation } from '../types';
import { validateBackupId } from '../vault/layout';
import { ManifestBody, readManifest } from '../vault/manifest';
import { decodeChunk, PageEntry } from '../vault/page-table';
import { VaultStore } from '../vault/vault-store';

export class BackupReader {
  private constructor(
    readonly vault: VaultStore,
    readonly manifest: ManifestBody,
    private readonly dataKey: Buffer,
  ) {}

  static async open(vaultLocation: StorageLocation, backupId: string, userKey: Buffer): Promise<BackupReader> {
    validateBackupId(backupId);
    const vault = VaultStore.open(vaultLocation);
    const manifest = await readManifest(vault, backupId, userKey);
    if (manifest.references.length > 0) {
      throw new PagewiseError('Corrupt', `backup ${backupId} references other backups, which this version cannot read`);
    }
    const dataKey = unwrapDataKey(userKey, manifest.encryption.wrappedDataKey, backupId, manifest.encryption.keyId);
    return new BackupReader(vault, manifest, dataKey);
  }

  get backupId(): string {
    return this.manifest.backupId;
  }

  /** Number of non-hole pages (entries) in the backup. */
  get entryCount(): number {
    return this.manifest.index.reduce((sum, c) => sum + c.entries, 0);
  }

  /** Page-table entries of every segment, in page order, one segment's chunk in memory at a time. */
  async *segments(): AsyncGenerator<{ segment: number; entries: PageEntry[] }> {
    for (const chunk of this.manifest.index) {
      const stored = await this.vault.getBytes(chunk.blob);
      if (stored.length !== chunk.bytes || createHash('sha256').update(stored).digest('hex') !== chunk.sha256) {
        throw new PagewiseError('Corrupt', `the page table of segment ${chunk.segment} (${chunk.blob}) does not match the manifest`);
      }
      const entries = decodeChunk(stored, chunk.segment, this.dataKey, this.backupId);
      if (entries.length !== chunk.entries) throw new PagewiseError('Corrupt', `the page table of segment ${chunk.segment} has ${entries.length} entries, the manifest says ${chunk.entries}`);
      yield { segment: chunk.segment, entries };
    }
  }

  /** Structural check of one entry: its block lies inside its segment as the manifest describes it. */
  checkEntry(entry: PageEntry): string | undefined {
    const segment = this.manifest.segments.find((s) => s.index === entry.segment);
    if (!segment) return `page ${entry.page}: its block's segment ${entry.segment} is not in the manifest`;
    if (entry.offset + entry.storedLength > segment.bytes) return `page ${entry.page}: its block lies outside segment ${entry.segment}`;
    if (entry.page >= this.manifest.pageCount) return `page ${entry.page}: beyond the end of the disk`;
    const expected = Math.min(this.manifest.pageSize, this.manifest.diskBytes - entry.page * this.manifest.pageSize);
    if (entry.plainLength !== expected) return `page ${entry.page}: plaintext length ${entry.plainLength}, expected ${expected}`;
    return undefined;
  }

  /** The plaintext of a page, fully checked; errors name the page. */
  async readPage(entry: PageEntry): Promise<Buffer> {
    const where = `page ${entry.page} (offset ${entry.page * this.manifest.pageSize})`;
    const problem = this.checkEntry(entry);
    if (problem) throw new PagewiseError('Corrupt', problem);
    const segmentBlob = this.manifest.segments.find((s) => s.index === entry.segment)!.blob;
    let block: Buffer;
    try {
      block = await this.vault.getBytes(segmentBlob, entry.offset, entry.storedLength);
    } catch (err) {
      throw new PagewiseError('Corrupt', `${where}: its block cannot be read from ${segmentBlob} (${(err as Error).message})`, { cause: err });
    }
    if (block.length !== entry.storedLength) throw new PagewiseError('Corrupt', `${where}: its block is truncated (${block.length} of ${entry.storedLength} bytes)`);
    const plain = await decodeBlock(block, this.dataKey, this.backupId, where);
    if (createHash('sha256').update(plain).digest().compare(entry.sha256) !== 0) {
      throw new PagewiseError('Corrupt', `${where}: its content does not match its hash (damaged or swapped block)`);
    }
    return plain;
  }
}

