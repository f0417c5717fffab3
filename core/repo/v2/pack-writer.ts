/** Packs (docs/FORMAT.md §17), their trailers, and index blobs (§18): how a writer stores blocks and indexes them. */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { PagewiseError } from '../../errors';
import { MAX_BLOCKS_PER_BLOB, MiB } from '../../limits';
import { BlobAlreadyExistsError, CallOptions } from '../store/blob-store';
import type { Vault } from '../vault';
import { BLOCK2_OVERHEAD, MAX_BLOCK2_BYTES } from './block';
import type { Keyring } from './keyring';
import { seal, sealedHeader, unseal } from './sealed-object';
import { HEX32_RE, stampOf, v2names } from './names';
import type { IndexEntry } from './records';

export type { IndexEntry };

/** §17.1: a writer commits its pack at 4096 blocks or 128 MiB staged, whichever first. */
export const PACK_MAX_BLOCKS = 4096;
export const PACK_MAX_BYTES = 128 * MiB;

/**
 * §17.1: consecutive blocks are staged together as one Azure block of about this size (the last of a pack
 * smaller): 256 KiB chunks would otherwise cost a Stage Block request each — 16 per 4 MiB page.
 */
export const STAGE_TARGET_BYTES = 4 * MiB;

export interface PackWriterOptions {
  /** Commit the open pack at this many blocks (default 4096; tests use a few). */
  maxBlocks?: number;
  /** Commit the open pack once this many bytes are staged (default 128 MiB). */
  maxBytes?: number;
  /** Stage blocks in Azure blocks of about this many bytes (default STAGE_TARGET_BYTES; 0 = one Azure block per block). */
  stageBytes?: number;
}

interface OpenPack {
  id: string;
  /** Azure block IDs staged or being staged, in pack order */
  blockIds: string[];
  entries: IndexEntry[];
  bytes: number;
  staged: Promise<void>[];
  /** blocks added but not yet staged (one Azure block once they reach stageBytes, or at the commit) */
  pending: Buffer[];
  pendingBytes: number;
}

/** Block ID of block `seq` of a pack: base64("pw2-" + 16 digits). */
export function packBlockId(seq: number): string {
  return Buffer.from(`pw2-${String(seq).padStart(16, '0')}`, 'ascii').toString('base64');
}

const noop = () => undefined;

/**
 * Memory for gathering a stage's blocks, reused across the process's pack writers: at most `MAX_IDLE`
 * buffers are kept idle (those in use belong to stages in flight, bounded by the writers' upload limits).
 */
class StageMemory {
  private static readonly MAX_IDLE = 4;
  /** The usual stage: its target plus one chunk of the default chunking's largest size (1 MiB), sealed. */
  private static readonly USUAL_BYTES = STAGE_TARGET_BYTES + MiB + BLOCK2_OVERHEAD;
  private readonly idle: Buffer[] = [];

  take(bytes: number): Buffer {
    const k = this.idle.findIndex((b) => b.length >= bytes);
    if (k >= 0) return this.idle.splice(k, 1)[0];
    return Buffer.allocUnsafeSlow(Math.max(bytes, StageMemory.USUAL_BYTES));
  }

  give(memory: Buffer): void {
    if (this.idle.length < StageMemory.MAX_IDLE && memory.length <= StageMemory.USUAL_BYTES) this.idle.push(memory);
  }
}

const stageMemory = new StageMemory();

/**
 * One writer's packs (a batch activity): blocks go into the open pack in call order; the pack is
 * committed (trailer last, If-None-Match) at the thresholds and by finish(), and each committed pack
 * gets its index delta right after (§17.1 order: commit → delta).
 */
export class PackWriter {
  /** 16 random hex digits naming this writer's deltas (§13). */
  readonly writerId = randomBytes(8).toString('hex');
  private open?: OpenPack;
  private readonly closing: Promise<void>[] = [];
  private readonly packs: string[] = [];
  private readonly deltas: string[] = [];
  private lastStampMs = 0;
  private finished = false;
  private readonly maxBlocks: number;
  private readonly maxBytes: number;
  private readonly stageBytes: number;

  constructor(
    private readonly vault: Vault,
    private readonly keyring: Keyring,
    options: PackWriterOptions = {},
  ) {
    this.maxBlocks = Math.min(options.maxBlocks ?? PACK_MAX_BLOCKS, MAX_BLOCKS_PER_BLOB - 1);
    this.maxBytes = options.maxBytes ?? PACK_MAX_BYTES;
    this.stageBytes = Math.max(0, options.stageBytes ?? STAGE_TARGET_BYTES);
  }

