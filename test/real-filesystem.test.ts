/**
 * A disk image Pagewise has never seen: a real ext4 file system (made with mkfs.ext4 -d from a folder of
 * files), at an odd size, uploaded sparsely as a page blob, backed up with a page size that is not a
 * power of two, restored, and checked by e2fsck as well as byte for byte.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { backupDisk, restoreBackup, uploadImage, verifyBackup } from '../core';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';

const MKFS = ['/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4'].find((p) => existsSync(p));
const E2FSCK = ['/usr/sbin/e2fsck', '/sbin/e2fsck'].find((p) => existsSync(p));
const maybe = MKFS && E2FSCK ? test : test.skip;

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

maybe('an ext4 image of odd size restores byte-identical and passes e2fsck', async () => {
  const tree = path.join(env.tmp, 'tree');
  await fs.mkdir(path.join(tree, 'etc'), { recursive: true });
  await fs.mkdir(path.join(tree, 'var/lib'), { recursive: true });
  await fs.writeFile(path.join(tree, 'etc/hosts'), '127.0.0.1 localhost\n'.repeat(100));
  const blob = randomBytes(3 * MiB + 12345);
  await fs.writeFile(path.join(tree, 'var/lib/data.bin'), blob);
  await fs.writeFile(path.join(tree, 'var/lib/copy.bin'), blob); // same content again: dedupe candidates
  await fs.writeFile(path.join(tree, 'var/log.txt'), 'systemd[1]: Started Session 1 of user root.\n'.repeat(20000));
  const image = path.join(env.tmp, 'disk.img');
  execFileSync(MKFS!, ['-q', '-F', '-b', '4096', '-d', tree, image, '40M']);
  await fs.truncate(image, 40 * MiB + 7 * 512); // an odd size: not a multiple of the page size
  const { sha256 } = { sha256: await fileSha256(image) };

  const uploaded = await uploadImage(image, { url: env.az.sasUrl('src', 'disks', 'ext4.vhd') });
  expect(uploaded.paddedBytes).toBe(0);
  const source = { url: env.sourceUrl('ext4.vhd') };
  const pageSize = 192 * KiB; // 3 × 64 KiB: a multiple of 512, not a power of two
  const result = await backupDisk({ source, vault: env.vault, userKey: env.userKey, pageSize, cacheBytes: Math.floor(uploaded.diskBytes / 16) });
  expect(result.bytesRead).toBe(uploaded.writtenBytes);
  expect(result.cacheHighWaterBytes).toBeLessThanOrEqual(uploaded.diskBytes / 16);
  expect((await verifyBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, source })).problems).toEqual([]);

  const restored = path.join(env.tmp, 'restored.img');
  await restoreBackup({ backupId: result.backupId, vault: env.vault, userKey: env.userKey, target: { url: restored } });
  expect(await fileSha256(restored)).toBe(sha256);
  execFileSync(E2FSCK!, ['-f', '-n', restored], { stdio: 'pipe' }); // throws on a damaged file system
});

/** The 512-byte sectors where two images differ, as runs: what a VM's writes of a day would have changed. */
async function changedSectorRuns(before: string, after: string): Promise<Array<{ offset: number; length: number }>> {
  const [a, b] = await Promise.all([fs.readFile(before), fs.readFile(after)]);
  const runs: Array<{ offset: number; length: number }> = [];
  for (let at = 0; at < b.length; at += 512) {
    if (a.subarray(at, at + 512).equals(b.subarray(at, at + 512))) continue;
    const last = runs[runs.length - 1];
    if (last && last.offset + last.length === at && last.length < 4 * MiB) last.length += 512;
    else runs.push({ offset: at, length: 512 });
  }
  return runs;
}

