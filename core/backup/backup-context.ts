/**
 * What every step of one backup needs after planning: the plan, the unwrapped data key, the vault and
 * the source pinned to the ETag the plan saw. Built from small references (backup ID + request), so a
 * durable activity in another process rebuilds it from the same inputs.
 */
import { unwrapDataKey } from '../repo/keys';
import { SourceDisk } from '../source/source-disk';
import { parseStorageUrl } from '../storage/clients';
import { BackupRequest } from '../types';
import { BackupPlan, readPlan } from '../repo/backup-plan';
import { validateBackupId } from '../repo/backup-id';
import { Vault } from '../repo/vault';
import { BackupWriter } from '../repo/backup-writer';

export interface BackupContext {
  plan: BackupPlan;
  dataKey: Buffer;
  vault: Vault;
  /** Everything a step writes into the vault goes through it. */
  writer: BackupWriter;
}

export async function openBackupContext(req: BackupRequest, backupId: string): Promise<BackupContext> {
  validateBackupId(backupId);
  const vault = Vault.open(req.vault);
  const plan = await readPlan(vault, backupId);
  const dataKey = unwrapDataKey(req.userKey, plan.encryption.wrappedDataKey, backupId, plan.encryption.keyId);
  return { plan, dataKey, vault, writer: new BackupWriter(vault, plan, dataKey) };
}

/** The source as the plan saw it: the snapshot Pagewise took, if it took one; pinned to the plan's ETag and size. */
export async function openPlannedSource(req: BackupRequest, plan: BackupPlan): Promise<SourceDisk> {
  return SourceDisk.open(req.source, plan.source.etag, snapshotTakenByPagewise(req, plan), plan.diskBytes);
}

/**
 * The snapshot this backup reads that Pagewise itself took (the plan names a snapshot, the request's
 * URL does not), or undefined. Only such a snapshot is Pagewise's to delete after the manifest.
 */
export function snapshotTakenByPagewise(req: BackupRequest, plan: BackupPlan): string | undefined {
  if (!plan.source.snapshot) return undefined;
  return parseStorageUrl(req.source.url, 'blob', 'the source disk URL').snapshot ? undefined : plan.source.snapshot;
}
