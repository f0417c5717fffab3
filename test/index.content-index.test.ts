/**
 * The writer's content index on Azurite (docs/FORMAT.md §18.3; bound in docs/SCALE.md "Content index
 * memory"): entries from uncovered deltas (newest first) and from the generation through its filter and
 * fences, one frame per lookup through a bounded LRU; the delta budget keeps the newest and counts the
 * rest; refresh picks up new deltas and a newer generation; memoryBytes() stays under the stated bound.
 */
import { randomBytes } from 'node:crypto';
import { ContentIndex, contentIndexBound } from '../core/repo/v2/content-index';
import { compactIndex } from '../core/repo/v2/index-compaction';
import { Keyring } from '../core/repo/v2/keyring';
import { Vault } from '../core/repo/vault';
import { startEnv, TestEnv } from './harness/env';
import { idsIn, storePacks } from './harness/index-fixture';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

const keyring = Keyring.create();

const storeBlocks = (vault: Vault, ids: Buffer[], perPack?: number) => storePacks(vault, keyring, ids, perPack);

const where = (es: { pack: string; offset: number }[]) => es.map((e) => ({ pack: e.pack, offset: e.offset }));
const sorted = (ids: Buffer[]) => [...ids].sort(Buffer.compare);

test('entries from an uncovered delta and from the generation: one frame read per lookup through the LRU, the filter spares reads, memory under the bound', async () => {
  const vault = Vault.open(await env.makeVault('ci-lookups'));
  const big = sorted(idsIn(0x00, 2500)); // generation shard 00: frames of 1024, 1024, 452
  const others = Array.from({ length: 20 }, (_, k) => idsIn(0x01 + k, 1)[0]);
  const first = await storeBlocks(vault, [...big, ...others], 1000);
  const compacted = await compactIndex(vault, keyring, {});
  expect(compacted).toMatchObject({ gen: 1, entries: 2520, deltasCovered: 3, spillRecords: 2520 });

  const dup = big[2100]; // in frame 2
  const fresh = idsIn(0xf0, 30); // no generation shard 0xf0
  const second = await storeBlocks(vault, [...fresh, dup]);

  const options = { frameCacheBytes: 64 * 1024 };
  const index = await ContentIndex.open(vault, keyring, options);
  expect(index.generation?.gen).toBe(1);
  expect(index.stats).toEqual({ lookups: 0, filterNo: 0, framesRead: 0, deltasLoaded: 1, deltasSkipped: 0, entriesHeld: 31 });

  expect(where(await index.candidates(fresh[3]))).toEqual([second.at.get(fresh[3].toString('hex'))]);
  expect(index.stats.framesRead).toBe(0); // no shard f0 in the generation: nothing to read
  // newest first: the uncovered delta's entry, then the generation's (frame 2 read)
  expect(where(await index.candidates(dup))).toEqual([second.at.get(dup.toString('hex')), first.at.get(dup.toString('hex'))]);
  expect(index.stats.framesRead).toBe(1);
  expect(where(await index.candidates(big[5]))).toEqual([first.at.get(big[5].toString('hex'))]); // frame 0: read, frame 2 evicted (64 KiB)
  expect(where(await index.candidates(big[6]))).toEqual([first.at.get(big[6].toString('hex'))]); // frame 0 cached
  expect(index.stats.framesRead).toBe(2);
  expect(where(await index.candidates(big[2200]))).toEqual([first.at.get(big[2200].toString('hex'))]); // frame 2 again
  expect(index.stats.framesRead).toBe(3);
  expect(where(await index.candidates(others[7]))).toEqual([first.at.get(others[7].toString('hex'))]);
  expect(index.stats.framesRead).toBe(4);

  // IDs the generation does not hold, in its biggest shard: the filter answers "no" for nearly all (no read)
  const before = index.stats;
  const strangers = idsIn(0x00, 200);
  for (const id of strangers) expect(await index.candidates(id)).toEqual([]);
  const after = index.stats;
  expect(after.lookups - before.lookups).toBe(200);
  expect(after.filterNo - before.filterNo).toBeGreaterThanOrEqual(190); // ≈ 0.5 % false positives at 13 bits per entry
  expect(after.framesRead - before.framesRead).toBeLessThanOrEqual(200 - (after.filterNo - before.filterNo));

  const covers = index.generation!.covers;
  expect(index.coveredDeltas).toBe(3);
  expect(covers.deltas).toEqual([]); // held once, as the covered set
  const bound = contentIndexBound(covers.entries, index.coveredDeltas, options);
  const filterBytes = covers.filter!.bits / 8;
  const fenceBytes = 32 * covers.shards.reduce((n, s) => n + s.frames, 0);
  expect(filterBytes).toBe(4096);
  expect(fenceBytes).toBe(32 * (3 + 20));
  expect(index.memoryBytes()).toBeGreaterThanOrEqual(filterBytes + fenceBytes + 31 * 64 + 3 * 128);
  expect(index.memoryBytes()).toBeLessThanOrEqual(filterBytes + fenceBytes + 64 * 1024 + 31 * 64 + 3 * 128);
  expect(index.memoryBytes()).toBeLessThanOrEqual(bound);
});

