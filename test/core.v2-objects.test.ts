/**
 * The version-2 vault objects (core/repo/v2, docs/FORMAT.md §14–§20): each round-trips, and each refuses
 * a flipped byte (Corrupt), another epoch's keyring (WrongKey), or a move to another name (Corrupt).
 */
import { createHash, randomBytes } from 'node:crypto';
import { PagewiseError } from '../core';
import { Vault } from '../core/repo/vault';
import { Codec2, decodeBlock2, encodeBlock2, sealBlock2, BLOCK2_OVERHEAD } from '../core/repo/v2/block';
import { openJson, sealJson } from '../core/repo/v2/envelope';
import { Keyring } from '../core/repo/v2/keyring';
import { findManifest2, manifestsOfDisk, readManifest2, writeManifest2, allManifestNames } from '../core/repo/v2/manifest';
import { v2names } from '../core/repo/v2/names';
import { decodeIndexBlob, encodeIndexBlob, PackWriter, readPackTrailer } from '../core/repo/v2/pack-writer';
import { decodeTable, encodeTable, pagesPerTableFor, readTable, recordFromJson, recordToJson, writeTable } from '../core/repo/v2/page-table';
import { BatchRecordV2, IndexEntry, ManifestV2, PageRecord2, PlanV2 } from '../core/repo/v2/records';
import { readBatch2, readPlan2, writeBatch2, writePlan2 } from '../core/repo/v2/staging';
import { zstdEncode } from '../core/repo/v2/zstd';
import { startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let vault: Vault;
const keyring = Keyring.create();

beforeAll(async () => {
  env = await startEnv();
  vault = Vault.open(env.vault);
});
afterAll(async () => {
  await env?.stop();
});

const failureOf = (p: Promise<unknown> | (() => unknown)) =>
  Promise.resolve()
    .then(() => (typeof p === 'function' ? p() : p))
    .then(() => undefined, (err: unknown) => err as PagewiseError);

/** The bytes with one bit of byte `at` flipped. */
const flipped = (bytes: Buffer, at: number) => {
  const copy = Buffer.from(bytes);
  copy[at] ^= 0x01;
  return copy;
};

/** A keyring of the same vault with a second epoch (what a master-key rotation gives), and the epoch-0-only view of it. */
function rotated(): { newer: Keyring; older: Keyring } {
  const m0 = randomBytes(32);
  const vaultId = randomBytes(16).toString('hex');
  return { newer: Keyring.fromMasters(vaultId, [m0, randomBytes(32)]), older: Keyring.fromMasters(vaultId, [m0]) };
}

describe('keyring', () => {
  test('tags, content IDs and the key check are keyed, stable and 16 or 32 bytes; content-id and name keys ignore the epoch', async () => {
    const { newer, older } = rotated();
    expect(keyring.tag('backup|x')).toMatch(/^[0-9a-f]{32}$/);
    expect(keyring.tag('backup|x')).toBe(keyring.nameTag('x'));
    expect(keyring.tag('backup|x')).not.toBe(Keyring.create().tag('backup|x'));
    expect(keyring.contentId(Buffer.from('abc'))).toHaveLength(32);
    expect(await keyring.contentIdAsync(Buffer.from('abc'))).toEqual(keyring.contentId(Buffer.from('abc')));
    expect(newer.contentId(Buffer.from('abc'))).toEqual(older.contentId(Buffer.from('abc')));
    expect(newer.keyCheck()).toBe(older.keyCheck());
    expect(newer.key('data')).not.toEqual(older.key('data'));
    expect(newer.key('data', 0)).toEqual(older.key('data'));
  });
});

describe('block (PWB2)', () => {
  const page = Buffer.concat([Buffer.alloc(40_000, 7), randomBytes(24_000)]);
  const id = keyring.contentId(page);

  test('round-trips lz4, stored and zstd blocks; the overhead is 52 bytes', async () => {
    const lz4 = await encodeBlock2(page, id, keyring);
    expect(lz4.length).toBeLessThan(page.length);
    expect(await decodeBlock2(lz4, id, keyring, 'page 3')).toEqual(page);

    const noise = randomBytes(300 * 1024); // the 64 KiB middle sample does not shrink: stored
    const stored = await encodeBlock2(noise, keyring.contentId(noise), keyring);
    expect(stored.length).toBe(noise.length + BLOCK2_OVERHEAD);
    expect(await decodeBlock2(stored, keyring.contentId(noise), keyring, 'page 4')).toEqual(noise);

    const zstd = await sealBlock2(Codec2.Zstd, await zstdEncode(page), page.length, id, keyring);
    expect(await decodeBlock2(zstd, id, keyring, 'page 5')).toEqual(page);
  });

  test('a flipped byte, another content ID, a length past the page size, an unknown codec or a lying content ID are Corrupt naming the page', async () => {
    const block = await encodeBlock2(page, id, keyring);
    for (const at of [5 + 3, 20, 40, block.length - 1]) {
      expect(await failureOf(decodeBlock2(flipped(block, at), id, keyring, 'page 3'))).toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/^page 3: /) });
    }
    expect(await failureOf(decodeBlock2(block, keyring.contentId(Buffer.from('other')), keyring, 'page 3'))).toMatchObject({ code: 'Corrupt', message: 'page 3: the block fails authentication (damaged, or not the chunk its content ID names)' });
    expect(await failureOf(decodeBlock2(block, id, keyring, 'page 3', 1024))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('more than a chunk of at most 1024 bytes') });
    const unknown = await sealBlock2(9 as Codec2, page, page.length, id, keyring);
    expect(await failureOf(decodeBlock2(unknown, id, keyring, 'page 3'))).toMatchObject({ code: 'Corrupt', message: 'page 3: unknown codec 9' });
    // Sealed under the right ID but holding other bytes: authenticates, then fails the content-ID check.
    const liar = await sealBlock2(Codec2.Stored, Buffer.alloc(page.length), page.length, id, keyring);
    expect(await failureOf(decodeBlock2(liar, id, keyring, 'page 3'))).toMatchObject({ code: 'Corrupt', message: 'page 3: the chunk does not match its content ID' });
    const zstdLying = await sealBlock2(Codec2.Zstd, await zstdEncode(page), page.length + 1, id, keyring);
    expect(await failureOf(decodeBlock2(zstdLying, id, keyring, 'page 3'))).toMatchObject({ code: 'Corrupt', message: `page 3: the block does not decompress (zstd: the zstd frame states ${page.length} content size, expected ${page.length + 1})` });
    const lying = await sealBlock2(Codec2.Lz4, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0]), page.length, id, keyring);
    expect(await failureOf(decodeBlock2(lying, id, keyring, 'page 3'))).toMatchObject({ code: 'Corrupt', message: 'page 3: the lz4 block states another length than the block' });
  });

  test('a block of a newer epoch than the keyring holds is refused with a clear WrongKey', async () => {
    const { newer, older } = rotated();
    const block = await encodeBlock2(page, newer.contentId(page), newer);
    expect(await failureOf(decodeBlock2(block, older.contentId(page), older, 'page 3'))).toMatchObject({
      code: 'WrongKey',
      message: "page 3: the block was written with a newer master key epoch 1 than this key's slot holds (epochs 0 to 0); use a key with a slot of epoch 1 or later",
    });
    expect(await decodeBlock2(block, newer.contentId(page), newer, 'page 3')).toEqual(page);
  });
});

