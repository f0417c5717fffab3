/**
 * Compaction and rebuild-index on Azurite (docs/FORMAT.md §18.3): compaction merges deltas and the older
 * generation into gen+1 with the holder order of §26.4 (uncovered deltas by Creation-Time, stamp, packId,
 * then the generation), drops packs deleted or not kept, and leaves an unreadable delta uncovered; rebuild
 * from pack trailers equals the written deltas as entry sets, restores lookups after every delta is lost
 * (VaultIndex, restore's fallback, finds blocks through the generation; a restore after repack is
 * byte-identical), counts chunks no pack holds, and a dry run writes nothing.
 */
import { randomBytes } from 'node:crypto';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import { backupDisk, restoreBackup } from '../core';
import { repackPacks } from '../core/prune/repack';
import { compactIndex, rebuildIndex } from '../core/repo/v2/index-compaction';
import { Generation, IndexEntry, listGenerations, newestGeneration, readShard } from '../core/repo/v2/index-generation';
import { Keyring } from '../core/repo/v2/keyring';
import { findManifest2 } from '../core/repo/v2/manifest';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { isZeroChunk, readTable } from '../core/repo/v2/page-table';
import { VaultIndex } from '../core/repo/v2/vault-index';
import { Vault } from '../core/repo/vault';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { idsIn, storePacks } from './harness/index-fixture';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

const keyring = Keyring.create();

/** Every entry of a generation: content ID hex → "pack@offset". */
async function entriesOf(vault: Vault, g: Generation | undefined, k = keyring): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const info of g?.covers.shards ?? []) for (const e of await readShard(vault, k, info)) out.set(e.contentId.toString('hex'), `${e.pack}@${e.offset}`);
  return out;
}
const asMap = (es: IndexEntry[]) => new Map(es.map((e) => [e.contentId.toString('hex'), `${e.pack}@${e.offset}`]));

async function createdMs(vault: Vault, packId: string): Promise<number> {
  return (await vault.properties(v2names.pack(packId))).createdOn!.getTime();
}

test('compaction: holder order (newer pack, then an uncovered delta over the generation), packs deleted or not kept dropped, an unreadable delta left uncovered', async () => {
  const vault = Vault.open(await env.makeVault('compact'));
  const [x] = idsIn(0x77, 1);
  const p1 = await storePacks(vault, keyring, [x, ...idsIn(0x10, 20)]);
  const p2 = await storePacks(vault, keyring, [x, ...idsIn(0x11, 20)]);
  const c1 = await compactIndex(vault, keyring, {});
  expect(c1).toMatchObject({ gen: 1, entries: 41, shards: 3, deltasCovered: 2, spillRecords: 42, deltasUnreadable: [] });
  const g1 = await newestGeneration(vault, keyring);
  expect(g1?.covers.deltas).toEqual([...p1.deltas, ...p2.deltas].sort());
  const e1 = await entriesOf(vault, g1);
  // x is in both packs: the holder is the one created later — the second pack (same second: the later delta stamp)
  expect(e1.get(x.toString('hex'))).toBe(`${p2.packs[0]}@0`);
  expect(e1).toEqual(new Map([...asMap(p1.entries), ...asMap(p2.entries)]));

  // A later pack holding x, in an uncovered delta, wins over the generation's entry.
  const p3 = await storePacks(vault, keyring, [x, ...idsIn(0x12, 5)]);
  // A reader (restore's fallback) asks the uncovered delta first, then the generation.
  const reader = await VaultIndex.open(vault, keyring);
  expect(reader.deltas).toEqual(p3.deltas);
  expect((await reader.lookup(x.toString('hex'))).map((e) => e.pack)).toEqual([p3.packs[0], p2.packs[0]]);
  expect(reader.stats).toEqual({ lookups: 1, deltasRead: 1, framesRead: 1 });
  const c2 = await compactIndex(vault, keyring, {});
  expect(c2).toMatchObject({ gen: 2, entries: 46, shards: 4, deltasCovered: 3, spillRecords: 41 + 6 });
  const g2 = await newestGeneration(vault, keyring);
  expect((await entriesOf(vault, g2)).get(x.toString('hex'))).toBe(`${p3.packs[0]}@0`);

  // Packs being deleted (keepPack false) and packs gone drop their entries.
  await vault.delete(v2names.pack(p1.packs[0]));
  const c3 = await compactIndex(vault, keyring, { keepPack: (p) => p !== p3.packs[0] });
  expect(c3).toMatchObject({ gen: 3, entries: 20, deltasCovered: 3 });
  const e3 = await entriesOf(vault, await newestGeneration(vault, keyring));
  expect(new Set([...e3.values()].map((v) => v.split('@')[0]))).toEqual(new Set([p2.packs[0]]));
  expect(e3.has(x.toString('hex'))).toBe(false); // its holder went with p3: prune deletes p3 only when x is not live

  // A damaged delta is not covered: it stays in the index as a delta.
  const p4 = await storePacks(vault, keyring, idsIn(0x13, 3));
  const damaged = Buffer.from(await vault.getBytes(p4.deltas[0]));
  damaged[30] ^= 1;
  await vault.putBytes(p4.deltas[0], damaged);
  const c4 = await compactIndex(vault, keyring, {});
  expect(c4.deltasUnreadable).toEqual([{ delta: p4.deltas[0], why: expect.stringContaining('fails authentication') }]);
  expect((await newestGeneration(vault, keyring))?.covers.deltas).not.toContain(p4.deltas[0]);
  expect(c4.deltasCovered).toBe(3);
});

