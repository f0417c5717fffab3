/**
 * A version-2 vault as a list of blobs by kind and size, and a copy of one vault container into another:
 * the prune fault tests build a vault once, copy it before every killed run, and compare end states by
 * kind and bytes (repack names its new packs and deltas at random, so names alone cannot be compared).
 */
import { ContainerClient } from '@azure/storage-blob';
import type { TestEnv } from './env';

export type BlobKind = 'marker' | 'keys' | 'packs' | 'deltas' | 'generations' | 'tables' | 'staging' | 'manifests' | 'forgotten' | 'marks' | 'other';

export interface InventoryBlob {
  name: string;
  kind: BlobKind;
  bytes: number;
}

const KINDS: [RegExp, BlobKind][] = [
  [/^pagewise-vault(-v2)?\.json$/, 'marker'],
  [/^keys\//, 'keys'],
  [/^packs\//, 'packs'],
  [/^index\/d\//, 'deltas'],
  [/^index\/c\//, 'generations'],
  [/^tables\//, 'tables'],
  [/^staging\//, 'staging'],
  [/^manifests\//, 'manifests'],
  [/^forgotten\//, 'forgotten'],
  [/^gc\/marks\//, 'marks'],
];

export function kindOf(name: string): BlobKind {
  return KINDS.find(([re]) => re.test(name))?.[1] ?? 'other';
}

/** Every blob of the container, sorted by name. */
export async function inventory(container: ContainerClient): Promise<InventoryBlob[]> {
  const out: InventoryBlob[] = [];
  for await (const b of container.listBlobsFlat()) out.push({ name: b.name, kind: kindOf(b.name), bytes: b.properties.contentLength ?? -1 });
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The vault's state as the tests compare it: blobs whose names are fixed by content or backup (manifests,
 * tables, tombstones, staging, keys, marker) by name and size; packs and index deltas (named at random by
 * their writer) as sorted sizes; index generations by name only (their covers lists the deltas a killed and
 * redone repack left, one more name); marks left out (each run writes one, so a killed and rerun prune
 * leaves one more — they are checked on their own).
 */
export function comparable(blobs: InventoryBlob[]): { named: string[]; packs: number[]; deltas: number[]; generations: string[] } {
  const named = blobs.filter((b) => !['packs', 'deltas', 'generations', 'marks'].includes(b.kind)).map((b) => `${b.name} ${b.bytes}`);
  const sizes = (kind: BlobKind) => blobs.filter((b) => b.kind === kind).map((b) => b.bytes).sort((x, y) => x - y);
  return { named, packs: sizes('packs'), deltas: sizes('deltas'), generations: blobs.filter((b) => b.kind === 'generations').map((b) => b.name) };
}

export function countByKind(blobs: InventoryBlob[]): Partial<Record<BlobKind, number>> {
  const out: Partial<Record<BlobKind, number>> = {};
  for (const b of blobs) out[b.kind] = (out[b.kind] ?? 0) + 1;
  return out;
}

/**
 * Copies every blob of the vault container `from` into a new container `to` (created here) and returns
 * its location: byte-for-byte the same vault (the key slots travel with it). Blob creation times are the
 * copy's — the tests' clocks run days ahead of them.
 */
export async function cloneVault(env: TestEnv, from: string, to: string): Promise<{ url: string }> {
  const service = env.az.accounts.vault.service;
  const source = service.getContainerClient(from);
  const target = service.getContainerClient(to);
  await target.create();
  const names: string[] = [];
  for await (const b of source.listBlobsFlat()) names.push(b.name);
  // A few at once: the copies are small and the machine is shared.
  for (let k = 0; k < names.length; k += 8) {
    await Promise.all(
      names.slice(k, k + 8).map(async (name) => {
        const bytes = await source.getBlobClient(name).downloadToBuffer();
        await target.getBlockBlobClient(name).uploadData(bytes);
      }),
    );
  }
  return { url: env.az.sasUrl('vault', to) };
}
