/**
 * One local runtime per task hub: a blob lease on `runtime.lock` in the task-hub container, taken before
 * the runtime starts, renewed while it runs, released when it stops (layout: docs/DURABLE.md "One runtime
 * per task hub", version 1). A second runtime is refused naming the holder; a holder that is provably gone
 * (this host, its process no longer exists) is waited for until its lease lapses, then taken over.
 */
import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import { BlobLeaseClient, BlockBlobClient, ContainerClient, RestError } from '@azure/storage-blob';
import { PagewiseError, printable, redact } from '../core';

export const TASK_HUB_LOCK_BLOB = 'runtime.lock';
/** Version of the lock blob's metadata layout (metadata `pagewise_lock`). */
export const TASK_HUB_LOCK_VERSION = '1';
/** Azure's shortest finite lease: a killed holder blocks its task hub for at most this long after its last renewal. */
export const TASK_HUB_LEASE_SECONDS = 15;
/** A third of the lease: two renewals may fail (a storage hiccup) before the lease can lapse. */
export const TASK_HUB_RENEW_EVERY_MS = 5_000;
/** Writes stop this long before the lease could lapse unconfirmed (a request in flight must land inside it). */
const SAFETY_MS = 3_000;
/** How often a runtime waiting for a gone holder's lease tries again. */
const RETRY_EVERY_MS = 500;
/** Longest a holder's metadata may be missing (written right after its acquire) before it is called unknown. */
const HOLDER_UNWRITTEN_MS = 2_000;
const LEASE_MS = TASK_HUB_LEASE_SECONDS * 1000;
/** Runtime IDs of the leases this process holds now. */
const heldHere = new Set<string>();

/** Who holds a task hub (all of it printable: no secret is ever written here). */
export interface TaskHubHolder {
  /** Random per runtime: tells two runtimes of one process apart. */
  runtimeId: string;
  host: string;
  pid: number;
  /** What runs it, e.g. "pagewise serve at http://127.0.0.1:7071". */
  role: string;
  /** When it took the task hub (ISO 8601). */
  since: string;
  /** Its last renewal (ISO 8601): the lease lapses at most TASK_HUB_LEASE_SECONDS after it. */
  renewedAt: string;
}

export interface TaskHubLease {
  readonly holder: TaskHubHolder;
  /** `account/container` of the task hub (for messages). */
  readonly taskHub: string;
  /** Settles with the reason once the lease is lost (broken, taken over, unrenewable); never while held. */
  readonly lost: Promise<Error>;
  /** Throws unless the lease is held and was confirmed recently; renews first when it was not. Call before every write of instance state. */
  confirm(): Promise<void>;
  /** Renames what runs it (e.g. once serve knows its URL). */
  describe(role: string): Promise<void>;
  /** Stops renewing and releases the lease (a no-op once lost or released). */
  release(): Promise<void>;
}

export interface TaskHubLeaseOptions {
  role: string;
  /** Told when the runtime waits for a gone holder's lease to lapse. */
  log?: (line: string) => void;
}

/** Takes the task hub for this runtime, or throws TaskHubInUse naming who holds it. */
export async function takeTaskHubLease(container: ContainerClient, options: TaskHubLeaseOptions): Promise<TaskHubLease> {
  await container.createIfNotExists();
  const blob = container.getBlockBlobClient(TASK_HUB_LOCK_BLOB);
  await createLockBlob(blob);
  const taskHub = `${container.accountName}/${container.containerName}`;
  const leaseClient = blob.getBlobLeaseClient(randomUUID());
  let waitingUntil: number | undefined;
  let unwrittenSince: number | undefined;
  for (;;) {
    if (await tryAcquire(leaseClient)) break;
    const found = await readHolder(blob);
    const now = Date.now();
    if (!found) {
      // Just taken by another runtime that has not written its name yet: look again, briefly.
      unwrittenSince ??= now;
      if (now - unwrittenSince < HOLDER_UNWRITTEN_MS) {
        await sleep(RETRY_EVERY_MS);
        continue;
      }
      throw inUse(taskHub, undefined, now);
    }
    unwrittenSince = undefined;
    if (!isGone(found)) throw inUse(taskHub, found, now);
    // Its process is gone from this host: its lease lapses at most LEASE_MS after its last renewal.
    if (waitingUntil === undefined) {
      waitingUntil = Math.min(now, renewedTime(found)) + LEASE_MS + SAFETY_MS;
      options.log?.(
        `task hub ${taskHub}: its last runtime (${describeHolder(found)}) is gone; taking it over when its lease lapses, in at most ${Math.ceil((waitingUntil - now) / 1000)} s`,
      );
    } else if (now > waitingUntil) {
      throw inUse(taskHub, found, now);
    }
    await sleep(RETRY_EVERY_MS);
  }
  const since = new Date().toISOString();
  const holder: TaskHubHolder = { runtimeId: randomUUID(), host: os.hostname(), pid: process.pid, role: options.role, since, renewedAt: since };
  const lease = new HeldLease(blob, leaseClient, holder, taskHub, options.log);
  heldHere.add(holder.runtimeId);
  try {
    await lease.writeHolder();
  } catch (err) {
    await lease.release();
    throw err;
  }
  lease.startRenewing();
  return lease;
}