test('rebuild from pack trailers equals the written deltas as entry sets; holder = newest pack by Creation-Time, then packId; a dry run writes nothing', async () => {
  const vault = Vault.open(await env.makeVault('rebuild-sets'));
  const written = [await storePacks(vault, keyring, idsIn(0x01, 1500), 600), await storePacks(vault, keyring, idsIn(0x02, 40))];
  const deltas = written.flatMap((w) => w.deltas);
  const union = asMap(written.flatMap((w) => w.entries));

  const dry = await rebuildIndex(vault, keyring, { dryRun: true });
  expect(dry).toMatchObject({ gen: 1, entries: 1540, shards: 2, bytesWritten: 0, packsRead: 4, packsUnreadable: [], chunksUnplaced: 0, manifestsChecked: 0, deltasCovered: 4, spillRecords: 1540 });
  expect(await listGenerations(vault)).toEqual([]);

  const real = await rebuildIndex(vault, keyring, {});
  expect({ ...real, bytesWritten: 0 }).toEqual(dry);
  expect(real.bytesWritten).toBeGreaterThan(1540 * 64);
  const g = await newestGeneration(vault, keyring);
  expect(g?.covers.deltas).toEqual(deltas.sort());
  expect(await entriesOf(vault, g)).toEqual(union);

  // The same content in two packs: the one the service created later, a tie broken by the greater packId.
  const [y] = idsIn(0x03, 1);
  const a = await storePacks(vault, keyring, [y]);
  const b = await storePacks(vault, keyring, [y]);
  const [ca, cb] = [await createdMs(vault, a.packs[0]), await createdMs(vault, b.packs[0])];
  const holder = ca > cb || (ca === cb && a.packs[0] > b.packs[0]) ? a.packs[0] : b.packs[0];
  const again = await rebuildIndex(vault, keyring, {});
  expect(again).toMatchObject({ gen: 2, entries: 1541, packsRead: 6, spillRecords: 1542 });
  expect((await entriesOf(vault, await newestGeneration(vault, keyring))).get(y.toString('hex'))).toBe(`${holder}@0`);

  // A pack whose trailer cannot be read: named, its entries absent, its delta not covered.
  const bad = await storePacks(vault, keyring, idsIn(0x04, 3));
  const name = v2names.pack(bad.packs[0]);
  const bytes = Buffer.from(await vault.getBytes(name));
  bytes[bytes.length - 30] ^= 1;
  await vault.putBytes(name, bytes);
  const third = await rebuildIndex(vault, keyring, {});
  expect(third.packsUnreadable).toEqual([{ pack: bad.packs[0], why: expect.stringContaining('fails authentication') }]);
  expect(third).toMatchObject({ gen: 3, entries: 1541, packsRead: 6, deltasCovered: 6 });
  expect((await newestGeneration(vault, keyring))?.covers.deltas).not.toContain(bad.deltas[0]);

  // A damaged newest covers: compaction refuses to build on it; rebuild writes a sound generation above it.
  await vault.putBytes('index/c/00000003/covers.pwe', randomBytes(100));
  await expect(compactIndex(vault, keyring, {})).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringContaining('index/c/00000003/covers.pwe') });
  expect(await rebuildIndex(vault, keyring, {})).toMatchObject({ gen: 4, entries: 1541 });
  expect((await newestGeneration(vault, keyring))?.gen).toBe(4);
});

