/**
 * A version-1 vault as an older Pagewise left it: the version-1 marker (docs/FORMAT.md §3) in an empty
 * container, so every later backup there is written in format 1 (a version-1 vault stays writable).
 * Tests of the version-1 format itself (tampered segments, manifests, batch records) start from one.
 */
import { ContainerClient, RestError } from '@azure/storage-blob';
import type { StorageLocation } from '../core';

/** The marker's text exactly as a version-1 writer put it (core/repo/vault.ts of #1–#11). */
export function vaultV1Marker(createdAt = new Date()): string {
  return JSON.stringify({ format: 'pagewise-vault', version: 1, createdAt: createdAt.toISOString() });
}

/**
 * Writes the version-1 marker into the vault's container, which must exist (a container SAS cannot create
 * it) and hold no blob yet: a marker put beside backups of another format would describe a vault that
 * never existed. Never over an existing marker (If-None-Match: *, as the writer did).
 */
export async function makeVaultV1(location: StorageLocation): Promise<void> {
  const container = new ContainerClient(location.url);
  const first = await container.listBlobsFlat().byPage({ maxPageSize: 1 }).next();
  const names = first.done ? [] : first.value.segment.blobItems.map((b) => b.name);
  if (names.length > 0) throw new Error(`makeVaultV1: the container ${container.containerName} is not empty (it holds ${names[0]})`);
  const marker = vaultV1Marker();
  try {
    await container.getBlockBlobClient('pagewise-vault.json').upload(marker, Buffer.byteLength(marker), {
      blobHTTPHeaders: { blobContentType: 'application/json' },
      conditions: { ifNoneMatch: '*' },
    });
  } catch (err) {
    if (err instanceof RestError && err.statusCode === 404) throw new Error(`makeVaultV1: the container ${container.containerName} does not exist; create it first`);
    throw err;
  }
}
