/** The scratch cache (core/cache/scratch-cache.ts): bounded slots, first come first served. */
import * as os from 'node:os';
import { promises as fs } from 'node:fs';
import { ScratchCache } from '../core/cache/scratch-cache';

test('the scratch cache never lends more slots than it has, and records its high-water mark', async () => {
  const cache = await ScratchCache.create({ capacityBytes: 3 * 4096 + 100, pageSize: 4096, dir: os.tmpdir() });
  expect(cache.slotCount).toBe(3);
  expect(cache.capacityBytes).toBe(3 * 4096);
  const a = await cache.acquire();
  const b = await cache.acquire();
  const c = await cache.acquire();
  let fourth = false;
  const waiting = cache.acquire().then((slot) => {
    fourth = true;
    return slot;
  });
  await new Promise((r) => setTimeout(r, 20));
  expect(fourth).toBe(false);
  await a.prepare(4096);
  await a.writeGathered([Buffer.from('da'), Buffer.from('ta')], 100);
  const read = await a.read(98, 8);
  expect(read).toEqual(Buffer.from([0, 0, 100, 97, 116, 97, 0, 0]));
  cache.release(a);
  const d = await waiting;
  expect(fourth).toBe(true);
  expect(cache.highWaterBytes).toBe(3 * 4096);
  [b, c, d].forEach((s) => cache.release(s));
  expect(cache.bytesInUse).toBe(0);
  const dir = cache.dir;
  await cache.dispose();
  await expect(fs.stat(dir)).rejects.toThrow();
  await expect(ScratchCache.create({ capacityBytes: 100, pageSize: 4096 })).rejects.toThrow(/smaller than one page/);
});

test('taking several slots at once is first come, first served', async () => {
  const cache = await ScratchCache.create({ capacityBytes: 4 * 512, pageSize: 512 });
  const first = await cache.acquireMany(3);
  const order: string[] = [];
  const big = cache.acquireMany(4).then((s) => (order.push('big'), s));
  const small = cache.acquire().then((s) => (order.push('small'), s));
  await new Promise((r) => setTimeout(r, 10));
  expect(order).toEqual([]); // one slot is free, but the 4-slot request came first
  first.forEach((s) => cache.release(s));
  const got = await big;
  expect(order).toEqual(['big']);
  got.forEach((s) => cache.release(s));
  cache.release(await small);
  expect(cache.highWaterBytes).toBe(4 * 512);
  await expect(cache.acquireMany(5)).rejects.toThrow(/cannot take 5/);
  await cache.dispose();
});
