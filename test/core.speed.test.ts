/** #15 speed: the zstd binding and its fallback, the codec pre-check's rule (counts), block decoding in the chunk pool, one content index per process and vault. */
import { chunkPoolFor, closeChunkPools } from '../core/processor/chunk-pool';
import { contentIndexOf, forgetContentIndexes, type BackupContextV2 } from '../core/backup/v2/context';
import { mayCompress, precheckCounts } from '../core/repo/v2/compressibility';
import { Codec2, compressChunk, decodeBlock2, sealBlock2 } from '../core/repo/v2/block';
import { chunkLengths, DEFAULT_CHUNKING, gearTable } from '../core/repo/v2/chunker';
import { ContentIndex } from '../core/repo/v2/content-index';
import { Keyring } from '../core/repo/v2/keyring';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { useZstdBindingForTests, zstdBinding, zstdContentSize, zstdDecode, zstdEncode, zstdEncodeSync, zstdReady } from '../core/repo/v2/zstd';
import { Vault } from '../core/repo/vault';
import { initVault, type StorageLocation } from '../core';
import { fullMixed } from '../bench/lib/disks';
import { regionBytes, type RegionKind } from '../testkit/sample-disk';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

const keyring = Keyring.fromMasters('0123456789abcdef0123456789abcdef', [Buffer.alloc(32, 3)]);
const bytesOf = (kind: RegionKind, length: number, seed: number) => regionBytes({ offset: 0, length, kind, seed }, 0, length);

afterAll(() => closeChunkPools());

describe('zstd bindings', () => {
  afterEach(() => useZstdBindingForTests(undefined));

  test('the native binding is used here; its frames state their content size and both bindings read each other’s frames', async () => {
    expect(zstdBinding()).toBe('native');
    const plain = bytesOf('text', 300 * KiB, 1);
    const native = await zstdEncode(plain);
    expect(zstdContentSize(native)).toBe(plain.length);
    useZstdBindingForTests('wasm');
    expect(zstdBinding()).toBe('wasm');
    const wasm = await zstdEncode(plain);
    expect(zstdContentSize(wasm)).toBe(plain.length);
    expect((await zstdDecode(native, plain.length)).equals(plain)).toBe(true);
    useZstdBindingForTests(undefined);
    expect((await zstdDecode(wasm, plain.length)).equals(plain)).toBe(true);
    // the stated size is checked before decoding
    await expect(zstdDecode(native, plain.length - 1)).rejects.toThrow(`the zstd frame states ${plain.length} content size, expected ${plain.length - 1}`);
  });

  test('a platform without the native binary falls back to WebAssembly with one warning, and blocks still round-trip', async () => {
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      useZstdBindingForTests({ load: () => { throw new Error('Cannot find module @toondepauw/node-zstd-linux-x64-gnu'); } });
      expect(zstdBinding()).toBe('wasm');
      await zstdReady();
      const plain = bytesOf('text', 200 * KiB, 2);
      const id = keyring.contentId(plain);
      const { codec, body } = compressChunk(plain, 'zstd');
      expect(codec).toBe(Codec2.Zstd);
      const block = await sealBlock2(codec, body, plain.length, id, keyring);
      expect((await decodeBlock2(block, id, keyring, 'chunk')).equals(plain)).toBe(true);
      expect(zstdBinding()).toBe('wasm');
      expect(warn.mock.calls.map((c) => c[0])).toEqual([expect.stringMatching(/^the native zstd binding \(@toondepauw\/node-zstd\) does not load on linux-x64 \(Cannot find module @toondepauw\/node-zstd-linux-x64-gnu\); using the WebAssembly one/)]);
    } finally {
      warn.mockRestore();
    }
  });
});