  /**
   * Adds one block; its pack and offset are fixed at call time (concurrent callers OK). Blocks are staged
   * together once `stageBytes` are pending (that call waits for the Stage Block, which bounds what is held
   * to about `stageBytes` per writer); commits + deltas at the thresholds. A block is durable only when
   * finish() has returned (the batch record is written after it, §17.1).
   */
  async add(contentId: Buffer, block: Buffer): Promise<{ pack: string; offset: number; storedLength: number }> {
    if (this.finished) throw new Error('PackWriter.add after finish');
    if (contentId.length !== 32) throw new RangeError('a content ID is 32 bytes');
    if (block.length < BLOCK2_OVERHEAD || block.length > MAX_BLOCK2_BYTES) throw new RangeError(`a block is ${BLOCK2_OVERHEAD} to ${MAX_BLOCK2_BYTES} bytes, not ${block.length}`);
    const pack = (this.open ??= { id: randomBytes(16).toString('hex'), blockIds: [], entries: [], bytes: 0, staged: [], pending: [], pendingBytes: 0 });
    const offset = pack.bytes;
    pack.entries.push({ contentId: Buffer.from(contentId), pack: pack.id, offset, storedLength: block.length });
    pack.bytes += block.length;
    pack.pending.push(block);
    pack.pendingBytes += block.length;
    const staged = pack.pendingBytes >= this.stageBytes ? this.stagePending(pack) : undefined;
    let closed: Promise<void> | undefined;
    if (pack.entries.length >= this.maxBlocks || pack.bytes >= this.maxBytes) closed = this.close(pack);
    if (staged) await staged;
    if (closed) await closed;
    return { pack: pack.id, offset, storedLength: block.length };
  }

  /** Stages the pending blocks of `pack` as its next Azure block. */
  private stagePending(pack: OpenPack): Promise<void> {
    const blockId = packBlockId(pack.blockIds.length);
    pack.blockIds.push(blockId);
    // The blocks are gathered into memory reused from earlier stages (a fresh 4 MiB per stage was the
    // largest copy of a backup's main thread and external-memory churn that made V8 collect).
    const memory = pack.pending.length === 1 ? undefined : stageMemory.take(pack.pendingBytes);
    let bytes = pack.pending[0];
    if (memory) {
      let at = 0;
      for (const block of pack.pending) at += block.copy(memory, at);
      bytes = memory.subarray(0, at);
    }
    pack.pending = [];
    pack.pendingBytes = 0;
    const staged = this.vault.stageBlock(v2names.pack(pack.id), blockId, bytes);
    // The request (and every retry of it) is over once it settles: the memory is free for the next stage.
    const settled = memory ? staged.finally(() => stageMemory.give(memory)) : staged;
    settled.catch(noop); // awaited by the add that staged it and by the pack's commit
    pack.staged.push(settled);
    return settled;
  }

  /** Commits the open pack (trailer last) and writes its index delta; returns every pack and delta this writer made (deltas[k] indexes packs[k]). */
  async finish(): Promise<{ packs: string[]; deltas: string[] }> {
    if (this.open) this.close(this.open);
    this.finished = true;
    await Promise.all(this.closing);
    return { packs: [...this.packs], deltas: [...this.deltas] };
  }

  private close(pack: OpenPack): Promise<void> {
    this.open = undefined;
    this.packs.push(pack.id);
    const done = this.commit(pack, this.packs.length - 1);
    done.catch(noop); // awaited by the add that closed it and by finish
    this.closing.push(done);
    return done;
  }

  /** Commits `pack` and writes its delta, which takes place `slot` of the deltas (deltas[k] indexes packs[k]). */
  private async commit(pack: OpenPack, slot: number): Promise<void> {
    const name = v2names.pack(pack.id);
    if (pack.pendingBytes > 0) this.stagePending(pack);
    await Promise.all(pack.staged);
    const trailerId = packBlockId(pack.blockIds.length);
    const trailer = encodePackTrailer(this.keyring, pack.id, pack.entries);
    await this.vault.stageBlock(name, trailerId, trailer);
    const packBytes = pack.bytes + trailer.length;
    await ignoringOwnRetry(
      name,
      () => this.vault.commitBlocks(name, [...pack.blockIds, trailerId], { ifNotExists: true }),
      async () => {
        const size = (await this.vault.properties(name)).contentLength;
        return size === packBytes ? undefined : `it holds ${size} bytes, not the ${packBytes} this writer committed`;
      },
    );
    const delta = v2names.delta(this.nextStamp(), this.writerId);
    const index = encodeIndexBlob(this.keyring, delta, 0, pack.entries);
    await ignoringOwnRetry(
      delta,
      () => this.vault.putNew(delta, index),
      async () => ((await this.vault.getBytes(delta, 0, undefined, { maxBytes: index.length })).equals(index) ? undefined : 'its bytes are not the ones this writer wrote'),
    );
    this.deltas[slot] = delta;
  }

