/**
 * The restore's page writer (core/restore/write-pages.ts) over a real backup in Azurite: reads run ahead
 * of the writes within their bounds, adjacent bytes go out as writes of at most 4 MiB, and the bytes
 * written are the disk's.
 */
import { backupDisk, openBackupSource } from '../core';
import type { BackupSource, PageRef } from '../core/repo/backup-source';
import type { PageSink } from '../core/restore/file-target';
import { dropIdlePageMemory, idlePageMemory, writePages } from '../core/restore/write-pages';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let backupId: string;
let diskBytes: Buffer;
const PAGE = 256 * KiB;
const DISK = 6 * MiB;

beforeAll(async () => {
  env = await startEnv();
  // 4.5 MiB of data, half a MiB of zeros, 1 MiB of data: 22 pages hold bytes, 2 are zero.
  const disk = await env.makeDisk('pipeline.vhd', DISK, [
    { offset: 0, length: 4.5 * MiB, kind: 'random', seed: 21 },
    { offset: 4.5 * MiB, length: 0.5 * MiB, kind: 'zero' },
    { offset: 5 * MiB, length: MiB, kind: 'random', seed: 22 },
  ]);
  diskBytes = await env.az.accounts.src.service.getContainerClient('disks').getPageBlobClient('pipeline.vhd').downloadToBuffer();
  backupId = (await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE })).backupId;
});

afterAll(async () => {
  await env?.stop();
});

/** A sink that records each write and holds it until `release`d, counting the writes in flight. */
function heldSink() {
  const image = Buffer.alloc(DISK);
  const writes: Array<{ offset: number; length: number }> = [];
  const held: Array<() => void> = [];
  const state = { inFlight: 0, maxInFlight: 0 };
  let arrived: () => void = () => undefined;
  const sink: PageSink = {
    dense: false,
    async write(offset, data) {
      writes.push({ offset, length: data.length });
      data.copy(image, offset);
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      arrived();
      await new Promise<void>((resolve) => held.push(resolve));
      state.inFlight--;
    },
    commit: async () => undefined,
    abandon: async () => undefined,
  };
  const nextWrite = () => new Promise<void>((resolve) => (arrived = resolve));
  const releaseAll = () => held.splice(0).forEach((r) => r());
  return { sink, image, writes, state, nextWrite, releaseAll };
}

/** A sink that holds each write a while and then checks it: `changed` gets each offset whose bytes were not the disk's when the write settled. */
function checkingSink(image: Buffer, changed: number[]): PageSink {
  return {
    dense: false,
    async write(offset, data) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      if (!data.equals(diskBytes.subarray(offset, offset + data.length))) changed.push(offset);
      data.copy(image, offset);
    },
    commit: async () => undefined,
    abandon: async () => undefined,
  };
}

/** The backup's reader, each page a run of its own, counting the reads started and in flight. */
function countingReader<E extends PageRef>(reader: BackupSource<E>) {
  const counts = { started: 0, inFlight: 0, maxInFlight: 0 };
  const counted = Object.create(reader) as BackupSource<E>;
  counted.runs = (entries: E[]) => entries.map((e) => [e]);
  counted.readRun = async (run: E[]) => {
    counts.started++;
    counts.inFlight++;
    counts.maxInFlight = Math.max(counts.maxInFlight, counts.inFlight);
    try {
      return await reader.readRun(run);
    } finally {
      counts.inFlight--;
    }
  };
  return { counted, counts };
}

async function allEntries<E extends PageRef>(reader: BackupSource<E>): Promise<E[]> {
  const out: E[] = [];
  for await (const { entries } of reader.groups()) out.push(...entries);
  return out;
}

test('adjacent pages go out as writes of at most 4 MiB, zero runs unwritten, and the bytes are the disk', async () => {
  const reader = await openBackupSource(env.vault, backupId, env.userKey);
  const { sink, image, writes, releaseAll } = heldSink();
  const pages: number[] = [];
  let written = 0;
  const releasing = setInterval(releaseAll, 1);
  try {
    await writePages(reader, await allEntries(reader), sink, { concurrency: 2, onPage: (n) => pages.push(n), onWrite: (n) => (written += n) });
  } finally {
    clearInterval(releasing);
  }
  expect(writes.sort((a, b) => a.offset - b.offset)).toEqual([
    { offset: 0, length: 4 * MiB },
    { offset: 4 * MiB, length: 0.5 * MiB },
    { offset: 5 * MiB, length: MiB },
  ]);
  expect(written).toBe(5.5 * MiB);
  expect(pages).toHaveLength(DISK / PAGE - 2); // the backup holds no all-zero page
  expect(image.equals(diskBytes)).toBe(true);
});