describe('encrypted JSON envelope (PWE2)', () => {
  test('round-trips; a flipped byte, a move to another name, another kind or another vault are Corrupt', () => {
    const sealed = sealJson(keyring, 1, 'staging/a/plan.pwe', { hello: ['world'] });
    expect(openJson(keyring, 1, 'staging/a/plan.pwe', sealed)).toEqual({ hello: ['world'] });
    for (const at of [8, 25, sealed.length - 1]) {
      expect(() => openJson(keyring, 1, 'staging/a/plan.pwe', flipped(sealed, at))).toThrow(expect.objectContaining({ code: 'Corrupt' }));
    }
    expect(() => openJson(keyring, 1, 'staging/b/plan.pwe', sealed)).toThrow('the plan staging/b/plan.pwe fails authentication (damaged, moved from another name, or written under another vault key)');
    expect(() => openJson(keyring, 2, 'staging/a/plan.pwe', sealed)).toThrow('the batch record staging/a/plan.pwe is a document of kind 1, not a batch record (2)');
    expect(() => openJson(Keyring.create(), 1, 'staging/a/plan.pwe', sealed)).toThrow(expect.objectContaining({ code: 'Corrupt' }));
    const deep = sealJson(keyring, 1, 'x', JSON.parse('['.repeat(40) + ']'.repeat(40)));
    expect(() => openJson(keyring, 1, 'x', deep)).toThrow('the plan x is nested deeper than the 32 levels a Pagewise document has');
  });
});

