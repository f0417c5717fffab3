/** Staging records of a version-2 backup (docs/FORMAT.md §20.1, §20.2): the plan and the batch records, encrypted. */
import type { Vault } from '../vault';
import type { Keyring } from './keyring';
import type { BatchRecordV2, PlanV2 } from './records';

export async function writePlan2(vault: Vault, keyring: Keyring, plan: PlanV2): Promise<void> {
  void vault; void keyring; void plan;
  throw new Error('not yet');
}

export async function readPlan2(vault: Vault, keyring: Keyring, backupId: string): Promise<PlanV2 | undefined> {
  void vault; void keyring; void backupId;
  throw new Error('not yet');
}

export async function writeBatch2(vault: Vault, keyring: Keyring, rec: BatchRecordV2): Promise<void> {
  void vault; void keyring; void rec;
  throw new Error('not yet');
}

export async function readBatch2(vault: Vault, keyring: Keyring, backupId: string, batch: number): Promise<BatchRecordV2 | undefined> {
  void vault; void keyring; void backupId; void batch;
  throw new Error('not yet');
}
