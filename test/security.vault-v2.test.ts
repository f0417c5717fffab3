/**
 * A hostile version-2 vault (docs/FORMAT.md §11–§25): every object a reader takes from it — marker, key
 * slot, plan, batch record, page table, pack (blocks, trailer), index blob, manifest — damaged, cut short,
 * moved under another name, or (written with the key, as a hostile writer could) claiming counts and sizes
 * no writer writes. Each must give Corrupt, WrongKey or BadInput with a message naming the object: never a
 * crash, never a hang, never a restore that writes wrong bytes. The version-1 counterparts are in
 * security.repo, corruption, backup-failures and repo.catalog, on version-1 vaults.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { ContainerClient } from '@azure/storage-blob';
import { captureIO, run } from '../cli/main';
import { assertDiskWriteTarget, backupDisk, encodeKeyFile, finalizeBackup, generateKey, keyId, listBackups, PagewiseError, planBackup, restoreBackup, runBackupBatch, StorageLocation, verifyBackup } from '../core';
import { Vault } from '../core/repo/vault';
import { Keyring } from '../core/repo/v2/keyring';
import { createVaultV2, openVaultKeyring, readVaultMarker } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { openJson, sealJson } from '../core/repo/v2/envelope';
import { decodeTable, encodeTable, PageRecord2 } from '../core/repo/v2/page-table';
import { readBatch2, readPlan2, writeBatch2, writePlan2 } from '../core/repo/v2/staging';
import type { BatchRecordV2, ManifestV2, PlanV2 } from '../core/repo/v2/records';
import { Codec2, decodeBlock2, encodeBlock2, sealBlock2 } from '../core/repo/v2/block';
import { decodeIndexBlob, PackWriter, readPackTrailer } from '../core/repo/v2/pack-writer';
import { findManifest2, manifestsOfDisk, readManifest2, writeManifest2 } from '../core/repo/v2/manifest';
import { MAX_VAULT_JSON_BYTES } from '../core/limits';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';
import { batchRecordBlobs, damageData, manifestBlobs } from './harness/vault-blobs';

let env: TestEnv;
let containers = 0;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.stop();
});

/** A new empty container: a vault of the current format once something makes it one. */
async function freshContainer(): Promise<{ location: StorageLocation; vault: Vault; container: ContainerClient }> {
  const name = `v2-hostile-${++containers}`;
  const location = await env.makeVault(name);
  return { location, vault: Vault.open(location), container: env.az.accounts.vault.service.getContainerClient(name) };
}

/** A new version-2 vault opened by the test's user key. */
async function freshVaultV2(): Promise<{ location: StorageLocation; vault: Vault; container: ContainerClient; keyring: Keyring }> {
  const made = await freshContainer();
  return { ...made, keyring: await createVaultV2(made.vault, env.userKey) };
}

