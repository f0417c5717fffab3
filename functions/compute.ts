/**
 * Read access to a managed-disk snapshot through the Compute API (`beginGrantAccess`), using the
 * app's ARM context (its managed identity; locally PAGEWISE_ARM_ENDPOINT may name the loopback Compute
 * stand-in). Behind a small interface, so tests may also hand the Event Grid handler their own SnapshotAccess.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { armContext, endpointOf, endpointRefused, isManagedDiskEndpoint, joinSas, PagewiseError, parseStorageUrl, splitSas } from '../core';
import { openRef, sealRef } from './sealedRefs';
import type { ArmContext, ManagedDiskSource, ManagedSnapshotAccess } from '../core';
import { appSettings } from './settings';
import { snapshotRefOf } from './events/diskEvents';
import type { DiskRef } from '../orchestrations/contracts';

export interface SnapshotRef {
  subscriptionId: string;
  resourceGroup: string;
  snapshotName: string;
}

export interface SnapshotAccess {
  /** A read SAS URL of the snapshot's VHD, valid for `durationInSeconds`. */
  grantRead(snapshot: SnapshotRef, durationInSeconds: number): Promise<string>;
  /** What Compute says of the snapshot's disk (its creationData): the backup's disk identity (FORMAT.md §21.1). */
  diskOf?(snapshot: SnapshotRef): Promise<ManagedDiskSource>;
  /** Ends the read access `grantRead` gave (Compute beginRevokeAccess); a snapshot already gone is no failure. */
  revokeRead?(snapshot: SnapshotRef): Promise<void>;
  /** The snapshot's size in bytes (Compute diskSizeBytes): how long its grant lives (functions/snapshotGrants.ts); undefined when Compute does not say. */
  sizeBytes?(snapshot: SnapshotRef): Promise<number | undefined>;
  /** Whether the snapshot resource exists: an incremental's base must (FORMAT.md §21.2). Without it, no managed-disk backup is incremental. */
  exists?(snapshot: SnapshotRef): Promise<boolean>;
  /** Whether Pagewise took the snapshot for a VM backup (tag `pagewise: taken`, #16): its backup is that VM backup's, not the event's. */
  takenByPagewise?(snapshot: SnapshotRef): Promise<boolean>;
}

/** The tag Pagewise puts on every capture it takes (SPEC #16): only resources with it are ever deleted by Pagewise. */
export const PAGEWISE_TAKEN_TAG = { name: 'pagewise', value: 'taken' } as const;

/** The disk identity facts of a Compute `Snapshot` resource (its `id` and `creationData`). */
export function managedDiskOf(snapshot: { id?: string; creationData?: { sourceUniqueId?: string; sourceResourceId?: string } }): ManagedDiskSource {
  const { sourceUniqueId, sourceResourceId } = snapshot.creationData ?? {};
  return {
    ...(sourceUniqueId ? { sourceUniqueId } : {}),
    ...(sourceResourceId ? { armDiskId: sourceResourceId } : {}),
    ...(snapshot.id ? { snapshotResourceId: snapshot.id } : {}),
  };
}

/**
 * The production SnapshotAccess: @azure/arm-compute over the app's ARM context (Azure's endpoint and the
 * app's identity; PAGEWISE_ARM_ENDPOINT / PAGEWISE_ARM_TOKEN for a sovereign cloud or the test stand-in).
 */
export class ComputeSnapshotAccess implements SnapshotAccess {
  private readonly lro: { updateIntervalInMs?: number };

  constructor(private readonly ctx: ArmContext = armContext({}, appSettings())) {
    this.lro = ctx.pollIntervalMs === undefined ? {} : { updateIntervalInMs: ctx.pollIntervalMs };
  }

  async grantRead(snapshot: SnapshotRef, durationInSeconds: number): Promise<string> {
    const client = await this.client(snapshot);
    assertSnapshotReadable(snapshot.snapshotName, await client.snapshots.get(snapshot.resourceGroup, snapshot.snapshotName));
    const access = await client.snapshots.beginGrantAccessAndWait(snapshot.resourceGroup, snapshot.snapshotName, { access: 'Read', durationInSeconds }, this.lro);
    if (!access.accessSAS) throw new Error(`Compute granted no SAS for snapshot ${snapshot.snapshotName}`);
    return access.accessSAS;
  }