test('every delta lost: rebuild-index restores lookups — VaultIndex finds moved blocks through the generation and a restore is byte-identical; a chunk in no pack is counted', async () => {
  const location = await env.makeVault('rebuild-real');
  const vault = Vault.open(location);
  const blob = env.sourceClient('rebuild.vhd');
  await blob.create(MiB);
  const PAGE = 64 * KiB;
  for (let p = 0; p < 8; p++) await blob.uploadPages(randomBytes(PAGE), p * PAGE, PAGE);
  const image = await blob.downloadToBuffer();
  const made = await backupDisk({ source: { url: env.az.sasUrl('src', 'disks', 'rebuild.vhd') }, vault: location, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB });
  const k = await openVaultKeyring(vault, env.userKey);
  const m = (await findManifest2(vault, k, made.backupId))!.manifest;
  const chunks = (await Promise.all(m.tables.map((t) => readTable(vault, k, t, m.pagesPerTable)))).flat().flatMap((r) => r.chunks.filter((c) => !isZeroChunk(c)));
  expect(chunks).toHaveLength(8);
  const oldPacks = [...new Set(chunks.map((c) => c.pack))];

  // Repack (as prune would), then the old packs and every delta lost.
  const repacked = await repackPacks(vault, k, oldPacks, () => true);
  for (const p of oldPacks) await vault.delete(v2names.pack(p));
  for await (const d of vault.list('index/d/')) await vault.delete(d);
  expect((await VaultIndex.open(vault, k)).deltas).toEqual([]);

  const report = await rebuildIndex(vault, k, {});
  expect(report).toMatchObject({ gen: 1, entries: 8, packsRead: 1, chunksUnplaced: 0, manifestsChecked: 1, deltasCovered: 0, problems: [] });
  const index = await VaultIndex.open(vault, k);
  expect(index.deltas).toEqual([]);
  const found = await index.locate(chunks[3].contentId.toString('hex'), async (p) => vault.exists(v2names.pack(p)));
  expect(found).toMatchObject({ pack: repacked.newPacks[0], storedLength: chunks[3].storedLength });
  expect(index.stats).toEqual({ lookups: 1, deltasRead: 0, framesRead: 1 });

  await restoreBackup({ backupId: made.backupId, vault: location, userKey: env.userKey, target: { url: env.targetUrl('rebuilt.vhd') } });
  expect((await new PageBlobClient(env.targetUrl('rebuilt.vhd'), new AnonymousCredential()).downloadToBuffer(0, MiB)).equals(image)).toBe(true);

  // The new pack lost too: every chunk of the kept backup is unplaced (a dry run: nothing written).
  await vault.delete(v2names.pack(repacked.newPacks[0]));
  const lost = await rebuildIndex(vault, k, { dryRun: true });
  expect(lost).toMatchObject({ gen: 2, entries: 0, packsRead: 0, chunksUnplaced: 8, manifestsChecked: 1, bytesWritten: 0 });
  expect((await listGenerations(vault)).map((g) => g.gen)).toEqual([1]);
});
