/**
 * The version-2 writer cuts pages into FastCDC chunks (#15) against a real Azurite: an insertion in a page
 * costs only the chunks near it; records' chunk lengths add up (zero chunks inside a page included); the
 * disk restores byte-identical; compressible chunks are zstd blocks, random ones stored; a base chunked
 * `page` makes the next backup full (`chunking-changed`); the CLI's --chunking, --codec, --no-vault-dedupe.
 */
import { createDecipheriv, hkdfSync } from 'node:crypto';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import { backupDisk, BackupRequest, chunkLengths, closeChunkPools, DEFAULT_CHUNKING, gearTable, loadUserKey, restoreBackup, verifyBackup, writeNewKeyFile } from '../core';
import { captureIO, run } from '../cli/main';
import { Chunking } from '../core/repo/v2/chunker';
import { Keyring } from '../core/repo/v2/keyring';
import { findManifest2 } from '../core/repo/v2/manifest';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { v2names } from '../core/repo/v2/names';
import { isZeroChunk, readTable } from '../core/repo/v2/page-table';
import { ManifestV2, PageRecord2 } from '../core/repo/v2/records';
import { readPlan2 } from '../core/repo/v2/staging';
import { Vault } from '../core/repo/vault';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { randomBytes } from './harness/random-bytes';

const PAGE = 4 * MiB;

let env: TestEnv;
const threadsBefore = process.env.PAGEWISE_WORKER_THREADS;
beforeAll(async () => {
  // This suite's backups chunk, hash, compress and seal in real worker threads (the compiled default; from
  // the sources the default is in-thread, see workerThreads()).
  process.env.PAGEWISE_WORKER_THREADS = '2';
  env = await startEnv();
});
afterAll(async () => {
  if (threadsBefore === undefined) delete process.env.PAGEWISE_WORKER_THREADS;
  else process.env.PAGEWISE_WORKER_THREADS = threadsBefore;
  await closeChunkPools();
  await env?.stop();
});