  /** Stamps of one writer strictly increase, so its delta names never collide. */
  private nextStamp(): string {
    this.lastStampMs = Math.max(Date.now(), this.lastStampMs + 1);
    return stampOf(new Date(this.lastStampMs));
  }
}

/**
 * A name only this writer uses (random pack ID, own writer ID) found existing: its own earlier try of the
 * same request succeeded, which `differs` confirms (undefined) or refutes (why) by reading what is there.
 */
async function ignoringOwnRetry(name: string, write: () => Promise<void>, differs: () => Promise<string | undefined>): Promise<void> {
  try {
    await write();
  } catch (err) {
    if (!(err instanceof BlobAlreadyExistsError)) throw err;
    const why = await differs();
    if (why) throw new PagewiseError('Corrupt', `${name} in the vault already existed when this writer wrote it (a retried request), but ${why}`);
  }
}

// ---- pack trailer (§17.2)

const TRAILER_MAGIC = Buffer.from('PWK2');
const TRAILER_HEADER = 20;
const TRAILER_ENTRY = 48;
const TAG_BYTES = 16;
/** header, entry count, tag, length field: the trailer of an empty pack. */
const TRAILER_MIN = TRAILER_HEADER + 4 + TAG_BYTES + 4;
const TRAILER_MAX = TRAILER_MIN + TRAILER_ENTRY * MAX_BLOCKS_PER_BLOB;

export function encodePackTrailer(keyring: Keyring, packId: string, entries: IndexEntry[]): Buffer {
  const plain = Buffer.alloc(4 + TRAILER_ENTRY * entries.length);
  plain.writeUInt32LE(entries.length, 0);
  entries.forEach((e, k) => {
    const at = 4 + k * TRAILER_ENTRY;
    e.contentId.copy(plain, at);
    plain.writeBigUInt64LE(BigInt(e.offset), at + 32);
    plain.writeUInt32LE(e.storedLength, at + 40);
  });
  const header = sealedHeader(TRAILER_MAGIC, keyring.epoch);
  const body = seal(keyring.key('index'), header, Buffer.concat([header, Buffer.from(packId, 'hex')]), plain);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length + 4, 0);
  return Buffer.concat([body, length]);
}

/** The entries of a pack from its trailer (two range reads, as restic's pack headers, after a HEAD unless its listed size is given); every block must tile the pack before the trailer. */
export async function readPackTrailer(vault: Vault, keyring: Keyring, packId: string, listedSize?: number): Promise<IndexEntry[]> {
  if (!HEX32_RE.test(packId)) throw new PagewiseError('BadInput', `a pack ID is 32 hex digits, not ${JSON.stringify(packId).slice(0, 40)}`);
  const name = v2names.pack(packId);
  const bad = (why: string) => new PagewiseError('Corrupt', `the trailer of pack ${name} ${why}`);
  // A committed pack never changes: the size a listing gave spares the HEAD (rebuild-index reads every pack).
  const size = listedSize ?? (await vault.properties(name)).contentLength;
  if (size < TRAILER_MIN) throw bad(`is missing: the pack has ${size} bytes`);
  const length = (await vault.getBytes(name, size - 4, 4)).readUInt32LE(0);
  if (length < TRAILER_MIN || length > size || length > TRAILER_MAX || (length - TRAILER_MIN) % TRAILER_ENTRY !== 0) throw bad(`states a length of ${length} bytes, impossible in a pack of ${size}`);
  const trailer = await vault.getBytes(name, size - length, length - 4);
  if (!trailer.subarray(0, 4).equals(TRAILER_MAGIC)) throw bad('is not a Pagewise pack trailer');
  if (trailer[4] !== 2) throw bad(`has unknown version ${trailer[4]}`);
  if (trailer[6] !== 0 || trailer[7] !== 0) throw bad('has non-zero reserved bytes');
  keyring.requireEpoch(trailer[5], `the trailer of pack ${name}`);
  const header = trailer.subarray(0, TRAILER_HEADER);
  let plain: Buffer;
  try {
    plain = unseal(keyring.key('index', trailer[5]), trailer, Buffer.concat([header, Buffer.from(packId, 'hex')]));
  } catch {
    throw bad('fails authentication (damaged, from another pack, or written under another vault key)');
  }
  const count = plain.readUInt32LE(0);
  if (plain.length !== 4 + count * TRAILER_ENTRY) throw bad(`counts ${count} entries in ${plain.length} bytes`);
  const entries: IndexEntry[] = [];
  let expected = 0;
  for (let k = 0; k < count; k++) {
    const at = 4 + k * TRAILER_ENTRY;
    const offset = Number(plain.readBigUInt64LE(at + 32));
    const storedLength = plain.readUInt32LE(at + 40);
    if (plain.readUInt32LE(at + 44) !== 0) throw bad(`has a non-zero reserved field in entry ${k}`);
    if (offset !== expected || storedLength < BLOCK2_OVERHEAD || storedLength > MAX_BLOCK2_BYTES) throw bad(`entry ${k} (offset ${offset}, ${storedLength} bytes) does not follow the block before it`);
    expected += storedLength;
    entries.push({ contentId: Buffer.from(plain.subarray(at, at + 32)), pack: packId, offset, storedLength });
  }
  if (expected !== size - length) throw bad(`covers ${expected} bytes of blocks, the pack holds ${size - length}`);
  return entries;
}

