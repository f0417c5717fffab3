/**
 * A hostile version-2 vault (docs/FORMAT.md §11–§25): every object a reader takes from it — marker, key
 * slot, plan, batch record, page table, pack (blocks, trailer), index blob, manifest — damaged, cut short,
 * moved under another name, or (written with the key, as a hostile writer could) claiming counts and sizes
 * no writer writes. Each must give Corrupt, WrongKey or BadInput with a message naming the object: never a
 * crash, never a hang, never a restore that writes wrong bytes. The version-1 counterparts are in
 * security.repo, corruption, backup-failures and repo.catalog, on version-1 vaults.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { generateKey, keyId, PagewiseError, StorageLocation } from '../core';
import { Vault } from '../core/repo/vault';
import { Keyring } from '../core/repo/v2/keyring';
import { createVaultV2, openVaultKeyring, readVaultMarker } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { openJson, sealJson } from '../core/repo/v2/envelope';
import { decodeTable, encodeTable, PageRecord2 } from '../core/repo/v2/page-table';
import { readBatch2, readPlan2, writeBatch2, writePlan2 } from '../core/repo/v2/staging';
import type { BatchRecordV2, PlanV2 } from '../core/repo/v2/records';
import { MAX_VAULT_JSON_BYTES } from '../core/limits';
import { startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let containers = 0;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.stop();
});

/** A new empty container: a vault of the current format once something makes it one. */
async function freshContainer(): Promise<{ location: StorageLocation; vault: Vault }> {
  const location = await env.makeVault(`v2-hostile-${++containers}`);
  return { location, vault: Vault.open(location) };
}

/** A new version-2 vault opened by the test's user key. */
async function freshVaultV2(): Promise<{ location: StorageLocation; vault: Vault; keyring: Keyring }> {
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
