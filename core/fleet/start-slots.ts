/**
 * The start budget (#17): a fixed set of slot blobs per scope — the task hub, and each source storage
 * account — in one container of the task hub's account. A backup runs only while it holds a slot of
 * every scope it counts against; taking a slot is acquiring the slot blob's lease (atomic in Azure and
 * Azurite). Layout and lease rules: docs/DURABLE.md "Start budget" (layout version 1).
 */
import { createHash } from 'node:crypto';
import type { BlobItem, ContainerClient } from '@azure/storage-blob';
import { PagewiseError } from '../errors';
import { redact } from '../redact';

export const START_SLOTS_LAYOUT = 'v1';
/** How long a slot taken for an instance that does not exist yet is safe from reclaim (the start in between). */
export const START_GRACE_MS = 5 * 60_000;

export type SlotScopeKind = 'hub' | 'account';

export interface SlotScope {
  kind: SlotScopeKind;
  /** `hub` for the task hub; the storage account's name (lower case) for an account scope. */
  name: string;
  /** Slots in this scope (its setting). */
  size: number;
}

/** A slot a holder took: what travels in an orchestration input to release it (no secret: a lease ID is not a credential). */
export interface HeldSlot {
  kind: SlotScopeKind;
  name: string;
  index: number;
  leaseId: string;
}

/** Whether an orchestration instance still runs (Pending or Running): asked of the durable client by the caller. */
export type HolderRunning = (instanceId: string) => Promise<boolean>;

/** The lease while a taker records itself as the holder (Azure's shortest finite lease is 15 s). */
export const RECORD_LEASE_SECONDS = 15;

const ACCOUNT_NAME_RE = /^[a-z0-9]{1,64}$/;
const HOLDER_RE = /^[A-Za-z0-9][A-Za-z0-9:._+-]{0,255}$/;
const MAX_SLOTS = 1000;

/** The blob of one slot: `v1/hub/<n>` or `v1/account/<account>/<n>`. */
export function slotBlobName(scope: Pick<SlotScope, 'kind' | 'name'>, index: number): string {
  return scope.kind === 'hub' ? `${START_SLOTS_LAYOUT}/hub/${index}` : `${START_SLOTS_LAYOUT}/account/${scope.name}/${index}`;
}

function scopePrefix(scope: Pick<SlotScope, 'kind' | 'name'>): string {
  return scope.kind === 'hub' ? `${START_SLOTS_LAYOUT}/hub/` : `${START_SLOTS_LAYOUT}/account/${scope.name}/`;
}

