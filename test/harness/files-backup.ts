/**
 * A backup whose disk is a real ext4 file system, for the file-level restore entry points: a folder made
 * into an image with mkfs.ext4 -d, uploaded to Azurite as a page blob (uploadImage), backed up (backupDisk).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { backupDisk, StorageLocation, uploadImage } from '../../core';
import { makeExtImage, makePartitionedImage } from '../../testkit/fs-images';
import { KiB, MiB, TestEnv } from './env';

export interface FilesBackup {
  backupId: string;
  /** The folder the image was made from: the expected bytes. */
  tree: string;
  image: string;
}

/** Backs up an ext4 image of the folder `build` fills, as the disk `name`, into `vault` (default env.vault). */
export async function backupExtTree(
  env: TestEnv,
  name: string,
  build: (dir: string) => Promise<void>,
  options: { sizeBytes?: number; vault?: StorageLocation; /** Changes the image before upload (a journal transaction). */ prepare?: (image: string) => Promise<void> } = {},
): Promise<FilesBackup> {
  const tree = path.join(env.tmp, `${name}-tree`);
  await fs.mkdir(tree, { recursive: true });
  await build(tree);
  const image = path.join(env.tmp, `${name}.img`);
  await makeExtImage(image, tree, { kind: 'ext4', sizeBytes: options.sizeBytes ?? 16 * MiB });
  await options.prepare?.(image);
  return { backupId: await backupImage(env, name, image, options.vault), tree, image };
}

/**
 * Backs up an MBR disk: p1 an ext4 image of the folder `build` fills, p2 a Linux swap partition left unformatted
 * (zeros), as the disk `name`.
 */
export async function backupPartitionedTree(env: TestEnv, name: string, build: (dir: string) => Promise<void>): Promise<FilesBackup> {
  const tree = path.join(env.tmp, `${name}-tree`);
  await fs.mkdir(tree, { recursive: true });
  await build(tree);
  const fsImage = path.join(env.tmp, `${name}-p1.img`);
  await makeExtImage(fsImage, tree, { kind: 'ext4', sizeBytes: 12 * MiB });
  const image = path.join(env.tmp, `${name}.img`);
  await makePartitionedImage(image, { scheme: 'mbr', sizeBytes: 16 * MiB, partitions: [{ sizeBytes: 12 * MiB, type: '83', image: fsImage }, { sizeBytes: 2 * MiB, type: '82' }] });
  return { backupId: await backupImage(env, name, image), tree, image };
}

async function backupImage(env: TestEnv, name: string, image: string, vault?: StorageLocation): Promise<string> {
  await uploadImage(image, { url: env.az.sasUrl('src', 'disks', `${name}.vhd`) });
  const result = await backupDisk({ source: { url: env.sourceUrl(`${name}.vhd`) }, vault: vault ?? env.vault, userKey: env.userKey, pageSize: 256 * KiB, cacheBytes: 4 * MiB });
  return result.backupId;
}

/** Backs up a disk of random bytes (no partition table, no file system Pagewise knows). */
export async function backupRandomDisk(env: TestEnv, name: string): Promise<string> {
  const disk = await env.makeDisk(`${name}.vhd`, 4 * MiB, [{ offset: 0, length: 1 * MiB, kind: 'random', seed: 77 }]);
  const result = await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: 64 * KiB, cacheBytes: 1 * MiB });
  return result.backupId;
}
