/**
 * The read side of version-2 vaults on Azurite (docs/FORMAT.md §19, §20.3): restore, verify and the catalog
 * over backups written through the version-2 writer objects (PackWriter, encodeTable, writeManifest2) —
 * a full and an incremental that shares the full's blocks and tables — and what verify finds when packs,
 * tables, blocks or manifests are damaged or moved.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { PageBlobClient, AnonymousCredential } from '@azure/storage-blob';
import { backupDisk, checkRestorable, decodeUserKey, generateKey, listBackups, listBackupsByDisk, PagewiseError, restoreBackup, StorageLocation, verifyBackup } from '../core';
import { Vault } from '../core/repo/vault';
import { encodeBlock2 } from '../core/repo/v2/block';
import { Keyring } from '../core/repo/v2/keyring';
import { writeManifest2 } from '../core/repo/v2/manifest';
import { createVaultV2, openVaultKeyring, upgradeVault } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { PackWriter } from '../core/repo/v2/pack-writer';
import { writeTable } from '../core/repo/v2/page-table';
import { DiskRef, ManifestV2, PageRecord2 } from '../core/repo/v2/records';
import { writePlan2 } from '../core/repo/v2/staging';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';

const PAGE = 64 * KiB;
const PAGES = 16;
const DISK_BYTES = (PAGES - 1) * PAGE + 4 * KiB; // the last page is short
const PER_TABLE = 4;
const ZERO_ID = Buffer.alloc(32);
const ZERO_PACK = '0'.repeat(32);

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.stop();
});

interface V2Vault {
  location: StorageLocation;
  vault: Vault;
  keyring: Keyring;
  container: string;
}

let vaults = 0;
/** A fresh version-2 vault (its own container), made with the environment's user key. */
async function freshVault(): Promise<V2Vault> {
  const container = `v2read${++vaults}`;
  await env.az.accounts.vault.service.getContainerClient(container).create();
  const location = { url: env.az.sasUrl('vault', container) };
  const vault = Vault.open(location);
  return { location, vault, keyring: await createVaultV2(vault, env.userKey), container };
}

/** The full's disk: random, compressible, hole, split (half zeros as a zero chunk) and a short last page. */
function imageA(): Buffer {
  const image = Buffer.alloc(DISK_BYTES);
  const fill = (page: number, data: Buffer) => data.copy(image, page * PAGE);
  for (const p of [0, 3, 9, 11, 13, 14]) fill(p, randomBytes(PAGE));
  for (const p of [1, 10]) fill(p, Buffer.concat([Buffer.alloc(PAGE - 64, 0x11), randomBytes(64)]));
  fill(8, randomBytes(PAGE / 2)); // its second half stays zero: a zero chunk
  fill(15, randomBytes(4 * KiB));
  return image;
}
const PAGES_A = [0, 1, 3, 8, 9, 10, 11, 13, 14, 15];
const BYTES_A = 9 * PAGE + 4 * KiB;

/** The incremental's disk: page 0 cleared, page 5 written, page 9 rewritten; groups 2's other pages and group 3 unchanged. */
function imageB(a: Buffer): Buffer {
  const image = Buffer.from(a);
  image.fill(0, 0, PAGE);
  randomBytes(PAGE).copy(image, 5 * PAGE);
  randomBytes(PAGE).copy(image, 9 * PAGE);
  return image;
}

interface Built {
  backupId: string;
  name: string;
  manifest: ManifestV2;
  records: PageRecord2[];
  packs: string[];
  image: Buffer;
}

const blobDisk = (blob: string): DiskRef => ({ identity: `blob:devstoreaccount1/disks/${blob}`, kind: 'page-blob', account: 'devstoreaccount1', container: 'disks', blob });

/**
 * Writes a backup of `image` as the engine would: new blocks into packs (`maxBlocks` a pack), page 8 as
 * a data chunk and a zero chunk, a base's page record reused where the page did not change, tables per
 * group (a table equal to the base's is the same blob), the manifest last.
 */