/** The refusal `work` must end in: a PagewiseError of `code` whose message matches `message` (the object's name). */
async function refusal(work: () => Promise<unknown> | unknown, code: string, message: RegExp): Promise<PagewiseError> {
  let outcome: unknown;
  try {
    outcome = await work();
  } catch (err) {
    expect(err).toBeInstanceOf(PagewiseError);
    expect({ code: (err as PagewiseError).code, message: (err as Error).message }).toEqual({ code, message: expect.stringMatching(message) });
    expect((err as Error).message.length).toBeLessThan(1000);
    return err as PagewiseError;
  }
  throw new Error(`expected ${code} (${message}), got ${JSON.stringify(outcome)?.slice(0, 200)}`);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const flip = (bytes: Buffer, at: number) => {
  const copy = Buffer.from(bytes);
  copy[at < 0 ? copy.length + at : at] ^= 0x01;
  return copy;
};

describe('the vault marker', () => {
  test.each([
    ['pagewise-vault.json', 3],
    ['pagewise-vault.json', '2'],
    ['pagewise-vault-v2.json', 3],
  ])('%s of version %p is refused as written by a newer Pagewise', async (name, version) => {
    const { vault } = await freshContainer();
    await vault.putNew(name, Buffer.from(JSON.stringify({ format: 'pagewise-vault', version, vaultId: '0'.repeat(32), createdAt: new Date().toISOString(), keyCheck: '0'.repeat(32) })));
    await refusal(() => readVaultMarker(vault), 'BadInput', new RegExp(`holds a ${escape(name)} of version ${escape(JSON.stringify(version))}: written by a newer Pagewise`));
    await refusal(() => createVaultV2(vault, env.userKey), 'BadInput', /written by a newer Pagewise/);
  });

  test('a marker of another format, a version-2 marker without its keyCheck, and one too large to read are refused', async () => {
    const other = await freshContainer();
    await other.vault.putNew('pagewise-vault.json', Buffer.from('{"format":"restic","version":2}'));
    await refusal(() => readVaultMarker(other.vault), 'BadInput', /is not a Pagewise vault: its pagewise-vault\.json has format "restic"/);

    const noCheck = await freshContainer();
    await noCheck.vault.putNew('pagewise-vault.json', Buffer.from(JSON.stringify({ format: 'pagewise-vault', version: 2, vaultId: '1'.repeat(32), createdAt: 'x' })));
    await refusal(() => openVaultKeyring(noCheck.vault, env.userKey), 'Corrupt', /the vault marker pagewise-vault\.json .* lacks a well-formed vaultId, createdAt, keyCheck/);

    const huge = await freshContainer();
    await huge.vault.putNew('pagewise-vault.json', Buffer.concat([Buffer.from('{"format":"pagewise-vault","version":2,"x":"'), Buffer.alloc(70 * 1024, 0x61), Buffer.from('"}')]));
    await refusal(() => readVaultMarker(huge.vault), 'Corrupt', /pagewise-vault\.json .*larger than/);
  });
});

describe('key slots', () => {
  const slotName = () => v2names.keySlot(keyId(env.userKey), 0);

  test('a key with no slot is WrongKey, not Corrupt', async () => {
    const { vault } = await freshVaultV2();
    await refusal(() => openVaultKeyring(vault, generateKey()), 'WrongKey', /this key \(key ID [0-9a-f]{16}\) has no slot in this vault/);
  });

  test('a damaged, cut or re-typed slot is Corrupt naming the slot', async () => {
    const { vault } = await freshVaultV2();
    const good = await vault.getBytes(slotName());
    const slot = JSON.parse(good.toString()) as Record<string, unknown>;
    const ct = Buffer.from(slot.ciphertext as string, 'base64');
    const cases: Array<[string, Buffer | string, RegExp]> = [
      ['ciphertext flipped', JSON.stringify({ ...slot, ciphertext: flip(ct, 3).toString('base64') }), /fails authentication/],
      ['tag flipped', JSON.stringify({ ...slot, tag: flip(Buffer.from(slot.tag as string, 'base64'), 0).toString('base64') }), /fails authentication/],
      ['cut short', good.subarray(0, good.length >> 1), /not valid JSON|is not a Pagewise key slot/],
      ['JSON null', 'null', /is not a Pagewise key slot/],
      ['a passphrase kdf', JSON.stringify({ ...slot, kdf: 'scrypt' }), /uses the key derivation "scrypt"/],
      ['version 3', JSON.stringify({ ...slot, version: 3 }), /has version 3/],
      ['no nonce', JSON.stringify({ ...slot, nonce: 7 }), /lacks its nonce, ciphertext or tag/],
    ];
    for (const [what, bytes] of cases) {
      await vault.putBytes(slotName(), Buffer.from(bytes));
      const err = await refusal(() => openVaultKeyring(vault, env.userKey), 'Corrupt', new RegExp(escape(slotName())));
      expect({ what, message: err.message }).toEqual({ what, message: expect.stringMatching(cases.find((c) => c[0] === what)![2]) });
    }
  });

  test("another vault's slot for the same key, copied in as it is or with this vault's ID written into it, does not open", async () => {
    const a = await freshVaultV2();
    const b = await freshVaultV2();
    const theirs = await b.vault.getBytes(slotName());
    await a.vault.putBytes(slotName(), theirs);
    await refusal(() => openVaultKeyring(a.vault, env.userKey), 'Corrupt', /belongs to another vault, key or epoch/);
    const relabelled = { ...(JSON.parse(theirs.toString()) as Record<string, unknown>), vaultId: a.keyring.vaultId };
    await a.vault.putBytes(slotName(), Buffer.from(JSON.stringify(relabelled)));
    await refusal(() => openVaultKeyring(a.vault, env.userKey), 'Corrupt', /fails authentication/);
  });

  test('a slot copied to a higher epoch (the opener takes the highest) does not open', async () => {
    const { vault } = await freshVaultV2();
    const slot = JSON.parse((await vault.getBytes(slotName())).toString()) as Record<string, unknown>;
    const forged = v2names.keySlot(keyId(env.userKey), 1);
    await vault.putNew(forged, Buffer.from(JSON.stringify({ ...slot, epoch: 1 })));
    await refusal(() => openVaultKeyring(vault, env.userKey), 'Corrupt', new RegExp(`${escape(forged)} .*fails authentication`));
  });
});

/** A plan as a version-2 writer would write it (§20.1); `over` replaces fields. */
function planOf(backupId: string, over: Partial<PlanV2> = {}): PlanV2 {
  return {
    format: 'pagewise-plan',
    version: 2,
    backupId,
    createdAt: '2026-12-01T00:00:00.000Z',
    source: { url: 'http://127.0.0.1/src/disks/h.vhd', account: 'src', container: 'disks', blob: 'h.vhd', snapshot: '', etag: '"0x1"', takenByPagewise: false },
    disk: { identity: 'blob:src/disks/h.vhd', kind: 'page-blob', account: 'src', container: 'disks', blob: 'h.vhd' },
    diskBytes: 8 * 512,
    pageSize: 512,
    pageCount: 8,
    pagesPerBatch: 4,
    pagesPerTable: 16384,
    allocatedBytes: 1024,
    allocatedPages: 2,
    batches: [0, 1],
    chunking: { scheme: 'page' },
    codec: 'lz4',
    kind: 'full',
    base: null,
    reason: 'no-base',
    keyEpoch: 0,
    changedPages: null,
    changedBytes: null,
    ...over,
  };
}

/** A batch record of one page (§20.2); `over` replaces fields. */
function batchOf(keyring: Keyring, backupId: string, batchNumber: number, over: Partial<BatchRecordV2> = {}): BatchRecordV2 {
  const page: PageRecord2 = { page: batchNumber * 4, length: 512, chunks: [{ contentId: keyring.contentId(Buffer.alloc(512, 1)), length: 512, storedLength: 100, pack: 'ab'.repeat(16), offset: 0 }] };
  return {
    format: 'pagewise-batch',
    version: 2,
    backupId,
    batchNumber,
    firstPage: batchNumber * 4,
    pageCount: 4,
    bytesRead: 512,
    bytesNew: 512,
    bytesStored: 100,
    zeroPages: 0,
    packs: ['ab'.repeat(16)],
    deltas: [],
    pages: [page],
    ...over,
  };
}

describe('staging records: the plan and the batch records', () => {
  test('a damaged, cut or emptied plan is Corrupt naming it', async () => {
    const { vault, keyring } = await freshVaultV2();
    await writePlan2(vault, keyring, planOf('hostile-plan'));
    const name = v2names.plan(keyring.nameTag('hostile-plan'));
    const good = await vault.getBytes(name);
    expect(await readPlan2(vault, keyring, 'hostile-plan')).toMatchObject({ backupId: 'hostile-plan', batches: [0, 1] });
    for (const bad of [flip(good, 30), flip(good, -1), flip(good, 6), good.subarray(0, good.length - 20), good.subarray(0, 10), Buffer.alloc(0)]) {
      await vault.putBytes(name, bad);
      await refusal(() => readPlan2(vault, keyring, 'hostile-plan'), 'Corrupt', new RegExp(`^the plan ${escape(name)} `));
    }
  });

  test("another backup's plan copied under this backup's name does not open", async () => {
    const { vault, keyring } = await freshVaultV2();
    await writePlan2(vault, keyring, planOf('plan-a'));
    await vault.putNew(v2names.plan(keyring.nameTag('plan-b')), await vault.getBytes(v2names.plan(keyring.nameTag('plan-a'))));
    await refusal(() => readPlan2(vault, keyring, 'plan-b'), 'Corrupt', /fails authentication \(damaged, moved from another name/);
  });

  test('a plan sealed with the key but of the wrong shape is Corrupt, not a TypeError', async () => {
    const { vault, keyring } = await freshVaultV2();
    const cases: unknown[] = [
      null,
      [],
      'x',
      planOf('other-backup'),
      { ...planOf('shape'), version: 1 },
      { ...planOf('shape'), pageSize: -512 },
      { ...planOf('shape'), pageCount: 2 ** 60 },
      { ...planOf('shape'), batches: 'all' },
    ];
    for (const body of cases) {
      const name = v2names.plan(keyring.nameTag('shape'));
      await vault.putBytes(name, sealJson(keyring, 1, name, body));
      await refusal(() => readPlan2(vault, keyring, 'shape'), 'Corrupt', new RegExp(`the plan ${escape(name)} of backup shape is not a version-2 Pagewise plan`));
    }
  });

  test("an incremental plan's baseTables and baseGeneration (§26.3) are checked: shape, order, count within the plan's page groups", async () => {
    const { vault, keyring } = await freshVaultV2();
    const ref = { index: 0, tableId: 'cd'.repeat(16), pages: 2, bytes: 300, sha256: 'ef'.repeat(32) };
    const on = (over: Partial<PlanV2>): PlanV2 => planOf('based', {
      kind: 'incremental', reason: null, base: { backupId: 'b0', manifest: 'manifests/x.pwm', snapshot: '' }, baseTables: [ref], baseGeneration: 3, changedPages: [[0, 1]], changedBytes: 512, ...over,
    });
    const name = v2names.plan(keyring.nameTag('based'));
    const put = (body: unknown) => vault.putBytes(name, sealJson(keyring, 1, name, body));
    await put(on({}));
    expect(await readPlan2(vault, keyring, 'based')).toMatchObject({ baseTables: [ref], baseGeneration: 3 });
    const wide = { pageCount: 4 * 16384, diskBytes: 4 * 16384 * 512 }; // four page groups
    const cases: [string, unknown, RegExp][] = [
      ['tableIds (a list of names) instead of refs', on({ baseTables: [ref.tableId] as never }), /baseTables: a table entry is malformed/],
      ['a ref without its sha256', on({ baseTables: [{ ...ref, sha256: undefined } as never] }), /baseTables: a table entry is malformed/],
      ['a table ID that is a path', on({ baseTables: [{ ...ref, tableId: '../../x' }] }), /baseTables: a table entry is malformed/],
      ['more refs than the plan has page groups', on({ baseTables: [ref, { ...ref, index: 1 }] }), /baseTables: 2 tables for 1 page groups/],
      ['refs out of order', on({ ...wide, baseTables: [{ ...ref, index: 2 }, { ...ref, index: 1 }] }), /baseTables: table 1 is out of order/],
      ['a ref past the last group', on({ ...wide, baseTables: [{ ...ref, index: 4 }] }), /baseTables: table 4 is out of order or beyond the disk's 4 page groups/],
      ['a table of more pages than a group', on({ baseTables: [{ ...ref, pages: 16385 }] }), /baseTables: table 0 has 16385 pages \(at most 16384\)/],
      ['baseTables not a list', on({ baseTables: 'all' as never }), /baseTables: its tables are not a list/],
      ['no baseGeneration', on({ baseGeneration: undefined }), /its baseGeneration is not a whole number/],
      ['a negative baseGeneration', on({ baseGeneration: -1 }), /its baseGeneration is not a whole number/],
      ['a full with baseTables', planOf('based', { baseTables: [ref], baseGeneration: 0 }), /a backup without a base has baseTables/],
      ['a baseGeneration without baseTables', on({ baseTables: undefined }), /a baseGeneration without baseTables/],
    ];
    for (const [what, body, why] of cases) {
      await put(body);
      await expect(readPlan2(vault, keyring, 'based').then(() => what)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(why) });
    }
  });

  test('a batch record moved to another batch number, or of another kind, does not open', async () => {
    const { vault, keyring } = await freshVaultV2();
    await writeBatch2(vault, keyring, batchOf(keyring, 'moved', 0));
    const zero = await vault.getBytes(v2names.batch(keyring.nameTag('moved'), 0));
    await vault.putNew(v2names.batch(keyring.nameTag('moved'), 1), zero);
    await refusal(() => readBatch2(vault, keyring, 'moved', 1), 'Corrupt', /batch record staging\/[0-9a-f]{32}\/batches\/00000001\.pwe fails authentication/);
    // A plan envelope put where a batch record belongs: its kind byte says so before any key is used.
    const name = v2names.batch(keyring.nameTag('moved'), 2);
    await vault.putNew(name, sealJson(keyring, 1, name, batchOf(keyring, 'moved', 2)));
    await refusal(() => readBatch2(vault, keyring, 'moved', 2), 'Corrupt', /is a document of kind 1, not a batch record \(2\)/);
  });

  test('a batch record sealed with the key but with hostile page records is Corrupt naming it', async () => {
    const { vault, keyring } = await freshVaultV2();
    const base = batchOf(keyring, 'hostile-batch', 1);
    const [page] = base.pages;
    const chunk = page.chunks[0];
    const cases: Array<[string, Partial<BatchRecordV2>]> = [
      ['a page outside the batch', { pages: [{ ...page, page: 0 }] }],
      ['pages out of order', { pages: [{ ...page, page: 5 }, { ...page, page: 4 }] }],
      ['a chunk longer than its page', { pages: [{ ...page, chunks: [{ ...chunk, length: 1 << 30 }] }] }],
      ['a page longer than any page size', { pages: [{ ...page, length: 2 ** 31, chunks: [{ ...chunk, length: 2 ** 31 }] }] }],
      ['a stored length far past its chunk', { pages: [{ ...page, chunks: [{ ...chunk, storedLength: 2 ** 32 - 1 }] }] }],
      ['a pack ID that is a path', { pages: [{ ...page, chunks: [{ ...chunk, pack: '../../x' }] }] }],
      ['a negative block offset', { pages: [{ ...page, chunks: [{ ...chunk, offset: -1 }] }] }],
      ['no chunks', { pages: [{ ...page, chunks: [] }] }],
      ['a byte count that is no count', { bytesRead: -1 }],
    ];
    const name = v2names.batch(keyring.nameTag('hostile-batch'), 1);
    for (const [what, over] of cases) {
      const { pages, ...rest } = { ...base, ...over };
      await vault.putBytes(name, sealJson(keyring, 2, name, { ...rest, pages: pages.map((p) => ({ i: p.page, n: p.length, c: p.chunks.map((c) => [c.contentId.toString('hex'), c.length, c.storedLength, c.pack, c.offset]) })) }));
      const err = await refusal(() => readBatch2(vault, keyring, 'hostile-batch', 1), 'Corrupt', new RegExp(`batch record ${escape(name)}`));
      expect({ what, code: err.code }).toEqual({ what, code: 'Corrupt' });
    }
  });

  test('a staging blob larger than any envelope is refused without reading it all', async () => {
    const { vault, keyring } = await freshVaultV2();
    const name = v2names.plan(keyring.nameTag('huge'));
    await vault.putNew(name, Buffer.alloc(MAX_VAULT_JSON_BYTES + 4096, 0x41));
    await refusal(() => readPlan2(vault, keyring, 'huge'), 'Corrupt', new RegExp(`${escape(name)} .*larger than`));
  });
});

/** §19 stored table around any plaintext, sealed with the keyring: what a hostile writer holding the key could put. */
function sealTable(keyring: Keyring, plain: Buffer): Buffer {
  const header = Buffer.alloc(20);
  Buffer.from('PWP2').copy(header, 0);
  header[4] = 2;
  header[5] = keyring.epoch;
  randomBytes(12).copy(header, 8);
  const cipher = createCipheriv('aes-256-gcm', keyring.key('table'), header.subarray(8, 20));
  cipher.setAAD(header);
  return Buffer.concat([header, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

/** The §19 plaintext header: "PWPT", version 2, table index, record count. */
function tablePlainHeader(tableIndex: number, count: number): Buffer {
  const h = Buffer.alloc(16);
  Buffer.from('PWPT').copy(h, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt32LE(tableIndex, 8);
  h.writeUInt32LE(count, 12);
  return h;
}

describe('page tables', () => {
  let keyring: Keyring;
  const records = (): PageRecord2[] => [
    { page: 3, length: 512, chunks: [{ contentId: keyring.contentId(Buffer.alloc(512, 3)), length: 512, storedLength: 60, pack: 'cd'.repeat(16), offset: 0 }] },
    { page: 9, length: 512, chunks: [{ contentId: keyring.contentId(Buffer.alloc(512, 9)), length: 512, storedLength: 60, pack: 'cd'.repeat(16), offset: 60 }] },
  ];
  beforeAll(() => {
    keyring = Keyring.create();
  });

  test('a damaged or cut table is Corrupt naming the table', () => {
    const { bytes } = encodeTable(keyring, 0, records());
    expect(decodeTable(keyring, 0, bytes, 16384)).toHaveLength(2);
    for (const bad of [flip(bytes, 25), flip(bytes, -3), flip(bytes, 9), bytes.subarray(0, bytes.length - 1), bytes.subarray(0, 30), Buffer.alloc(0)]) {
      expect(() => decodeTable(keyring, 0, bad, 16384)).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(/^page table 0 /) }));
    }
  });

  test('a table read as another group, or under another vault key, does not open', () => {
    const { bytes } = encodeTable(keyring, 0, records());
    expect(() => decodeTable(keyring, 1, bytes, 16384)).toThrow(expect.objectContaining({ code: 'Corrupt', message: 'page table 1 says it is table 0' }));
    expect(() => decodeTable(Keyring.create(), 0, bytes, 16384)).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(/^page table 0 fails authentication/) }));
    // Pages of group 0 (pages 0 … 3) in a table that says it is group 1 of 4-page groups.
    const { bytes: one } = encodeTable(keyring, 1, records());
    expect(() => decodeTable(keyring, 1, one, 4)).toThrow(expect.objectContaining({ code: 'Corrupt', message: 'page table 1 holds page 3, outside its group' }));
  });

  test('sealed with the key: a record count of 2^32 − 1, a chunk count past the bytes, a page past 2^53 are Corrupt at once', () => {
    const started = process.memoryUsage().rss;
    const huge = sealTable(keyring, tablePlainHeader(0, 0xffffffff));
    expect(() => decodeTable(keyring, 0, huge)).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(/^page table 0 claims 4294967295 page records, more than its 16 bytes hold/) }));
    const record = Buffer.alloc(16 + 64);
    record.writeBigUInt64LE(5n, 0);
    record.writeUInt32LE(512, 8);
    record.writeUInt16LE(0xffff, 12); // 65535 chunks, 64 bytes given
    expect(() => decodeTable(keyring, 0, sealTable(keyring, Buffer.concat([tablePlainHeader(0, 1), record])))).toThrow(
      expect.objectContaining({ code: 'Corrupt', message: 'page table 0 ends inside the chunks of page 5' }),
    );
    const far = Buffer.from(record);
    far.writeBigUInt64LE(2n ** 60n, 0);
    far.writeUInt16LE(1, 12);
    expect(() => decodeTable(keyring, 0, sealTable(keyring, Buffer.concat([tablePlainHeader(0, 1), far])))).toThrow(expect.objectContaining({ code: 'Corrupt' }));
    expect(process.memoryUsage().rss - started).toBeLessThan(256 * 1024 * 1024); // nothing sized by the claimed counts
  });

  test('sealed with the key: a chunk that claims more bytes than its page, or a page longer than any page size, is Corrupt', () => {
    const good = records()[0];
    const plainOf = (r: { page: number; length: number; chunkLength: number; storedLength: number }) => {
      const rec = Buffer.alloc(16 + 64);
      rec.writeBigUInt64LE(BigInt(r.page), 0);
      rec.writeUInt32LE(r.length, 8);
      rec.writeUInt16LE(1, 12);
      good.chunks[0].contentId.copy(rec, 16);
      rec.writeUInt32LE(r.chunkLength, 16 + 32);
      rec.writeUInt32LE(r.storedLength, 16 + 36);
      Buffer.from(good.chunks[0].pack, 'hex').copy(rec, 16 + 40);
      return Buffer.concat([tablePlainHeader(0, 1), rec]);
    };
    for (const [r, why] of [
      [{ page: 3, length: 512, chunkLength: 0xffffffff, storedLength: 60 }, /a chunk length 4294967295 is out of range/],
      [{ page: 3, length: 0xffffffff, chunkLength: 0xffffffff, storedLength: 60 }, /the page length 4294967295 is out of range/],
      [{ page: 3, length: 512, chunkLength: 512, storedLength: 0xffffffff }, /a stored length 4294967295 is out of range/],
      [{ page: 3, length: 512, chunkLength: 256, storedLength: 60 }, /its chunks add up to 256 bytes, not the page length 512/],
    ] as const) {
      expect(() => decodeTable(keyring, 0, sealTable(keyring, plainOf(r)))).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(new RegExp(`^page table 0 page 3 of page table 0: ${why.source}`)) }));
    }
  });
});

