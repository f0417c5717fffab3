/** Packs (docs/FORMAT.md §17), their trailers, and index blobs (§18): how a writer stores blocks and indexes them. */
import type { Vault } from '../vault';
import type { Keyring } from './keyring';
import type { IndexEntry } from './records';

export type { IndexEntry };

export interface PackWriterOptions {
  /** Commit the open pack at this many blocks (default 4096). */
  maxBlocks?: number;
  /** Commit the open pack once this many bytes are staged (default 128 MiB). */
  maxBytes?: number;
}

export class PackWriter {
  constructor(
    private readonly vault: Vault,
    private readonly keyring: Keyring,
    private readonly options: PackWriterOptions = {},
  ) {}

  async add(contentId: Buffer, block: Buffer): Promise<{ pack: string; offset: number; storedLength: number }> {
    void this.vault; void this.keyring; void this.options; void contentId; void block;
    throw new Error('not yet');
  }

  async finish(): Promise<{ packs: string[]; deltas: string[] }> {
    throw new Error('not yet');
  }
}

export function encodeIndexBlob(keyring: Keyring, blobName: string, kind: 0 | 1, entries: IndexEntry[]): Buffer {
  void keyring; void blobName; void kind; void entries;
  throw new Error('not yet');
}

export function decodeIndexBlob(keyring: Keyring, blobName: string, stored: Buffer): IndexEntry[] {
  void keyring; void blobName; void stored;
  throw new Error('not yet');
}

export async function readPackTrailer(vault: Vault, keyring: Keyring, packId: string): Promise<IndexEntry[]> {
  void vault; void keyring; void packId;
  throw new Error('not yet');
}
