/**
 * Compacted index generations on Azurite (docs/FORMAT.md §18.4, §18.5): shards in frames with fences in
 * covers, the Bloom filter (no false negatives), covers written last; a tampered or moved frame, a damaged
 * or moved covers is Corrupt; an incomplete generation is ignored; names are never written twice.
 */
import { randomBytes } from 'node:crypto';
import { BloomFilter, filterBitsFor, generationNames, IndexEntry, listGenerations, newestGeneration, readFilter, readShard, readShardFrame, writeGeneration } from '../core/repo/v2/index-generation';
import { Keyring } from '../core/repo/v2/keyring';
import { Vault } from '../core/repo/vault';
import { startEnv, TestEnv } from './harness/env';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

const keyring = Keyring.create();
const STAMP = '20261201T101500000Z';
const delta = (k: number) => `index/d/${STAMP}-${k.toString(16).padStart(16, '0')}.pwx`;

async function vaultNamed(name: string): Promise<Vault> {
  return Vault.open(await env.makeVault(name));
}

/** `n` entries with the given first byte (random otherwise), ascending. */
function entriesIn(first: number, n: number): IndexEntry[] {
  return Array.from({ length: n }, (_, k) => {
    const contentId = randomBytes(32);
    contentId[0] = first;
    return { contentId, pack: randomBytes(16).toString('hex'), offset: k * 1000, storedLength: 200 + k };
  });
}

const ascending = (es: IndexEntry[]) => [...es].sort((a, b) => Buffer.compare(a.contentId, b.contentId));
async function* iter<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}
const plain = (es: IndexEntry[]) => es.map((e) => ({ id: e.contentId.toString('hex'), pack: e.pack, offset: e.offset, storedLength: e.storedLength }));

async function failureOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a failure');
}

test('round trip: shards in frames of 1024 with fences, one frame read by range, the filter has no false negatives, covers last', async () => {
  const vault = await vaultNamed('gen-roundtrip');
  const big = ascending(entriesIn(0x00, 2500)); // shard 00: frames of 1024, 1024, 452
  const small = ascending(entriesIn(0xa7, 3));
  const all = [...big, ...small];
  const g = await writeGeneration(vault, keyring, 1, iter(all), [delta(2), delta(1)], { expectedEntries: all.length });

  expect(g.covers).toMatchObject({ format: 'pagewise-index-covers', version: 2, gen: 1, entries: 2503, deltas: [delta(1), delta(2)], epoch: 0 });
  expect(g.covers.shards.map((s) => [s.shard, s.name, s.entries, s.frames, s.bytes])).toEqual([
    ['00', 'index/c/00000001/00.pwx', 2500, 3, 16 + 3 * 28 + 2500 * 64],
    ['a7', 'index/c/00000001/a7.pwx', 3, 1, 16 + 28 + 3 * 64],
  ]);
  expect(g.covers.shards[0].fences).toEqual([big[0], big[1024], big[2048]].map((e) => e.contentId.toString('hex')));
  expect(g.covers.filter).toEqual({ name: 'index/c/00000001/filter.pwf', bits: filterBitsFor(2503), hashes: 7, bytes: 20 + 8 + filterBitsFor(2503) / 8 + 16 });
  expect(g.covers.filter!.bits).toBe(32768); // the least power of two ≥ 10 bits per entry

  const listed: string[] = [];
  for await (const b of vault.listDetailed('index/c/')) listed.push(`${b.name}:${b.contentLength}`);
  expect(listed.sort()).toEqual(['index/c/00000001/00.pwx:160100', 'index/c/00000001/a7.pwx:236', `index/c/00000001/covers.pwe:${listed.find((l) => l.includes('covers'))!.split(':')[1]}`, `index/c/00000001/filter.pwf:${g.covers.filter!.bytes}`].sort());
  expect(await listGenerations(vault)).toEqual([{ gen: 1, complete: true, blobs: ['index/c/00000001/00.pwx', 'index/c/00000001/a7.pwx', 'index/c/00000001/covers.pwe', 'index/c/00000001/filter.pwf'] }]);

  const read = await newestGeneration(vault, keyring);
  expect(read?.covers).toEqual(g.covers);
  expect(plain(await readShard(vault, keyring, g.covers.shards[0]))).toEqual(plain(big));
  expect(plain(await readShardFrame(vault, keyring, g.covers.shards[0], 1))).toEqual(plain(big.slice(1024, 2048)));
  expect(plain(await readShardFrame(vault, keyring, g.covers.shards[0], 2))).toEqual(plain(big.slice(2048)));
  expect(plain(await readShardFrame(vault, keyring, g.covers.shards[1], 0))).toEqual(plain(small));

  const filter = (await readFilter(vault, keyring, read!))!;
  expect(all.filter((e) => !filter.mayContain(e.contentId))).toEqual([]); // no false negatives
  const strangers = Array.from({ length: 10_000 }, () => randomBytes(32));
  const maybe = strangers.filter((id) => filter.mayContain(id)).length;
  expect(maybe).toBeLessThan(300); // ≈ 0.5 % expected at 13 bits per entry, k = 7
});

test('a filter built large and folded answers as one built at the smaller size', () => {
  const ids = Array.from({ length: 500 }, () => randomBytes(32));
  const large = BloomFilter.empty(1 << 16);
  const direct = BloomFilter.empty(filterBitsFor(500));
  for (const id of ids) {
    large.add(id);
    direct.add(id);
  }
  const folded = large.fold(filterBitsFor(500));
  expect(folded.bits).toBe(8192);
  expect(folded.bytes.equals(direct.bytes)).toBe(true);
});