const chunk = (seed: number, pack = 'ab'.repeat(16), offset = 0) => ({ contentId: createHash('sha256').update(String(seed)).digest(), length: 65536, storedLength: 1000 + seed, pack, offset });
const records = (first: number, n: number): PageRecord2[] => Array.from({ length: n }, (_, k) => ({ page: first + k, length: 65536, chunks: [chunk(first + k, 'cd'.repeat(16), k * 2000)] }));

describe('page table (PWP2)', () => {
  test('round-trips; equal records give the same table ID whatever the nonce or epoch; other records another', () => {
    const a = encodeTable(keyring, 2, records(2048, 5));
    expect(decodeTable(keyring, 2, a.bytes, 1024)).toEqual(records(2048, 5));
    const b = encodeTable(keyring, 2, records(2048, 5));
    expect(b.bytes).not.toEqual(a.bytes);
    expect(b.tableId).toBe(a.tableId);
    expect(a.sha256).toBe(createHash('sha256').update(a.bytes).digest('hex'));
    expect(encodeTable(keyring, 2, records(2048, 4)).tableId).not.toBe(a.tableId);
    expect(a.tableId).toMatch(/^[0-9a-f]{32}$/);
    const { newer, older } = rotated();
    expect(encodeTable(newer, 2, records(2048, 5)).tableId).toBe(encodeTable(older, 2, records(2048, 5)).tableId);
  });

  test('a flipped byte, another table index, a page outside the group, or a newer epoch are refused', () => {
    const { bytes } = encodeTable(keyring, 2, records(2048, 5));
    for (const at of [4, 12, 30, bytes.length - 1]) expect(() => decodeTable(keyring, 2, flipped(bytes, at))).toThrow(expect.objectContaining({ code: 'Corrupt' }));
    expect(() => decodeTable(keyring, 3, bytes)).toThrow('page table 3 says it is table 2');
    expect(() => decodeTable(keyring, 2, bytes, 512)).toThrow('page table 2 holds page 2048, outside its group');
    const { newer, older } = rotated();
    expect(() => decodeTable(older, 2, encodeTable(newer, 2, records(2048, 1)).bytes)).toThrow(expect.objectContaining({ code: 'WrongKey' }));
  });

  test('pagesPerTable follows §19; the JSON form round-trips and a malformed one is Corrupt', () => {
    expect([pagesPerTableFor(4 * 1024 * 1024), pagesPerTableFor(64 * 1024), pagesPerTableFor(100 * 1024 * 1024)]).toEqual([1024, 16384, 40]);
    const [r] = records(7, 1);
    expect(recordToJson(r)).toEqual({ i: 7, n: 65536, c: [[r.chunks[0].contentId.toString('hex'), 65536, 1007, 'cd'.repeat(16), 0]] });
    expect(recordFromJson(recordToJson(r))).toEqual(r);
    expect(() => recordFromJson({ ...recordToJson(r), n: 65537 }, 'batch 3')).toThrow('batch 3: page 7: its chunks add up to 65536 bytes, not the page length 65537');
    expect(() => recordFromJson({ i: 7, n: 1, c: [['zz', 1, 1, 'x', 0]] }, 'batch 3')).toThrow('batch 3: a chunk of page 7 is malformed');
  });
});

