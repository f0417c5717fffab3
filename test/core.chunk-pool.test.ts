/** The chunk pool: chunks named and blocks sealed in worker threads (or the calling thread) decode to the page, with the codec §16 asks for. */
import { execFile } from 'node:child_process';
import { createDecipheriv, hkdfSync } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { buildWorker } from '../bench/lib/build';
import { chunkPoolFor, closeChunkPools, decodeThreads, decodeThreadsFor, DEFAULT_CODEC, workerThreads, type CodecSetting, type PageChunk } from '../core/processor/chunk-pool';
import { BLOCK2_OVERHEAD, decodeBlock2 } from '../core/repo/v2/block';
import { chunkLengths, DEFAULT_CHUNKING, gearTable, type Chunking } from '../core/repo/v2/chunker';
import { Keyring } from '../core/repo/v2/keyring';
import { TS_NODE_CACHE } from '../testkit/pagewise-process';
import { regionBytes, type RegionKind } from '../testkit/sample-disk';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const KiB = 1024;
const MiB = 1024 * KiB;
// a fixed key: chunk boundaries (keyed) are then the same on every run
const keyring = Keyring.fromMasters('fedcba9876543210fedcba9876543210', [Buffer.alloc(32, 7)]);
const pool = chunkPoolFor(keyring);
const bytesOf = (kind: RegionKind, length: number, seed: number) => regionBytes({ offset: 0, length, kind, seed }, 0, length);

/** Opens a block by §16 by hand (not through decodeBlock2): the codec byte and codec output inside. */
function opened(block: Buffer, contentId: Buffer): { codec: number; body: Buffer } {
  const header = block.subarray(0, 36);
  const key = Buffer.from(hkdfSync('sha256', keyring.key('data', block[5]), header.subarray(8, 24), 'pagewise/v2/block', 32));
  const decipher = createDecipheriv('aes-256-gcm', key, header.subarray(24, 36));
  decipher.setAAD(Buffer.concat([header, contentId]));
  decipher.setAuthTag(block.subarray(block.length - 16));
  const inner = Buffer.concat([decipher.update(block.subarray(36, block.length - 16)), decipher.final()]);
  return { codec: inner[0], body: inner.subarray(8) };
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const nonZero = (chunks: PageChunk[]) => chunks.filter((c) => c.contentId !== null);
const bytesAt = (page: Buffer, c: PageChunk) => page.subarray(c.offset, c.offset + c.length);

/** Runs `fn` with PAGEWISE_WORKER_THREADS set to `threads`. */
async function withThreads<T>(threads: string | undefined, fn: () => Promise<T>): Promise<T> {
  const before = process.env.PAGEWISE_WORKER_THREADS;
  if (threads === undefined) delete process.env.PAGEWISE_WORKER_THREADS;
  else process.env.PAGEWISE_WORKER_THREADS = threads;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.PAGEWISE_WORKER_THREADS;
    else process.env.PAGEWISE_WORKER_THREADS = before;
  }
}

afterAll(() => closeChunkPools());