test('without an expected count the filter is folded to the real one; an empty generation has no shard and no filter', async () => {
  const vault = await vaultNamed('gen-sizes');
  const es = ascending([...entriesIn(0x10, 40), ...entriesIn(0x20, 40)]);
  const g = await writeGeneration(vault, keyring, 1, iter(es), []);
  expect(g.covers.filter?.bits).toBe(1024);
  const f = (await readFilter(vault, keyring, g))!;
  expect(es.every((e) => f.mayContain(e.contentId))).toBe(true);

  const empty = await writeGeneration(vault, keyring, 2, iter([]), [delta(7)]);
  expect(empty.covers).toMatchObject({ gen: 2, entries: 0, shards: [], filter: null, deltas: [delta(7)] });
  expect((await newestGeneration(vault, keyring))?.gen).toBe(2);
  expect(await readFilter(vault, keyring, empty)).toBeNull();
  expect((await listGenerations(vault)).map((x) => [x.gen, x.blobs.length])).toEqual([
    [1, 4],
    [2, 1],
  ]);
});

test('a tampered frame, a frame moved within its shard or to another generation, fails authentication (Corrupt); other frames still read', async () => {
  const vault = await vaultNamed('gen-tamper');
  const es = ascending(entriesIn(0x42, 2100));
  const g1 = await writeGeneration(vault, keyring, 1, iter(es), []);
  const g2 = await writeGeneration(vault, keyring, 2, iter(es), []);
  const info1 = g1.covers.shards[0];
  const info2 = g2.covers.shards[0];
  const original = await vault.getBytes(info1.name);
  const frame = (k: number) => 16 + k * 65564;

  // one byte flipped in frame 1
  const flipped = Buffer.from(original);
  flipped[frame(1) + 100] ^= 1;
  await vault.putBytes(info1.name, flipped);
  expect(await failureOf(readShardFrame(vault, keyring, info1, 1))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining(`the index shard ${info1.name} fails authentication in frame 1`) });
  expect(await readShardFrame(vault, keyring, info1, 0)).toHaveLength(1024);
  expect(await failureOf(readShard(vault, keyring, info1))).toMatchObject({ code: 'Corrupt' });

  // frames 0 and 1 swapped
  const swapped = Buffer.concat([original.subarray(0, 16), original.subarray(frame(1), frame(2)), original.subarray(frame(0), frame(1)), original.subarray(frame(2))]);
  await vault.putBytes(info1.name, swapped);
  expect(await failureOf(readShardFrame(vault, keyring, info1, 0))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('fails authentication in frame 0') });

  // generation 1's shard put in generation 2's place
  await vault.putBytes(info2.name, original);
  expect(await failureOf(readShardFrame(vault, keyring, info2, 0))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('fails authentication in frame 0') });

  // under another vault's key
  await vault.putBytes(info1.name, original);
  expect(await failureOf(readShardFrame(vault, Keyring.create(), info1, 0))).toMatchObject({ code: 'Corrupt' });
  expect(await readShardFrame(vault, keyring, info1, 2)).toHaveLength(2100 - 2048);

  // a missing shard of a complete generation
  await vault.delete(info1.name);
  expect(await failureOf(readShardFrame(vault, keyring, info1, 0))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('is missing from its complete generation') });
});

test('an incomplete generation is ignored; a damaged or moved covers is Corrupt, not an older generation; a taken generation number is never overwritten', async () => {
  const vault = await vaultNamed('gen-covers');
  const es = ascending(entriesIn(0x05, 10));
  await writeGeneration(vault, keyring, 1, iter(es), [delta(1)]);
  await writeGeneration(vault, keyring, 2, iter(es), [delta(2)]);
  await vault.delete(generationNames.covers(2)); // as if compaction 2 crashed before its covers
  expect((await newestGeneration(vault, keyring))?.covers.deltas).toEqual([delta(1)]);
  expect((await listGenerations(vault)).map((g) => [g.gen, g.complete])).toEqual([
    [1, true],
    [2, false],
  ]);
  expect(await failureOf(writeGeneration(vault, keyring, 2, iter(es), []))).toMatchObject({ code: 'TargetExists', message: 'index/c/00000002/05.pwx already exists: another compaction is writing index generation 2; nothing was overwritten' });

  // generation 1's covers copied to generation 3
  await vault.putBytes(generationNames.covers(3), await vault.getBytes(generationNames.covers(1)));
  expect(await failureOf(newestGeneration(vault, keyring))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('the index covers index/c/00000003/covers.pwe fails authentication') });
  await vault.putBytes(generationNames.covers(3), randomBytes(300));
  expect(await failureOf(newestGeneration(vault, keyring))).toMatchObject({ code: 'Corrupt' });
  await vault.delete(generationNames.covers(3));
  expect((await newestGeneration(vault, keyring))?.gen).toBe(1);
});

test('entries that do not ascend strictly are refused before anything of their shard is written', async () => {
  const vault = await vaultNamed('gen-order');
  const [a, b] = ascending(entriesIn(0x01, 2));
  expect(await failureOf(writeGeneration(vault, keyring, 1, iter([b, a]), []))).toMatchObject({ message: 'generation entries must ascend strictly by content ID (one entry per ID)' });
  expect(await failureOf(writeGeneration(vault, keyring, 1, iter([a, a]), []))).toMatchObject({ message: expect.stringContaining('one entry per ID') });
  expect(await listGenerations(vault)).toEqual([]);
});