describe('index blob (PWX2)', () => {
  const entries = (n: number): IndexEntry[] => Array.from({ length: n }, (_, k) => ({ contentId: createHash('sha256').update(`e${k}`).digest(), pack: 'ef'.repeat(16), offset: k * 100, storedLength: 100 }));

  test('round-trips sorted by content ID over several frames; a moved, flipped or cut blob is Corrupt', () => {
    const name = v2names.delta('20261201T000000000Z', '0123456789abcdef');
    const all = entries(2500);
    const stored = encodeIndexBlob(keyring, name, 0, all);
    expect(stored.length).toBe(16 + 3 * 28 + 2500 * 64);
    const sorted = [...all].sort((a, b) => Buffer.compare(a.contentId, b.contentId));
    expect(decodeIndexBlob(keyring, name, stored)).toEqual(sorted);
    expect(() => decodeIndexBlob(keyring, `${name}x`, stored)).toThrow(`the index blob ${name}x fails authentication in frame 0 (damaged, moved, or written under another vault key)`);
    expect(() => decodeIndexBlob(keyring, name, flipped(stored, 16 + 65564 + 40))).toThrow(`the index blob ${name} fails authentication in frame 1 (damaged, moved, or written under another vault key)`);
    expect(() => decodeIndexBlob(keyring, name, stored.subarray(0, stored.length - 1))).toThrow(`the index blob ${name} is ${stored.length - 1} bytes; 2500 entries take ${stored.length}`);
    expect(() => decodeIndexBlob(keyring, name, flipped(stored, 8))).toThrow(expect.objectContaining({ code: 'Corrupt' }));
    expect(decodeIndexBlob(keyring, name, encodeIndexBlob(keyring, name, 1, []))).toEqual([]);
  });
});

describe('packs on Azurite', () => {
  test('a writer splits its packs at the block threshold, each with a trailer and an index delta that name its blocks', async () => {
    const writer = new PackWriter(vault, keyring, { maxBlocks: 3 });
    const pages = Array.from({ length: 7 }, (_, k) => Buffer.alloc(4096, k + 1));
    const blocks = await Promise.all(pages.map((p) => encodeBlock2(p, keyring.contentId(p), keyring)));
    const placed = await Promise.all(blocks.map((b, k) => writer.add(keyring.contentId(pages[k]), b)));
    const { packs, deltas } = await writer.finish();
    expect(packs).toHaveLength(3);
    expect(deltas).toHaveLength(3);
    expect(placed.map((p) => packs.indexOf(p.pack))).toEqual([0, 0, 0, 1, 1, 1, 2]);
    expect(placed.map((p) => p.storedLength)).toEqual(blocks.map((b) => b.length));

    for (const [k, packId] of packs.entries()) {
      const trailer = await readPackTrailer(vault, keyring, packId);
      const mine = placed.map((p, i) => ({ ...p, i })).filter((p) => p.pack === packId);
      expect(trailer).toEqual(mine.map((p) => ({ contentId: keyring.contentId(pages[p.i]), pack: packId, offset: p.offset, storedLength: p.storedLength })));
      // Every block reads back at its place through its content ID.
      for (const p of mine) {
        const stored = await vault.getBytes(v2names.pack(packId), p.offset, p.storedLength);
        expect(await decodeBlock2(stored, keyring.contentId(pages[p.i]), keyring, `block ${p.i}`)).toEqual(pages[p.i]);
      }
      const delta = decodeIndexBlob(keyring, deltas[k], await vault.getBytes(deltas[k]));
      expect(delta).toEqual([...trailer].sort((a, b) => Buffer.compare(a.contentId, b.contentId)));
    }
    expect(deltas.every((d) => /^index\/d\/\d{8}T\d{9}Z-[0-9a-f]{16}\.pwx$/.test(d))).toBe(true);
    expect(new Set(deltas).size).toBe(3);
  });

  test('the byte threshold commits a pack too; a trailer of another pack or under another vault key is Corrupt', async () => {
    const writer = new PackWriter(vault, keyring, { maxBytes: 10_000 });
    for (let k = 0; k < 4; k++) {
      const p = randomBytes(6000);
      await writer.add(keyring.contentId(p), await encodeBlock2(p, keyring.contentId(p), keyring));
    }
    const { packs } = await writer.finish();
    expect(packs).toHaveLength(2);
    expect(await failureOf(readPackTrailer(vault, Keyring.create(), packs[0]))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('fails authentication') });
    // A pack's blob copied under another pack ID: its trailer's AAD names the original.
    const copyId = 'f'.repeat(32);
    await vault.putBytes(v2names.pack(copyId), await vault.getBytes(v2names.pack(packs[0])));
    expect(await failureOf(readPackTrailer(vault, keyring, copyId))).toMatchObject({ code: 'Corrupt', message: `the trailer of pack ${v2names.pack(copyId)} fails authentication (damaged, from another pack, or written under another vault key)` });
    const cut = 'e'.repeat(32);
    await vault.putBytes(v2names.pack(cut), Buffer.concat([Buffer.alloc(100), Buffer.from([0xff, 0xff, 0, 0])]));
    expect(await failureOf(readPackTrailer(vault, keyring, cut))).toMatchObject({ code: 'Corrupt', message: `the trailer of pack ${v2names.pack(cut)} states a length of 65535 bytes, impossible in a pack of 104` });
  });
});

