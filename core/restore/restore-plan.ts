/**
 * A restore in windows (issue #17): the plan checks the target exactly as the streaming restore does —
 * every check before the first vault read — then creates it (a page blob of the disk's size marked
 * incomplete, or a partial file beside a file target) and cuts the disk into windows of whole pages.
 * The plan is a small JSON document (no URL, no SAS) the later steps receive back.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { RestError } from '@azure/storage-blob';
import { PagewiseError, throwIfAborted } from '../errors';
import { CountBounds, GiB, SECTOR } from '../limits';
import { displayUrl } from '../redact';
import { openBackupSource } from '../repo/backup-source';
import { targetBlobClient } from '../storage/clients';
import { translateTargetError } from '../storage/storage-errors';
import { removeAtExit } from '../exit-cleanup';
import { RestoreRequest } from '../types';
import { checkFileTarget, createPartialFile, isPartialOf } from './file-target';
import { assertPageBlobSize, isBlobTarget } from './restore';
import { readTargetState, restoreMarks, RESTORE_OPERATION_RE } from './restore-marks';
import { assertDiskWriteTarget } from './target-guard';

/** Bytes of disk one restore or verify window covers (PAGEWISE_RESTORE_WINDOW_BYTES): whole pages, at least one. */
export const RESTORE_WINDOW_BYTES: CountBounds = { min: SECTOR, max: 16 * GiB, default: GiB };

/** What every step of a fan-out restore is given: the restore request (no device: a device is written by the streaming restore alone). */
export type RestoreStepRequest = Pick<RestoreRequest, 'backupId' | 'vault' | 'userKey' | 'target' | 'concurrency' | 'abortSignal'>;

export interface RestorePlanRequest extends RestoreStepRequest, Pick<RestoreRequest, 'overwrite' | 'keepFiles'> {
  /** The operation (orchestration instance ID) the target is marked with; its later steps name it. */
  operationId: string;
  /** Disk bytes per window (RESTORE_WINDOW_BYTES), rounded down to whole pages. */
  windowBytes?: number;
}

/** Format of the plan document (docs/DURABLE.md "Restore fan-out"). */
export const RESTORE_PLAN_VERSION = 1;

export interface RestorePlan {
  version: typeof RESTORE_PLAN_VERSION;
  operationId: string;
  backupId: string;
  kind: 'blob' | 'file' | 'managedDisk';
  /** The target as shown (a URL without its SAS, the file's real path, or a managed disk's ARM ID). */
  display: string;
  overwrite: boolean;
  diskBytes: number;
  pageSize: number;
  pageCount: number;
  windowPages: number;
  windowCount: number;
  /** Non-hole pages, and their plaintext bytes: the restore's progress totals. */
  entryCount: number;
  entryBytes: number;
  /** A file target: the partial file the windows write, renamed into place by finalize. */
  partial?: string;
  /** A file target that existed (overwrite): the file the rename may replace, and no other. */
  replaces?: { dev: number; ino: number };
  /** A managed-disk target (core/vm/restore-vm-fanout.ts): its data bytes, before the VHD footer (diskBytes less a backup's own footer slot). */
  dataBytes?: number;
}

export function windowPagesFor(windowBytes: number, pageSize: number): number {
  if (!Number.isSafeInteger(windowBytes) || windowBytes < RESTORE_WINDOW_BYTES.min || windowBytes > RESTORE_WINDOW_BYTES.max) {
    throw new PagewiseError('BadInput', `the window of a restore or verification (windowBytes, app setting PAGEWISE_RESTORE_WINDOW_BYTES) must be ${RESTORE_WINDOW_BYTES.min} to ${RESTORE_WINDOW_BYTES.max} bytes, got ${windowBytes}`);
  }
  return Math.max(1, Math.floor(windowBytes / pageSize));
}

/** The page range [first, first + count) of window `window`. */
export function windowPages(plan: Pick<RestorePlan, 'pageCount' | 'windowPages'>, window: number): { first: number; count: number } {
  const first = window * plan.windowPages;
  return { first, count: Math.max(0, Math.min(plan.windowPages, plan.pageCount - first)) };
}

/** Checks and creates the target, reads the backup's facts, and cuts it into windows. */
export async function planRestore(req: RestorePlanRequest): Promise<RestorePlan> {
  throwIfAborted(req.abortSignal, 'the restore was interrupted');
  if (!RESTORE_OPERATION_RE.test(req.operationId)) throw new PagewiseError('BadInput', 'the restore operation ID must be 1 to 200 letters, digits or :+._-');
  const windowBytes = req.windowBytes ?? RESTORE_WINDOW_BYTES.default;
  windowPagesFor(windowBytes, SECTOR); // its bounds, before anything is read or made
  return isBlobTarget(req.target.url) ? planBlobRestore(req, windowBytes) : planFileRestore(req, windowBytes);
}

