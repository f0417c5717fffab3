/**
 * The instance store of a runtime that holds its task hub by lease (runtime/taskHubLease.ts): every write
 * first confirms the lease, so a runtime that lost it (frozen past its lease, broken by an operator, taken
 * over) writes no instance state over what the new holder writes. Reads pass through.
 */
import type { InstanceEntry, InstanceRecord, InstanceStore } from './durable/instanceStore';
import type { TaskHubLease } from './taskHubLease';

export class FencedInstanceStore implements InstanceStore {
  constructor(
    private readonly inner: InstanceStore,
    private readonly lease: Pick<TaskHubLease, 'confirm'>,
  ) {}

  async create(record: InstanceRecord): Promise<boolean> {
    await this.lease.confirm();
    return this.inner.create(record);
  }

  async save(record: InstanceRecord): Promise<void> {
    await this.lease.confirm();
    return this.inner.save(record);
  }

  async remove(instanceId: string): Promise<boolean> {
    await this.lease.confirm();
    return this.inner.remove(instanceId);
  }

  load(instanceId: string): Promise<InstanceRecord | undefined> {
    return this.inner.load(instanceId);
  }

  list(): Promise<InstanceRecord[]> {
    return this.inner.list();
  }

  entries(prefix?: string): Promise<InstanceEntry[]> {
    return this.inner.entries ? this.inner.entries(prefix) : this.inner.list().then((all) => all.map(({ instanceId, runtimeStatus }) => ({ instanceId, runtimeStatus })));
  }
}
