/**
 * Where the local durable runtime keeps each orchestration instance (status, history, scheduled
 * tasks) so a killed run resumes. The production store is blob storage (Azurite locally): one JSON
 * blob per instance under `instances/` in the task-hub container; creating uses `If-None-Match: *`
 * so two starters of one instance ID cannot both win.
 */
import { ContainerClient, RestError } from '@azure/storage-blob';
import type { RetryPolicy } from './actions';

export type RuntimeStatus = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated';

export const isTerminal = (status: RuntimeStatus): boolean =>
  status === 'Completed' || status === 'Failed' || status === 'Terminated';

/** One logical task of an orchestration (index = its position in the flattened action list). */
export interface TaskRecord {
  kind: 'activity' | 'subOrchestration' | 'timer';
  name?: string;
  input?: unknown;
  childInstanceId?: string;
  fireAt?: string;
  retry?: RetryPolicy;
  /** Attempt currently outstanding or last made (1-based). */
  attempt: number;
  /** Replay task ID of what the task is waiting on now: the current attempt, or its retry timer. */
  waitId: number;
  waiting: 'work' | 'retryTimer' | 'none';
}

export interface InstanceRecord {
  instanceId: string;
  /** New for every (re)start; a child records its parent's, so a restarted parent never adopts old children. */
  executionId: string;
  name: string;
  input: unknown;
  parentInstanceId?: string;
  parentExecutionId?: string;
  /** Replay task ID under which the parent waits for this sub-orchestration. */
  parentTaskId?: number;
  runtimeStatus: RuntimeStatus;
  createdTime: string;
  lastUpdatedTime: string;
  output: unknown;
  customStatus: unknown;
  /** Committed history; `Timestamp`/`FireAt` are ISO strings once stored. */
  history: unknown[];
  tasks: TaskRecord[];
  /** Next replay task ID (the orchestrator numbers its tasks 0, 1, 2… in scheduling order). */
  nextTaskId: number;
  episodes: number;
}

export interface InstanceStore {
  /** Stores a new record; false if one with that ID exists already. */
  create(record: InstanceRecord): Promise<boolean>;
  /** Replaces a record (used for checkpoints and for restarting a failed instance). */
  save(record: InstanceRecord): Promise<void>;
  load(instanceId: string): Promise<InstanceRecord | undefined>;
  list(): Promise<InstanceRecord[]>;
  remove(instanceId: string): Promise<boolean>;
  /**
   * The stored instances' IDs (those starting with `prefix`) and, where the store keeps it beside the
   * record, their status — without reading the records: a runtime lists what it runs from memory and
   * reads only the others.
   */
  entries?(prefix?: string): Promise<InstanceEntry[]>;
}

export interface InstanceEntry {
  instanceId: string;
  /** As of the record's last write (absent when the store does not keep it apart). */
  runtimeStatus?: RuntimeStatus;
}

const blobName = (instanceId: string) => `instances/${encodeURIComponent(instanceId)}.json`;

export class BlobInstanceStore implements InstanceStore {
  private ready: Promise<unknown> | undefined;

  constructor(private readonly container: ContainerClient) {}

  private ensureContainer(): Promise<unknown> {
    this.ready ??= this.container.createIfNotExists();
    return this.ready;
  }

  async create(record: InstanceRecord): Promise<boolean> {
    await this.ensureContainer();
    const body = JSON.stringify(record);
    try {
      await this.container
        .getBlockBlobClient(blobName(record.instanceId))
        .upload(body, Buffer.byteLength(body), { conditions: { ifNoneMatch: '*' }, metadata: meta(record) });
      return true;
    } catch (err) {
      if (err instanceof RestError && (err.statusCode === 409 || err.statusCode === 412)) return false;
      throw err;
    }
  }

  async save(record: InstanceRecord): Promise<void> {
    await this.ensureContainer();
    const body = JSON.stringify(record);
    await this.container
      .getBlockBlobClient(blobName(record.instanceId))
      .upload(body, Buffer.byteLength(body), { metadata: meta(record) });
  }

  async load(instanceId: string): Promise<InstanceRecord | undefined> {
    await this.ensureContainer();
    // Azurite may serve a blob that a concurrent Put Blob is still writing (empty or cut short);
    // Azure's Put Blob is atomic. A record that does not parse is read again, briefly.
    for (let attempt = 0; ; attempt++) {
      let text: string;
      try {
        text = (await this.container.getBlockBlobClient(blobName(instanceId)).downloadToBuffer()).toString('utf8');
      } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return undefined;
        throw err;
      }
      try {
        return JSON.parse(text) as InstanceRecord;
      } catch (err) {
        if (attempt >= 50) throw new Error(`instance record ${instanceId} is not valid JSON: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async list(): Promise<InstanceRecord[]> {
    await this.ensureContainer();
    const out: InstanceRecord[] = [];
    for await (const blob of this.container.listBlobsFlat({ prefix: 'instances/' })) {
      const record = await this.load(decodeURIComponent(blob.name.slice('instances/'.length, -'.json'.length)));
      if (record) out.push(record);
    }
    return out;
  }

  async entries(prefix = ''): Promise<InstanceEntry[]> {
    await this.ensureContainer();
    const out: InstanceEntry[] = [];
    // Encoding is per character, so an encoded prefix selects exactly the encoded IDs that start with it.
    for await (const blob of this.container.listBlobsFlat({ prefix: `instances/${encodeURIComponent(prefix)}`, includeMetadata: true })) {
      const status = blob.metadata?.runtimestatus;
      out.push({ instanceId: decodeURIComponent(blob.name.slice('instances/'.length, -'.json'.length)), ...(isStatus(status) ? { runtimeStatus: status } : {}) });
    }
    return out;
  }

  async remove(instanceId: string): Promise<boolean> {
    await this.ensureContainer();
    const response = await this.container.getBlockBlobClient(blobName(instanceId)).deleteIfExists();
    return response.succeeded;
  }
}

/** For throw-away runs (e.g. sizing simulations) where nothing must survive the process. */
export class MemoryInstanceStore implements InstanceStore {
  private readonly records = new Map<string, string>();

  async create(record: InstanceRecord): Promise<boolean> {
    if (this.records.has(record.instanceId)) return false;
    this.records.set(record.instanceId, JSON.stringify(record));
    return true;
  }
  async save(record: InstanceRecord): Promise<void> {
    this.records.set(record.instanceId, JSON.stringify(record));
  }
  async load(instanceId: string): Promise<InstanceRecord | undefined> {
    const text = this.records.get(instanceId);
    return text === undefined ? undefined : (JSON.parse(text) as InstanceRecord);
  }
  async list(): Promise<InstanceRecord[]> {
    return [...this.records.values()].map((t) => JSON.parse(t) as InstanceRecord);
  }
  async remove(instanceId: string): Promise<boolean> {
    return this.records.delete(instanceId);
  }
  async entries(prefix = ''): Promise<InstanceEntry[]> {
    return [...this.records.keys()].filter((id) => id.startsWith(prefix)).map((instanceId) => ({ instanceId }));
  }
}

const STATUSES: readonly RuntimeStatus[] = ['Pending', 'Running', 'Completed', 'Failed', 'Terminated'];
const isStatus = (value: string | undefined): value is RuntimeStatus => (STATUSES as readonly (string | undefined)[]).includes(value);

function meta(record: InstanceRecord): Record<string, string> {
  return { runtimestatus: record.runtimeStatus, name: record.name };
}