class HeldLease implements TaskHubLease {
  readonly lost: Promise<Error>;
  private lose!: (reason: Error) => void;
  private lostReason: Error | undefined;
  private released = false;
  private lastConfirmed = Date.now();
  private renewing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly blob: BlockBlobClient,
    private readonly leaseClient: BlobLeaseClient,
    readonly holder: TaskHubHolder,
    readonly taskHub: string,
    private readonly log: ((line: string) => void) | undefined,
  ) {
    this.lost = new Promise<Error>((resolve) => (this.lose = resolve));
  }

  startRenewing(): void {
    this.timer = setInterval(() => void this.renew(), TASK_HUB_RENEW_EVERY_MS);
    this.timer.unref(); // the runtime's own work keeps the process alive, not its lease
  }

  async confirm(): Promise<void> {
    if (this.lostReason) throw this.lostReason;
    if (this.released) throw new PagewiseError('TaskHubInUse', `this runtime has released task hub ${this.taskHub}`);
    if (Date.now() - this.lastConfirmed > TASK_HUB_RENEW_EVERY_MS * 1.5) await this.renew();
    if (this.lostReason) throw this.lostReason;
    if (Date.now() - this.lastConfirmed >= LEASE_MS - SAFETY_MS) {
      this.markLost(`its lease on task hub ${this.taskHub} could not be renewed for ${Math.round((Date.now() - this.lastConfirmed) / 1000)} s`);
      throw this.lostReason!;
    }
  }

  async describe(role: string): Promise<void> {
    this.holder.role = role;
    await this.writeHolder();
  }

  async writeHolder(): Promise<void> {
    await this.blob.setMetadata(holderMetadata(this.holder), { conditions: { leaseId: this.leaseClient.leaseId } });
  }

  private renew(): Promise<void> {
    if (this.released || this.lostReason) return Promise.resolve();
    this.renewing ??= (async () => {
      try {
        await this.leaseClient.renewLease();
        this.lastConfirmed = Date.now();
        this.holder.renewedAt = new Date(this.lastConfirmed).toISOString();
        await this.writeHolder();
      } catch (err) {
        // Taken over, broken or deleted: another runtime may be running the hub now.
        if (err instanceof RestError && (err.statusCode === 409 || err.statusCode === 412 || err.statusCode === 404)) {
          this.markLost(`its lease on task hub ${this.taskHub} was lost (${err.statusCode} ${err.code ?? ''})`);
        } else if (Date.now() - this.lastConfirmed >= LEASE_MS - SAFETY_MS) {
          this.markLost(`its lease on task hub ${this.taskHub} could not be renewed for ${Math.round((Date.now() - this.lastConfirmed) / 1000)} s: ${redact(String(err))}`);
        } else {
          this.log?.(`task hub ${this.taskHub}: renewing the lease failed, trying again: ${redact(String(err))}`);
        }
      } finally {
        this.renewing = undefined;
      }
    })();
    return this.renewing;
  }

  private markLost(why: string): void {
    if (this.lostReason) return;
    this.stopTimer();
    heldHere.delete(this.holder.runtimeId);
    this.lostReason = new PagewiseError('TaskHubInUse', `this runtime stopped: ${why}; it writes nothing more (another runtime may have taken the task hub over)`);
    this.lose(this.lostReason);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopTimer();
    heldHere.delete(this.holder.runtimeId);
    while (this.renewing) await this.renewing;
    if (this.lostReason) return;
    try {
      // The next reader finds no stale name on a free lock.
      await this.blob.setMetadata({ pagewise_lock: TASK_HUB_LOCK_VERSION }, { conditions: { leaseId: this.leaseClient.leaseId } });
      await this.leaseClient.releaseLease();
    } catch (err) {
      // Unreleased, the lease lapses by itself within TASK_HUB_LEASE_SECONDS.
      this.log?.(`task hub ${this.taskHub}: releasing the lease failed (it lapses within ${TASK_HUB_LEASE_SECONDS} s): ${redact(String(err))}`);
    }
  }
}