describe('encrypted envelopes (manifests, plans, batch records): moved under another name', () => {
  test("a manifest envelope copied under another disk's or another backup's name does not open", () => {
    const keyring = Keyring.create();
    const name = v2names.manifest(keyring.diskTag('blob:src/disks/a.vhd'), '2026-12-01T00:00:00.000Z', keyring.nameTag('a'));
    const sealed = sealJson(keyring, 3, name, { format: 'pagewise-manifest', version: 2, backupId: 'a' });
    expect(openJson(keyring, 3, name, sealed)).toMatchObject({ backupId: 'a' });
    const otherDisk = v2names.manifest(keyring.diskTag('blob:src/disks/b.vhd'), '2026-12-01T00:00:00.000Z', keyring.nameTag('a'));
    const otherBackup = v2names.manifest(keyring.diskTag('blob:src/disks/a.vhd'), '2026-12-01T00:00:00.000Z', keyring.nameTag('b'));
    const otherTime = v2names.manifest(keyring.diskTag('blob:src/disks/a.vhd'), '2026-12-02T00:00:00.000Z', keyring.nameTag('a'));
    for (const moved of [otherDisk, otherBackup, otherTime]) {
      expect(() => openJson(keyring, 3, moved, sealed)).toThrow(expect.objectContaining({ code: 'Corrupt', message: `the manifest ${moved} fails authentication (damaged, moved from another name, or written under another vault key)` }));
    }
  });
});

