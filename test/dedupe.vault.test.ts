/**
 * Dedupe across the whole vault, end to end on Azurite (#15): two disks cloned from one ext4 image, each
 * changed a little (debugfs), backed up into one vault with FastCDC chunks inside 1 MiB pages. The second
 * backup stores exactly the chunks the first did not (computed here independently from the images with the
 * vault's gear table) and counts the rest as found through the vault index. rebuild-index's generation holds
 * exactly what the deltas say. Forgetting disk A and pruning (injected clock, test-scaled by L and D) reclaims
 * A's own data — its packs are gone, B's blocks repacked — and B still restores byte-identical and verifies.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { backupDisk, BackupResult, forgetBackups, pruneVault, StorageLocation, uploadImage, verifyBackup } from '../core';
import { chunkLengths, gearTable, type Chunking } from '../core/repo/v2/chunker';
import { rebuildIndex } from '../core/repo/v2/index-compaction';
import { newestGeneration, readShard } from '../core/repo/v2/index-generation';
import { findManifest2 } from '../core/repo/v2/manifest';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { decodeIndexBlob } from '../core/repo/v2/pack-writer';
import { IndexEntry } from '../core/repo/v2/records';
import { Vault } from '../core/repo/vault';
import { DEFAULT_DELETE_AFTER_MS } from '../core/prune/protocol';
import { debugfs, makeExtImage, makeTree, osLikeTree, seededBytes } from '../testkit/fs-images';
import { ensureTools } from '../testkit/debian-tools';
import { blobsOfBackup, restoredSha256 } from './harness/prune-fixture';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';

const PAGE = 1 * MiB;
const IMAGE_BYTES = 24 * MiB;
/** Clone A's own file: random, so that A's pack holds more of A's own bytes than shared ones (repack takes packs under half live). */
const A_OWN_BYTES = 6 * MiB;
const DAY = 24 * 3600 * 1000;
const HOUR = 3600 * 1000;

let env: TestEnv;
let vault: StorageLocation;
let store: Vault;
const images: Record<'a' | 'b', string> = { a: '', b: '' };
const results: Partial<Record<'a' | 'b', BackupResult>> = {};
/** Real time at the start: Azurite stamps blobs with it; the prune clock runs days ahead of it. */
let start: number;

beforeAll(async () => {
  ensureTools(['mkfs.ext4', 'debugfs']);
  env = await startEnv();
  vault = await env.makeVault('dedupe');
  store = Vault.open(vault);
  start = Date.now();
  // One OS image; clone A writes a log file and a large state file, clone B a log file and a small state file.
  const tree = path.join(env.tmp, 'tree');
  await makeTree(tree, osLikeTree({ bigFileBytes: 4 * MiB }));
  const base = path.join(env.tmp, 'base.img');
  await makeExtImage(base, tree, { kind: 'ext4', sizeBytes: IMAGE_BYTES });
  const changes: Record<'a' | 'b', Array<{ dest: string; bytes: Buffer }>> = {
    a: [
      { dest: '/var/log/clone-a.log', bytes: seededBytes(96 * KiB, 101, true) },
      { dest: '/home/user/state-a.bin', bytes: seededBytes(A_OWN_BYTES, 102) },
    ],
    b: [
      { dest: '/var/log/clone-b.log', bytes: seededBytes(64 * KiB, 202, true) },
      { dest: '/home/user/state-b.bin', bytes: seededBytes(48 * KiB, 203) },
    ],
  };
  for (const k of ['a', 'b'] as const) {
    images[k] = path.join(env.tmp, `clone-${k}.img`);
    await fs.copyFile(base, images[k]);
    const commands: string[] = [];
    for (const [n, c] of changes[k].entries()) {
      const local = path.join(env.tmp, `${k}-${n}`);
      await fs.writeFile(local, c.bytes);
      commands.push(`write ${local} ${c.dest}`);
    }
    debugfs(images[k], commands, true);
    await uploadImage(images[k], { url: env.az.sasUrl('src', 'disks', `clone-${k}.vhd`) });
  }
}, 120_000);
afterAll(async () => env?.stop());

/** The #15 writer's counters on a backup result (checked present by the test). */
type Result15 = BackupResult & { bytesReusedFromVault: number; chunksReusedFromVault: number };

