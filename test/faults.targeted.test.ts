/**
 * Faults aimed at one kind of request, so nothing depends on a seeded draw: a source size misread (a HEAD
 * answered with half the blob's Content-Length, the cause of the once-flaky faults.test.ts) must fail the
 * backup, never complete one holding part of the disk; writes whose answers are lost are retried into 409s
 * that are checked, not taken on trust.
 */
import * as http from 'node:http';
import * as path from 'node:path';
import { backupDisk, configureStorageEndpoints, listBackups, restoreBackup, verifyBackup } from '../core';
import { sampleVmLayout } from '../testkit/sample-disk';
import { startFaultProxy, FaultProxy, FaultProxyOptions } from './harness/fault-proxy';
import { fileSha256, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.stop();
});

/** A proxy that injects no random fault, only the targeted ones; its endpoints allowed. */
async function targetedProxy(options: Pick<FaultProxyOptions, 'misreportSizeIf' | 'loseReplyIf'>): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: env.az.port }, seed: 1, rate: 0, ...options });
  const direct = env.az.storageEndpoints.split(',');
  configureStorageEndpoints([...direct, ...direct.map((e) => proxy.via(e))], 'PAGEWISE_STORAGE_ENDPOINTS');
  return proxy;
}

/** A proxy that misreports the size of the HEADs of `disk` it is told to (numbered from 1). */
function sizeLiar(disk: string, lieOn: (headNumber: number) => boolean): Promise<FaultProxy> {
  let heads = 0;
  return targetedProxy({ misreportSizeIf: (req: http.IncomingMessage) => (req.url ?? '').startsWith(`/src/disks/${disk}?`) && lieOn(++heads) });
}

const PAGE = 1 * MiB;
const completeBackups = async () => (await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete').length;
const DISK = 48 * MiB;

test('a source whose every HEAD halves its size: the page-range listing disagrees, the backup fails and no backup completes', async () => {
  const disk = await env.makeDisk('half-always.vhd', DISK, sampleVmLayout(DISK, DISK));
  const proxy = await sizeLiar('half-always.vhd', () => true);
  const before = await completeBackups();
  try {
    const backup = backupDisk({ source: { url: proxy.via(disk.source.url) }, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: DISK / 16 });
    await expect(backup).rejects.toMatchObject({ code: 'SourceUnreachable', message: expect.stringMatching(/opened as 25165824 bytes, but its page-range listing says 50331648 bytes/) });
    expect(proxy.stats.misreported).toBeGreaterThanOrEqual(1);
    expect(await completeBackups()).toBe(before);
  } finally {
    await proxy.stop();
  }
});

test('a size misread after planning is refused, and the backup resumed cleanly is whole', async () => {
  const disk = await env.makeDisk('half-later.vhd', DISK, sampleVmLayout(DISK, DISK));
  // The plan's HEAD tells the truth; every later one (the snapshot's, the batch's) halves the size.
  const proxy = await sizeLiar('half-later.vhd', (n) => n > 1);
  const request = { source: { url: proxy.via(disk.source.url) }, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: DISK / 16 };
  try {
    await expect(backupDisk(request)).rejects.toMatchObject({ code: 'SourceUnreachable', message: expect.stringMatching(/was read as 25165824 bytes, but the backup was planned for 50331648 bytes/) });
    expect(proxy.stats.misreported).toBeGreaterThanOrEqual(1);
  } finally {
    await proxy.stop();
  }
  const result = await backupDisk({ ...request, source: disk.source });
  expect(result.bytesRead).toBe(disk.allocatedBytes);
  expect(result.diskBytes).toBe(DISK);
  const verified = await verifyBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey });
  // 48 MiB of the sample layout: 23 allocated 1 MiB pages, none zero, none alike: one pack, one page table;
  // each page cut into FastCDC chunks (#15: the default clamped to 1 MiB pages), every chunk a block checked.
  expect(result.chunks).toBeGreaterThan(23);
  expect(verified).toMatchObject({ ok: true, problems: [], pagesChecked: 23, blocksChecked: result.chunks, bytesChecked: 23 * PAGE, packsChecked: 1, tablesChecked: 1 });
  const file = path.join(env.tmp, 'half-later.img');
  await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: file } });
  expect(await fileSha256(file)).toBe(disk.sha256);
});

test('the first pack commit, index delta and batch record each land but lose their answer: the retries\' 409s are checked and kept, the backup is whole', async () => {
  // Content of its own (another seed): the vault's content index (#15) would otherwise find every chunk of
  // the earlier tests' disks, and this backup would commit no pack and write no delta to lose a reply of.
  const disk = await env.makeDisk('lost-replies.vhd', DISK, sampleVmLayout(DISK, DISK + 1));
  const kinds = [/^\/vault\/vault\/packs\/.*comp=blocklist/, /^\/vault\/vault\/index\/d\//, /^\/vault\/vault\/staging\/[^/]+\/batches\//];
  const hit = new Set<number>();
  const proxy = await targetedProxy({
    loseReplyIf: (req) => {
      const kind = req.method === 'PUT' ? kinds.findIndex((k) => k.test(req.url ?? '')) : -1;
      if (kind < 0 || hit.has(kind)) return false;
      hit.add(kind);
      return true;
    },
  });
  const vault = { url: proxy.via(env.vault.url) };
  try {
    const result = await backupDisk({ source: disk.source, vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: DISK / 16 });
    expect(proxy.stats.lostReplies).toBe(3);
    expect([...hit].sort()).toEqual([0, 1, 2]);
    expect(result.bytesRead).toBe(disk.allocatedBytes);
    const verified = await verifyBackup({ backupId: result.backupId, vault, userKey: env.userKey });
    expect(verified).toMatchObject({ ok: true, problems: [], pagesChecked: 23, blocksChecked: result.chunks, bytesChecked: 23 * PAGE, packsChecked: 1, tablesChecked: 1 });
    const file = path.join(env.tmp, 'lost-replies.img');
    await restoreBackup({ backupId: result.backupId, vault, userKey: env.userKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(disk.sha256);
  } finally {
    await proxy.stop();
  }
});