describe('chunkPage', () => {
  // text, then 2 MiB of zeros (whole zero chunks at the 1 MiB maximum), then random bytes
  const page = Buffer.concat([bytesOf('text', 1200 * KiB, 1), Buffer.alloc(2 * MiB + 300 * KiB), bytesOf('random', 4 * MiB - 3548 * KiB, 2)]);

  test('cuts as chunkLengths with the vault gear, names each chunk HMAC(K_cid, bytes), zero chunks null', async () => {
    const chunks = await withThreads('2', () => pool.chunkPage(page, DEFAULT_CHUNKING));
    expect(chunks.map((c) => c.length)).toEqual(chunkLengths(page, DEFAULT_CHUNKING, gearTable(keyring.key('name'))));
    let offset = 0;
    for (const c of chunks) {
      expect(c.offset).toBe(offset);
      offset += c.length;
      const bytes = bytesAt(page, c);
      if (bytes.equals(Buffer.alloc(bytes.length))) expect(c.contentId).toBeNull();
      else expect(c.contentId).toEqual(keyring.contentId(bytes));
    }
    expect(offset).toBe(page.length);
    expect(chunks.filter((c) => c.contentId === null).length).toBeGreaterThanOrEqual(1);
    expect(await pool.chunkPage(Buffer.alloc(4 * MiB), DEFAULT_CHUNKING)).toEqual([0, 1, 2, 3].map((i) => ({ offset: i * MiB, length: MiB, contentId: null })));
    expect(await pool.chunkPage(page, { scheme: 'page' })).toEqual([{ offset: 0, length: page.length, contentId: keyring.contentId(page) }]);
  });

  test('worker threads and the calling thread (0 threads) give identical chunk lists, pages in parallel each getting its own', async () => {
    const pages = [page, bytesOf('text', 4 * MiB, 3), bytesOf('random', 4 * MiB, 4), Buffer.concat([bytesOf('repeat', 3 * MiB, 5), Buffer.alloc(MiB)])];
    const chunking: Chunking = { scheme: 'fastcdc-2016', min: 16 * KiB, avg: 64 * KiB, max: 256 * KiB, nc: 2 };
    const threaded = await withThreads('2', () => Promise.all(pages.map((p) => pool.chunkPage(p, chunking))));
    const inline = await withThreads('0', () => Promise.all(pages.map((p) => pool.chunkPage(p, chunking))));
    expect(threaded).toEqual(inline);
    expect(threaded.map((cs) => cs.length)).toEqual(pages.map((p) => chunkLengths(p, chunking, gearTable(keyring.key('name'))).length));
    // the caller's page is copied, never detached by the transfer
    expect(page.length).toBe(4 * MiB);
  });
});

