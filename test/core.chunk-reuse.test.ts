/**
 * The batch's reuse decision alone (core/backup/v2/chunk-reuse.ts): base, then batch, then the content index;
 * an index candidate is taken only when its pack exists and passes §26.8 (c), each pack asked once.
 */
import { ChunkReuse, IndexCandidates } from '../core';
import { DAY_MS } from '../core/units';
import { ChunkRef, IndexEntry } from '../core/repo/v2/records';

const L = 7 * DAY_MS;
const PLAN = Date.parse('2026-12-01T10:00:00Z');
const id = (n: number) => Buffer.alloc(32, n);
const pack = (n: number) => n.toString(16).padStart(32, '0');
const entry = (c: number, p: number, offset = 0, storedLength = 1000): IndexEntry => ({ contentId: id(c), pack: pack(p), offset, storedLength });
const ref = (c: number, p: number, length = 4096): ChunkRef => ({ contentId: id(c), length, storedLength: 1000, pack: pack(p), offset: 0 });

/** An index answering from a fixed table, counting lookups. */
function index(entries: IndexEntry[]): IndexCandidates & { asked: number } {
  return {
    asked: 0,
    async candidates(contentId) {
      this.asked++;
      return entries.filter((e) => e.contentId.equals(contentId));
    },
  };
}

/** Packs by Creation-Time (absent: gone), counting HEADs per pack. */
function packs(created: Record<string, number>): { heads: Map<string, number>; created: (p: string) => Promise<number | undefined> } {
  const heads = new Map<string, number>();
  return {
    heads,
    created: async (p) => {
      heads.set(p, (heads.get(p) ?? 0) + 1);
      return created[p];
    },
  };
}

test('the base wins over the batch and the index; the batch over the index', async () => {
  const ix = index([entry(1, 9), entry(2, 9)]);
  const heads = packs({ [pack(9)]: PLAN });
  const reuse = new ChunkReuse({ baseRecords: [{ page: 0, length: 4096, chunks: [ref(1, 5)] }], index: ix, packCreated: heads.created, planCreatedMs: PLAN, abandonAfterMs: L });
  expect(await reuse.find(id(1), 4096)).toEqual({ from: 'base', chunk: ref(1, 5) });
  const stored = reuse.storeOnce(id(2), async () => ref(2, 7));
  expect(stored.fresh).toBe(true);
  expect(await reuse.find(id(2), 4096)).toMatchObject({ from: 'batch' });
  expect(ix.asked).toBe(0);
  expect(reuse.storeOnce(id(2), async () => ref(2, 8)).fresh).toBe(false);
  expect(await reuse.storeOnce(id(2), async () => ref(2, 8)).chunk).toEqual(ref(2, 7));
});

test('index candidates: a gone pack and a pack older than plan − L are passed over; each pack is HEADed once; a hit is counted once', async () => {
  const ix = index([entry(3, 1), entry(3, 2), entry(3, 3, 500, 900), entry(4, 2), entry(4, 3, 1500, 800)]);
  const heads = packs({ [pack(2)]: PLAN - L - 1, [pack(3)]: PLAN - L });
  const reuse = new ChunkReuse({ index: ix, packCreated: heads.created, planCreatedMs: PLAN, abandonAfterMs: L });
  expect(await reuse.find(id(3), 4096)).toEqual({ from: 'vault', chunk: { contentId: id(3), length: 4096, storedLength: 900, pack: pack(3), offset: 500 } });
  expect(await reuse.find(id(4), 4096)).toEqual({ from: 'vault', chunk: { contentId: id(4), length: 4096, storedLength: 800, pack: pack(3), offset: 1500 } });
  expect(await reuse.find(id(3), 4096)).toMatchObject({ from: 'batch' }); // remembered: no second lookup
  expect(ix.asked).toBe(2);
  expect([...heads.heads.values()]).toEqual([1, 1, 1]);
  expect(reuse.stats).toMatchObject({ indexLookups: 2, indexHits: 2, packsProbed: 3, candidatesGone: 1, candidatesTooOld: 2, chunksReusedFromVault: 2, bytesReusedFromVault: 8192 });
});

test('no usable candidate, an implausible stored length, or no index: the batch stores the chunk', async () => {
  const heads = packs({ [pack(1)]: PLAN });
  const reuse = new ChunkReuse({ index: index([entry(5, 1, 0, 4096 + 61), entry(6, 1, 0, 10)]), packCreated: heads.created, planCreatedMs: PLAN, abandonAfterMs: L });
  expect(await reuse.find(id(5), 4096)).toBeUndefined(); // larger than the chunk plus the 60-byte overhead
  expect(await reuse.find(id(6), 4096)).toBeUndefined(); // smaller than any block
  expect(await reuse.find(id(7), 4096)).toBeUndefined();
  expect(heads.heads.size).toBe(0);
  const off = new ChunkReuse({ index: null, packCreated: heads.created, planCreatedMs: PLAN, abandonAfterMs: L });
  expect(await off.find(id(5), 4096)).toBeUndefined();
  expect(off.stats.indexLookups).toBe(0);
});

test('a HEAD that fails is asked again next time; two pages asking for one content share one lookup', async () => {
  let fail = true;
  const ix = index([entry(8, 1)]);
  const reuse = new ChunkReuse({
    index: ix,
    packCreated: async () => {
      if (fail) throw new Error('503');
      return PLAN;
    },
    planCreatedMs: PLAN,
    abandonAfterMs: L,
  });
  await expect(reuse.find(id(8), 4096)).rejects.toThrow('503');
  fail = false;
  const [a, b] = await Promise.all([reuse.find(id(8), 4096), reuse.find(id(8), 4096)]);
  expect(a).toMatchObject({ from: 'vault' });
  expect(b).toMatchObject({ from: 'vault' });
  expect(ix.asked).toBe(2); // the failed one, then one shared by both pages
  expect(reuse.stats.chunksReusedFromVault).toBe(1);
});