test('reads run ahead of a held write up to readAhead, and writes in flight stay within concurrency', async () => {
  const { counted, counts } = countingReader(await openBackupSource(env.vault, backupId, env.userKey));
  const { sink, image, state, nextWrite, releaseAll } = heldSink();
  const first = nextWrite();
  const restoring = writePages(counted, await allEntries(counted), sink, { concurrency: 1, readAhead: 2 });
  await first;
  // The first write is pages 0–15 (4 MiB), sent once page 16 is decoded; by then the reads of the
  // readAhead runs behind page 15 were started, and no more start while the write is held.
  while (counts.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(counts.started).toBe(16 + 2);
  const releasing = setInterval(releaseAll, 1);
  try {
    await restoring;
  } finally {
    clearInterval(releasing);
  }
  expect(counts.started).toBe(DISK / PAGE - 2);
  expect(counts.maxInFlight).toBeLessThanOrEqual(2);
  expect(state.maxInFlight).toBe(1);
  expect(image.equals(diskBytes)).toBe(true);
});

test('slow start: the first run is read alone, then one more run may be in flight per run handed on, up to readAhead', async () => {
  const { counted, counts } = countingReader(await openBackupSource(env.vault, backupId, env.userKey));
  // Each read start notes how many runs were started before it and how many had been handed on (finished).
  const startsSeen: Array<{ started: number; finished: number }> = [];
  let finished = 0;
  const read = counted.readRun.bind(counted);
  counted.readRun = async (run, memory) => {
    startsSeen.push({ started: counts.started, finished });
    try {
      return await read(run, memory);
    } finally {
      finished++;
    }
  };
  const { sink, image, releaseAll } = heldSink();
  const releasing = setInterval(releaseAll, 1);
  try {
    await writePages(counted, await allEntries(counted), sink, { concurrency: 4, readAhead: 4 });
  } finally {
    clearInterval(releasing);
  }
  // The second read starts only once the first is done; no read ever starts with more than 1 + finished in flight.
  expect(startsSeen[1].finished).toBeGreaterThanOrEqual(1);
  for (const { started, finished: done } of startsSeen) expect(started - done).toBeLessThanOrEqual(Math.min(4, 1 + done));
  expect(counts.maxInFlight).toBeLessThanOrEqual(4);
  expect(image.equals(diskBytes)).toBe(true);
});

test('a read that fails stops the restore with its error, after the writes before it', async () => {
  const { counted } = countingReader(await openBackupSource(env.vault, backupId, env.userKey));
  let reads = 0;
  const read = counted.readRun;
  counted.readRun = async (run) => {
    if (++reads === 20) throw new Error('the vault read of page 21 failed');
    return read(run);
  };
  const { sink, writes, releaseAll } = heldSink();
  const releasing = setInterval(releaseAll, 1);
  try {
    await expect(writePages(counted, await allEntries(counted), sink, { concurrency: 2, readAhead: 2 })).rejects.toThrow('the vault read of page 21 failed');
  } finally {
    clearInterval(releasing);
  }
  // The writes before the failed page went out; page 20's, which page 21 would have joined, did not.
  expect(writes.sort((a, b) => a.offset - b.offset)).toEqual([
    { offset: 0, length: 4 * MiB },
    { offset: 4 * MiB, length: 0.5 * MiB },
  ]);
});

test("a page's memory is reused for a later page only once its writes are done, never under a write", async () => {
  const reader = await openBackupSource(env.vault, backupId, env.userKey);
  const taken = new Set<ArrayBufferLike>();
  let runs = 0;
  const paired = Object.create(reader) as typeof reader;
  paired.runs = (entries) => entries.reduce<Array<typeof entries>>((out, e, k) => (k % 2 ? out[out.length - 1].push(e) : out.push([e]), out), []);
  paired.readRun = (run, memory) => {
    runs++;
    return reader.readRun(run, memory && { take: (bytes) => { const b = memory.take(bytes); taken.add(b.buffer); return b; } });
  };
  // Each write is held a while, then checked: its bytes must still be the disk's when it settles.
  const changedUnderWrite: number[] = [];
  const image = Buffer.alloc(DISK);
  const sink = checkingSink(image, changedUnderWrite);
  await writePages(paired, await allEntries(paired), sink, { concurrency: 1, readAhead: 1 });
  expect(runs).toBe(11); // 22 pages in runs of two
  expect(taken.size).toBeLessThan(22); // 22 pages read into fewer buffers: reused
  expect(changedUnderWrite).toEqual([]);
  expect(image.equals(diskBytes)).toBe(true);
});

test("a writer reuses page memory an earlier writer in the process gave back (a fan-out's windows), side by side nothing changes under a write, and idle memory is bounded", async () => {
  dropIdlePageMemory();
  const reader = await openBackupSource(env.vault, backupId, env.userKey);
  const entries = await allEntries(reader);
  const half = Math.floor(entries.length / 2);
  const image = Buffer.alloc(DISK);
  const changedUnderWrite: number[] = [];
  /** A writer over `part`, noting the page memory it takes; each write is held a while and checked when it settles. */
  const writer = (part: typeof entries) => {
    const taken = new Set<ArrayBufferLike>();
    const noting = Object.create(reader) as typeof reader;
    noting.readRun = (run, memory) => reader.readRun(run, memory && { take: (bytes) => { const b = memory.take(bytes); taken.add(b.buffer); return b; } });
    return { taken, done: writePages(noting, part, checkingSink(image, changedUnderWrite), { concurrency: 2, readAhead: 2 }) };
  };
  // One window after another: the second takes memory the first gave back.
  const first = writer(entries.slice(0, half));
  await first.done;
  expect(idlePageMemory().pieces).toBeGreaterThan(0);
  const second = writer(entries.slice(half));
  await second.done;
  expect([...second.taken].some((m) => first.taken.has(m))).toBe(true);
  // Two windows side by side, sharing the idle memory: every write's bytes are still the disk's when it settles.
  const a = writer(entries.slice(0, half));
  const b = writer(entries.slice(half));
  await Promise.all([a.done, b.done]);
  expect(changedUnderWrite).toEqual([]);
  expect(image.equals(diskBytes)).toBe(true);
  expect(idlePageMemory().bytes).toBeLessThanOrEqual(160 * MiB);
  dropIdlePageMemory();
  expect(idlePageMemory()).toEqual({ pieces: 0, bytes: 0 });
});