describe('blocks', () => {
  let keyring: Keyring;
  const plain = Buffer.alloc(4096, 0x5a);
  beforeAll(() => {
    keyring = Keyring.create();
  });
  const where = 'page 7 of backup blocks';

  test('a damaged or cut block, or a block read as another chunk (swapped), is Corrupt naming where it was read', async () => {
    const id = keyring.contentId(plain);
    const block = await encodeBlock2(plain, id, keyring);
    expect((await decodeBlock2(block, id, keyring, where, 4096)).equals(plain)).toBe(true);
    const other = Buffer.alloc(4096, 0x33);
    for (const [bad, why] of [
      [flip(block, 40), /fails authentication/],
      [flip(block, 10), /fails authentication/], // the salt: another block key
      [flip(block, -1), /fails authentication/],
      [block.subarray(0, block.length - 1), /fails authentication/],
      [block.subarray(0, 20), /truncated or is not a version-2 Pagewise block/],
      [await encodeBlock2(other, keyring.contentId(other), keyring), /fails authentication \(damaged, or not the chunk its content ID names\)/],
    ] as const) {
      await expect(decodeBlock2(bad, id, keyring, where, 4096)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(new RegExp(`^${where}: .*${why.source}`)) });
    }
    await expect(decodeBlock2(block, id, Keyring.create(), where, 4096)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/fails authentication/) });
  });

  test('sealed with the key: a block claiming more bytes than the page size, an lz4 body stating 4 GiB, an unknown codec, a wrong content ID are Corrupt', async () => {
    const id = keyring.contentId(plain);
    const started = process.memoryUsage().rss;
    // Stored codec, the body is the page, but the inner length claims 4 GiB − 1.
    await expect(decodeBlock2(await sealBlock2(Codec2.Stored, plain, 0xffffffff, id, keyring), id, keyring, where, 4096)).rejects.toMatchObject({ code: 'Corrupt', message: `${where}: the block claims 4294967295 bytes, more than 4096` });
    // A block longer than the page size allows at all: refused before it is decrypted.
    const big = Buffer.alloc(8192, 1);
    await expect(decodeBlock2(await sealBlock2(Codec2.Stored, big, big.length, keyring.contentId(big), keyring), keyring.contentId(big), keyring, where, 4096)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/more than a chunk of at most 4096 bytes is stored as/) });
    // lz4: the body's own length prefix says 4 GiB − 1 while the block says 4096.
    const lz4Body = Buffer.alloc(64);
    lz4Body.writeUInt32LE(0xffffffff, 0);
    await expect(decodeBlock2(await sealBlock2(Codec2.Lz4, lz4Body, 4096, id, keyring), id, keyring, where, 4096)).rejects.toMatchObject({ code: 'Corrupt', message: `${where}: the lz4 block states another length than the block` });
    // lz4 whose prefix agrees but whose stream is garbage.
    const garbage = Buffer.concat([Buffer.from([0, 16, 0, 0]), Buffer.alloc(40, 0xff)]);
    await expect(decodeBlock2(await sealBlock2(Codec2.Lz4, garbage, 4096, id, keyring), id, keyring, where, 4096)).rejects.toMatchObject({ code: 'Corrupt' });
    // zstd with a frame that is no frame.
    await expect(decodeBlock2(await sealBlock2(Codec2.Zstd, Buffer.alloc(30, 7), 4096, id, keyring), id, keyring, where, 4096)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/does not decompress \(zstd/) });
    await expect(decodeBlock2(await sealBlock2(9 as Codec2, plain, 4096, id, keyring), id, keyring, where, 4096)).rejects.toMatchObject({ code: 'Corrupt', message: `${where}: unknown codec 9` });
    // Stored, a shorter body than it claims; and the right length of other bytes than its content ID names.
    await expect(decodeBlock2(await sealBlock2(Codec2.Stored, plain.subarray(0, 100), 4096, id, keyring), id, keyring, where, 4096)).rejects.toMatchObject({ code: 'Corrupt', message: `${where}: decoded 100 bytes, expected 4096` });
    const lie = Buffer.alloc(4096, 0x11);
    await expect(decodeBlock2(await sealBlock2(Codec2.Stored, lie, 4096, id, keyring), id, keyring, where, 4096)).rejects.toMatchObject({ code: 'Corrupt', message: `${where}: the chunk does not match its content ID` });
    expect(process.memoryUsage().rss - started).toBeLessThan(256 * 1024 * 1024);
  });
});