describe('the codec pre-check (§16)', () => {
  const verdicts = (chunks: Buffer[]) => {
    const before = { ...precheckCounts };
    const out = chunks.map((c) => mayCompress(c));
    return { out, tried: precheckCounts.tried - before.tried, skipped: precheckCounts.skipped - before.skipped };
  };

  test('random chunks skip zstd; text, zeros inside, text at an end, long-range repeats and small chunks go to zstd', () => {
    const random = bytesOf('random', 256 * KiB, 3);
    const withZeros = Buffer.from(random);
    withZeros.fill(0, 100 * KiB, 116 * KiB); // 16 KiB of zeros in the middle
    const textEnd = Buffer.concat([bytesOf('random', 255 * KiB, 4), bytesOf('text', 1 * KiB, 5)]);
    const textStart = Buffer.concat([bytesOf('text', 1 * KiB, 6), bytesOf('random', 255 * KiB, 7)]);
    const repeated = bytesOf('repeat', 1 * MiB, 8); // random bytes, a 64 KiB period: byte counts alone say random
    const small = bytesOf('random', 12 * KiB, 9);
    const { out, tried, skipped } = verdicts([random, bytesOf('text', 256 * KiB, 10), withZeros, textEnd, textStart, repeated, small, bytesOf('random', 1 * MiB, 11)]);
    expect(out).toEqual([false, true, true, true, true, true, true, false]);
    expect([tried, skipped]).toEqual([6, 2]);
    // and each verdict is right: zstd shrinks every chunk tried here and none of the skipped
    expect(compressChunk(withZeros, 'zstd').codec).toBe(Codec2.Zstd);
    expect(compressChunk(repeated, 'zstd').body.length).toBeLessThan(128 * KiB);
    const stored = compressChunk(random, 'zstd');
    expect([stored.codec, stored.body === random]).toEqual([Codec2.Stored, true]);
    // lz4 (cheap on anything) is never pre-checked
    const lz4Before = precheckCounts.tried + precheckCounts.skipped;
    compressChunk(random, 'lz4');
    expect(precheckCounts.tried + precheckCounts.skipped).toBe(lz4Before);
  });

  test('on the bench mix (disk b, 32 MiB) it skips the random chunks and stores the same bytes as zstd on every chunk', () => {
    const diskBytes = 32 * MiB;
    const data = Buffer.concat(fullMixed(diskBytes).map((r) => regionBytes(r, r.offset, Math.min(r.length, diskBytes - r.offset))));
    const gear = gearTable(keyring.key('name'));
    const chunks: Buffer[] = [];
    for (let at = 0; at < data.length; at += 4 * MiB) {
      const page = data.subarray(at, at + 4 * MiB);
      let o = 0;
      for (const length of chunkLengths(page, DEFAULT_CHUNKING, gear)) {
        const c = page.subarray(o, (o += length));
        if (c.some((x) => x !== 0)) chunks.push(c);
      }
    }
    // what zstd on every chunk stores (the writer rule without the pre-check), and what the pre-check lets it store
    const sizes = chunks.map((c) => Math.min(c.length, zstdEncodeSync(c).length));
    const { out, skipped } = verdicts(chunks);
    const checked = chunks.reduce((sum, c, i) => sum + (out[i] ? sizes[i] : c.length), 0);
    const unchecked = sizes.reduce((a, b) => a + b, 0);
    expect(skipped).toBeGreaterThanOrEqual(chunks.length / 5);
    // the skipped chunks are those zstd would have stored anyway: the stored bytes are the same (the SPEC allows 0.5 %)
    expect(chunks.filter((c, i) => !out[i] && sizes[i] < c.length).length).toBe(0);
    expect(checked).toBe(unchecked);
  });
});