describe('packs stage blocks together (§17.1 since #15)', () => {
  test('blocks are staged in Azure blocks of about stageBytes; every block reads back at its offset; the trailer is the last Azure block', async () => {
    const writer = new PackWriter(vault, keyring, { stageBytes: 20_000 });
    const pages = Array.from({ length: 9 }, () => randomBytes(6000));
    const placed = [];
    for (const p of pages) placed.push(await writer.add(keyring.contentId(p), await encodeBlock2(p, keyring.contentId(p), keyring)));
    const { packs } = await writer.finish();
    expect(packs).toHaveLength(1);
    // 9 blocks of ~6 KiB: staged 4 + 4 (each past 20,000 bytes) + 1 at the commit, then the trailer.
    const list = await env.az.accounts.vault.service.getContainerClient('vault').getBlockBlobClient(v2names.pack(packs[0])).getBlockList('committed');
    expect(list.committedBlocks?.length).toBe(4);
    const sizes = (list.committedBlocks ?? []).map((b) => b.size);
    expect(sizes.slice(0, 3)).toEqual([placed.slice(0, 4), placed.slice(4, 8), placed.slice(8)].map((g) => g.reduce((n, p) => n + p.storedLength, 0)));
    for (const [k, p] of placed.entries()) {
      const stored = await vault.getBytes(v2names.pack(packs[0]), p.offset, p.storedLength);
      expect(await decodeBlock2(stored, keyring.contentId(pages[k]), keyring, `block ${k}`)).toEqual(pages[k]);
    }
    expect((await readPackTrailer(vault, keyring, packs[0])).map((e) => e.offset)).toEqual(placed.map((p) => p.offset));
  });
});

const plan = (backupId: string): PlanV2 => ({
  format: 'pagewise-plan', version: 2, backupId, createdAt: '2026-12-01T00:00:00.000Z',
  source: { url: 'https://a.blob.core.windows.net/c/d', account: 'a', container: 'c', blob: 'd', snapshot: '', etag: '"e"', takenByPagewise: false },
  disk: { identity: 'blob:a/c/d', kind: 'page-blob', account: 'a', container: 'c', blob: 'd' },
  diskBytes: 655360, pageSize: 65536, pageCount: 10, pagesPerBatch: 4, pagesPerTable: 16384, allocatedBytes: 655360, allocatedPages: 10,
  batches: [0, 1, 2], chunking: { scheme: 'page' }, codec: 'lz4', kind: 'full', base: null, reason: 'no-base', keyEpoch: 0, changedPages: null, changedBytes: null,
});

