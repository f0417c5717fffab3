/**
 * Disk references as they enter and leave the durable task hub: a starter seals a caller's SAS before
 * the reference goes into an orchestration input (so no history, status or task-hub blob holds it);
 * an activity opens it again right where it calls storage. Key: HKDF of the app's user key
 * (core/crypto/seal.ts, docs/DURABLE.md "Sealed URLs").
 */
import { displayUrl, PagewiseError, sealUrl, splitSas, taskHubSealKey, unsealUrl } from '../core';
import type { DiskRef } from '../orchestrations/contracts';

/**
 * A reference fit for the task hub: its URL without the SAS, the SAS sealed. A sealed one stays as it
 * is, unless its URL carries a SAS too: that one would reach the task hub raw, and the seal never opens.
 */
export function sealRef(ref: DiskRef, userKey: Buffer): DiskRef {
  if (ref.sealedSas !== undefined) {
    if (splitSas(ref.url).sas !== undefined) throw new PagewiseError('BadInput', `${displayUrl(ref.url)} carries a SAS beside a sealed one: give the SAS once`);
    return ref;
  }
  const { url, sealedSas } = sealUrl(ref.url, taskHubSealKey(userKey));
  return { ...ref, url, ...(sealedSas ? { sealedSas } : {}) };
}

/** The URL to call storage with: the reference's URL with its SAS opened (a refused seal is a BadInput). */
export function openRef(ref: DiskRef, userKey: Buffer, what: string): string {
  return unsealUrl(ref, taskHubSealKey(userKey), what);
}