async function createLockBlob(blob: BlockBlobClient): Promise<void> {
  const body = 'Held by a blob lease while a local Pagewise runtime runs this task hub; the holder is in the metadata (docs/DURABLE.md).\n';
  try {
    await blob.upload(body, Buffer.byteLength(body), { conditions: { ifNoneMatch: '*' }, metadata: { pagewise_lock: TASK_HUB_LOCK_VERSION } });
  } catch (err) {
    // 409: it exists; 412: it exists and is leased (a write without the lease ID is refused).
    if (!(err instanceof RestError && (err.statusCode === 409 || err.statusCode === 412))) throw err;
  }
}

async function tryAcquire(leaseClient: BlobLeaseClient): Promise<boolean> {
  try {
    await leaseClient.acquireLease(TASK_HUB_LEASE_SECONDS);
    return true;
  } catch (err) {
    if (err instanceof RestError && err.statusCode === 409) return false;
    throw err;
  }
}

function holderMetadata(holder: TaskHubHolder): Record<string, string> {
  // Encoded: a host name or role may hold characters a header value cannot.
  const e = encodeURIComponent;
  return {
    pagewise_lock: TASK_HUB_LOCK_VERSION,
    runtime_id: e(holder.runtimeId),
    holder_host: e(holder.host),
    holder_pid: String(holder.pid),
    holder_role: e(holder.role),
    holder_since: e(holder.since),
    renewed_at: e(holder.renewedAt),
  };
}

/** The holder written on the lock blob; undefined when none is (a free lock, or one just taken). */
export async function readHolder(blob: BlockBlobClient): Promise<TaskHubHolder | undefined> {
  const metadata = (await blob.getProperties()).metadata ?? {};
  const text = (name: string) => {
    const raw = metadata[name];
    if (raw === undefined) return undefined;
    try {
      // Anyone who may write the container may write this: shown only printable and short.
      return printable(decodeURIComponent(raw)).slice(0, 200);
    } catch {
      return undefined;
    }
  };
  const pid = Number(metadata.holder_pid);
  const [runtimeId, host, role, since, renewedAt] = ['runtime_id', 'holder_host', 'holder_role', 'holder_since', 'renewed_at'].map(text);
  if (!runtimeId || !host || !role || !since || !renewedAt || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { runtimeId, host, pid, role, since, renewedAt };
}

/**
 * Provably gone: a process of this host that no longer exists (another host's cannot be looked at), or
 * this very process ID without a lease held here — an earlier life of a container restarted under the
 * same host name and PID.
 */
function isGone(holder: TaskHubHolder): boolean {
  if (holder.host !== os.hostname()) return false;
  if (holder.pid === process.pid) return !heldHere.has(holder.runtimeId);
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** When the holder last renewed (its lease lapses at most LEASE_MS later). */
function renewedTime(holder: TaskHubHolder): number {
  const renewed = Date.parse(holder.renewedAt);
  return Number.isFinite(renewed) ? renewed : Date.now();
}

function describeHolder(holder: TaskHubHolder): string {
  return `${holder.role}, pid ${holder.pid} on host ${holder.host}, since ${holder.since}`;
}

function inUse(taskHub: string, holder: TaskHubHolder | undefined, now: number): PagewiseError {
  const who = holder ? describeHolder(holder) : 'a runtime that has not said who it is';
  let lapse = `at most ${TASK_HUB_LEASE_SECONDS} s after its last renewal`;
  if (holder) {
    const left = Math.ceil((renewedTime(holder) + LEASE_MS - now) / 1000);
    lapse = left > 0 ? `by ${new Date(renewedTime(holder) + LEASE_MS).toISOString()} (in about ${left} s) unless it renews` : `any moment now unless it renews`;
  }
  return new PagewiseError(
    'TaskHubInUse',
    `task hub ${taskHub} is in use by ${who}. One local runtime runs a task hub at a time: send the work to that one (its HTTP API), ` +
      `stop it, or give this one another task hub (PAGEWISE_TASKHUB_CONNECTION_STRING). If it was killed, its lease lapses ${lapse}: start again then`,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
