/**
 * An instance the durable runtime is running (its record, history and what it waits for), and its
 * checkpoints: progress is written to the InstanceStore at most every interval, and at once on completion.
 */
import { redact } from '../../core';
import type { HistoryEvent } from './history';
import type { InstanceRecord, InstanceStore } from './instanceStore';
import type { RuntimeLog } from './orchestratorInvocation';

export interface LiveInstance {
  record: InstanceRecord;
  history: HistoryEvent[];
  inbox: HistoryEvent[];
  /** waitId → index into record.tasks of tasks currently waiting. */
  waiting: Map<number, number>;
  running: boolean;
  checkpointTimer?: NodeJS.Timeout;
  saving?: Promise<void>;
  dirty: boolean;
  waiters: Array<() => void>;
}

export class Checkpoints {
  constructor(
    private readonly store: InstanceStore,
    private readonly intervalInMs: number,
    private readonly clock: () => Date,
    private readonly log: RuntimeLog,
    /** A halted runtime is "dead": it arms and writes nothing more. */
    private readonly halted: () => boolean,
  ) {}

  touch(instance: LiveInstance, immediately = false): void {
    instance.record.lastUpdatedTime = this.clock().toISOString();
    instance.dirty = true;
    if (immediately) {
      if (instance.checkpointTimer) clearTimeout(instance.checkpointTimer);
      instance.checkpointTimer = undefined;
      void this.checkpoint(instance);
    } else if (!instance.checkpointTimer && !this.halted()) {
      instance.checkpointTimer = setTimeout(() => {
        instance.checkpointTimer = undefined;
        void this.checkpoint(instance);
      }, this.intervalInMs);
    }
  }

  async checkpoint(instance: LiveInstance): Promise<void> {
    while (instance.saving) await instance.saving;
    if (!instance.dirty || this.halted()) return; // a halted runtime is "dead": it writes nothing more
    instance.dirty = false;
    const snapshot: InstanceRecord = { ...instance.record, history: instance.history };
    instance.saving = this.store
      .save(JSON.parse(JSON.stringify(snapshot)) as InstanceRecord)
      .catch((err) => {
        instance.dirty = true;
        this.log('error', `checkpoint of ${instance.record.instanceId} failed: ${redact(String(err))}`);
      })
      .finally(() => (instance.saving = undefined));
    await instance.saving;
  }
}
