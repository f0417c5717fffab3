/** INTERIM (writer15): part B's ContentIndex per SPEC15 signatures over VaultIndex (deltas only); replaced by the `index` branch on merge. */
import type { Vault } from '../vault';
import type { Keyring } from './keyring';
import type { IndexEntry } from './records';
import { VaultIndex } from './vault-index';

export interface ContentIndexOptions { frameCacheBytes?: number; deltaBudgetEntries?: number }
export interface ContentIndexStats { lookups: number; filterNo: number; framesRead: number; deltasLoaded: number; deltasSkipped: number; entriesHeld: number }

export class ContentIndex {
  readonly stats: ContentIndexStats = { lookups: 0, filterNo: 0, framesRead: 0, deltasLoaded: 0, deltasSkipped: 0, entriesHeld: 0 };
  private constructor(private readonly vault: Vault, private readonly keyring: Keyring, private index: VaultIndex) {}
  static async open(vault: Vault, keyring: Keyring, _options?: ContentIndexOptions): Promise<ContentIndex> {
    return new ContentIndex(vault, keyring, await VaultIndex.open(vault, keyring));
  }
  async refresh(): Promise<void> {
    this.index = await VaultIndex.open(this.vault, this.keyring);
  }
  async candidates(contentId: Buffer): Promise<IndexEntry[]> {
    this.stats.lookups++;
    return this.index.lookup(contentId.toString('hex'));
  }
  memoryBytes(): number {
    return 0;
  }
}