async function backUp(k: 'a' | 'b'): Promise<Result15> {
  const result = await backupDisk({ source: { url: env.sourceUrl(`clone-${k}.vhd`) }, vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 4 * PAGE });
  results[k] = result;
  return result as Result15;
}

/** The image's chunks by the backup's chunking and the vault's gear table: SHA-256 (hex) → length; zero chunks left out. */
async function chunksOf(image: string, chunking: Chunking): Promise<{ distinct: Map<string, number>; total: number }> {
  const keyring = await openVaultKeyring(store, env.userKey);
  const gear = gearTable(keyring.key('name'));
  const bytes = await fs.readFile(image);
  const distinct = new Map<string, number>();
  let total = 0;
  for (let at = 0; at < bytes.length; at += PAGE) {
    const page = bytes.subarray(at, Math.min(bytes.length, at + PAGE));
    let from = 0;
    for (const n of chunkLengths(page, chunking, gear)) {
      const chunk = page.subarray(from, (from += n));
      if (chunk.every((x) => x === 0)) continue;
      distinct.set(createHash('sha256').update(chunk).digest('hex'), n);
      total += n;
    }
  }
  return { distinct, total };
}

async function chunkingOf(backupId: string): Promise<Chunking> {
  const keyring = await openVaultKeyring(store, env.userKey);
  return (await findManifest2(store, keyring, backupId))!.manifest.chunking as Chunking;
}

/** Every index delta's entries, decoded with the format's decoder. */
async function deltaEntries(): Promise<IndexEntry[]> {
  const keyring = await openVaultKeyring(store, env.userKey);
  const out: IndexEntry[] = [];
  for await (const name of store.list('index/d/')) out.push(...decodeIndexBlob(keyring, name, await store.getBytes(name)));
  return out;
}

const entryKey = (e: IndexEntry) => `${e.contentId.toString('hex')} ${e.pack} ${e.offset} ${e.storedLength}`;