/** Text-like bytes (zstd shrinks them): numbered lines with a few varying words. */
function textBytes(n: number, seed: number): Buffer {
  const words = ['alpha', 'kernel', 'page', 'vault', 'snapshot', 'chunk', 'delta', 'index', 'pack', 'table'];
  const rnd = randomBytes(Math.ceil(n / 8) + 16, seed);
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < n; i++) {
    const line = `${String(i).padStart(8, '0')} ${words[rnd[i % rnd.length] % 10]} ${words[rnd[(i * 7) % rnd.length] % 10]} status=ok seq=${i}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, n);
}

async function upload(name: string, diskBytes: number, content: Buffer, at = 0): Promise<PageBlobClient> {
  const blob = env.sourceClient(name);
  if (!(await blob.exists())) await blob.create(diskBytes);
  for (let off = 0; off < content.length; off += 4 * MiB) {
    const part = content.subarray(off, Math.min(content.length, off + 4 * MiB));
    await blob.uploadPages(part, at + off, part.length);
  }
  return blob;
}

async function manifestOf(vault: Vault, keyring: Keyring, backupId: string): Promise<ManifestV2> {
  return (await findManifest2(vault, keyring, backupId))!.manifest;
}

async function recordsOf(vault: Vault, keyring: Keyring, m: ManifestV2): Promise<PageRecord2[]> {
  const out: PageRecord2[] = [];
  for (const t of m.tables) out.push(...(await readTable(vault, keyring, t, m.pagesPerTable)));
  return out;
}

/** Content IDs (hex) of a page's non-zero chunks under `chunking`, with their lengths. */
function chunksOf(keyring: Keyring, page: Buffer, chunking: Chunking): Map<string, number> {
  const out = new Map<string, number>();
  let at = 0;
  for (const n of chunkLengths(page, chunking, gearTable(keyring.key('name')))) {
    const bytes = page.subarray(at, at + n);
    if (bytes.some((b) => b !== 0)) out.set(keyring.contentId(bytes).toString('hex'), n);
    at += n;
  }
  return out;
}

/** The codec byte of a stored block (§16: inside the ciphertext), opened here as an independent reader would. */
async function codecOfBlock(vault: Vault, keyring: Keyring, c: { contentId: Buffer; pack: string; offset: number; storedLength: number }): Promise<number> {
  const block = await vault.getBytes(v2names.pack(c.pack), c.offset, c.storedLength);
  const key = Buffer.from(hkdfSync('sha256', keyring.key('data', block[5]), block.subarray(8, 24), 'pagewise/v2/block', 32));
  const d = createDecipheriv('aes-256-gcm', key, block.subarray(24, 36));
  d.setAAD(Buffer.concat([block.subarray(0, 36), c.contentId]));
  d.setAuthTag(block.subarray(block.length - 16));
  const inner = Buffer.concat([d.update(block.subarray(36, block.length - 16)), d.final()]);
  return inner[0];
}

test('an insertion in a page stores only the chunks near it; the incremental restores byte-identical', async () => {
  const name = 'chunks-insert.vhd';
  const original = randomBytes(2 * PAGE, 11);
  const blob = await upload(name, 2 * PAGE, original);
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 2 * PAGE - 1, takeSnapshot: true };
  const full = await backupDisk(req);
  const vault = Vault.open(env.vault);
  const keyring = await openVaultKeyring(vault, env.userKey);
  const before = new Map([...chunksOf(keyring, original.subarray(0, PAGE), DEFAULT_CHUNKING), ...chunksOf(keyring, original.subarray(PAGE), DEFAULT_CHUNKING)]);
  expect(before.size).toBeGreaterThanOrEqual(16); // ~256 KiB chunks: about 16 per 4 MiB page
  expect(full).toMatchObject({ kind: 'full', storedBlocks: before.size, chunks: before.size, bytesNew: 2 * PAGE, chunksReusedFromVault: 0 });

  // 100 bytes inserted 1 MiB + 4321 into page 0: the rest of the page shifts (its last 100 bytes drop off).
  const at = 1 * MiB + 4321;
  const page0 = Buffer.concat([original.subarray(0, at), Buffer.alloc(100, 0xab), original.subarray(at, PAGE - 100)]);
  await blob.uploadPages(page0, 0, PAGE);
  const after = chunksOf(keyring, page0, DEFAULT_CHUNKING);
  const fresh = [...after].filter(([id]) => !before.has(id));
  expect(fresh.length).toBeGreaterThanOrEqual(2); // the chunk with the insertion, the page's last chunk
  expect(fresh.length).toBeLessThanOrEqual(4); // the cut points resynchronise right after the insertion
  const next = await backupDisk(req);
  expect(next).toMatchObject({ kind: 'incremental', bytesRead: PAGE, storedBlocks: fresh.length, bytesNew: fresh.reduce((sum, [, n]) => sum + n, 0) });

  const records = await recordsOf(vault, keyring, await manifestOf(vault, keyring, next.backupId));
  expect(records.map((r) => r.page)).toEqual([0, 1]);
  for (const r of records) expect(r.chunks.reduce((sum, c) => sum + c.length, 0)).toBe(r.length);
  expect(records[0].chunks.map((c) => c.contentId.toString('hex'))).toEqual([...after.keys()]);

  await restoreBackup({ backupId: next.backupId, vault: env.vault, userKey: env.userKey, target: { url: env.targetUrl('chunks-insert-restored.vhd') } });
  const restored = await new PageBlobClient(env.targetUrl('chunks-insert-restored.vhd'), new AnonymousCredential()).downloadToBuffer(0, 2 * PAGE);
  expect(restored.equals(Buffer.concat([page0, original.subarray(PAGE)]))).toBe(true);
});

test('compressible chunks are zstd blocks, random ones stored; zero chunks inside a page are recorded, not stored; the sums add up', async () => {
  const name = 'chunks-mixed.vhd';
  // page 0: text, then 2 MiB of written zeros, then text; page 1: random.
  const page0 = Buffer.concat([textBytes(1 * MiB, 3), Buffer.alloc(2 * MiB), textBytes(1 * MiB, 4)]);
  const page1 = randomBytes(PAGE, 5);
  await upload(name, 2 * PAGE, Buffer.concat([page0, page1]));
  const vaultLoc = await env.makeVault('chunks-mixed');
  const req: BackupRequest = { source: { url: env.sourceUrl(name) }, vault: vaultLoc, userKey: env.userKey, pageSize: PAGE, cacheBytes: 2 * PAGE - 1 };
  const result = await backupDisk(req);
  expect(result).toMatchObject({ kind: 'full', zeroPages: 0, bytesRead: 2 * PAGE });
  expect(result.bytesStored).toBeLessThan(PAGE + 1 * MiB); // the text (and zeros a chunk of it spans) shrinks well below 2 MiB

  const vault = Vault.open(vaultLoc);
  const keyring = await openVaultKeyring(vault, env.userKey);
  const manifest = await manifestOf(vault, keyring, result.backupId);
  expect(manifest).toMatchObject({ chunking: DEFAULT_CHUNKING, codec: 'zstd' });
  const records = await recordsOf(vault, keyring, manifest);
  expect(records.map((r) => r.page)).toEqual([0, 1]);
  for (const r of records) expect(r.chunks.reduce((sum, c) => sum + c.length, 0)).toBe(PAGE);
  const zeros = records[0].chunks.filter(isZeroChunk);
  expect(zeros.length).toBeGreaterThanOrEqual(1); // the 2 MiB run of zeros: max-size (1 MiB) zero chunks
  for (const z of zeros) expect(z).toMatchObject({ storedLength: 0, pack: '0'.repeat(32), offset: 0 });
  const texts = records[0].chunks.filter((c) => !isZeroChunk(c));
  expect(texts.reduce((sum, c) => sum + c.length, 0) + zeros.reduce((sum, c) => sum + c.length, 0)).toBe(PAGE);
  for (const c of texts) expect(await codecOfBlock(vault, keyring, c)).toBe(2); // zstd
  for (const c of records[1].chunks) expect(await codecOfBlock(vault, keyring, c)).toBe(0); // stored: zstd does not make a random chunk smaller
  expect(manifest.stats.chunks).toBe(texts.length + records[1].chunks.length);
  expect(result.bytesNew).toBe([...texts, ...records[1].chunks].reduce((sum, c) => sum + c.length, 0)); // zero chunks cost nothing

  await restoreBackup({ backupId: result.backupId, vault: vaultLoc, userKey: env.userKey, target: { url: env.targetUrl('chunks-mixed-restored.vhd') } });
  const restored = await new PageBlobClient(env.targetUrl('chunks-mixed-restored.vhd'), new AnonymousCredential()).downloadToBuffer(0, 2 * PAGE);
  expect(restored.equals(Buffer.concat([page0, page1]))).toBe(true);
  expect(await verifyBackup({ backupId: result.backupId, vault: vaultLoc, userKey: env.userKey, readData: true })).toMatchObject({ ok: true, pagesChecked: 2 });
});

test('an incremental of a base chunked `page` is a full backup, reason chunking-changed; then incrementals again', async () => {
  const name = 'chunks-changed.vhd';
  const blob = await upload(name, 2 * PAGE, randomBytes(PAGE, 7));
  const vaultLoc = await env.makeVault('chunks-changed');
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', name) }, vault: vaultLoc, userKey: env.userKey, pageSize: PAGE, cacheBytes: 2 * PAGE - 1, takeSnapshot: true };
  const paged = await backupDisk({ ...req, chunking: { scheme: 'page' }, codec: 'lz4' });
  expect(paged).toMatchObject({ kind: 'full', reason: 'no-base', storedBlocks: 1, chunks: 1 });
  await blob.uploadPages(randomBytes(64 * KiB, 8), PAGE, 64 * KiB);
  const changed = await backupDisk(req);
  expect(changed).toMatchObject({ kind: 'full', reason: 'chunking-changed', base: null, bytesRead: PAGE + 64 * KiB });
  await blob.uploadPages(randomBytes(64 * KiB, 9), PAGE, 64 * KiB);
  const next = await backupDisk(req);
  expect(next).toMatchObject({ kind: 'incremental', reason: null, base: { backupId: changed.backupId }, bytesRead: 64 * KiB });
  const vault = Vault.open(vaultLoc);
  const keyring = await openVaultKeyring(vault, env.userKey);
  expect((await manifestOf(vault, keyring, paged.backupId)).chunking).toEqual({ scheme: 'page' });
  expect((await manifestOf(vault, keyring, changed.backupId)).chunking).toEqual(DEFAULT_CHUNKING);
});

describe('CLI', () => {
  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
    const code = await run(args, io);
    return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
  }

  test('backup --chunking, --codec, --no-vault-dedupe go into the plan; bad values are refused before anything is read', async () => {
    const name = 'chunks-cli.vhd';
    await upload(name, 2 * MiB, Buffer.concat([textBytes(1 * MiB, 21), randomBytes(1 * MiB, 22)]));
    const vaultLoc = await env.makeVault('chunks-cli');
    const keyFile = `${env.tmp}/cli.key`;
    await writeNewKeyFile(keyFile);
    const userKey = await loadUserKey(keyFile);
    const backup = (...extra: string[]) => cli(['backup', env.sourceUrl(name), '--vault', vaultLoc.url, '--key-file', keyFile, '--page-size', '1MiB', '--cache', '1MiB', ...extra]);

    const paged = await backup('--chunking', 'page', '--codec', 'lz4', '--no-vault-dedupe', '--backup-id', 'cli-paged', '--json');
    expect(paged).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(paged.stdout)).toMatchObject({ chunks: 2, storedBlocks: 2, chunksReusedFromVault: 0 });
    const vault = Vault.open(vaultLoc);
    const keyring = await openVaultKeyring(vault, userKey);
    expect(await readPlan2(vault, keyring, 'cli-paged')).toMatchObject({ chunking: { scheme: 'page' }, codec: 'lz4', vaultDedupe: false });

    const cdc = await backup('--chunking', 'fastcdc:16KiB,64KiB,256KiB', '--backup-id', 'cli-cdc');
    expect(cdc).toMatchObject({ code: 0, stderr: '' });
    expect(cdc.stdout).toMatch(/chunks +\d+ referenced, \d+ new \(/);
    expect(await readPlan2(vault, keyring, 'cli-cdc')).toMatchObject({ chunking: { scheme: 'fastcdc-2016', min: 16 * KiB, avg: 64 * KiB, max: 256 * KiB, nc: 2 }, codec: 'zstd', vaultDedupe: true });
    // The default sizes clamped to the 1 MiB page.
    await backup('--backup-id', 'cli-default');
    expect(await readPlan2(vault, keyring, 'cli-default')).toMatchObject({ chunking: { scheme: 'fastcdc-2016', min: 64 * KiB, avg: 256 * KiB, max: 1 * MiB, nc: 2 } });

    const notPow2 = await backup('--chunking', 'fastcdc:16KiB,48KiB,256KiB', '--backup-id', 'cli-bad1');
    expect(notPow2.code).not.toBe(0);
    expect(notPow2.stderr).toMatch(/average size 49152 is not a power of two/);
    const unknown = await backup('--chunking', 'rabin', '--backup-id', 'cli-bad2');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/--chunking "rabin" is not page, fastcdc or fastcdc:<min>,<avg>,<max>/);
    const codec = await backup('--codec', 'brotli', '--backup-id', 'cli-bad3');
    expect(codec.code).not.toBe(0);
    expect(codec.stderr).toMatch(/--codec "brotli" is not one of zstd, lz4, stored/);
    for (const id of ['cli-bad1', 'cli-bad2', 'cli-bad3']) expect(await readPlan2(vault, keyring, id)).toBeUndefined();
  });
});