describe('decodeBlocks: a stretch of blocks decoded in one chunk-pool task', () => {
  const pool = chunkPoolFor(keyring);
  const before = process.env.PAGEWISE_WORKER_THREADS;
  afterAll(() => (before === undefined ? delete process.env.PAGEWISE_WORKER_THREADS : (process.env.PAGEWISE_WORKER_THREADS = before)));

  test.each(['2', '0'])('with %s worker threads: plaintexts in order; a damaged block, another chunk and a newer epoch are named errors', async (threads) => {
    process.env.PAGEWISE_WORKER_THREADS = threads;
    const page = Buffer.concat([bytesOf('text', 700 * KiB, 12), bytesOf('random', 300 * KiB, 13), bytesOf('repeat', 1 * MiB, 14)]);
    const chunks = (await pool.chunkPage(page, DEFAULT_CHUNKING)).filter((c) => c.contentId);
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    const blocks = await pool.encodeChunks(page, chunks, 'zstd');
    const items = chunks.map((c, i) => ({ block: blocks[i], contentId: c.contentId as Buffer, where: `chunk ${i}` }));
    const plains = await pool.decodeBlocks(items);
    expect(plains.map((p, i) => Buffer.isBuffer(p) && p.equals(page.subarray(chunks[i].offset, chunks[i].offset + chunks[i].length)))).toEqual(chunks.map(() => true));

    const damaged = Buffer.from(blocks[0]);
    damaged[damaged.length - 20] ^= 1;
    const newer = Buffer.from(blocks[1]);
    newer[5] = 1; // epoch 1: this keyring holds only 0
    const results = await pool.decodeBlocks([
      { ...items[0], block: damaged },
      { ...items[1], block: newer },
      { ...items[2], contentId: items[0].contentId },
      items[1],
      { ...items[1], block: blocks[1].subarray(0, 40) },
    ], 4 * MiB);
    expect(results.slice(0, 3).concat(results[4]).map((r) => (r instanceof Error ? [(r as { code?: string }).code, r.message] : 'plain'))).toEqual([
      ['Corrupt', 'chunk 0: the block fails authentication (damaged, or not the chunk its content ID names)'],
      ['WrongKey', "chunk 1: the block was written with a newer master key epoch 1 than this key's slot holds (epochs 0 to 0); use a key with a slot of epoch 1 or later"],
      ['Corrupt', 'chunk 2: the block fails authentication (damaged, or not the chunk its content ID names)'],
      ['Corrupt', 'chunk 1: the block is truncated or is not a version-2 Pagewise block'],
    ]);
    expect((results[3] as Buffer).equals(plains[1] as Buffer)).toBe(true);
    // a bound below the chunk's length refuses it before decrypting
    const [tooLong] = await pool.decodeBlocks([items[0]], 1024);
    expect((tooLong as Error).message).toMatch(/^chunk 0: the block is \d+ bytes, more than a chunk of at most 1024 bytes is stored as$/);
  });
});

describe('the content index: one per process and vault', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv();
  });
  afterAll(async () => {
    forgetContentIndexes();
    await env?.stop();
  });

  test('a second context (the next batch activity) refreshes the index the first opened; another vault, or after forgetting, opens anew', async () => {
    const open = jest.spyOn(ContentIndex, 'open');
    const refresh = jest.spyOn(ContentIndex.prototype, 'refresh');
    try {
      const contextOf = async (location: StorageLocation): Promise<BackupContextV2> => {
        const vault = Vault.open(location); // each batch activity opens the vault and its keyring anew
        return { vault, keyring: await openVaultKeyring(vault, env.userKey) } as BackupContextV2;
      };
      const vaultA = await env.makeVault('speed-a');
      await initVault(vaultA, { userKey: env.userKey });
      const first = await contextOf(vaultA);
      const again = await contextOf(vaultA);
      const a1 = await contentIndexOf(first);
      expect([open.mock.calls.length, refresh.mock.calls.length]).toEqual([1, 1]); // open() refreshes once, itself
      expect(await contentIndexOf(first)).toBe(a1); // the next batch of the same context
      const a2 = await contentIndexOf(again);
      expect(a2).toBe(a1);
      expect([open.mock.calls.length, refresh.mock.calls.length]).toEqual([1, 3]);
      const vaultB = await env.makeVault('speed-b');
      await initVault(vaultB, { userKey: env.userKey });
      const b = await contentIndexOf(await contextOf(vaultB));
      expect(b).not.toBe(a1);
      expect(open.mock.calls.length).toBe(2);
      forgetContentIndexes();
      expect(await contentIndexOf(await contextOf(vaultA))).not.toBe(a1);
      expect(open.mock.calls.length).toBe(3);
    } finally {
      open.mockRestore();
      refresh.mockRestore();
    }
  });
});
