/**
 * The backup writer and reader (core/repo) on Azurite: blocks staged by page, a segment committed with
 * one block per distinct content (duplicates within a batch and across batches share it), the manifest
 * written last — and the reader opens it and reads every page back. The version-1 writer is the subject: the
 * vault is a version-1 vault (makeVaultV1).
 */
import { createHash } from 'node:crypto';
import { generateKey, listBackups } from '../core';
import { BackupPlan } from '../core/repo/backup-plan';
import { BackupReader } from '../core/repo/backup-reader';
import { BackupWriter } from '../core/repo/backup-writer';
import { PageRecord } from '../core/repo/batch-record';
import { encodeBlock } from '../core/repo/block-codec';
import { keyId, wrapDataKey } from '../core/repo/keys';
import { Vault } from '../core/repo/vault';
import { makeVaultV1, startEnv, TestEnv } from './harness/env';

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv();
  await makeVaultV1(env.vault);
});
afterAll(async () => {
  await env?.stop();
});

const PAGE = 512;
const backupId = 'writer-test';

function planOf(userKey: Buffer, dataKey: Buffer): BackupPlan {
  return {
    format: 'pagewise-plan',
    version: 1,
    backupId,
    createdAt: '2026-12-01T00:00:00.000Z',
    source: { url: 'http://127.0.0.1/src/disks/w.vhd', account: 'src', container: 'disks', blob: 'w.vhd', snapshot: '', etag: '"0x1"' },
    diskBytes: 4 * PAGE,
    pageSize: PAGE,
    pageCount: 4,
    pagesPerBatch: 2,
    pagesPerSegment: 4,
    allocatedBytes: 4 * PAGE,
    allocatedPages: 4,
    batches: [0, 1],
    encryption: { keyId: keyId(userKey), wrappedDataKey: wrapDataKey(userKey, dataKey, backupId) },
  };
}

test('a segment holds one block per distinct page; the reader reads every page back', async () => {
  const userKey = env.userKey;
  const dataKey = generateKey();
  const vault = Vault.open(env.vault);
  const writer = new BackupWriter(vault, planOf(userKey, dataKey), dataKey);
  const a = Buffer.alloc(PAGE, 0xaa);
  const b = Buffer.alloc(PAGE, 0xbb);
  const hash = (p: Buffer) => createHash('sha256').update(p).digest('hex');

  // Batch 0: page 0 (a) stored, page 1 (a) a duplicate of page 0. Batch 1: page 2 (b), page 3 (a) staged again.
  const records: PageRecord[] = [];
  for (const [page, plain, sameAs] of [[0, a, 0], [1, a, 0], [2, b, 2], [3, a, 3]] as Array<[number, Buffer, number]>) {
    if (sameAs !== page) {
      records.push({ i: page, h: hash(plain), n: PAGE, b: sameAs, c: 0, l: 0 });
      continue;
    }
    const block = await encodeBlock(plain, dataKey, backupId);
    await writer.stageBlock(page, block.bytes);
    records.push({ i: page, h: hash(plain), n: PAGE, b: page, c: block.codec, l: block.bytes.length });
  }

  const committed = await writer.commitSegment(0, records);
  expect(committed.segment).toEqual({ index: 0, blob: 'backups/writer-test/segments/00000000.seg', blocks: 2, bytes: records[0].l + records[2].l });
  expect(committed.index).toMatchObject({ segment: 0, blob: 'backups/writer-test/index/00000000.pwi', entries: 4 });
  expect(committed.dataPages).toBe(4);

  const body = writer.newManifest();
  BackupWriter.addSegment(body, committed);
  expect(body.stats).toMatchObject({ storedBlocks: 2, dataPages: 4, dedupedPages: 2, bytesStored: committed.segment.bytes });
  expect(await writer.isComplete()).toBe(false);
  const written = await writer.writeManifest(userKey, body);
  expect(await writer.isComplete()).toBe(true);
  expect(await writer.readManifest(userKey)).toEqual(written);

  const reader = await BackupReader.open(env.vault, backupId, userKey);
  const pages: Array<[number, number, string]> = [];
  for await (const { entries } of reader.segments()) {
    for (const entry of entries) pages.push([entry.page, entry.offset, (await reader.readPage(entry)).toString('hex', 0, 1)]);
  }
  // Pages 0, 1 and 3 share the first block (offset 0); page 2's block follows it.
  expect(pages).toEqual([
    [0, 0, 'aa'],
    [1, 0, 'aa'],
    [2, records[0].l, 'bb'],
    [3, 0, 'aa'],
  ]);
  expect(await reader.segmentProblem(written.segments[0])).toBeUndefined();
  expect((await listBackups(env.vault, { userKey })).find((l) => l.backupId === backupId)).toMatchObject({ status: 'complete', completedAt: written.completedAt });
});