describe('two clones of one image in one vault', () => {
  test('clone A stores its chunks; clone B stores exactly the chunks A does not have and finds the rest through the index', async () => {
    const a = await backUp('a');
    expect(a).toMatchObject({ formatVersion: 2, kind: 'full', chunksReusedFromVault: 0, bytesReusedFromVault: 0 });
    const chunking = await chunkingOf(a.backupId);
    expect(chunking.scheme).toBe('fastcdc-2016'); // 1 MiB pages: the default chunking cuts inside them
    const chunksA = await chunksOf(images.a, chunking);
    expect(a.bytesNew).toBe([...chunksA.distinct.values()].reduce((s, n) => s + n, 0));

    const b = await backUp('b');
    expect(b).toMatchObject({ formatVersion: 2, kind: 'full', reason: 'no-base' }); // another disk: no base, the index dedupes
    const chunksB = await chunksOf(images.b, chunking);
    const fresh = [...chunksB.distinct].filter(([sha]) => !chunksA.distinct.has(sha));
    const shared = [...chunksB.distinct].filter(([sha]) => chunksA.distinct.has(sha));
    const freshBytes = fresh.reduce((s, [, n]) => s + n, 0);
    const sharedBytes = shared.reduce((s, [, n]) => s + n, 0);
    // What B stores: its changed chunks only. (A small ext4 spreads one file write over bitmaps, inode table,
    // directory and data blocks in several pages: each dirties a chunk, so this is more than the 112 KiB written.)
    expect(b.bytesNew).toBe(freshBytes);
    expect(freshBytes).toBeLessThan(sharedBytes);
    expect(b.bytesNew).toBeLessThan(a.bytesNew / 2);
    expect(freshBytes).toBeGreaterThanOrEqual(112 * KiB); // at least what debugfs wrote into B
    // Every shared chunk was found in the vault (once at least), none stored again.
    expect(b.chunksReusedFromVault).toBeGreaterThanOrEqual(shared.length);
    expect(b.bytesReusedFromVault).toBeGreaterThanOrEqual(sharedBytes);
    expect(b.bytesReusedFromVault + b.bytesNew).toBeLessThanOrEqual(chunksB.total);
    // The vault's index places each content ID once: the shared chunks were stored once.
    const entries = await deltaEntries();
    expect(new Set(entries.map((e) => e.contentId.toString('hex'))).size).toBe(entries.length);
    expect(entries.length).toBe(chunksA.distinct.size + fresh.length);

    for (const k of ['a', 'b'] as const) {
      const v = await verifyBackup({ backupId: results[k]!.backupId, vault, userKey: env.userKey, readData: true });
      expect(v.problems).toEqual([]);
      expect(await restoredSha256(env, vault, results[k]!.backupId)).toBe(await fileSha256(images[k]));
    }
  }, 180_000);

  test("rebuild-index's generation holds exactly the deltas' entries", async () => {
    const keyring = await openVaultKeyring(store, env.userKey);
    const deltas = await deltaEntries();
    const report = await rebuildIndex(store, keyring, {});
    expect(report).toMatchObject({ entries: deltas.length, chunksUnplaced: 0, packsUnreadable: [] });
    const generation = (await newestGeneration(store, keyring))!;
    expect(generation.gen).toBe(report.gen);
    const rebuilt: IndexEntry[] = [];
    for (const shard of generation.covers.shards) rebuilt.push(...(await readShard(store, keyring, shard)));
    expect(rebuilt.map(entryKey).sort()).toEqual(deltas.map(entryKey).sort());
    // It covers every delta listed.
    const listed: string[] = [];
    for await (const name of store.list('index/d/')) listed.push(name);
    expect([...generation.covers.deltas].sort()).toEqual(listed.sort());
  }, 120_000);

  test("forgetting clone A and pruning reclaims A's own data; clone B still restores byte-identical and verifies", async () => {
    const a = results.a!;
    const b = results.b!;
    const blobsA = await blobsOfBackup(vault, env.userKey, a.backupId);
    const blobsB = await blobsOfBackup(vault, env.userKey, b.backupId);
    // B's tables name A's packs (the shared blocks) and its own.
    expect(blobsA.packs.every((p) => blobsB.packs.includes(p))).toBe(true);
    const packBytes = async () => {
      let n = 0;
      for await (const name of store.list('packs/')) n += (await store.properties(name)).contentLength;
      return n;
    };
    const before = await packBytes();

    const forgotten = await forgetBackups({ vault, userKey: env.userKey, backupIds: [a.backupId], graceMs: 0 });
    expect(forgotten.forgotten.map((f) => f.backupId)).toEqual([a.backupId]);
    // Prune at L + a day (every blob old enough), then twice D later: the manifest goes and A's pack, under
    // half live, is repacked (B's blocks copied out) and marked; a run D later deletes it with its delta.
    const t1 = start + 8 * DAY;
    const clocks = [t1, t1 + DEFAULT_DELETE_AFTER_MS + HOUR, t1 + 2 * (DEFAULT_DELETE_AFTER_MS + HOUR)];
    for (const now of clocks) {
      const report = await pruneVault({ vault, userKey: env.userKey, clock: () => now });
      expect(report.blocked).toBeUndefined();
    }
    for (const p of blobsA.packs) expect(await store.exists(p)).toBe(false);
    expect(await findManifest2(store, await openVaultKeyring(store, env.userKey), a.backupId)).toBeUndefined();
    // What is left is about B's data: the bytes A alone used are gone.
    const after = await packBytes();
    const chunksA = await chunksOf(images.a, await chunkingOf(b.backupId));
    const chunksB = await chunksOf(images.b, await chunkingOf(b.backupId));
    const onlyA = [...chunksA.distinct].filter(([sha]) => !chunksB.distinct.has(sha)).reduce((s, [, n]) => s + n, 0);
    expect(onlyA).toBeGreaterThanOrEqual(A_OWN_BYTES);
    // A's random file cannot compress: reclaiming A's data frees at least its size.
    expect(before - after).toBeGreaterThanOrEqual(A_OWN_BYTES);

    const v = await verifyBackup({ backupId: b.backupId, vault, userKey: env.userKey, readData: true });
    expect(v.problems).toEqual([]);
    expect(v.blocksRelocated).toBeGreaterThan(0); // B's hints into A's packs went stale: found through the index
    expect(await restoredSha256(env, vault, b.backupId)).toBe(await fileSha256(images.b));
  }, 240_000);
});
