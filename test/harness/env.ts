/**
 * Test environment: a real Azurite (blob and queue services) on free loopback ports with a "src" (cloud) account
 * and a "vault" account, containers for disks, the vault and restore targets, and helpers to create disks.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import { startAzurite, AzuriteInstance } from '../../testkit/azurite';
import { writeDisk, DiskRegion, SampleDisk } from '../../testkit/sample-disk';
import { makeVaultV1 } from '../../testkit/vault-v1';
import { configureStorageEndpoints, generateKey, StorageLocation } from '../../core';

export interface TestEnv {
  az: AzuriteInstance;
  userKey: Buffer;
  vault: StorageLocation;
  tmp: string;
  /** A read-only SAS URL of a source disk. */
  sourceUrl(name: string): string;
  /** The SDK client of a source disk (page blob) with the account key: for a test's own writes, clears and snapshots. */
  sourceClient(name: string): PageBlobClient;
  /** Creates a source disk (page blob) with the given regions. */
  makeDisk(name: string, diskBytes: number, regions: DiskRegion[]): Promise<SampleDisk & { source: StorageLocation }>;
  /**
   * A new vault container on the vault account: empty (its first backup makes it a vault of the current
   * format), or with `version: 1` a version-1 vault as an older Pagewise left it (makeVaultV1).
   */
  makeVault(container: string, options?: { version?: 1 }): Promise<StorageLocation>;
  /** A SAS URL for a restore target page blob in the vault account. */
  targetUrl(name: string): string;
  /**
   * App settings of a local Functions app on this emulator: the vault, the user key, the emulator's
   * endpoints as the allow list, 64 KiB pages and a 256 KiB cache; `overrides` win.
   */
  appSettings(overrides?: Record<string, string | undefined>): Record<string, string | undefined>;
  /** SHA-256 of a page blob's whole content. */
  blobSha256(url: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startEnv(): Promise<TestEnv> {
  const az = await startAzurite({ accounts: ['src', 'vault'] });
  // The emulator's endpoints are configured explicitly, as a user of the CLI would (PAGEWISE_STORAGE_ENDPOINTS).
  configureStorageEndpoints(az.storageEndpoints.split(','), 'PAGEWISE_STORAGE_ENDPOINTS');
  await az.accounts.src.service.getContainerClient('disks').create();
  await az.accounts.vault.service.getContainerClient('vault').create();
  await az.accounts.vault.service.getContainerClient('restores').create();
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-test-'));
  const env: TestEnv = {
    az,
    tmp,
    userKey: generateKey(),
    vault: { url: az.sasUrl('vault', 'vault') },
    sourceUrl: (name) => az.sasUrl('src', 'disks', name, { permissions: 'r' }),
    sourceClient: (name) => az.accounts.src.service.getContainerClient('disks').getPageBlobClient(name),
    targetUrl: (name) => az.sasUrl('vault', 'restores', name),
    async makeVault(container, options = {}) {
      await az.accounts.vault.service.getContainerClient(container).create();
      const location = { url: az.sasUrl('vault', container) };
      if (options.version === 1) await makeVaultV1(location);
      return location;
    },
    async makeDisk(name, diskBytes, regions) {
      const disk = await writeDisk(az.accounts.src.service.getContainerClient('disks').getPageBlobClient(name), diskBytes, regions);
      return { ...disk, source: { url: env.sourceUrl(name) } };
    },
    appSettings: (overrides = {}) => ({
      PAGEWISE_VAULT_URL: env.vault.url,
      PAGEWISE_USER_KEY: env.userKey.toString('base64'),
      PAGEWISE_ALLOWED_ACCOUNTS: az.storageEndpoints,
      PAGEWISE_PAGE_SIZE: String(64 * KiB),
      PAGEWISE_CACHE_BYTES: String(256 * KiB),
      ...overrides,
    }),
    async blobSha256(url) {
      const buf = await new PageBlobClient(url, new AnonymousCredential()).downloadToBuffer();
      return createHash('sha256').update(buf).digest('hex');
    },
    async stop() {
      await az.stop();
      await fs.rm(tmp, { recursive: true, force: true });
    },
  };
  return env;
}

export { fileSha256 } from '../../testkit/disk-hash';
export { makeVaultV1 } from '../../testkit/vault-v1';

export const KiB = 1024;
export const MiB = 1024 * 1024;