// ---- index blobs (§18.2)

const INDEX_MAGIC = Buffer.from('PWX2');
export const INDEX_HEADER_BYTES = 16;
export const INDEX_ENTRY_BYTES = 64;
export const FRAME_ENTRIES = 1024;
export const FRAME_OVERHEAD = 12 + TAG_BYTES;
const INDEX_HEADER = INDEX_HEADER_BYTES;
const INDEX_ENTRY = INDEX_ENTRY_BYTES;

function frameAad(header: Buffer, blobName: string, frame: number): Buffer {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(frame, 0);
  return Buffer.concat([header, Buffer.from(blobName, 'utf8'), k]);
}

function compareEntries(a: IndexEntry, b: IndexEntry): number {
  return Buffer.compare(a.contentId, b.contentId);
}

/** The 16-byte header of an index blob (§18.2). */
export function indexBlobHeader(epoch: number, kind: 0 | 1, count: number): Buffer {
  const header = Buffer.alloc(INDEX_HEADER);
  INDEX_MAGIC.copy(header, 0);
  header[4] = 2;
  header[5] = epoch;
  header[6] = kind;
  header.writeUInt32LE(count, 8);
  header.writeUInt32LE(Math.ceil(count / FRAME_ENTRIES), 12);
  return header;
}

/** An entry's 64 plaintext bytes (§18.1) written at `at`. */
export function writeIndexEntry(plain: Buffer, at: number, e: IndexEntry): void {
  e.contentId.copy(plain, at);
  Buffer.from(e.pack, 'hex').copy(plain, at + 32);
  plain.writeBigUInt64LE(BigInt(e.offset), at + 48);
  plain.writeUInt32LE(e.storedLength, at + 56);
  plain.writeUInt32LE(0, at + 60);
}

/** An index blob (kind 0 delta, 1 compacted shard) of `entries`, sorted by content ID, in frames of 1024. */
export function encodeIndexBlob(keyring: Keyring, blobName: string, kind: 0 | 1, entries: IndexEntry[]): Buffer {
  const sorted = [...entries].sort(compareEntries);
  const plain = Buffer.alloc(sorted.length * INDEX_ENTRY);
  sorted.forEach((e, k) => writeIndexEntry(plain, k * INDEX_ENTRY, e));
  return encodeIndexBlobPlain(keyring, blobName, kind, plain);
}

/** An index blob of entries already encoded (64 bytes each, ascending by content ID) in `plain`. */
export function encodeIndexBlobPlain(keyring: Keyring, blobName: string, kind: 0 | 1, plain: Buffer): Buffer {
  const count = plain.length / INDEX_ENTRY;
  const header = indexBlobHeader(keyring.epoch, kind, count);
  const frames = header.readUInt32LE(12);
  const parts: Buffer[] = [header];
  for (let f = 0; f < frames; f++) {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', keyring.key('index'), nonce);
    cipher.setAAD(frameAad(header, blobName, f));
    parts.push(nonce, cipher.update(plain.subarray(f * FRAME_ENTRIES * INDEX_ENTRY, (f + 1) * FRAME_ENTRIES * INDEX_ENTRY)), cipher.final(), cipher.getAuthTag());
  }
  return Buffer.concat(parts);
}

/**
 * The plaintext of frame `f` (`stored` = nonce | ciphertext | tag) of the index blob `blobName` whose header
 * is `header`: entries checked (reserved field, location bounds, ascending within the frame).
 */
