/**
 * Small disks written page by page with known content, backed up generation by generation, and the check
 * the prune fault tests make after every step: each kept backup passes verify with every block read, and
 * the sampled ones restore byte-identical to what the disk held when they were taken.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { backupDisk, BackupRequest, restoreBackup, StorageLocation, verifyBackup } from '../../core';
import { openVaultKeyring } from '../../core/repo/v2/marker';
import { findManifest2 } from '../../core/repo/v2/manifest';
import { v2names } from '../../core/repo/v2/names';
import { readTable } from '../../core/repo/v2/page-table';
import { Vault } from '../../core/repo/vault';
import { DEFAULT_DELETE_AFTER_MS } from '../../core/prune/protocol';
import { DAY_MS } from '../../core/units';
import { prng } from '../../testkit/prng';
import { fileSha256, KiB, TestEnv } from './env';

export const PAGE = 64 * KiB;

/** The prune suites' clock steps: a day, an hour, and D (a marked blob is deleted D after its mark, §26). */
export const DAY = DAY_MS;
export const HOUR = 3600 * 1000;
export const D = DEFAULT_DELETE_AFTER_MS;

/** A page blob whose content the test keeps a copy of (so each generation's SHA-256 is known). */
export class PagedDisk {
  readonly content: Buffer;

  private constructor(
    private readonly env: TestEnv,
    readonly name: string,
    readonly diskBytes: number,
  ) {
    this.content = Buffer.alloc(diskBytes);
  }

  static async create(env: TestEnv, name: string, diskBytes: number): Promise<PagedDisk> {
    await env.sourceClient(name).create(diskBytes);
    return new PagedDisk(env, name, diskBytes);
  }

  /** Writes `pages` with bytes drawn from `seed` (random: no two writes share a block). */
  async write(pages: number[], seed: number): Promise<void> {
    const next = prng(seed);
    for (const page of pages) {
      const bytes = Buffer.alloc(PAGE);
      for (let i = 0; i < PAGE; i += 4) bytes.writeUInt32LE(Math.floor(next() * 2 ** 32), i);
      await this.env.sourceClient(this.name).uploadPages(bytes, page * PAGE, PAGE);
      bytes.copy(this.content, page * PAGE);
    }
  }

  sha256(): string {
    return createHash('sha256').update(this.content).digest('hex');
  }

  /** A backup request of this disk into `vault` (a full-permission SAS: the backup takes and deletes snapshots). */
  request(vault: StorageLocation, extra: Partial<BackupRequest> = {}): BackupRequest {
    return { source: { url: this.env.az.sasUrl('src', 'disks', this.name) }, vault, userKey: this.env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true, ...extra };
  }

  /** Backs the disk up as it is now; returns the backup's ID and the SHA-256 its restore must have. */
  async backup(vault: StorageLocation, extra: Partial<BackupRequest> = {}): Promise<KnownBackup & { kind: string; baseId?: string }> {
    const result = await backupDisk(this.request(vault, extra));
    return { backupId: result.backupId, sha256: this.sha256(), kind: result.kind, baseId: result.base?.backupId };
  }
}

export interface KnownBackup {
  backupId: string;
  sha256: string;
}

let restores = 0;

/** Restores `backup` to a local file and returns the file's SHA-256 (the file is removed). */
export async function restoredSha256(env: TestEnv, vault: StorageLocation, backupId: string): Promise<string> {
  const file = path.join(env.tmp, `restore-${++restores}.img`);
  try {
    await restoreBackup({ backupId, vault, userKey: env.userKey, target: { url: file } });
    return await fileSha256(file);
  } finally {
    await fs.rm(file, { force: true });
  }
}

/**
 * Every backup of `kept` verifies with every block read (no problem); those of `restore` restore
 * byte-identical. Throws with what failed and `when` (the step the test was at), so a failure names it.
 */
export async function expectIntact(env: TestEnv, vault: StorageLocation, kept: KnownBackup[], restore: KnownBackup[], when: string): Promise<void> {
  for (const b of kept) {
    const v = await verifyBackup({ backupId: b.backupId, vault, userKey: env.userKey, readData: true });
    if (!v.ok || v.blocksChecked === 0) throw new Error(`${when}: backup ${b.backupId} fails verify --read-data: ${v.problems.join('; ') || `${v.blocksChecked} blocks checked`}`);
  }
  for (const b of restore) {
    const sha = await restoredSha256(env, vault, b.backupId);
    if (sha !== b.sha256) throw new Error(`${when}: backup ${b.backupId} restores to other bytes (${sha}, expected ${b.sha256})`);
  }
}

/** The blobs a complete version-2 backup names: its manifest, its tables and the packs its tables hint. */
export async function blobsOfBackup(vault: StorageLocation, userKey: Buffer, backupId: string): Promise<{ manifest: string; tables: string[]; packs: string[]; tableIds: string[] }> {
  const store = Vault.open(vault);
  const keyring = await openVaultKeyring(store, userKey);
  const found = await findManifest2(store, keyring, backupId);
  if (!found) throw new Error(`backup ${backupId} has no manifest`);
  const packs = new Set<string>();
  for (const t of found.manifest.tables) {
    for (const r of await readTable(store, keyring, t, found.manifest.pagesPerTable)) for (const c of r.chunks) if (c.contentId.some((b) => b !== 0)) packs.add(v2names.pack(c.pack));
  }
  const tableIds = found.manifest.tables.map((t) => t.tableId);
  return { manifest: found.name, tables: tableIds.map((id) => v2names.table(id)), packs: [...packs].sort(), tableIds };
}

/** Which of `names` exist in the vault. */
export async function existing(vault: StorageLocation, names: string[]): Promise<string[]> {
  const store = Vault.open(vault);
  const out: string[] = [];
  for (const name of names) if (await store.exists(name)) out.push(name);
  return out;
}