describe('encodeChunks', () => {
  test('cutPage hands its copy over to encodeChunks (shared with the worker, not copied); no other buffer is ever shared or moved', async () => {
    const page = Buffer.concat([bytesOf('text', MiB, 21), bytesOf('random', 2 * MiB, 22), Buffer.alloc(MiB)]);
    const original = Buffer.from(page);
    const decodesTo = async (blocks: Buffer[], chunks: PageChunk[]) => {
      for (const [i, c] of chunks.entries()) expect((await decodeBlock2(blocks[i], c.contentId as Buffer, keyring, `chunk ${i}`, 4 * MiB)).equals(bytesAt(original, c))).toBe(true);
    };
    await withThreads('2', async () => {
      const { chunks, bytes } = await pool.cutPage(page, DEFAULT_CHUNKING);
      expect(chunks).toEqual(await pool.chunkPage(page, DEFAULT_CHUNKING));
      expect(bytes).not.toBe(page);
      expect(bytes.equals(original)).toBe(true);
      // the pool's own copy is shared memory: the workers read it where it is, nothing moves
      const kind = (b: Buffer) => Object.prototype.toString.call(b.buffer); // realm-independent (jest)
      expect(kind(bytes)).toBe('[object SharedArrayBuffer]');
      expect(kind(page)).toBe('[object ArrayBuffer]');
      const toStore = nonZero(chunks);
      // a buffer cutPage did not give back is copied, even when handed over: the caller's page stays whole
      await decodesTo(await pool.encodeChunks(page, toStore, 'zstd', { handOver: true }), toStore);
      expect(page.equals(original)).toBe(true);
      await decodesTo(await pool.encodeChunks(bytes, toStore, 'zstd', { handOver: true }), toStore);
      // its memory is the pool's again (reused for a later page's copy): a second use fails loudly; the caller's page was never shared
      await expect(pool.encodeChunks(bytes, toStore, 'zstd', { handOver: true })).rejects.toThrow(/already handed over/);
      expect(page.equals(original)).toBe(true);
    });
    await withThreads('0', async () => {
      const { chunks, bytes } = await pool.cutPage(page, DEFAULT_CHUNKING);
      expect(bytes).toBe(page); // no thread, no copy
      await decodesTo(await pool.encodeChunks(bytes, nonZero(chunks), 'zstd', { handOver: true }), nonZero(chunks));
      expect(page.equals(original)).toBe(true);
    });
  });

  test('blocks decode through decodeBlock2 to the same bytes under the same content IDs, in the order given', async () => {
    const page = Buffer.concat([bytesOf('text', 2 * MiB, 6), bytesOf('random', MiB, 7), bytesOf('repeat', MiB, 8)]);
    const chunks = nonZero(await pool.chunkPage(page, DEFAULT_CHUNKING)).reverse();
    for (const threads of ['2', '0']) {
      const blocks = await withThreads(threads, () => pool.encodeChunks(page, chunks, DEFAULT_CODEC));
      expect(blocks).toHaveLength(chunks.length);
      for (const [i, c] of chunks.entries()) {
        // Buffer.equals: jest's toEqual walks large buffers byte by byte, for seconds
        expect((await decodeBlock2(blocks[i], c.contentId as Buffer, keyring, `chunk ${i}`, 4 * MiB)).equals(bytesAt(page, c))).toBe(true);
        expect(blocks[i][5]).toBe(keyring.epoch);
      }
    }
    expect(await pool.encodeChunks(page, [], 'zstd')).toEqual([]);
  });

  test('zstd for compressible data (the default), lz4 or stored when asked; a chunk that does not shrink is stored', async () => {
    expect(DEFAULT_CODEC).toBe('zstd');
    // text, then random bytes
    const page = Buffer.concat([bytesOf('text', 2.5 * MiB, 9), bytesOf('random', 1.5 * MiB, 10)]);
    const chunks = nonZero(await pool.chunkPage(page, DEFAULT_CHUNKING));
    const codecsOf = async (codec: CodecSetting) => {
      const blocks = await pool.encodeChunks(page, chunks, codec);
      return blocks.map((b, i) => ({ ...opened(b, chunks[i].contentId as Buffer), size: b.length, chunk: chunks[i] }));
    };
    const zstd = await codecsOf('zstd');
    const randomChunks = zstd.filter((z) => z.chunk.offset >= 2.5 * MiB);
    expect(randomChunks.length).toBeGreaterThanOrEqual(1);
    for (const z of zstd) {
      if (randomChunks.includes(z)) {
        expect(z.codec).toBe(0);
        expect(z.size).toBe(z.chunk.length + BLOCK2_OVERHEAD);
      } else if (z.chunk.offset + z.chunk.length <= 2.5 * MiB) {
        expect(z.codec).toBe(2);
        expect(z.body.subarray(0, 4)).toEqual(ZSTD_MAGIC);
        expect(z.size).toBeLessThan(z.chunk.length / 2);
      }
    }
    const lz4 = await codecsOf('lz4');
    const textLz4 = lz4.filter((z) => z.chunk.offset + z.chunk.length <= 2.5 * MiB);
    expect(textLz4.map((z) => z.codec)).toEqual(textLz4.map(() => 1));
    // on text zstd stores less than lz4
    const sum = (xs: { size: number }[]) => xs.reduce((s, x) => s + x.size, 0);
    expect(sum(zstd.slice(0, textLz4.length))).toBeLessThan(sum(textLz4));
    const stored = await codecsOf('stored');
    expect(stored.map((z) => [z.codec, z.size])).toEqual(chunks.map((c) => [0, c.length + BLOCK2_OVERHEAD]));
  });

  test('random data is stored; every chunk decides for itself (§16): a random middle does not make the page stored', async () => {
    const random = bytesOf('random', 4 * MiB, 12);
    const chunks = nonZero(await pool.chunkPage(random, DEFAULT_CHUNKING));
    const blocks = await pool.encodeChunks(random, chunks, 'zstd');
    expect(blocks.map((b, i) => [opened(b, chunks[i].contentId as Buffer).codec, b.length])).toEqual(chunks.map((c) => [0, c.length + BLOCK2_OVERHEAD]));

    // text everywhere but the middle 1 MiB (what the old per-page probe sampled): the text chunks get zstd,
    // the chunks wholly inside the random middle are stored, and each block decodes to its bytes
    const middle = { from: 1.5 * MiB, to: 2.5 * MiB };
    const mixed = Buffer.concat([bytesOf('text', middle.from, 13), bytesOf('random', middle.to - middle.from, 14), bytesOf('text', 4 * MiB - middle.to, 15)]);
    const mixedChunks = nonZero(await pool.chunkPage(mixed, DEFAULT_CHUNKING));
    const mixedBlocks = await pool.encodeChunks(mixed, mixedChunks, 'zstd');
    const seen = mixedBlocks.map((b, i) => ({ codec: opened(b, mixedChunks[i].contentId as Buffer).codec, size: b.length, chunk: mixedChunks[i] }));
    const text = seen.filter((x) => x.chunk.offset + x.chunk.length <= middle.from || x.chunk.offset >= middle.to);
    const inside = seen.filter((x) => x.chunk.offset >= middle.from && x.chunk.offset + x.chunk.length <= middle.to);
    expect(text.length).toBeGreaterThanOrEqual(4);
    expect(inside.length).toBeGreaterThanOrEqual(1);
    for (const x of text) {
      expect(x.codec).toBe(2);
      expect(x.size).toBeLessThan(x.chunk.length / 2);
    }
    for (const x of inside) expect([x.codec, x.size]).toEqual([0, x.chunk.length + BLOCK2_OVERHEAD]);
    // a chunk straddling text and random is zstd too (smaller than stored)
    for (const x of seen.filter((y) => !text.includes(y) && !inside.includes(y))) {
      expect(x.codec).toBe(2);
      expect(x.size).toBeLessThan(x.chunk.length + BLOCK2_OVERHEAD);
    }
    for (const [i, b] of mixedBlocks.entries()) {
      expect((await decodeBlock2(b, mixedChunks[i].contentId as Buffer, keyring, `chunk ${i}`)).equals(bytesAt(mixed, mixedChunks[i]))).toBe(true);
    }

    // random bytes repeated at a 64 KiB period: lz4 (64 KiB window) finds nothing, zstd stores about one period
    const repeated = bytesOf('repeat', MiB, 17);
    const [whole] = await pool.chunkPage(repeated, { scheme: 'page' });
    const [block] = await pool.encodeChunks(repeated, [whole], 'zstd');
    expect(opened(block, whole.contentId as Buffer).codec).toBe(2);
    expect(block.length).toBeLessThan(128 * KiB);

    // a small page is compressed as well
    const small = bytesOf('text', 200 * KiB, 16);
    const [smallChunk] = await pool.chunkPage(small, { scheme: 'page' });
    expect(opened((await pool.encodeChunks(small, [smallChunk], 'zstd'))[0], smallChunk.contentId as Buffer).codec).toBe(2);
  });

  test('a zero chunk or a chunk outside the page is refused', async () => {
    const page = bytesOf('text', 256 * KiB, 17);
    const id = keyring.contentId(page);
    await expect(pool.encodeChunks(page, [{ offset: 0, length: 1024, contentId: null }], 'zstd')).rejects.toThrow('encodeChunks takes non-zero chunks with a content ID; the chunk at 0 has none');
    await expect(pool.encodeChunks(page, [{ offset: 255 * KiB, length: 2 * KiB, contentId: id }], 'zstd')).rejects.toThrow('the chunk at 261120 of 2048 bytes lies outside the page of 262144 bytes');
  });
});