export function openIndexFrame(key: Buffer, header: Buffer, blobName: string, f: number, stored: Buffer, bad: (why: string) => Error): Buffer {
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, stored.subarray(0, 12));
    decipher.setAAD(frameAad(header, blobName, f));
    decipher.setAuthTag(stored.subarray(stored.length - TAG_BYTES));
    plain = Buffer.concat([decipher.update(stored.subarray(12, stored.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw bad(`fails authentication in frame ${f} (damaged, moved, or written under another vault key)`);
  }
  for (let at = 0; at < plain.length; at += INDEX_ENTRY) {
    const offset = plain.readBigUInt64LE(at + 48);
    const storedLength = plain.readUInt32LE(at + 56);
    if (plain.readUInt32LE(at + 60) !== 0) throw bad(`has a non-zero reserved field in frame ${f}`);
    if (offset > BigInt(Number.MAX_SAFE_INTEGER) || storedLength < BLOCK2_OVERHEAD || storedLength > MAX_BLOCK2_BYTES) throw bad(`has an impossible block location in frame ${f}`);
    if (at > 0 && plain.compare(plain, at - INDEX_ENTRY, at - INDEX_ENTRY + 32, at, at + 32) < 0) throw bad('has entries out of order');
  }
  return plain;
}

/** Entry `k` of a frame's plaintext (checked by openIndexFrame). */
export function indexEntryAt(plain: Buffer, k: number): IndexEntry {
  const e = k * INDEX_ENTRY;
  return { contentId: Buffer.from(plain.subarray(e, e + 32)), pack: plain.subarray(e + 32, e + 48).toString('hex'), offset: Number(plain.readBigUInt64LE(e + 48)), storedLength: plain.readUInt32LE(e + 56) };
}

/** The largest index delta there is: one pack's entries (§18.2), at most Azure's blocks per blob. */
export const MAX_DELTA_BYTES = 16 + 28 * Math.ceil(MAX_BLOCKS_PER_BLOB / 1024) + 64 * MAX_BLOCKS_PER_BLOB;

/** An index delta's entries: read bounded, its kind a delta's (0), then decoded and authenticated. */
export async function readIndexDelta(vault: Vault, keyring: Keyring, name: string, options: CallOptions = {}): Promise<IndexEntry[]> {
  const stored = await vault.getBytes(name, 0, undefined, { ...options, maxBytes: MAX_DELTA_BYTES });
  if (stored.length > 6 && stored[6] !== 0) throw new PagewiseError('Corrupt', `the index blob ${name} is of kind ${stored[6]}, not a delta (kind 0)`);
  return decodeIndexBlob(keyring, name, stored);
}

/** The entries of an index blob read from `blobName`: sizes, frames, order and every frame's authentication checked. */
export function decodeIndexBlob(keyring: Keyring, blobName: string, stored: Buffer): IndexEntry[] {
  const bad = (why: string) => new PagewiseError('Corrupt', `the index blob ${blobName} ${why}`);
  if (stored.length < INDEX_HEADER || !stored.subarray(0, 4).equals(INDEX_MAGIC)) throw bad('is truncated or is not a Pagewise index blob');
  if (stored[4] !== 2) throw bad(`has unknown version ${stored[4]}`);
  if (stored[6] !== 0 && stored[6] !== 1) throw bad(`has unknown kind ${stored[6]}`);
  if (stored[7] !== 0) throw bad('has a non-zero reserved byte');
  keyring.requireEpoch(stored[5], `the index blob ${blobName}`);
  const count = stored.readUInt32LE(8);
  const frames = stored.readUInt32LE(12);
  if (frames !== Math.ceil(count / FRAME_ENTRIES)) throw bad(`has ${frames} frames for ${count} entries`);
  const expectedSize = INDEX_HEADER + frames * FRAME_OVERHEAD + count * INDEX_ENTRY;
  if (stored.length !== expectedSize) throw bad(`is ${stored.length} bytes; ${count} entries take ${expectedSize}`);
  const header = stored.subarray(0, INDEX_HEADER);
  const key = keyring.key('index', stored[5]);
  const entries: IndexEntry[] = [];
  let at = INDEX_HEADER;
  for (let f = 0; f < frames; f++) {
    const n = Math.min(FRAME_ENTRIES, count - f * FRAME_ENTRIES);
    const end = at + FRAME_OVERHEAD + n * INDEX_ENTRY;
    const plain = openIndexFrame(key, header, blobName, f, stored.subarray(at, end), bad);
    for (let k = 0; k < n; k++) {
      const entry = indexEntryAt(plain, k);
      if (entries.length > 0 && compareEntries(entries[entries.length - 1], entry) > 0) throw bad('has entries out of order');
      entries.push(entry);
    }
    at = end;
  }
  return entries;
}
