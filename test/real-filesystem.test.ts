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