  async diskOf(snapshot: SnapshotRef): Promise<ManagedDiskSource> {
    const client = await this.client(snapshot);
    return managedDiskOf(await client.snapshots.get(snapshot.resourceGroup, snapshot.snapshotName));
  }

  async sizeBytes(snapshot: SnapshotRef): Promise<number | undefined> {
    const client = await this.client(snapshot);
    const s = await client.snapshots.get(snapshot.resourceGroup, snapshot.snapshotName);
    return s.diskSizeBytes ?? (s.diskSizeGB !== undefined ? s.diskSizeGB * 1024 ** 3 : undefined);
  }

  async revokeRead(snapshot: SnapshotRef): Promise<void> {
    const client = await this.client(snapshot);
    try {
      await client.snapshots.beginRevokeAccessAndWait(snapshot.resourceGroup, snapshot.snapshotName, this.lro);
    } catch (err) {
      if (!isNotFound(err)) throw err; // deleted meanwhile: nothing left to revoke
    }
  }

  async exists(snapshot: SnapshotRef): Promise<boolean> {
    const client = await this.client(snapshot);
    try {
      await client.snapshots.get(snapshot.resourceGroup, snapshot.snapshotName);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async takenByPagewise(snapshot: SnapshotRef): Promise<boolean> {
    const client = await this.client(snapshot);
    const { tags } = await client.snapshots.get(snapshot.resourceGroup, snapshot.snapshotName);
    return tags?.[PAGEWISE_TAKEN_TAG.name] === PAGEWISE_TAKEN_TAG.value;
  }

  private client(snapshot: SnapshotRef) {
    // Loaded lazily by the context: the Compute SDK is large and only snapshot events need it.
    return this.ctx.compute(snapshot.subscriptionId);
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: string } | undefined;
  return e?.statusCode === 404 || e?.code === 'ResourceNotFound' || e?.code === 'ResourceGroupNotFound';
}

/** How long a base snapshot's read SAS lives: the plan's diff alone reads it (seconds even for a large disk), and it is revoked after. */
export const BASE_SAS_SECONDS = 3600;

/**
 * Core's ManagedSnapshotAccess (an incremental's base snapshot resource, by the ARM ID its manifest
 * records) over this app's SnapshotAccess; undefined when the access cannot tell whether a snapshot
 * exists (then every managed-disk backup is full). An ARM ID not of a snapshot's form is no base: the
 * parts become the path of a Compute request made with the app's identity.
 */
export function managedSnapshotAccess(access: SnapshotAccess, durationInSeconds = BASE_SAS_SECONDS): ManagedSnapshotAccess | undefined {
  const exists = access.exists?.bind(access);
  if (!exists) return undefined;
  const ref = (id: string): SnapshotRef => {
    const parsed = snapshotRefOf(id);
    if (!parsed) throw new PagewiseError('BadInput', `${JSON.stringify(id.slice(0, 200))} is not the ARM ID of a managed-disk snapshot`);
    return parsed;
  };
  return {
    exists: async (id) => {
      const parsed = snapshotRefOf(id);
      return parsed ? exists(parsed) : false;
    },
    grantRead: async (id) => access.grantRead(ref(id), durationInSeconds),
    revokeRead: async (id) => {
      if (access.revokeRead) await access.revokeRead(ref(id));
    },
  };
}

/** What of a snapshot resource says whether its data is all there (Compute `Snapshot` properties). */
export interface SnapshotCompletion {
  provisioningState?: string;
  /** Set for a snapshot made by CopyStart (e.g. a cross-region copy): its background copy's progress. */
  completionPercent?: number;
  copyCompletionError?: { errorMessage?: string };
}

/**
 * A snapshot written by CopyStart exists (and its write event fires) before its background copy has
 * finished: refuse to read it until it has. Not ready yet throws a plain error, so the Event Grid
 * trigger fails and Event Grid delivers the event again later; a failed copy never will be.
 */
export function assertSnapshotReadable(name: string, snapshot: SnapshotCompletion): void {
  if (snapshot.copyCompletionError) {
    throw new PagewiseError('SourceNotFound', `the background copy of snapshot ${name} failed (${snapshot.copyCompletionError.errorMessage ?? 'no reason given'}): there is nothing whole to back up`);
  }
  if (snapshot.provisioningState && snapshot.provisioningState !== 'Succeeded') {
    throw new Error(`snapshot ${name} is not ready (provisioning state ${snapshot.provisioningState}); the event will be delivered again`);
  }
  if (snapshot.completionPercent !== undefined && snapshot.completionPercent < 100) {
    throw new Error(`snapshot ${name} is still being copied (${snapshot.completionPercent}% done); the event will be delivered again`);
  }
}

let current: SnapshotAccess | undefined;
/** The one made from the settings in force, and the settings it was made from (they change between local apps). */
let made: { env: object; access: SnapshotAccess } | undefined;

/** The SnapshotAccess the Event Grid handler uses: one provided, else Compute over the app settings' ARM context. */
export function snapshotAccess(): SnapshotAccess {
  if (current) return current;
  const env = appSettings();
  if (made?.env !== env) made = { env, access: new ComputeSnapshotAccess(armContext({}, env)) };
  return made.access;
}

/** Replaces the Compute client (tests; undefined: back to Compute over the app settings). */
export function useSnapshotAccess(access: SnapshotAccess | undefined): void {
  current = access;
}

/*
 * A managed-disk export host (md-….blob.storage.azure.net) is reached only for a URL this app's own
 * grant returned. The grant is sealed with a MAC under a key derived from the user key, so nothing a
 * caller can send (an HTTP body, a policy, an event, an orchestration input through the durable API)
 * makes the app request such a host: without the key there is no valid seal.
 */
function grantMacKey(userKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', userKey, Buffer.alloc(0), 'pagewise/compute-grant/v1', 32));
}

/** The MAC of a grant: its URL, and the snapshot's identity when the grant carries one (a seal without it is the URL's alone, as before). */
function grantSeal(url: string, userKey: Buffer, managedDisk?: ManagedDiskSource): string {
  const mac = createHmac('sha256', grantMacKey(userKey)).update(url);
  if (managedDisk) mac.update(`\n${JSON.stringify([managedDisk.sourceUniqueId ?? null, managedDisk.armDiskId ?? null, managedDisk.snapshotResourceId ?? null])}`);
  return mac.digest('hex');
}

/**
 * The backup source for a URL the Compute grant just returned, with the grant's MAC: on a managed-disk
 * export host, or on an endpoint the app allows anyway (`allowed`, e.g. a local stand-in for Compute).
 * The MAC covers the URL as the activity will open it again; its SAS is sealed for the task hub.
 */
export function grantedSource(url: string, userKey: Buffer, allowed: ReadonlySet<string> = new Set(), managedDisk?: ManagedDiskSource): DiskRef {
  const what = 'the URL the Compute grant returned';
  const parsed = parseStorageUrl(url, 'blob', what);
  if (!isManagedDiskEndpoint(parsed) && !allowed.has(endpointOf(parsed))) throw endpointRefused(what);
  const split = splitSas(url);
  const whole = joinSas(split.url, split.sas);
  const identity = managedDisk && Object.keys(managedDisk).length > 0 ? managedDisk : undefined;
  return sealRef({ url: whole, grantedBy: 'compute', grantSeal: grantSeal(whole, userKey, identity), ...(identity ? { managedDisk: identity } : {}) }, userKey);
}

/**
 * True when `source` carries the seal of this app's own grant for exactly its URL: its SAS opens under
 * this app's key for this URL, and the grant's MAC matches the URL so opened (and its managedDisk).
 */
export function isOwnGrant(source: DiskRef, userKey: Buffer): boolean {
  if (source.grantedBy !== 'compute' || typeof source.grantSeal !== 'string' || !/^[0-9a-f]{64}$/.test(source.grantSeal)) return false;
  let url: string;
  try {
    url = openRef(source, userKey, 'the granted source');
  } catch {
    return false; // sealed by another key, for another URL, or altered
  }
  return timingSafeEqual(Buffer.from(source.grantSeal, 'hex'), Buffer.from(grantSeal(url, userKey, source.managedDisk), 'hex'));
}