describe('packs and index blobs', () => {
  /** A vault with one committed pack of three blocks; its ID, stored bytes, and the delta. */
  async function onePack() {
    const made = await freshVaultV2();
    const writer = new PackWriter(made.vault, made.keyring);
    for (const fill of [1, 2, 3]) {
      const chunk = Buffer.alloc(2048, fill);
      const id = made.keyring.contentId(chunk);
      await writer.add(id, await encodeBlock2(chunk, id, made.keyring));
    }
    const { packs, deltas } = await writer.finish();
    expect({ packs: packs.length, deltas: deltas.length }).toEqual({ packs: 1, deltas: 1 });
    return { ...made, packId: packs[0], name: v2names.pack(packs[0]), delta: deltas[0] };
  }

  test('a pack cut short, with its trailer damaged, or with the trailer of another pack is Corrupt naming the pack', async () => {
    const a = await onePack();
    expect(await readPackTrailer(a.vault, a.keyring, a.packId)).toHaveLength(3);
    const bytes = await a.vault.getBytes(a.name);
    const cases: Array<[Buffer, RegExp]> = [
      [bytes.subarray(0, bytes.length - 10), /states a length of \d+ bytes, impossible|is not a Pagewise pack trailer|fails authentication/],
      [flip(bytes, -30), /fails authentication/],
      [flip(bytes, -1), /states a length of \d+ bytes, impossible in a pack of/], // the clear length field
      [bytes.subarray(0, 20), /is missing: the pack has 20 bytes/],
    ];
    for (const [bad, why] of cases) {
      await a.vault.putBytes(a.name, bad);
      await expect(readPackTrailer(a.vault, a.keyring, a.packId)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(new RegExp(`^the trailer of pack ${escape(a.name)} .*(${why.source})`)) });
    }
    // The blocks of this pack followed by the trailer of a pack of the same vault: its AAD names the other pack.
    const writer = new PackWriter(a.vault, a.keyring);
    const chunk = Buffer.alloc(2048, 9);
    await writer.add(a.keyring.contentId(chunk), await encodeBlock2(chunk, a.keyring.contentId(chunk), a.keyring));
    const [otherId] = (await writer.finish()).packs;
    const otherBytes = await a.vault.getBytes(v2names.pack(otherId));
    const otherTrailer = otherBytes.subarray(otherBytes.length - otherBytes.readUInt32LE(otherBytes.length - 4));
    await a.vault.putBytes(a.name, Buffer.concat([bytes.subarray(0, bytes.length - bytes.readUInt32LE(bytes.length - 4)), otherTrailer]));
    await expect(readPackTrailer(a.vault, a.keyring, a.packId)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(/fails authentication \(damaged, from another pack/) });
    await expect(readPackTrailer(a.vault, a.keyring, '../../../x')).rejects.toMatchObject({ code: 'BadInput' });
  });

  test('sealed with the key: a trailer that counts 2^32 − 1 entries is Corrupt at once', async () => {
    const a = await onePack();
    const bytes = await a.vault.getBytes(a.name);
    const trailerLength = bytes.readUInt32LE(bytes.length - 4);
    const blocks = bytes.subarray(0, bytes.length - trailerLength);
    // Re-seal a trailer whose plaintext is only the count: 2^32 − 1.
    const header = Buffer.alloc(20);
    Buffer.from('PWK2').copy(header, 0);
    header[4] = 2;
    randomBytes(12).copy(header, 8);
    const cipher = createCipheriv('aes-256-gcm', a.keyring.key('index'), header.subarray(8, 20));
    cipher.setAAD(Buffer.concat([header, Buffer.from(a.packId, 'hex')]));
    const count = Buffer.alloc(4);
    count.writeUInt32LE(0xffffffff, 0);
    const body = Buffer.concat([header, cipher.update(count), cipher.final(), cipher.getAuthTag()]);
    const length = Buffer.alloc(4);
    length.writeUInt32LE(body.length + 4, 0);
    await a.vault.putBytes(a.name, Buffer.concat([blocks, body, length]));
    await expect(readPackTrailer(a.vault, a.keyring, a.packId)).rejects.toMatchObject({ code: 'Corrupt', message: `the trailer of pack ${a.name} counts 4294967295 entries in 4 bytes` });
    // A clear length field of 2^32 − 1: refused before anything is read by it.
    const huge = Buffer.concat([blocks, body, Buffer.from([0xff, 0xff, 0xff, 0xff])]);
    await a.vault.putBytes(a.name, huge);
    await expect(readPackTrailer(a.vault, a.keyring, a.packId)).rejects.toMatchObject({ code: 'Corrupt', message: `the trailer of pack ${a.name} states a length of 4294967295 bytes, impossible in a pack of ${huge.length}` });
  });

  test('an index delta damaged, moved, or whose header claims 2^32 − 1 entries is Corrupt naming it', async () => {
    const a = await onePack();
    const stored = await a.vault.getBytes(a.delta);
    expect(decodeIndexBlob(a.keyring, a.delta, stored).map((e) => e.pack)).toEqual([a.packId, a.packId, a.packId]);
    const what = (name: string) => new RegExp(`^the index blob ${escape(name)} `);
    expect(() => decodeIndexBlob(a.keyring, a.delta, flip(stored, 40))).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(/fails authentication in frame 0/) }));
    expect(() => decodeIndexBlob(a.keyring, a.delta, stored.subarray(0, stored.length - 1))).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(what(a.delta)) }));
    const moved = a.delta.replace(/-([0-9a-f]{16})\.pwx$/, '-0000000000000000.pwx');
    expect(() => decodeIndexBlob(a.keyring, moved, stored)).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(/fails authentication in frame 0 \(damaged, moved/) }));
    const claimed = Buffer.from(stored);
    claimed.writeUInt32LE(0xffffffff, 8);
    claimed.writeUInt32LE(Math.ceil(0xffffffff / 1024), 12);
    expect(() => decodeIndexBlob(a.keyring, a.delta, claimed)).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(new RegExp(`${what(a.delta).source}is ${stored.length} bytes; 4294967295 entries take`)) }));
    const frames = Buffer.from(stored);
    frames.writeUInt32LE(0xffffffff, 12);
    expect(() => decodeIndexBlob(a.keyring, a.delta, frames)).toThrow(expect.objectContaining({ code: 'Corrupt', message: `the index blob ${a.delta} has 4294967295 frames for 3 entries` }));
  });
});

describe('manifests', () => {
  /** A manifest body as finalize writes it (§20.3); `over` replaces fields. */
  function manifestOf(keyring: Keyring, backupId: string, identity: string, over: Partial<ManifestV2> = {}): ManifestV2 {
    const { tableId, sha256, bytes } = encodeTable(keyring, 0, [{ page: 0, length: 512, chunks: [{ contentId: keyring.contentId(Buffer.alloc(512, 1)), length: 512, storedLength: 80, pack: 'ef'.repeat(16), offset: 0 }] }]);
    return {
      format: 'pagewise-manifest',
      version: 2,
      backupId,
      createdAt: '2026-12-01T00:00:00.000Z',
      completedAt: '2026-12-01T00:01:00.000Z',
      disk: { identity, kind: 'page-blob' },
      source: { url: 'http://127.0.0.1/src/disks/m.vhd', snapshot: null, etag: '"0x1"', takenByPagewise: false },
      diskBytes: 4096,
      pageSize: 512,
      pageCount: 8,
      pagesPerTable: 16384,
      chunking: { scheme: 'page' },
      codec: 'lz4',
      kind: 'full',
      base: null,
      reason: 'no-base',
      generation: 0,
      keyEpoch: 0,
      tables: [{ index: 0, tableId, pages: 1, bytes: bytes.length, sha256 }],
      stats: { allocatedBytes: 512, bytesRead: 512, bytesChanged: 512, bytesNew: 512, bytesStored: 80, chunks: 1, newChunks: 1, zeroPages: 0 },
      ...over,
    };
  }

  test("a manifest sealed for another disk's or backup's name, then put under that name, is refused: its body names another disk or backup", async () => {
    const { vault, keyring } = await freshVaultV2();
    const body = manifestOf(keyring, 'm-a', 'blob:src/disks/a.vhd');
    const name = await writeManifest2(vault, keyring, body);
    expect((await readManifest2(vault, keyring, name)).backupId).toBe('m-a');
    // Copied as it is: the envelope's AAD holds the name.
    const underB = v2names.manifest(keyring.diskTag('blob:src/disks/b.vhd'), body.completedAt, keyring.nameTag('m-a'));
    await vault.putNew(underB, await vault.getBytes(name));
    await refusal(() => readManifest2(vault, keyring, underB), 'Corrupt', new RegExp(`^the manifest ${escape(underB)} fails authentication`));
    // Sealed for the other name by a hostile writer with the key: the body still says disk a, backup m-a.
    const forged = v2names.manifest(keyring.diskTag('blob:src/disks/c.vhd'), body.completedAt, keyring.nameTag('m-a'));
    await vault.putNew(forged, sealJson(keyring, 3, forged, body));
    await refusal(() => readManifest2(vault, keyring, forged), 'Corrupt', /names another disk than its place in the vault \(moved\?\)/);
    const otherBackup = v2names.manifest(keyring.diskTag('blob:src/disks/a.vhd'), body.completedAt, keyring.nameTag('m-z'));
    await vault.putNew(otherBackup, sealJson(keyring, 3, otherBackup, body));
    await refusal(() => readManifest2(vault, keyring, otherBackup), 'Corrupt', /names another backup than its blob name \(moved\?\)/);
    expect(await findManifest2(vault, keyring, 'm-z').catch((e: Error) => e.message)).toMatch(/names another backup than its blob name/);
    const otherTime = v2names.manifest(keyring.diskTag('blob:src/disks/a.vhd'), '2026-12-02T00:00:00.000Z', keyring.nameTag('m-a'));
    await vault.putNew(otherTime, sealJson(keyring, 3, otherTime, body));
    await refusal(() => readManifest2(vault, keyring, otherTime), 'Corrupt', /has another completion time than its blob name/);
  });

  test('a damaged or cut manifest is Corrupt; a listing of the disk goes on past it with the problem', async () => {
    const { vault, keyring } = await freshVaultV2();
    const identity = 'blob:src/disks/list.vhd';
    const good = await writeManifest2(vault, keyring, manifestOf(keyring, 'm-good', identity, { completedAt: '2026-12-01T00:01:00.000Z' }));
    const damaged = await writeManifest2(vault, keyring, manifestOf(keyring, 'm-damaged', identity, { completedAt: '2026-12-01T00:02:00.000Z' }));
    const cut = await writeManifest2(vault, keyring, manifestOf(keyring, 'm-cut', identity, { completedAt: '2026-12-01T00:03:00.000Z' }));
    await vault.putBytes(damaged, flip(await vault.getBytes(damaged), 50));
    await vault.putBytes(cut, (await vault.getBytes(cut)).subarray(0, 30));
    const seen: Array<{ name: string; backupId?: string; problem?: string }> = [];
    for await (const m of manifestsOfDisk(vault, keyring, identity)) seen.push({ name: m.name, backupId: m.manifest?.backupId, problem: m.problem });
    expect(seen).toEqual([
      { name: cut, backupId: undefined, problem: `the manifest ${cut} is truncated or is not a Pagewise encrypted document` },
      { name: damaged, backupId: undefined, problem: `the manifest ${damaged} fails authentication (damaged, moved from another name, or written under another vault key)` },
      { name: good, backupId: 'm-good', problem: undefined },
    ]);
  });

  test('sealed with the key: hostile sizes, counts, tables and schemes are Corrupt, not a TypeError or a huge allocation', async () => {
    const { vault, keyring } = await freshVaultV2();
    const identity = 'blob:src/disks/shape.vhd';
    const base = manifestOf(keyring, 'm-shape', identity);
    const cases: Array<[string, Partial<ManifestV2> | Record<string, unknown>, RegExp]> = [
      ['a page size past 100 MiB', { pageSize: 2 ** 31, pageCount: 1, diskBytes: 2 ** 31 }, /has page size 2147483648/],
      ['a page count that does not fit the disk', { pageCount: 2 ** 40 }, /has 1099511627776 pages for 4096 bytes of 512/],
      ['a negative disk size', { diskBytes: -1 }, /has a size or count that is not a whole number/],
      ['an unknown chunking scheme', { chunking: { scheme: 'rabin' } }, /uses the chunking scheme "rabin", which this Pagewise does not know/],
      ['a table past the last group', { tables: [{ ...base.tables[0], index: 5 }] }, /has a malformed or out-of-order table entry/],
      ['tables out of order', { pageCount: 2 ** 20, diskBytes: 2 ** 29, tables: [{ ...base.tables[0], index: 1 }, { ...base.tables[0], index: 0 }] }, /has a malformed or out-of-order table entry/],
      ['a table ID that is a path', { tables: [{ ...base.tables[0], tableId: '../../../x' }] }, /has a malformed or out-of-order table entry/],
      ['a table of 2^32 pages', { tables: [{ ...base.tables[0], pages: 2 ** 32 }] }, /has a malformed or out-of-order table entry/],
      ['tables that are no list', { tables: 'all' }, /lacks its tables or stats/],
      ['a disk that is no object', { disk: 'a.vhd' }, /lacks its disk identity/],
      ['version 3', { version: 3 }, /is not a version-2 Pagewise manifest/],
    ];
    for (const [what, over, why] of cases) {
      const body = { ...base, ...over } as ManifestV2;
      const name = v2names.manifest(keyring.diskTag(identity), base.completedAt, keyring.nameTag('m-shape'));
      await vault.putBytes(name, sealJson(keyring, 3, name, body));
      const err = await refusal(() => readManifest2(vault, keyring, name), 'Corrupt', new RegExp(`^the manifest ${escape(name)} `));
      expect({ what, message: err.message }).toEqual({ what, message: expect.stringMatching(why) });
    }
    await refusal(() => readManifest2(vault, keyring, 'manifests/../../pagewise-vault.json'), 'BadInput', /is not the name of a version-2 manifest/);
  });
});