describe('tables on Azurite', () => {
  test('a table is stored once by name; a second writer of the same records gets the first one\'s entry; a read checks size, SHA-256 and page count', async () => {
    const first = await writeTable(vault, keyring, 1, records(1030, 3));
    const second = await writeTable(vault, keyring, 1, records(1030, 3));
    expect(second).toEqual(first);
    expect(first).toMatchObject({ index: 1, pages: 3, tableId: encodeTable(keyring, 1, records(1030, 3)).tableId });
    expect(await readTable(vault, keyring, first, 1024)).toEqual(records(1030, 3));
    expect(await failureOf(readTable(vault, keyring, { ...first, sha256: '0'.repeat(64) }, 1024))).toMatchObject({ code: 'Corrupt', message: `page table 1 (tables/${first.tableId}.pwt) does not match the manifest's entry (size or SHA-256)` });
    expect(await failureOf(readTable(vault, keyring, { ...first, pages: 4 }, 1024))).toMatchObject({ code: 'Corrupt', message: `page table 1 (tables/${first.tableId}.pwt) holds 3 pages, its manifest entry says 4` });
  });
});

describe('staging and manifests on Azurite', () => {
  test('plan and batch records round-trip under staging/<nameTag>/; absent ones read as undefined; the first write stays', async () => {
    const id = 'pw-stagingtest000000000001';
    expect(await readPlan2(vault, keyring, id)).toBeUndefined();
    await writePlan2(vault, keyring, plan(id));
    await writePlan2(vault, keyring, { ...plan(id), pagesPerBatch: 8 });
    expect(await readPlan2(vault, keyring, id)).toEqual(plan(id));
    expect(await vault.exists(v2names.plan(keyring.nameTag(id)))).toBe(true);

    const rec: BatchRecordV2 = { format: 'pagewise-batch', version: 2, backupId: id, batchNumber: 1, firstPage: 4, pageCount: 4, bytesRead: 262144, bytesNew: 131072, bytesStored: 2100, zeroPages: 2, packs: ['cd'.repeat(16)], deltas: ['index/d/20261201T000000000Z-0123456789abcdef.pwx'], pages: records(4, 2) };
    await writeBatch2(vault, keyring, rec);
    expect(await readBatch2(vault, keyring, id, 1)).toEqual(rec);
    expect(await readBatch2(vault, keyring, id, 2)).toBeUndefined();
    // A batch record moved to another batch's name fails; so does one whose pages lie outside its batch.
    await vault.putBytes(v2names.batch(keyring.nameTag(id), 2), await vault.getBytes(v2names.batch(keyring.nameTag(id), 1)));
    expect(await failureOf(readBatch2(vault, keyring, id, 2))).toMatchObject({ code: 'Corrupt' });
    await writeBatch2(vault, keyring, { ...rec, batchNumber: 0, firstPage: 0 });
    expect(await failureOf(readBatch2(vault, keyring, id, 0))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('page 4 is out of order or outside the batch') });
  });

  test('a batch record found existing (409) is read back: the same content in other packs is kept, a different record is Corrupt', async () => {
    const id = 'pw-stagingtest000000000002';
    const rec: BatchRecordV2 = { format: 'pagewise-batch', version: 2, backupId: id, batchNumber: 1, firstPage: 4, pageCount: 4, bytesRead: 262144, bytesNew: 131072, bytesStored: 2100, zeroPages: 2, packs: ['cd'.repeat(16)], deltas: ['index/d/20261201T000000000Z-0123456789abcdef.pwx'], pages: records(4, 2) };
    await writeBatch2(vault, keyring, rec);
    // Another run of the batch stored the same content into its own pack: kept, the first record stays.
    const elsewhere = { ...rec, packs: ['ef'.repeat(16)], pages: rec.pages.map((p) => ({ ...p, chunks: p.chunks.map((c) => ({ ...c, pack: 'ef'.repeat(16), offset: c.offset + 10 })) })) };
    await writeBatch2(vault, keyring, elsewhere);
    expect(await readBatch2(vault, keyring, id, 1)).toEqual(rec);
    // Different content under the same name is never silently kept.
    const otherPage = { ...rec, pages: [rec.pages[0], { ...rec.pages[1], chunks: [{ ...rec.pages[1].chunks[0], contentId: Buffer.alloc(32, 7) }] }] };
    expect(await failureOf(writeBatch2(vault, keyring, otherPage))).toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/batch record .* already exists and differs .*\(page 5\)/) });
    expect(await failureOf(writeBatch2(vault, keyring, { ...rec, bytesRead: 131072 }))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('bytesRead 262144 ≠ 131072') });
    expect(await failureOf(writeBatch2(vault, keyring, { ...rec, pages: rec.pages.slice(0, 1) }))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('2 ≠ 1 page records') });
    expect(await readBatch2(vault, keyring, id, 1)).toEqual(rec);
  });

  const manifest = (backupId: string, completedAt: string, identity = 'blob:a/c/d'): ManifestV2 => ({
    format: 'pagewise-manifest', version: 2, backupId, createdAt: '2026-12-01T00:00:00.000Z', completedAt,
    disk: { identity, kind: 'page-blob', account: 'a', container: 'c', blob: 'd' },
    source: { url: 'https://a.blob.core.windows.net/c/d', snapshot: '2026-12-01T00:00:00.0000000Z', etag: '"e"', takenByPagewise: true },
    diskBytes: 655360, pageSize: 65536, pageCount: 10, pagesPerTable: 16384, chunking: { scheme: 'page' }, codec: 'lz4', kind: 'full', base: null, reason: 'no-base',
    generation: 0, keyEpoch: 0, tables: [{ index: 0, tableId: 'ab'.repeat(16), pages: 10, bytes: 900, sha256: 'cd'.repeat(32) }],
    stats: { allocatedBytes: 655360, bytesRead: 655360, bytesChanged: 655360, bytesNew: 655360, bytesStored: 9000, chunks: 10, newChunks: 10, zeroPages: 0 },
  });

  test('manifests are named by disk and inverted time: newest first per disk, found by backup ID, checked against their name', async () => {
    const older = await writeManifest2(vault, keyring, manifest('pw-m1', '2026-12-01T01:00:00.000Z'));
    const newer = await writeManifest2(vault, keyring, manifest('pw-m2', '2026-12-02T01:00:00.000Z'));
    const other = await writeManifest2(vault, keyring, manifest('pw-m3', '2026-12-03T01:00:00.000Z', 'blob:a/c/other'));
    expect(older).toBe(`manifests/${keyring.diskTag('blob:a/c/d')}/${String(9999999999999 - Date.parse('2026-12-01T01:00:00.000Z')).padStart(13, '0')}-${keyring.nameTag('pw-m1')}.pwm`);
    expect(await writeManifest2(vault, keyring, manifest('pw-m1', '2026-12-01T01:00:00.000Z'))).toBe(older); // a retried write
    const listed = [];
    for await (const m of manifestsOfDisk(vault, keyring, 'blob:a/c/d')) listed.push([m.name, m.manifest?.backupId]);
    expect(listed).toEqual([[newer, 'pw-m2'], [older, 'pw-m1']]);
    expect(await findManifest2(vault, keyring, 'pw-m3')).toEqual({ name: other, manifest: manifest('pw-m3', '2026-12-03T01:00:00.000Z', 'blob:a/c/other') });
    expect(await findManifest2(vault, keyring, 'pw-none')).toBeUndefined();
    const names = [];
    for await (const n of allManifestNames(vault)) names.push(n);
    expect(names.sort()).toEqual([older, newer, other].sort());

    // Moved under another disk's prefix (same file name): the envelope's AAD fails; a damaged one in a listing comes as a problem.
    const moved = other.replace(keyring.diskTag('blob:a/c/other'), keyring.diskTag('blob:a/c/d'));
    await vault.putBytes(moved, await vault.getBytes(other));
    expect(await failureOf(readManifest2(vault, keyring, moved))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining('fails authentication') });
    const problems = [];
    for await (const m of manifestsOfDisk(vault, keyring, 'blob:a/c/d')) if (m.problem) problems.push(m.name);
    expect(problems).toEqual([moved]);
  });
});
