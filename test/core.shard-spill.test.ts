/** ShardSpill: records come back per first byte, sorted, all of them, and the files go with dispose. */
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ShardSpill, sortRecords } from '../core/repo/v2/shard-spill';

test('every record comes back once, in its shard, ascending; the directory is removed', async () => {
  const spill = await ShardSpill.create(40);
  const all: Buffer[] = [];
  for (let i = 0; i < 5000; i++) {
    const r = randomBytes(40);
    if (i % 7 === 0) r[0] = 0x11; // a crowded shard spans several buffer flushes
    all.push(r);
    await spill.add(r);
  }
  expect(spill.count).toBe(5000);
  const back: Buffer[] = [];
  let lastShard = -1;
  for await (const s of spill.shards()) {
    expect(s.shard).toBeGreaterThan(lastShard);
    lastShard = s.shard;
    expect(s.records.length).toBe(s.count * 40);
    for (let k = 0; k < s.count; k++) {
      const rec = s.records.subarray(k * 40, (k + 1) * 40);
      expect(rec[0]).toBe(s.shard);
      if (k > 0) expect(Buffer.compare(s.records.subarray((k - 1) * 40, k * 40), rec)).toBeLessThanOrEqual(0);
      back.push(Buffer.from(rec));
    }
  }
  const key = (b: Buffer) => b.toString('hex');
  expect(back.map(key).sort()).toEqual(all.map(key).sort());
  const dir = (spill as unknown as { dir: { path: string } }).dir.path;
  await spill.dispose();
  expect(existsSync(dir)).toBe(false);
});

test('a record of the wrong size is refused; sortRecords orders whole records', async () => {
  const spill = await ShardSpill.create(8);
  await expect(spill.add(Buffer.alloc(9))).rejects.toThrow(/8 bytes/);
  await spill.dispose();
  const raw = Buffer.from([3, 1, 2, 2, 1, 9, 1, 3]);
  expect([...sortRecords(raw, 2)]).toEqual([1, 3, 1, 9, 2, 2, 3, 1]);
});