describe('end to end: a version-2 vault written by the engine, then damaged', () => {
  let disks = 0;
  /**
   * A new version-2 vault (its first backup makes it one), a disk of four random (incompressible, equal-length) 1 MiB pages, its full backup —
   * chunked `page` (one block per page), so the blocks damaged below are whole pages of equal length.
   */
  async function backedUp(extra: Array<{ offset: number; length: number; kind: 'text' | 'random'; seed: number }> = []) {
    const { location, vault, container } = await freshContainer();
    const name = `e2e-${++disks}.vhd`;
    const disk = await env.makeDisk(name, 8 * MiB, [{ offset: 0, length: 4 * MiB, kind: 'random', seed: 100 + disks }, ...extra]);
    const req = { source: disk.source, vault: location, userKey: env.userKey, pageSize: MiB, cacheBytes: 2 * MiB, chunking: { scheme: 'page' as const } };
    const result = await backupDisk(req);
    expect(await readVaultMarker(vault)).toMatchObject({ version: 2 });
    const keyring = await openVaultKeyring(vault, env.userKey);
    return { location, vault, keyring, container, disk, req, backupId: result.backupId, name };
  }
  const blobsOf = async (container: ContainerClient, prefix: string) => {
    const out: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix })) out.push(b.name);
    return out.sort();
  };
  const etags = async (container: ContainerClient) => {
    const out: string[] = [];
    for await (const b of container.listBlobsFlat()) out.push(`${b.name} ${b.properties.etag}`);
    return out.sort();
  };
  /** Restores to a file and to a page blob must both fail Corrupt matching `message`, and leave neither (nor a temp file). */
  async function restoresFail(b: Awaited<ReturnType<typeof backedUp>>, message: RegExp): Promise<void> {
    const file = path.join(env.tmp, `${b.name}.img`);
    await expect(restoreBackup({ backupId: b.backupId, vault: b.location, userKey: env.userKey, target: { url: file } })).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(message) });
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(env.tmp).filter((n) => n.startsWith(`${b.name}.img.pagewise-partial`))).toEqual([]);
    const blob = env.targetUrl(`${b.name}-restored`);
    await expect(restoreBackup({ backupId: b.backupId, vault: b.location, userKey: env.userKey, target: { url: blob } })).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(message) });
    expect(await env.az.accounts.vault.service.getContainerClient('restores').getPageBlobClient(`${b.name}-restored`).exists()).toBe(false);
  }

  test('a byte flipped inside a block of a pack: verify names the one page, restores fail and write nothing', async () => {
    const b = await backedUp();
    const [pack] = await blobsOf(b.container, 'packs/');
    const packId = /([0-9a-f]{32})\.pwp$/.exec(pack)![1];
    const entries = await readPackTrailer(b.vault, b.keyring, packId);
    expect(entries).toHaveLength(4);
    const bytes = await b.vault.getBytes(pack);
    bytes[entries[2].offset + Math.floor(entries[2].storedLength / 2)] ^= 0x01;
    await b.vault.putBytes(pack, bytes);
    const verified = await verifyBackup({ backupId: b.backupId, vault: b.location, userKey: env.userKey });
    expect(verified.ok).toBe(false);
    expect(verified.problems).toHaveLength(1);
    expect(verified.problems[0]).toMatch(/^page \d \(offset \d+\).*fails authentication/);
    await restoresFail(b, /^page \d \(offset \d+\)/);
  });

  test('two equal-length blocks of a pack swapped: each fails as the chunk its table names (the content ID is in the AAD)', async () => {
    const b = await backedUp();
    const [pack] = await blobsOf(b.container, 'packs/');
    const entries = await readPackTrailer(b.vault, b.keyring, /([0-9a-f]{32})\.pwp$/.exec(pack)![1]);
    const [x, y] = [entries[0], entries[3]];
    expect(x.storedLength).toBe(y.storedLength);
    const bytes = await b.vault.getBytes(pack);
    const blockX = Buffer.from(bytes.subarray(x.offset, x.offset + x.storedLength));
    bytes.subarray(y.offset, y.offset + y.storedLength).copy(bytes, x.offset);
    blockX.copy(bytes, y.offset);
    await b.vault.putBytes(pack, bytes);
    const verified = await verifyBackup({ backupId: b.backupId, vault: b.location, userKey: env.userKey });
    expect(verified.problems).toHaveLength(2);
    for (const p of verified.problems) expect(p).toMatch(/^page \d \(offset \d+\).*not the chunk its content ID names/);
    await restoresFail(b, /not the chunk its content ID names/);
  });

  test('a pack cut short or deleted: verify names it, restores fail', async () => {
    const b = await backedUp();
    const [pack] = await blobsOf(b.container, 'packs/');
    const bytes = await b.vault.getBytes(pack);
    await b.vault.putBytes(pack, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const cut = await verifyBackup({ backupId: b.backupId, vault: b.location, userKey: env.userKey });
    expect(cut.ok).toBe(false);
    expect(cut.problems.join('\n')).toMatch(/outside pack [0-9a-f]{32}/);
    await restoresFail(b, /page \d/);
    await b.container.deleteBlob(pack);
    const gone = await verifyBackup({ backupId: b.backupId, vault: b.location, userKey: env.userKey, readData: false });
    expect(gone.ok).toBe(false);
    expect(gone.problems.join('\n')).toContain(`${pack}) is missing`);
    await restoresFail(b, /is missing/);
  });

  test("a page table damaged, or replaced by another backup's table: Corrupt naming the table", async () => {
    const b = await backedUp();
    const [table] = await blobsOf(b.container, 'tables/');
    const good = await b.vault.getBytes(table);
    await b.vault.putBytes(table, flip(good, 40));
    const tableMessage = new RegExp(`^page table 0 \\(${escape(table)}\\) does not match the manifest`);
    await restoresFail(b, tableMessage);
    expect((await verifyBackup({ backupId: b.backupId, vault: b.location, userKey: env.userKey })).problems.join('\n')).toMatch(tableMessage);
    // Another disk's backup in the same vault: its table (same key, same group 0) under this table's name.
    const other = await env.makeDisk(`e2e-other-${disks}.vhd`, 8 * MiB, [{ offset: 0, length: 4 * MiB, kind: 'random', seed: 900 + disks }]);
    await backupDisk({ ...b.req, source: other.source });
    const theirs = (await blobsOf(b.container, 'tables/')).find((n) => n !== table)!;
    await b.vault.putBytes(table, await b.vault.getBytes(theirs));
    await restoresFail(b, tableMessage);
  });

  test('a manifest damaged: listed damaged, restore Corrupt naming it; a later backup of the disk does not build on it', async () => {
    const b = await backedUp();
    const [manifest] = await manifestBlobs(b.container);
    await b.vault.putBytes(manifest, flip(await b.vault.getBytes(manifest), 60));
    const listed = await listBackups(b.location, { userKey: env.userKey });
    expect(listed.filter((l) => l.status === 'complete')).toEqual([]);
    expect(JSON.stringify(listed)).toContain(manifest);
    await expect(restoreBackup({ backupId: b.backupId, vault: b.location, userKey: env.userKey, target: { url: path.join(env.tmp, 'm.img') } })).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringContaining(manifest) });
    const again = await backupDisk({ ...b.req, backupId: 'after-damage' });
    expect(again).toMatchObject({ kind: 'full' });
    const file = path.join(env.tmp, 'after-damage.img');
    await restoreBackup({ backupId: 'after-damage', vault: b.location, userKey: env.userKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(b.disk.sha256);
  });

  test('a damaged plan or batch record stops the resume with Corrupt naming it, and no manifest is written', async () => {
    const b = await backedUp();
    const before = await manifestBlobs(b.container);
    const req = { ...b.req, backupId: 'damaged-staging', full: true };
    const plan = await planBackup(req);
    const planName = v2names.plan(b.keyring.nameTag('damaged-staging'));
    const planBytes = await b.vault.getBytes(planName);
    await b.vault.putBytes(planName, flip(planBytes, 30));
    const planMessage = new RegExp(`the plan ${escape(planName)} fails authentication`);
    await expect(runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0 })).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(planMessage) });
    await expect(backupDisk(req)).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(planMessage) });
    await b.vault.putBytes(planName, planBytes);
    await runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 0 });
    const [batch] = await batchRecordBlobs(b.container, { nameTag: b.keyring.nameTag('damaged-staging') });
    await b.vault.putBytes(batch, (await b.vault.getBytes(batch)).subarray(0, 50));
    await expect(finalizeBackup({ ...req, backupId: plan.backupId })).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringContaining(`the batch record ${batch}`) });
    expect(await manifestBlobs(b.container)).toEqual(before);
  });

  test('a crash mid-incremental leaves no manifest that looks complete; the resume finishes it as an incremental', async () => {
    const { location, vault, container } = await freshContainer();
    // 512-byte pages: a batch is 8 MiB; data in batches 0, 1 and 2. Snapshots are read with the account key (Azurite's SAS reads of snapshots).
    const name = 'e2e-incremental.vhd';
    const disk = await env.makeDisk(name, 24 * MiB, [0, 1, 2].map((k) => ({ offset: k * 8 * MiB, length: 64 * KiB, kind: 'random' as const, seed: 300 + k })));
    const blob = env.az.accounts.src.service.getContainerClient('disks').getPageBlobClient(name);
    const source = { url: `${env.az.accounts.src.endpoint}/disks/${name}`, connectionString: env.az.accounts.src.connectionString };
    const req = { source, vault: location, userKey: env.userKey, pageSize: 512, cacheBytes: 64 * KiB, takeSnapshot: true };
    const first = await backupDisk({ ...req, backupId: 'gen-0' });
    expect(first).toMatchObject({ kind: 'full' });
    // Changes in batches 0 and 2.
    await blob.uploadPages(Buffer.alloc(4 * KiB, 0xa1), 4 * KiB, 4 * KiB);
    await blob.uploadPages(Buffer.alloc(4 * KiB, 0xa2), 16 * MiB + 4 * KiB, 4 * KiB);
    const changedSha = await env.blobSha256(env.sourceUrl(name));
    const manifestsBefore = await manifestBlobs(container);
    const plan = await planBackup({ ...req, backupId: 'gen-1' });
    expect(plan).toMatchObject({ kind: 'incremental', batchCount: 2 });
    const ran = await runBackupBatch({ ...req, backupId: 'gen-1', planPosition: 0 });
    expect(ran.bytesRead).toBe(4 * KiB); // the eight 512-byte pages the write changed, and nothing else of the batch
    // "Crash": no second batch, no finalize.
    expect(await manifestBlobs(container)).toEqual(manifestsBefore);
    const listed = await listBackups(location, { userKey: env.userKey });
    expect(listed.filter((l) => l.status === 'complete').map((l) => l.backupId)).toEqual(['gen-0']);
    await expect(restoreBackup({ backupId: 'gen-1', vault: location, userKey: env.userKey, target: { url: path.join(env.tmp, 'gen-1-partial.img') } })).rejects.toMatchObject({ code: 'BackupIncomplete' });
    // The staging a reader could take for a backup holds no manifest envelope.
    for (const n of await blobsOf(container, 'staging/')) expect((await vault.getBytes(n))[6]).not.toBe(3);

    const resumed = await backupDisk({ ...req, backupId: 'gen-1' });
    expect(resumed).toMatchObject({ backupId: 'gen-1', kind: 'incremental', base: { backupId: 'gen-0' } });
    expect((await manifestBlobs(container)).length).toBe(manifestsBefore.length + 1);
    for (const [id, sha] of [['gen-0', disk.sha256], ['gen-1', changedSha]]) {
      const file = path.join(env.tmp, `${id}.img`);
      await restoreBackup({ backupId: id, vault: location, userKey: env.userKey, target: { url: file } });
      expect({ id, sha: await fileSha256(file) }).toEqual({ id, sha });
    }
  });

  test('another user key: a backup into the vault or a restore from it is WrongKey, and writes nothing', async () => {
    const b = await backedUp();
    const before = await etags(b.container);
    const other = generateKey();
    await refusal(() => backupDisk({ ...b.req, userKey: other }), 'WrongKey', /has no slot in this vault/);
    await refusal(() => restoreBackup({ backupId: b.backupId, vault: b.location, userKey: other, target: { url: path.join(env.tmp, 'other-key.img') } }), 'WrongKey', /has no slot in this vault/);
    expect(existsSync(path.join(env.tmp, 'other-key.img'))).toBe(false);
    expect(await etags(b.container)).toEqual(before);
  });

  test('a vault marker of version 3: a backup is refused before anything is written', async () => {
    const { location, vault, container } = await freshContainer();
    await vault.putNew('pagewise-vault.json', Buffer.from(JSON.stringify({ format: 'pagewise-vault', version: 3, vaultId: 'f'.repeat(32), createdAt: new Date().toISOString() })));
    const disk = await env.makeDisk(`e2e-v3-${++disks}.vhd`, MiB, [{ offset: 0, length: 64 * KiB, kind: 'text', seed: 5 }]);
    await refusal(() => backupDisk({ source: disk.source, vault: location, userKey: env.userKey, pageSize: 64 * KiB, cacheBytes: 256 * KiB }), 'BadInput', /version 3: written by a newer Pagewise/);
    expect(await blobsOf(container, '')).toEqual(['pagewise-vault.json']);
  });
});