/** The lease ID a holder proposes: derived from its instance ID, so a holder asking again gets its own lease back (idempotent). */
export function holderLeaseId(holder: string): string {
  const h = createHash('sha256').update(`pagewise-start-slot\n${holder}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function checkScope(scope: SlotScope): void {
  if (scope.kind === 'account' && !ACCOUNT_NAME_RE.test(scope.name)) throw new PagewiseError('BadInput', `a start-slot scope names an invalid storage account "${redact(scope.name).slice(0, 64)}"`);
  if (!Number.isSafeInteger(scope.size) || scope.size < 1 || scope.size > MAX_SLOTS) throw new PagewiseError('BadInput', `a start-slot scope must have 1 to ${MAX_SLOTS} slots, got ${scope.size}`);
}

const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number })?.statusCode;

/** The outcome of a take: the slots held, or none with the scope that had no slot free. */
export type TakeResult = { taken: true; slots: HeldSlot[] } | { taken: false; fullScope: SlotScope };

export class StartSlots {
  constructor(
    private readonly container: ContainerClient,
    private readonly isRunning: HolderRunning,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * One slot of every scope for `holder`, or none: scopes are taken in order and, when one has no slot
   * free, those already taken are released. A holder that holds a slot of a scope already keeps it
   * (a message delivered again takes nothing twice).
   */
  async take(holder: string, scopes: SlotScope[]): Promise<TakeResult> {
    if (!HOLDER_RE.test(holder)) throw new PagewiseError('BadInput', 'a start-slot holder must be an orchestration instance ID');
    scopes.forEach(checkScope);
    await this.ensureContainer();
    const held: HeldSlot[] = [];
    for (const scope of scopes) {
      const slot = await this.takeOne(holder, scope);
      if (!slot) {
        await this.release(held);
        return { taken: false, fullScope: scope };
      }
      held.push(slot);
    }
    return { taken: true, slots: held };
  }

  /** Releases slots (a lease already released, expired or taken over is no error: the slot is not this holder's any more). */
  async release(slots: HeldSlot[]): Promise<void> {
    for (const slot of slots) {
      const blob = this.container.getBlobClient(slotBlobName(slot, slot.index));
      try {
        await blob.setMetadata({}, { conditions: { leaseId: slot.leaseId } });
        await blob.getBlobLeaseClient(slot.leaseId).releaseLease();
      } catch (err) {
        const status = statusOf(err);
        if (status !== 409 && status !== 412 && status !== 404) throw err;
      }
    }
  }

  /**
   * Whether a take in `scope` could succeed now: a slot free, or one (picked at random) whose holder no
   * longer runs. One listing, at most one status look: a start waiting for a slot checks this before it
   * does any work of its own.
   */
  async hasRoom(scope: SlotScope): Promise<boolean> {
    checkScope(scope);
    const held = new Map<number, BlobItem>();
    for (const item of await this.list(scope).catch((err) => (statusOf(err) === 404 ? [] : Promise.reject(err)))) {
      const index = Number(item.name.slice(scopePrefix(scope).length));
      if (Number.isSafeInteger(index) && index >= 0 && index < scope.size && item.properties.leaseState === 'leased') held.set(index, item);
    }
    if (held.size < scope.size) return true;
    const candidates = [...held.values()].filter((item) => this.pastGrace(item));
    if (candidates.length === 0) return false;
    return !(await this.isRunning(candidates[Math.floor(Math.random() * candidates.length)].metadata!.holder!));
  }

  /** Holders of a scope's slots now (for reports and tests): index → instance ID. */
  async holders(scope: Pick<SlotScope, 'kind' | 'name'>): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    for (const item of await this.list(scope)) {
      const index = Number(item.name.slice(scopePrefix(scope).length));
      if (item.properties.leaseState === 'leased' && item.metadata?.holder) out.set(index, item.metadata.holder);
    }
    return out;
  }

  private async ensureContainer(): Promise<void> {
    try {
      await this.container.createIfNotExists();
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
    }
  }

  private async list(scope: Pick<SlotScope, 'kind' | 'name'>): Promise<BlobItem[]> {
    const items: BlobItem[] = [];
    for await (const item of this.container.listBlobsFlat({ prefix: scopePrefix(scope), includeMetadata: true })) items.push(item);
    return items;
  }

  private async takeOne(holder: string, scope: SlotScope): Promise<HeldSlot | undefined> {
    const leaseId = holderLeaseId(holder);
    const byIndex = new Map<number, BlobItem>();
    for (const item of await this.list(scope)) {
      const index = Number(item.name.slice(scopePrefix(scope).length));
      if (Number.isSafeInteger(index) && index >= 0 && index < scope.size) byIndex.set(index, item);
    }
    // Already this holder's (a redelivered message): the same slot again.
    for (const [index, item] of byIndex) {
      if (item.properties.leaseState === 'leased' && item.metadata?.holder === holder) {
        if (await this.acquire(holder, scope, index, leaseId)) return { kind: scope.kind, name: scope.name, index, leaseId };
      }
    }
    // Free slots first (missing blobs, released or broken leases), from a holder-dependent start so racing takers spread out.
    const first = parseInt(leaseId.slice(0, 8), 16) % scope.size;
    const order = Array.from({ length: scope.size }, (_, k) => (first + k) % scope.size);
    const busy: number[] = [];
    for (const index of order) {
      const item = byIndex.get(index);
      if (item && item.properties.leaseState === 'leased') {
        busy.push(index);
        continue;
      }
      if (!item) await this.createSlot(scope, index);
      if (await this.acquire(holder, scope, index, leaseId)) return { kind: scope.kind, name: scope.name, index, leaseId };
    }
    // Then a slot whose holder no longer runs: taken over (break, then acquire — a racing taker may win it).
    // One holder asked per take, picked at random among those past the start grace: a full budget with
    // thousands of waiting starts costs one status look each, and a dead holder is still found soon.
    const candidates = busy.filter((index) => this.pastGrace(byIndex.get(index)!));
    const pick = candidates.length > 0 ? [candidates[Math.floor(Math.random() * candidates.length)]] : [];
    for (const index of pick) {
      const item = byIndex.get(index)!;
      if (await this.isRunning(item.metadata!.holder!)) continue;
      try {
        // Only the lease listed: a slot another taker re-recorded meanwhile (its ETag moved) is left alone.
        await this.container.getBlobClient(slotBlobName(scope, index)).getBlobLeaseClient().breakLease(0, { conditions: { ifMatch: item.properties.etag } });
      } catch (err) {
        if (statusOf(err) !== 409 && statusOf(err) !== 412) throw err;
        continue;
      }
      if (await this.acquire(holder, scope, index, leaseId)) return { kind: scope.kind, name: scope.name, index, leaseId };
    }
    return undefined;
  }

  /**
   * A held slot that may be reclaimed if its holder no longer runs: recorded, and taken more than the start
   * grace ago (a holder younger than that may still be between its take and its start). Leased but not
   * recorded yet is a taker between its lease and its record: that short lease expires by itself.
   */
  private pastGrace(item: BlobItem): boolean {
    if (!item.metadata?.holder) return false;
    const takenAt = Date.parse(item.metadata.takenat ?? '');
    return !Number.isFinite(takenAt) || this.now() - takenAt >= START_GRACE_MS;
  }

  private async createSlot(scope: Pick<SlotScope, 'kind' | 'name'>, index: number): Promise<void> {
    try {
      await this.container.getBlockBlobClient(slotBlobName(scope, index)).upload('', 0, { conditions: { ifNoneMatch: '*' } });
    } catch (err) {
      // Another taker made it (409/412), or leased it already.
      if (statusOf(err) !== 409 && statusOf(err) !== 412) throw err;
    }
  }

  /**
   * Acquires the slot's lease and records the holder under it; false when another holds it. The lease is
   * short (RECORD_LEASE_SECONDS) until the holder is recorded, then infinite (same lease ID, new
   * duration): a taker that dies in between leaves a slot that frees itself.
   */
  private async acquire(holder: string, scope: Pick<SlotScope, 'kind' | 'name'>, index: number, leaseId: string): Promise<boolean> {
    const blob = this.container.getBlobClient(slotBlobName(scope, index));
    const lease = blob.getBlobLeaseClient(leaseId);
    try {
      await lease.acquireLease(RECORD_LEASE_SECONDS);
      await blob.setMetadata({ holder, takenat: new Date(this.now()).toISOString(), layout: START_SLOTS_LAYOUT }, { conditions: { leaseId } });
      await lease.acquireLease(-1);
    } catch (err) {
      // Held by another, or broken under us by a reclaimer: not ours.
      if (statusOf(err) === 409 || statusOf(err) === 412 || statusOf(err) === 404) return false;
      throw err;
    }
    return true;
  }
}