test('refresh picks up a new delta, then a newer generation that covers the held deltas', async () => {
  const vault = Vault.open(await env.makeVault('ci-refresh'));
  await storeBlocks(vault, idsIn(0x33, 10));
  const index = await ContentIndex.open(vault, keyring);
  expect(index.generation).toBeUndefined();
  expect(index.stats).toMatchObject({ deltasLoaded: 1, entriesHeld: 10 });

  const [x] = idsIn(0x44, 1);
  const later = await storeBlocks(vault, [x]);
  expect(await index.candidates(x)).toEqual([]); // not listed yet
  await index.refresh();
  expect(where(await index.candidates(x))).toEqual([later.at.get(x.toString('hex'))]);
  expect(index.stats).toMatchObject({ deltasLoaded: 2, entriesHeld: 11 });
  await index.refresh(); // nothing new: nothing read
  expect(index.stats).toMatchObject({ deltasLoaded: 2, entriesHeld: 11 });

  await compactIndex(vault, keyring, {});
  await index.refresh();
  expect(index.generation?.gen).toBe(1);
  expect(index.stats).toMatchObject({ deltasLoaded: 2, entriesHeld: 0, deltasSkipped: 0 });
  expect(where(await index.candidates(x))).toEqual([later.at.get(x.toString('hex'))]);
  expect(index.stats.framesRead).toBe(1);
});

test('the delta budget holds the newest deltas, skips and counts the older ones; an ID in two deltas comes newest first', async () => {
  const vault = Vault.open(await env.makeVault('ci-budget'));
  const batches = [idsIn(0x10, 50), idsIn(0x11, 50), idsIn(0x12, 50)];
  const [y] = idsIn(0x13, 1);
  const written = [];
  for (const ids of batches) written.push(await storeBlocks(vault, ids));
  const withY = await storeBlocks(vault, [...idsIn(0x14, 49), y]);
  const options = { deltaBudgetEntries: 100 };
  const index = await ContentIndex.open(vault, keyring, options);
  expect(index.stats).toEqual({ lookups: 0, filterNo: 0, framesRead: 0, deltasLoaded: 2, deltasSkipped: 2, entriesHeld: 100 });
  expect(await index.candidates(batches[0][0])).toEqual([]); // skipped: dedupe finds less, never wrong
  expect(await index.candidates(batches[1][0])).toEqual([]);
  expect(where(await index.candidates(batches[2][0]))).toEqual([written[2].at.get(batches[2][0].toString('hex'))]);

  const again = await storeBlocks(vault, [y]);
  await index.refresh();
  expect(index.stats).toMatchObject({ deltasLoaded: 3, deltasSkipped: 3, entriesHeld: 51 }); // 50 + 1 fit, the next 50 would not
  expect(where(await index.candidates(y))).toEqual([again.at.get(y.toString('hex')), withY.at.get(y.toString('hex'))]);
  expect(await index.candidates(batches[2][0])).toEqual([]); // pushed out by newer deltas
  expect(index.memoryBytes()).toBe(51 * 64);
  expect(index.memoryBytes()).toBeLessThanOrEqual(contentIndexBound(0, 0, options));
});

test('a damaged delta is skipped and named; the others are still found', async () => {
  const vault = Vault.open(await env.makeVault('ci-damaged'));
  const a = await storeBlocks(vault, idsIn(0x21, 5));
  const b = idsIn(0x22, 5);
  const bw = await storeBlocks(vault, b);
  const damaged = Buffer.from(await vault.getBytes(a.deltas[0]));
  damaged[40] ^= 0xff;
  await vault.putBytes(a.deltas[0], damaged);
  const index = await ContentIndex.open(vault, keyring);
  expect([...index.unreadable.keys()]).toEqual([a.deltas[0]]);
  expect(index.unreadable.get(a.deltas[0])).toContain('fails authentication in frame 0');
  expect(where(await index.candidates(b[1]))).toEqual([bw.at.get(b[1].toString('hex'))]);
  await index.refresh(); // not read again
  expect(index.stats.deltasLoaded).toBe(1);

  // A damaged covers: the generation is named and not used; the deltas it covers are read instead.
  await compactIndex(vault, keyring, {});
  await vault.putBytes('index/c/00000001/covers.pwe', randomBytes(200));
  const without = await ContentIndex.open(vault, keyring);
  expect(without.generation).toBeUndefined();
  expect(without.unreadable.get('index/c/00000001/')).toContain('the index covers index/c/00000001/covers.pwe is truncated or is not a Pagewise encrypted document');
  expect(where(await without.candidates(b[2]))).toEqual([bw.at.get(b[2].toString('hex'))]);
  expect(without.stats).toMatchObject({ deltasLoaded: 1, entriesHeld: 5 });
});