describe('version-2 twins of format-neutral tests', () => {
  async function cli(args: string[], extraEnv: Record<string, string> = {}) {
    const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, ...extraEnv });
    const code = await run(args, io);
    return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
  }

  test('no key of the keyring (master keys, keys per purpose) nor the user key in any CLI output, success or failure, or in clear in any blob', async () => {
    const { location, vault, container } = await freshContainer();
    const keyFile = path.join(env.tmp, 'v2-secrets.key');
    const otherKeyFile = path.join(env.tmp, 'v2-secrets-other.key');
    await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
    await fs.writeFile(otherKeyFile, encodeKeyFile(generateKey()), { mode: 0o600 });
    const disk = await env.makeDisk('v2-secrets.vhd', 2 * MiB, [{ offset: 0, length: 256 * KiB, kind: 'text', seed: 77 }, { offset: MiB, length: 128 * KiB, kind: 'random', seed: 78 }]);
    const common = ['--vault', location.url, '--key-file', keyFile];
    const outputs: string[] = [];
    const keep = async (args: string[], extraEnv: Record<string, string> = {}) => {
      const out = await cli(args, extraEnv);
      outputs.push(out.stdout, out.stderr);
      return out;
    };
    const backup = await keep(['backup', disk.source.url, ...common, '--page-size', '64KiB', '--cache', '256KiB', '--json']);
    expect(backup.code).toBe(0);
    const { backupId } = JSON.parse(backup.stdout) as { backupId: string };
    expect((await keep(['list', '--vault', location.url, '--json'])).code).toBe(0);
    expect((await keep(['list', ...common, '--json'])).code).toBe(0);
    expect((await keep(['verify', backupId, ...common, '--read-data', '--json'])).code).toBe(0);
    expect((await keep(['restore', backupId, ...common, '--to', path.join(env.tmp, 'v2-secrets.img')])).code).toBe(0);
    const debug = { PAGEWISE_DEBUG: '1' };
    expect((await keep(['restore', backupId, '--vault', location.url, '--key-file', otherKeyFile, '--to', path.join(env.tmp, 'v2-other.img')], debug)).code).toBe(2);
    const damage = await damageData(container, {}, 64, 8192);
    expect((await keep(['verify', backupId, ...common, '--read-data'], debug)).code).toBe(1);
    expect((await keep(['restore', backupId, ...common, '--to', path.join(env.tmp, 'v2-damaged.img')], debug)).code).not.toBe(0);
    await damage.undo();

    const keyring = await openVaultKeyring(vault, env.userKey);
    const raw = new Map<string, Buffer>([['the user key', env.userKey]]);
    const slot = keyring.slotPlaintext();
    for (let e = 0; e <= keyring.epoch; e++) raw.set(`master key ${e}`, slot.subarray(1 + 32 * e, 33 + 32 * e));
    for (const purpose of ['data', 'index', 'table', 'manifest', 'staging', 'content-id', 'name'] as const) raw.set(`the ${purpose} key`, keyring.key(purpose));
    const needles = new Map<string, string>();
    for (const [name, key] of raw) for (const enc of ['base64', 'hex', 'base64url'] as const) needles.set(key.toString(enc), `${name} (${enc})`);
    const text = outputs.join('\n');
    expect(text.length).toBeGreaterThan(500);
    expect([...needles].filter(([n]) => text.includes(n)).map(([, name]) => name)).toEqual([]);
    const blobLeaks: string[] = [];
    let scanned = 0;
    for await (const b of container.listBlobsFlat()) {
      const content = await container.getBlobClient(b.name).downloadToBuffer();
      scanned++;
      for (const [name, key] of raw) if (content.includes(key)) blobLeaks.push(`${b.name}: ${name}`);
      for (const [needle, name] of needles) if (content.includes(Buffer.from(needle))) blobLeaks.push(`${b.name}: ${name}`);
    }
    expect(scanned).toBeGreaterThanOrEqual(6); // marker, slot, plan, batch record, pack, delta, table, manifest
    expect(blobLeaks).toEqual([]);
  });

  test('plan positions and batch numbers: a disk with data in batches 3, 7 and 12 plans [3, 7, 12]; position 1 writes batch record 7', async () => {
    const { location, vault } = await freshContainer();
    const disk = await env.makeDisk('v2-positions.vhd', 13 * 8 * MiB, [3, 7, 12].map((b, i) => ({ offset: b * 8 * MiB + (i + 1) * 4 * KiB, length: 64 * KiB, kind: 'text' as const, seed: 40 + i })));
    const req = { source: disk.source, vault: location, userKey: env.userKey, pageSize: 512, cacheBytes: 64 * KiB };
    const plan = await planBackup(req);
    expect(plan.batchCount).toBe(3);
    const keyring = await openVaultKeyring(vault, env.userKey);
    expect((await readPlan2(vault, keyring, plan.backupId))?.batches).toEqual([3, 7, 12]);
    const second = await runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 1 });
    expect({ batchNumber: second.batchNumber, resumed: second.resumed, bytesRead: second.bytesRead }).toEqual({ batchNumber: 7, resumed: false, bytesRead: 64 * KiB });
    const records = async () => {
      const found: Array<{ batch: number; batchNumber: number; firstPage: number; pages: number }> = [];
      for (let b = 0; b < 13; b++) {
        const r = await readBatch2(vault, keyring, plan.backupId, b);
        if (r) found.push({ batch: b, batchNumber: r.batchNumber, firstPage: r.firstPage, pages: r.pages.length });
      }
      return found;
    };
    expect(await records()).toEqual([{ batch: 7, batchNumber: 7, firstPage: 7 * 16384, pages: 128 }]);
    await expect(runBackupBatch({ ...req, backupId: plan.backupId, planPosition: 3 })).rejects.toMatchObject({ code: 'BadInput', message: expect.stringMatching(/has no batch at plan position 3/) });
    const result = await backupDisk(req);
    expect(result.bytesReadNow).toBe(disk.allocatedBytes - second.bytesRead);
    expect(await records()).toEqual([3, 7, 12].map((b) => ({ batch: b, batchNumber: b, firstPage: b * 16384, pages: 128 })));
    const file = path.join(env.tmp, 'v2-positions.img');
    await restoreBackup({ backupId: plan.backupId, vault: location, userKey: env.userKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(disk.sha256);
  });

  test('pagewise list of a hostile version-2 vault: damaged and unfinished entries listed with their reason, no raw control character, exit 0', async () => {
    const { location, vault, container } = await freshContainer();
    const keyFile = path.join(env.tmp, 'v2-list.key');
    await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
    const disk = await env.makeDisk('v2-list.vhd', MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 9 }]);
    const req = { source: disk.source, vault: location, userKey: env.userKey, pageSize: 64 * KiB, cacheBytes: 256 * KiB };
    await backupDisk({ ...req, backupId: 'list-good' });
    await backupDisk({ ...req, backupId: 'list-damaged', full: true } as typeof req);
    await planBackup({ ...req, backupId: 'list-unfinished', full: true } as typeof req);
    const keyring = await openVaultKeyring(vault, env.userKey);
    const damaged = (await findManifest2(vault, keyring, 'list-damaged'))!.name;
    await vault.putBytes(damaged, flip(await vault.getBytes(damaged), 70));
    // Names no Pagewise writes under manifests/: a C1 escape and a bidi override, and a manifest-looking name of junk.
    await vault.putNew('manifests/evil\u009b2J\u202e/x.pwm', Buffer.from('junk'));
    await vault.putNew(`manifests/${'a'.repeat(32)}/0000000000000-${'b'.repeat(32)}.pwm`, Buffer.from('junk'));
    for (const withKey of [true, false]) {
      const out = await cli(['list', '--vault', location.url, ...(withKey ? ['--key-file', keyFile] : []), '--json']);
      expect({ withKey, code: out.code, stderr: out.stderr }).toEqual({ withKey, code: 0, stderr: '' });
      expect(out.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
      const { backups } = JSON.parse(out.stdout) as { backups: Array<{ backupId?: string; status: string; problem?: string; locked?: boolean }> };
      if (withKey) {
        expect(backups.find((b) => b.backupId === 'list-good')).toMatchObject({ status: 'complete' });
        expect(backups.find((b) => b.backupId === 'list-unfinished')).toMatchObject({ status: 'incomplete' });
        expect(backups.filter((b) => b.status === 'damaged').map((b) => b.problem).join('\n')).toContain(damaged);
        expect(backups.some((b) => b.backupId === 'list-damaged' && b.status === 'complete')).toBe(false);
      } else {
        expect(backups.filter((b) => b.status === 'complete').length).toBeGreaterThanOrEqual(2);
      }
    }
    const table = await cli(['list', '--vault', location.url, '--key-file', keyFile]);
    expect(table.code).toBe(0);
    expect(table.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    void container;
  });

  test.each([
    ['a pack', `packs/ab/${'ab'.repeat(16)}.pwp`],
    ['a page table', `tables/${'cd'.repeat(16)}.pwt`],
    ['a manifest', `manifests/${'ef'.repeat(16)}/8203916619999-${'01'.repeat(16)}.pwm`],
    ['a plan', `staging/${'23'.repeat(16)}/plan.pwe`],
    ['a batch record', `staging/${'23'.repeat(16)}/batches/00000007.pwe`],
    ['an index delta', `index/d/20261201T000000000Z-${'45'.repeat(8)}.pwx`],
    ['a key slot', `keys/${'67'.repeat(8)}.0.json`],
    ['the upgrade marker', 'pagewise-vault-v2.json'],
  ])('a restore target named like %s of the version-2 layout is refused in any container', async (_what, blob) => {
    await expect(assertDiskWriteTarget({ url: env.targetUrl(blob) }, 'the target')).rejects.toMatchObject({ code: 'BadInput', message: expect.stringMatching(/^the target lies inside a vault \(container vault\/restores\)/) });
  });
});
