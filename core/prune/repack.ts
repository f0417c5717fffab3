/** Repack (docs/FORMAT.md §23, §26): copy the live blocks of mostly-unused packs, ciphertext unchanged, into new packs with their index deltas. */
import { throwIfAborted } from '../errors';
import { BlobNotFoundError } from '../repo/store/blob-store';
import type { Vault } from '../repo/vault';
import { decodeBlock2 } from '../repo/v2/block';
import type { Keyring } from '../repo/v2/keyring';
import { v2names } from '../repo/v2/names';
import { IndexEntry, PackWriter, readPackTrailer } from '../repo/v2/pack-writer';
import { RUN_MAX_BYTES } from '../repo/v2/backup-reader2';

export interface RepackOptions {
  abortSignal?: AbortSignal;
  /** Test hook (prune's): called before the blocks of each source pack are copied and before the new packs are committed; throwing simulates a kill there. */
  beforeMutation?: (step: 'repack', blobName: string) => void | Promise<void>;
}

export interface RepackResult {
  /** Packs written (committed, each with its delta). */
  newPacks: string[];
  /** Their index deltas (deltas[k] indexes newPacks[k]). */
  deltas: string[];
  blocksCopied: number;
  /** Stored bytes copied (blocks, trailers not counted). */
  bytesCopied: number;
}

/**
 * Copies the blocks of `packIds` whose content ID is `live` into new packs (PackWriter: commit, then delta).
 * A block's AAD binds its content ID, not its pack (§16), so its bytes are copied unchanged; each is
 * authenticated on the way (a damaged block is never spread; the repack stops Corrupt, naming it). A
 * content ID in several source packs is copied once. The new delta is newer than the old ones, so the
 * new pack becomes the holder; the sources are deleted later by prune (two marks, §26).
 * Idempotent under retry: a rerun after a crash copies again — a second copy is harmless (the index has
 * two entries; the newest pack holds) and an uncommitted pack's blocks are dropped by Azure. A source pack
 * already gone is skipped (nothing left to copy; its blocks' readers use the index).
 */
export async function repackPacks(vault: Vault, keyring: Keyring, packIds: string[], live: (contentIdHex: string) => boolean, o: RepackOptions = {}): Promise<RepackResult> {
  const writer = new PackWriter(vault, keyring);
  const copied = new Set<string>();
  let blocksCopied = 0;
  let bytesCopied = 0;
  for (const packId of packIds) {
    throwIfAborted(o.abortSignal, 'the repack was cancelled');
    const name = v2names.pack(packId);
    let entries: IndexEntry[];
    try {
      entries = await readPackTrailer(vault, keyring, packId);
    } catch (err) {
      if (err instanceof BlobNotFoundError) continue;
      throw err;
    }
    const wanted = entries.filter((e) => {
      const id = e.contentId.toString('hex');
      if (copied.has(id) || !live(id)) return false;
      copied.add(id);
      return true;
    });
    if (wanted.length === 0) continue;
    await o.beforeMutation?.('repack', name);
    for (const stretch of stretchesOf(wanted)) {
      throwIfAborted(o.abortSignal, 'the repack was cancelled');
      const start = stretch[0].offset;
      const last = stretch[stretch.length - 1];
      const bytes = await vault.getBytes(name, start, last.offset + last.storedLength - start, { abortSignal: o.abortSignal });
      const blocks = stretch.map((e) => Buffer.from(bytes.subarray(e.offset - start, e.offset - start + e.storedLength)));
      await Promise.all(stretch.map((e, k) => decodeBlock2(blocks[k], e.contentId, keyring, `the block of chunk ${e.contentId.toString('hex')} at offset ${e.offset} of pack ${name}`)));
      // Added in pack order (offsets fixed at call time): neighbours stay neighbours, so readers still read runs.
      await Promise.all(stretch.map((e, k) => writer.add(e.contentId, blocks[k])));
      blocksCopied += stretch.length;
      bytesCopied += blocks.reduce((sum, b) => sum + b.length, 0);
    }
  }
  if (blocksCopied > 0) await o.beforeMutation?.('repack', 'packs/ (the new packs\' commit)');
  const { packs, deltas } = await writer.finish();
  return { newPacks: packs, deltas, blocksCopied, bytesCopied };
}

/** Entries (in pack order) in stretches of back-to-back blocks read with one ranged GET of at most RUN_MAX_BYTES. */
function stretchesOf(entries: IndexEntry[]): IndexEntry[][] {
  const out: IndexEntry[][] = [];
  for (const e of entries) {
    const current = out[out.length - 1];
    const prev = current?.[current.length - 1];
    if (current && prev && prev.offset + prev.storedLength === e.offset && e.offset + e.storedLength - current[0].offset <= RUN_MAX_BYTES) current.push(e);
    else out.push([e]);
  }
  return out;
}