async function writeBackup(v: V2Vault, o: { backupId: string; image: Buffer; completedAt: string; disk?: DiskRef; base?: Built; maxBlocks?: number }): Promise<Built> {
  const { keyring, vault } = v;
  const writer = new PackWriter(vault, keyring, { maxBlocks: o.maxBlocks ?? 4 });
  const baseRecords = new Map((o.base?.records ?? []).map((r) => [r.page, r]));
  const records: PageRecord2[] = [];
  let bytesNew = 0;
  let bytesStored = 0;
  const store = async (plain: Buffer) => {
    const contentId = keyring.contentId(plain);
    const block = await encodeBlock2(plain, contentId, keyring);
    bytesNew += plain.length;
    bytesStored += block.length;
    return { contentId, length: plain.length, ...(await writer.add(contentId, block)) };
  };
  for (let page = 0; page < PAGES; page++) {
    const plain = o.image.subarray(page * PAGE, Math.min(DISK_BYTES, (page + 1) * PAGE));
    if (plain.every((b) => b === 0)) continue;
    const base = baseRecords.get(page);
    if (base && o.base!.image.subarray(page * PAGE, page * PAGE + plain.length).equals(plain)) {
      records.push(base);
    } else if (page === 8) {
      const half = plain.length / 2;
      records.push({ page, length: plain.length, chunks: [await store(plain.subarray(0, half)), { contentId: ZERO_ID, length: half, storedLength: 0, pack: ZERO_PACK, offset: 0 }] });
    } else {
      records.push({ page, length: plain.length, chunks: [await store(Buffer.from(plain))] });
    }
  }
  const { packs } = await writer.finish();
  const tables = [];
  for (let group = 0; group * PER_TABLE < PAGES; group++) {
    const mine = records.filter((r) => Math.floor(r.page / PER_TABLE) === group);
    if (mine.length === 0) continue;
    tables.push(await writeTable(vault, keyring, group, mine)); // the base's unchanged table: named as stored
  }
  const disk = o.disk ?? blobDisk('a.vhd');
  const manifest: ManifestV2 = {
    format: 'pagewise-manifest', version: 2, backupId: o.backupId, createdAt: o.completedAt, completedAt: o.completedAt, disk,
    source: { url: `http://127.0.0.1/devstoreaccount1/disks/${disk.blob ?? 'md'}`, snapshot: o.completedAt, etag: '"0x1"', takenByPagewise: true },
    diskBytes: DISK_BYTES, pageSize: PAGE, pageCount: PAGES, pagesPerTable: PER_TABLE, chunking: { scheme: 'page' }, codec: 'lz4',
    kind: o.base ? 'incremental' : 'full', base: o.base ? { backupId: o.base.backupId, manifest: o.base.name, snapshot: o.base.manifest.source.snapshot! } : null,
    reason: o.base ? null : 'no-base', generation: o.base ? o.base.manifest.generation + 1 : 0, keyEpoch: keyring.epoch, tables,
    stats: { allocatedBytes: records.length * PAGE, bytesRead: bytesNew, bytesChanged: bytesNew, bytesNew, bytesStored, chunks: records.length, newChunks: packs.length, zeroPages: 0 },
  };
  const name = await writeManifest2(vault, keyring, manifest);
  return { backupId: o.backupId, name, manifest, records, packs, image: o.image };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const failureOf = (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => err as PagewiseError);
const verify = (v: V2Vault, backupId: string, readData = true) => verifyBackup({ backupId, vault: v.location, userKey: env.userKey, readData });
/** The records' pages whose blocks lie in `pack`. */
const pagesIn = (b: Built, pack: string) => b.records.filter((r) => r.chunks.some((c) => c.pack === pack)).map((r) => r.page);

describe('restore and verify', () => {
  let v: V2Vault;
  let a: Built;
  let b: Built;
  beforeAll(async () => {
    v = await freshVault();
    a = await writeBackup(v, { backupId: 'pw-v2-full', image: imageA(), completedAt: '2026-12-01T01:00:00.000Z' });
    b = await writeBackup(v, { backupId: 'pw-v2-incr', image: imageB(a.image), completedAt: '2026-12-02T01:00:00.000Z', base: a });
  });

  test('the full restores byte-identical to a file, the incremental (blocks of both backups, a table of the full) to a page blob', async () => {
    expect(a.packs).toHaveLength(3);
    expect(b.manifest.tables.find((t) => t.index === 3)!.tableId).toBe(a.manifest.tables.find((t) => t.index === 3)!.tableId);
    const file = path.join(env.tmp, 'v2-full.img');
    const toFile = await restoreBackup({ backupId: a.backupId, vault: v.location, userKey: env.userKey, target: { url: file } });
    expect(toFile).toMatchObject({ diskBytes: DISK_BYTES, pagesWritten: PAGES_A.length });
    expect((await fs.stat(file)).size).toBe(DISK_BYTES);
    expect(await fileSha256(file)).toBe(sha(a.image));

    const target = env.targetUrl('v2-incr.vhd');
    const toBlob = await restoreBackup({ backupId: b.backupId, vault: v.location, userKey: env.userKey, target: { url: target } });
    expect(toBlob.pagesWritten).toBe(10); // page 0 gone, page 5 new
    expect(await env.blobSha256(target)).toBe(sha(b.image));
    let written = 0;
    for await (const r of new PageBlobClient(target, new AnonymousCredential()).listPageRanges()) written += r.end - r.start + 1;
    expect(written).toBe(toBlob.bytesWritten);
  });

  test('verify reads every block and counts pages, blocks, tables and packs; without readData it reads no block but still checks every pack', async () => {
    const full = await verify(v, a.backupId);
    expect(full).toMatchObject({ ok: true, problems: [], formatVersion: 2, readData: true, pagesChecked: 10, blocksChecked: 10, bytesChecked: BYTES_A, tablesChecked: 3, packsChecked: 3, segmentsChecked: 3 });
    const incr = await verify(v, b.backupId);
    expect(incr).toMatchObject({ ok: true, problems: [], pagesChecked: 10, blocksChecked: 10, bytesChecked: BYTES_A, tablesChecked: 4, packsChecked: 4 });
    const quick = await verify(v, b.backupId, false);
    expect(quick).toMatchObject({ ok: true, readData: false, pagesChecked: 10, blocksChecked: 0, bytesChecked: 0, tablesChecked: 4, packsChecked: 4 });
  });

  test('verify compares with the source disk by content ID, a zero chunk by its zeros', async () => {
    const client = env.az.accounts.src.service.getContainerClient('disks').getPageBlobClient('v2-source.vhd');
    await client.create(DISK_BYTES);
    for (let at = 0; at < DISK_BYTES; at += PAGE) {
      const part = b.image.subarray(at, Math.min(DISK_BYTES, at + PAGE));
      if (part.some((x) => x !== 0)) await client.uploadPages(part, at, part.length);
    }
    const source = { url: env.sourceUrl('v2-source.vhd') };
    expect(await verifyBackup({ backupId: b.backupId, vault: v.location, userKey: env.userKey, source })).toMatchObject({ ok: true, problems: [], comparedWithSource: true });
    // Against the full: page 0 is data in the backup only, page 5 in the source only, page 9 differs.
    const against = await verifyBackup({ backupId: a.backupId, vault: v.location, userKey: env.userKey, source });
    expect(against.problems.sort()).toEqual([
      'page 0: has data in the backup but is unallocated in the source',
      'page 5: has data in the source but is a hole in the backup',
      'page 9: differs between the source and the backup',
    ]);
  });
});

describe('a page of chunks in several packs (chunks stored by different writers)', () => {
  test('restores byte-identical and verifies: each chunk from its own pack, a zero chunk as zeros', async () => {
    const v = await freshVault();
    const { keyring, vault } = v;
    const page = Buffer.concat([randomBytes(16 * KiB), Buffer.alloc(16 * KiB), Buffer.alloc(32 * KiB, 0x42)]);
    const chunk = async (plain: Buffer) => {
      const writer = new PackWriter(vault, keyring); // one writer each: the chunks land in two packs
      const contentId = keyring.contentId(plain);
      const placed = await writer.add(contentId, await encodeBlock2(plain, contentId, keyring));
      await writer.finish();
      return { contentId, length: plain.length, ...placed };
    };
    const first = await chunk(page.subarray(0, 16 * KiB));
    const third = await chunk(page.subarray(32 * KiB));
    expect(first.pack).not.toBe(third.pack);
    const record: PageRecord2 = { page: 1, length: PAGE, chunks: [first, { contentId: ZERO_ID, length: 16 * KiB, storedLength: 0, pack: ZERO_PACK, offset: 0 }, third] };
    const diskBytes = 2 * PAGE;
    const manifest: ManifestV2 = {
      format: 'pagewise-manifest', version: 2, backupId: 'pw-v2-scattered', createdAt: '2026-12-01T01:00:00.000Z', completedAt: '2026-12-01T01:00:00.000Z', disk: blobDisk('s.vhd'),
      source: { url: 'http://127.0.0.1/devstoreaccount1/disks/s.vhd', snapshot: null, etag: '"0x1"', takenByPagewise: false },
      diskBytes, pageSize: PAGE, pageCount: 2, pagesPerTable: PER_TABLE, chunking: { scheme: 'fastcdc-2016', min: 4096, avg: 16384, max: 65536, nc: 2 }, codec: 'lz4',
      kind: 'full', base: null, reason: 'no-base', generation: 0, keyEpoch: keyring.epoch, tables: [await writeTable(vault, keyring, 0, [record])],
      stats: { allocatedBytes: PAGE, bytesRead: PAGE, bytesChanged: PAGE, bytesNew: 48 * KiB, bytesStored: first.storedLength + third.storedLength, chunks: 3, newChunks: 2, zeroPages: 0 },
    };
    await writeManifest2(vault, keyring, manifest);
    const file = path.join(env.tmp, 'v2-scattered.img');
    expect(await restoreBackup({ backupId: manifest.backupId, vault: v.location, userKey: env.userKey, target: { url: file } })).toMatchObject({ pagesWritten: 1 });
    expect(await fileSha256(file)).toBe(sha(Buffer.concat([Buffer.alloc(PAGE), page])));
    expect(await verify(v, manifest.backupId)).toMatchObject({ ok: true, pagesChecked: 1, blocksChecked: 2, bytesChecked: PAGE, packsChecked: 2, tablesChecked: 1 });
  });
});

describe('verify finds damage', () => {
  test('a missing pack: each of its pages named, the others read; a restore fails naming the pack and leaves no file', async () => {
    const v = await freshVault();
    const a = await writeBackup(v, { backupId: 'pw-v2-nopack', image: imageA(), completedAt: '2026-12-01T01:00:00.000Z' });
    const gone = a.packs[1];
    await env.az.accounts.vault.service.getContainerClient(v.container).getBlobClient(v2names.pack(gone)).deleteIfExists();
    const result = await verify(v, a.backupId);
    const lost = pagesIn(a, gone);
    expect(lost).toEqual([9, 10, 11, 13]);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual(lost.map((p) => `page ${p} (offset ${p * PAGE}): its block's pack ${gone} (${v2names.pack(gone)}) is missing, and the vault index names no existing pack holding its chunk`));
    expect(result).toMatchObject({ pagesChecked: 10, blocksChecked: 6, packsChecked: 3 });

    const file = path.join(env.tmp, 'v2-nopack.img');
    const failed = await failureOf(restoreBackup({ backupId: a.backupId, vault: v.location, userKey: env.userKey, target: { url: file } }));
    expect(failed).toMatchObject({ code: 'Corrupt', message: expect.stringContaining(`pack ${gone}`) });
    await expect(fs.stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('a truncated pack: the page whose block lies past its end is named', async () => {
    const v = await freshVault();
    const a = await writeBackup(v, { backupId: 'pw-v2-cut', image: imageA(), completedAt: '2026-12-01T01:00:00.000Z' });
    const last = a.packs[2];
    const [p14] = a.records.filter((r) => r.page === 14).map((r) => r.chunks[0]);
    const blob = env.az.accounts.vault.service.getContainerClient(v.container).getBlockBlobClient(v2names.pack(last));
    const whole = await v.vault.getBytes(v2names.pack(last));
    await blob.uploadData(whole.subarray(0, p14.offset + p14.storedLength + 10));
    const result = await verify(v, a.backupId);
    expect(result.problems).toEqual([`page 15 (offset ${15 * PAGE}): its block lies outside pack ${last} (${p14.offset + p14.storedLength + 10} bytes; truncated or replaced)`]);
    expect(result).toMatchObject({ ok: false, pagesChecked: 10, blocksChecked: 9 });
  });

  test("a table swapped for another backup's table fails its SHA-256 against the manifest", async () => {
    const v = await freshVault();
    const a = await writeBackup(v, { backupId: 'pw-v2-swap-a', image: imageA(), completedAt: '2026-12-01T01:00:00.000Z' });
    const other = await writeBackup(v, { backupId: 'pw-v2-swap-b', image: imageA(), completedAt: '2026-12-01T02:00:00.000Z', disk: blobDisk('other.vhd') });
    const mine = a.manifest.tables.find((t) => t.index === 2)!;
    const theirs = other.manifest.tables.find((t) => t.index === 2)!;
    const client = env.az.accounts.vault.service.getContainerClient(v.container);
    await client.getBlockBlobClient(v2names.table(mine.tableId)).uploadData(await v.vault.getBytes(v2names.table(theirs.tableId)));
    const result = await verify(v, a.backupId);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([`page table 2 (${v2names.table(mine.tableId)}) does not match the manifest's entry (size or SHA-256)`]);
    expect(result.tablesChecked).toBe(2); // tables 0 and 3 read; the damaged one is named and skipped (#17: the walk goes on)
  });

  test('blocks moved inside a pack fail their content IDs', async () => {
    const v = await freshVault();
    const a = await writeBackup(v, { backupId: 'pw-v2-moved', image: imageA(), completedAt: '2026-12-01T01:00:00.000Z' });
    const [c0, c3] = [0, 3].map((p) => a.records.find((r) => r.page === p)!.chunks[0]);
    expect(c0.pack).toBe(c3.pack);
    expect(c0.storedLength).toBe(c3.storedLength); // random pages: stored, the same size
    const stored = await v.vault.getBytes(v2names.pack(c0.pack));
    const swapped = Buffer.from(stored);
    stored.copy(swapped, c3.offset, c0.offset, c0.offset + c0.storedLength);
    stored.copy(swapped, c0.offset, c3.offset, c3.offset + c3.storedLength);
    await env.az.accounts.vault.service.getContainerClient(v.container).getBlockBlobClient(v2names.pack(c0.pack)).uploadData(swapped);
    const result = await verify(v, a.backupId);
    expect(result.problems).toEqual([0, 3].map((p) => `page ${p} (offset ${p * PAGE}), chunk 0 (pack ${c0.pack}): the block fails authentication (damaged, or not the chunk its content ID names)`));
    expect(result).toMatchObject({ ok: false, blocksChecked: 8, packsChecked: 3 });
  });

  test("a manifest copied under another disk's prefix is listed damaged and hides nothing; moved there, the backup cannot be opened", async () => {
    const v = await freshVault();
    const a = await writeBackup(v, { backupId: 'pw-v2-movedm', image: imageA(), completedAt: '2026-12-01T01:00:00.000Z' });
    // A disk whose tag lists before the backup's own: the copy is met first.
    const mine = v.keyring.diskTag(a.manifest.disk.identity);
    let k = 0;
    while (v.keyring.diskTag(`blob:devstoreaccount1/disks/else${k}.vhd`) > mine) k++;
    const elsewhere = a.name.replace(mine, v.keyring.diskTag(`blob:devstoreaccount1/disks/else${k}.vhd`));
    const client = env.az.accounts.vault.service.getContainerClient(v.container);
    await client.getBlockBlobClient(elsewhere).uploadData(await v.vault.getBytes(a.name));
    const listed = await listBackups(v.location, { userKey: env.userKey });
    expect(listed.map((l) => [l.backupId, l.status])).toEqual([
      [a.backupId, 'complete'],
      [v.keyring.nameTag(a.backupId), 'damaged'],
    ]);
    const damaged = listed.find((l) => l.status === 'damaged');
    expect(damaged).toMatchObject({ problem: `the manifest ${elsewhere} fails authentication (damaged, moved from another name, or written under another vault key)` });
    // The copy does not hide the manifest: the backup still verifies.
    expect(await verify(v, a.backupId)).toMatchObject({ ok: true, pagesChecked: 10 });

    await client.getBlobClient(a.name).delete();
    expect(await failureOf(verify(v, a.backupId))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining(`the manifest ${elsewhere} fails authentication`) });
    expect(await failureOf(checkRestorable(v.location, a.backupId, env.userKey))).toMatchObject({ code: 'Corrupt' });
  });
});

describe('catalog', () => {
  let v: V2Vault;
  let a: Built;
  let b: Built;
  let y: Built;
  const managed: DiskRef = { identity: 'azure-disk:6f1c2e1a-0000-4000-8000-000000000001', kind: 'managed-disk', sourceUniqueId: '6f1c2e1a-0000-4000-8000-000000000001', armDiskId: '/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/disks/web-os' };
  beforeAll(async () => {
    v = await freshVault();
    a = await writeBackup(v, { backupId: 'pw-cat-full', image: imageA(), completedAt: '2026-12-01T01:00:00.000Z' });
    b = await writeBackup(v, { backupId: 'pw-cat-incr', image: imageB(a.image), completedAt: '2026-12-02T01:00:00.000Z', base: a });
    y = await writeBackup(v, { backupId: 'pw-cat-managed', image: imageA(), completedAt: '2026-12-03T01:00:00.000Z', disk: managed });
    await writePlan2(v.vault, v.keyring, {
      format: 'pagewise-plan', version: 2, backupId: 'pw-cat-unfinished', createdAt: '2026-11-30T01:00:00.000Z',
      source: { url: 'http://127.0.0.1/devstoreaccount1/disks/a.vhd', account: 'devstoreaccount1', container: 'disks', blob: 'a.vhd', snapshot: '', etag: '"e"', takenByPagewise: false },
      disk: blobDisk('a.vhd'), diskBytes: DISK_BYTES, pageSize: PAGE, pageCount: PAGES, pagesPerBatch: 4, pagesPerTable: PER_TABLE, allocatedBytes: 0, allocatedPages: 0,
      batches: [0], chunking: { scheme: 'page' }, codec: 'lz4', kind: 'full', base: null, reason: 'no-base', keyEpoch: 0, changedPages: null, changedBytes: null,
    });
  });

  test('with the key: every version-2 manifest with its fields, the unfinished backup with its plan; checkRestorable opens only complete ones', async () => {
    const listed = await listBackups(v.location, { userKey: env.userKey });
    expect(listed).toEqual([
      {
        backupId: a.backupId, status: 'complete', formatVersion: 2, createdAt: a.manifest.createdAt, completedAt: '2026-12-01T01:00:00.000Z', source: `${a.manifest.source.url}?snapshot=${a.manifest.source.snapshot}`,
        diskBytes: DISK_BYTES, pageSize: PAGE, bytesStored: a.manifest.stats.bytesStored, disk: 'blob:devstoreaccount1/disks/a.vhd', kind: 'full', base: null, generation: 0,
        bytesRead: a.manifest.stats.bytesRead, bytesNew: a.manifest.stats.bytesNew, allocatedBytes: a.manifest.stats.allocatedBytes,
      },
      expect.objectContaining({ backupId: b.backupId, status: 'complete', kind: 'incremental', base: a.backupId, generation: 1, bytesNew: 2 * PAGE, disk: 'blob:devstoreaccount1/disks/a.vhd' }),
      expect.objectContaining({ backupId: y.backupId, status: 'complete', kind: 'full', disk: managed.armDiskId }),
      {
        backupId: 'pw-cat-unfinished', status: 'incomplete', formatVersion: 2, problem: 'backup pw-cat-unfinished is incomplete (it has no manifest) and cannot be restored; run the backup again to resume it',
        createdAt: '2026-11-30T01:00:00.000Z', source: 'http://127.0.0.1/devstoreaccount1/disks/a.vhd', disk: 'blob:devstoreaccount1/disks/a.vhd', diskBytes: DISK_BYTES, pageSize: PAGE,
      },
    ]);
    const groups = await listBackupsByDisk(v.location, { userKey: env.userKey });
    expect(groups.map((g) => [g.disk, g.backups.map((x) => x.backupId)])).toEqual([
      [managed.armDiskId, [y.backupId]],
      ['blob:devstoreaccount1/disks/a.vhd', [b.backupId, a.backupId, 'pw-cat-unfinished']],
    ]);
    await expect(checkRestorable(v.location, b.backupId, env.userKey)).resolves.toBeUndefined();
    expect(await failureOf(checkRestorable(v.location, 'pw-cat-unfinished', env.userKey))).toMatchObject({ code: 'BackupIncomplete' });
    expect(await failureOf(checkRestorable(v.location, 'pw-cat-none', env.userKey))).toMatchObject({ code: 'BackupNotFound' });
  });

  test('without a key, or with a key that has no slot: locked, only what the names tell', async () => {
    const { keyring } = v;
    const locked = (x: Built) => ({
      backupId: keyring.nameTag(x.backupId), status: 'complete', formatVersion: 2, completedAt: x.manifest.completedAt, locked: true,
      disk: keyring.diskTag(x.manifest.disk.identity), source: `disk ${keyring.diskTag(x.manifest.disk.identity)} (locked: a key with a slot in this vault opens it)`,
    });
    const expected = [locked(a), locked(b), locked(y), {
      backupId: keyring.nameTag('pw-cat-unfinished'), status: 'incomplete', formatVersion: 2,
      problem: `backup ${keyring.nameTag('pw-cat-unfinished')} is incomplete (it has no manifest) and cannot be restored; run the backup again to resume it`,
    }];
    expect(await listBackups(v.location)).toEqual(expected);
    expect(await listBackups(v.location, { userKey: generateKey() })).toEqual(expected);
    const groups = await listBackupsByDisk(v.location);
    expect(groups.map((g) => g.backups.length)).toEqual([1, 2, 1]); // disk y, disk a (newest first), the unfinished one's unknown disk
    // A blob under manifests/ that no Pagewise names so is listed damaged, not dropped.
    const stray = 'manifests/not-a-tag/x.pwm';
    await v.vault.putNew(stray, Buffer.from('x'));
    expect((await listBackups(v.location)).find((l) => l.status === 'damaged')).toEqual({
      backupId: stray, status: 'damaged', formatVersion: 2, problem: `${stray} was not written by Pagewise: its name is no manifest name (manifests/<diskTag>/<inv>-<nameTag>.pwm)`,
    });
    await env.az.accounts.vault.service.getContainerClient(v.container).getBlobClient(stray).delete();
    expect(await failureOf(checkRestorable(v.location, a.backupId, generateKey()))).toMatchObject({ code: 'WrongKey' });
  });
});

describe('backups written by the engine', () => {
  test('each generation of a disk restores byte-identical and verifies; the catalog groups them under the disk, newest first', async () => {
    const v = await freshVault();
    const disk = await env.makeDisk('v2-engine.vhd', 4 * MiB, [
      { offset: 0, length: MiB, kind: 'random', seed: 3 },
      { offset: 2 * MiB, length: 512 * KiB, kind: 'text', seed: 4 },
    ]);
    const source = { url: env.az.sasUrl('src', 'disks', 'v2-engine.vhd') };
    const settings = { source, vault: v.location, userKey: env.userKey, pageSize: PAGE, cacheBytes: 4 * PAGE, takeSnapshot: true };
    const first = await backupDisk(settings);
    expect(first).toMatchObject({ formatVersion: 2, kind: 'full' });
    const firstSha = disk.sha256;
    const blob = env.az.accounts.src.service.getContainerClient('disks').getPageBlobClient('v2-engine.vhd');
    await blob.uploadPages(Buffer.alloc(PAGE, 0x5a), 3 * MiB, PAGE);
    await blob.clearPages(0, PAGE);
    const second = await backupDisk(settings);
    expect(second).toMatchObject({ formatVersion: 2, kind: 'incremental', base: { backupId: first.backupId } });
    const secondSha = await env.blobSha256(env.sourceUrl('v2-engine.vhd'));

    for (const [result, want] of [[first, firstSha], [second, secondSha]] as const) {
      const file = path.join(env.tmp, `${result.backupId}.img`);
      await restoreBackup({ backupId: result.backupId, vault: v.location, userKey: env.userKey, target: { url: file } });
      expect(await fileSha256(file)).toBe(want);
      expect(await verify(v, result.backupId)).toMatchObject({ ok: true, problems: [], formatVersion: 2 });
    }
    const groups = await listBackupsByDisk(v.location, { userKey: env.userKey });
    expect(groups).toHaveLength(1);
    expect(groups[0].disk).toBe('blob:src/disks/v2-engine.vhd');
    expect(groups[0].backups).toEqual([
      expect.objectContaining({ backupId: second.backupId, kind: 'incremental', base: first.backupId, generation: 1 }),
      expect.objectContaining({ backupId: first.backupId, kind: 'full', base: null, generation: 0 }),
    ]);
  });
});

describe('an upgraded version-1 vault', () => {
  const FIXTURE = path.join(__dirname, 'fixtures', 'vault-v1');
  const expected = JSON.parse(readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8')) as { keyFile: string; backups: Array<{ backupId: string; sha256: string }> };
  const fixtureKey = decodeUserKey(readFileSync(path.join(FIXTURE, expected.keyFile), 'utf8'), 'the fixture key file');

  /** The fixture's blobs, byte for byte, into a new container. */
  async function uploadFixture(container: string): Promise<V2Vault['location']> {
    const client = env.az.accounts.vault.service.getContainerClient(container);
    await client.create();
    const walk = async (dir: string, prefix: string): Promise<void> => {
      for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) await walk(path.join(dir, entry.name), `${prefix}${entry.name}/`);
        else await client.getBlockBlobClient(`${prefix}${entry.name}`).uploadData(await fs.readFile(path.join(dir, entry.name)));
      }
    };
    await walk(path.join(FIXTURE, 'blobs'), '');
    return { url: env.az.sasUrl('vault', container) };
  }

  test('lists and restores its version-1 backups beside the version-2 ones, with the version-1 key even when it has no slot', async () => {
    const location = await uploadFixture('v2read-upgraded');
    const vault = Vault.open(location);
    const newKey = generateKey(); // upgraded with another key: the fixture's key gets no slot
    expect(await upgradeVault(vault, newKey)).toEqual({ upgraded: true });
    const v: V2Vault = { location, vault, keyring: await openVaultKeyring(vault, newKey), container: 'v2read-upgraded' };
    const two = await writeBackup(v, { backupId: 'pw-after-upgrade', image: imageA(), completedAt: '2026-12-05T01:00:00.000Z' });
    expect(await verifyBackup({ backupId: two.backupId, vault: location, userKey: newKey })).toMatchObject({ ok: true, formatVersion: 2, pagesChecked: 10, blocksChecked: 10 });

    const summary = (listed: Awaited<ReturnType<typeof listBackups>>) => listed.map((b) => [b.backupId, b.status, b.formatVersion, b.status === 'complete' && b.locked === true]);
    const v1 = expected.backups.map((b) => [b.backupId, 'complete', 1, false]);
    expect(summary(await listBackups(location, { userKey: newKey }))).toEqual(expect.arrayContaining([...v1, [two.backupId, 'complete', 2, false]]));
    expect(summary(await listBackups(location, { userKey: fixtureKey }))).toEqual(expect.arrayContaining([...v1, [v.keyring.nameTag(two.backupId), 'complete', 2, true]]));

    const first = expected.backups[0];
    const file = path.join(env.tmp, 'upgraded-v1.img');
    await restoreBackup({ backupId: first.backupId, vault: location, userKey: fixtureKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(first.sha256);
    expect(await verifyBackup({ backupId: first.backupId, vault: location, userKey: fixtureKey, readData: false })).toMatchObject({ ok: true, formatVersion: 1, packsChecked: 0 });
    // The version-1 key has no slot: the version-2 backup says so (not "not found").
    expect(await failureOf(checkRestorable(location, two.backupId, fixtureKey))).toMatchObject({ code: 'WrongKey', message: expect.stringContaining('no slot') });
  });
});