/** The backup's facts a plan holds, its disk cut into windows of `windowBytes`. */
export async function readRestoreFacts(req: Omit<RestorePlanRequest, 'target'>, windowBytes: number) {
  const reader = await openBackupSource(req.vault, req.backupId, req.userKey, { abortSignal: req.abortSignal });
  const pages = windowPagesFor(windowBytes, reader.pageSize);
  return {
    version: RESTORE_PLAN_VERSION,
    operationId: req.operationId,
    backupId: req.backupId,
    overwrite: req.overwrite ?? false,
    diskBytes: reader.diskBytes,
    pageSize: reader.pageSize,
    pageCount: reader.pageCount,
    windowPages: pages,
    windowCount: Math.ceil(reader.pageCount / pages),
    entryCount: reader.entryCount,
    entryBytes: await reader.entryBytes(),
  } as const;
}

async function planBlobRestore(req: RestorePlanRequest, windowBytes: number): Promise<RestorePlan> {
  const { client } = targetBlobClient(req.target);
  const display = displayUrl(req.target.url);
  const what = `the restore target ${display}`;
  await assertDiskWriteTarget(req.target, what, [req.vault]);
  // A retried plan finds the target it made itself (marked with its operation): made again, not refused.
  const existing = await readTargetState(client, req.backupId, req.operationId, what);
  if (existing && !existing.own && !req.overwrite) throw new PagewiseError('TargetExists', `${what} already exists; pass --force to overwrite it`);
  const facts = await readRestoreFacts(req, windowBytes);
  assertPageBlobSize(facts.diskBytes);
  try {
    if (existing) await client.delete({ conditions: { ifMatch: existing.etag } });
    await client.create(facts.diskBytes, { metadata: restoreMarks('incomplete', req.backupId, req.operationId), conditions: { ifNoneMatch: '*' } });
  } catch (err) {
    // Another writer between the look and the create (a new blob, a changed one): never overwritten unseen.
    const status = (err as RestError).statusCode;
    if (status === 409 || status === 412) throw new PagewiseError('TargetExists', `${what} was created or changed by someone else meanwhile; it was left as it is`);
    throw translateTargetError(err, what);
  }
  return { ...facts, kind: 'blob', display };
}

async function planFileRestore(req: RestorePlanRequest, windowBytes: number): Promise<RestorePlan> {
  const overwrite = req.overwrite ?? false;
  const { target, before } = await checkFileTarget(req.target.url, overwrite, req.keepFiles);
  const facts = await readRestoreFacts(req, windowBytes);
  const { partial, handle } = await createPartialFile(target, facts.diskBytes);
  await handle.close();
  // Plaintext disk data: removed if this process exits before finalize or abandon (a later step then fails and abandons).
  removeAtExit(partial);
  return { ...facts, kind: 'file', display: target, partial, ...(before ? { replaces: { dev: before.dev, ino: before.ino } } : {}) };
}

/**
 * A plan handed back to a later step belongs to that step's request: its version, backup, and target
 * (the same URL without SAS, or the same real file with a partial file beside it named as the plan makes them).
 */
export async function assertPlanOf(req: RestoreStepRequest, plan: RestorePlan): Promise<void> {
  const bad = (why: string) => new PagewiseError('BadInput', `the restore plan does not belong to this request: ${why}`);
  if (plan.version !== RESTORE_PLAN_VERSION) throw bad(`format ${String(plan.version)}, this version reads ${RESTORE_PLAN_VERSION}`);
  if (plan.backupId !== req.backupId) throw bad(`it restores backup ${plan.backupId}`);
  if (!RESTORE_OPERATION_RE.test(plan.operationId)) throw bad('its operation ID is invalid');
  if (plan.kind === 'managedDisk') {
    // Its target is the app's own write grant (sealed with the app's key: functions/compute.ts), never a caller's URL.
    if (req.target.managedDiskGrant !== true || plan.dataBytes === undefined || plan.dataBytes > plan.diskBytes) throw bad('another target');
    return;
  }
  if (plan.kind === 'blob') {
    if (!isBlobTarget(req.target.url) || displayUrl(req.target.url) !== plan.display) throw bad('another target');
    return;
  }
  const file = path.resolve(req.target.url);
  const real = path.join(await fs.realpath(path.dirname(file)).catch(() => ''), path.basename(file));
  if (plan.kind !== 'file' || real !== plan.display || !plan.partial || !isPartialOf(plan.partial, plan.display)) throw bad('another target');
}