maybe('a day of use on an ext4 disk: the nightly backup reads only the pages the day changed and restores on its own', async () => {
  const tree = path.join(env.tmp, 'day-tree');
  await fs.mkdir(path.join(tree, 'home/user'), { recursive: true });
  await fs.mkdir(path.join(tree, 'var/log'), { recursive: true });
  for (let i = 0; i < 40; i++) await fs.writeFile(path.join(tree, `home/user/doc${i}.txt`), `document ${i}\n`.repeat(2000 + i * 50));
  await fs.writeFile(path.join(tree, 'home/user/photo.jpg'), randomBytes(2 * MiB));
  await fs.writeFile(path.join(tree, 'var/log/syslog'), 'kernel: boot\n'.repeat(30000));
  const monday = path.join(env.tmp, 'monday.img');
  execFileSync(MKFS!, ['-q', '-F', '-b', '4096', '-d', tree, monday, '48M']);

  // The disk, written from Monday's image; backed up with a snapshot Pagewise takes (the nightly command).
  const name = 'day-of-use.vhd';
  const writable = { url: env.az.sasUrl('src', 'disks', name) };
  await uploadImage(monday, writable);
  const vault = await env.makeVault('day-of-use');
  const pageSize = 64 * KiB;
  const nightly = () => backupDisk({ source: writable, vault, userKey: env.userKey, pageSize, takeSnapshot: true, cacheBytes: 2 * MiB });
  const first = await nightly();
  expect(first.kind).toBe('full');

  // Tuesday: files written, changed and removed inside the file system (debugfs, as the VM's kernel would).
  const tuesday = path.join(env.tmp, 'tuesday.img');
  await fs.copyFile(monday, tuesday);
  const newFile = path.join(env.tmp, 'report.txt');
  await fs.writeFile(newFile, 'quarterly figures\n'.repeat(8000));
  const edited = path.join(env.tmp, 'doc7.txt');
  await fs.writeFile(edited, 'document 7, edited\n'.repeat(3000));
  const commands = [`write ${newFile} home/user/report.txt`, 'rm home/user/doc3.txt', 'rm home/user/doc7.txt', `write ${edited} home/user/doc7.txt`, 'rm home/user/photo.jpg'];
  for (const c of commands) execFileSync('/usr/sbin/debugfs', ['-w', '-R', c, tuesday], { stdio: 'pipe' });
  execFileSync(E2FSCK!, ['-f', '-n', tuesday], { stdio: 'pipe' });
  // The VM's writes reach the page blob as they would: only the sectors that changed.
  const runs = await changedSectorRuns(monday, tuesday);
  const blob = env.sourceClient(name);
  const tuesdayBytes = await fs.readFile(tuesday);
  for (const r of runs) await blob.uploadPages(tuesdayBytes.subarray(r.offset, r.offset + r.length), r.offset, r.length);
  const changedPages = new Set(runs.flatMap((r) => Array.from({ length: Math.ceil((r.offset + r.length) / pageSize) - Math.floor(r.offset / pageSize) }, (_, k) => Math.floor(r.offset / pageSize) + k)));

  const second = await nightly();
  expect(second).toMatchObject({ kind: 'incremental', base: { backupId: first.backupId }, reason: null });
  // Exactly the pages the day touched are read: their allocated bytes (the upload skipped zero sectors).
  let allocatedInChanged = 0;
  for await (const r of blob.listPageRanges()) {
    for (let at = r.start; at <= r.end; at += 512) if (changedPages.has(Math.floor(at / pageSize))) allocatedInChanged += 512;
  }
  expect(second.bytesRead).toBe(allocatedInChanged);
  expect(second.bytesRead).toBeLessThan(first.bytesRead / 4);
  for (const [backup, image] of [[second, tuesday], [first, monday]] as const) {
    const restored = path.join(env.tmp, `${backup.backupId}.img`);
    await restoreBackup({ backupId: backup.backupId, vault, userKey: env.userKey, target: { url: restored } });
    expect(await fileSha256(restored)).toBe(await fileSha256(image));
    execFileSync(E2FSCK!, ['-f', '-n', restored], { stdio: 'pipe' });
  }
});