describe('decodeThreads', () => {
  test('the variable when it is set; else in-thread on ≤ 2 cores, the worker threads on more', async () => {
    expect(decodeThreadsFor({ explicit: false, cores: 1, workers: 1 })).toBe(0);
    expect(decodeThreadsFor({ explicit: false, cores: 2, workers: 2 })).toBe(0);
    expect(decodeThreadsFor({ explicit: false, cores: 4, workers: 2 })).toBe(2);
    expect(decodeThreadsFor({ explicit: true, cores: 2, workers: 2 })).toBe(2);
    expect(decodeThreadsFor({ explicit: true, cores: 2, workers: 0 })).toBe(0);
    await withThreads('3', async () => expect(decodeThreads()).toBe(3));
    // From the sources (jest) the workers default to none, so decoding does too, on any machine.
    await withThreads(undefined, async () => expect(decodeThreads()).toBe(0));
    // A bad variable is refused here too, even where decoding would stay in-thread.
    await withThreads('two', async () => expect(() => decodeThreads()).toThrow(expect.objectContaining({ code: 'BadInput' })));
  });
});

describe('workerThreads', () => {
  test('defaults to min(2, cores); 0 runs in the calling thread; anything else is a BadInput naming the variable', async () => {
    // From the sources (jest) the default is in-thread: a worker would load ts-node and TypeScript again.
    await withThreads(undefined, async () => expect(workerThreads()).toBe(0));
    await withThreads('0', async () => expect(workerThreads()).toBe(0));
    await withThreads('3', async () => expect(workerThreads()).toBe(3));
    for (const bad of ['two', '-1', '65', '1.5']) {
      await withThreads(bad, async () => {
        expect(() => workerThreads()).toThrow(expect.objectContaining({ code: 'BadInput', message: expect.stringMatching(/^PAGEWISE_WORKER_THREADS must be a whole number of worker threads from 0 to 64, got "/) }));
        await expect(pool.chunkPage(Buffer.alloc(1024), DEFAULT_CHUNKING)).rejects.toMatchObject({ code: 'BadInput' });
      });
    }
  });
});

/** A script that chunks and seals one page with the pool and prints what it got, never closing the pool. */
function childScript(modules: { pool: string; keyring: string; block: string; chunker: string }): string {
  return `
const { chunkPoolFor } = require(${JSON.stringify(modules.pool)});
const { Keyring } = require(${JSON.stringify(modules.keyring)});
const { decodeBlock2 } = require(${JSON.stringify(modules.block)});
const { DEFAULT_CHUNKING } = require(${JSON.stringify(modules.chunker)});
(async () => {
  // a fixed key: chunk boundaries (keyed) are then the same on every run
const keyring = Keyring.fromMasters('fedcba9876543210fedcba9876543210', [Buffer.alloc(32, 7)]);
  const page = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < page.length; i += 7) page.write('chunk ' + (i % 9973) + ' ', i);
  const pool = chunkPoolFor(keyring);
  const chunks = await pool.chunkPage(page, DEFAULT_CHUNKING);
  const blocks = await pool.encodeChunks(page, chunks, 'zstd');
  let same = 0;
  for (let i = 0; i < chunks.length; i++) {
    const plain = await decodeBlock2(blocks[i], chunks[i].contentId, keyring, 'chunk');
    if (plain.equals(page.subarray(chunks[i].offset, chunks[i].offset + chunks[i].length))) same++;
  }
  console.log(JSON.stringify({ chunks: chunks.length, same }));
})();
`;
}

describe('worker loading, and the pool never keeps a process alive', () => {
  test('under ts-node (the .ts worker with ts-node registered): the script ends by itself with its pool idle', async () => {
    const script = path.join(os.tmpdir(), `pagewise-pool-ts-${process.pid}.js`);
    const rel = (m: string) => path.join(ROOT, m);
    writeFileSync(script, childScript({ pool: rel('core/processor/chunk-pool.ts'), keyring: rel('core/repo/v2/keyring.ts'), block: rel('core/repo/v2/block.ts'), chunker: rel('core/repo/v2/chunker.ts') }));
    try {
      // a hang would show as the kill after 90 s (a failure), not as a slow pass
      const { stdout } = await run(process.execPath, ['-r', TS_NODE_CACHE, '-r', 'ts-node/register/transpile-only', script], { cwd: ROOT, timeout: 90_000, env: { ...process.env, PAGEWISE_WORKER_THREADS: '2' } });
      const out = JSON.parse(stdout.trim());
      expect(out.chunks).toBeGreaterThanOrEqual(4);
      expect(out.same).toBe(out.chunks);
    } finally {
      rmSync(script, { force: true });
    }
  });

  test("in the bench's plain-JS build (bench/lib/build.ts) the .js worker loads on bare node, and the script ends by itself", async () => {
    const dir = buildWorker();
    try {
      const script = path.join(dir, 'pool-child.js');
      const rel = (m: string) => path.join(dir, m);
      writeFileSync(script, childScript({ pool: rel('core/processor/chunk-pool.js'), keyring: rel('core/repo/v2/keyring.js'), block: rel('core/repo/v2/block.js'), chunker: rel('core/repo/v2/chunker.js') }));
      const { stdout } = await run(process.execPath, [script], { cwd: dir, timeout: 90_000, env: { ...process.env, PAGEWISE_WORKER_THREADS: '2' } });
      const out = JSON.parse(stdout.trim());
      expect(out.chunks).toBeGreaterThanOrEqual(4);
      expect(out.same).toBe(out.chunks);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
