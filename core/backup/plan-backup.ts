/**
 * Planning a backup: open the source disk, list only its allocated page ranges (paged), decide the page
 * grid and the batches that hold data, create and wrap the data key, and store the plan in the vault.
 * Idempotent: a plan that exists for the same disk state is reused, so a repeated start resumes.
 * Dispatches by the vault's format: this module plans version 1 (full backups), v2/plan.ts version 2.
 */
import { whileBackingUp } from './running-backups';
import { generateKey, keyId, wrapDataKey } from '../repo/keys';
import { PagewiseError } from '../errors';
import { PAGES_PER_SEGMENT } from '../limits';
import { PageGrid } from '../source/page-grid';
import { SourceDisk } from '../source/source-disk';
import { assertSourceIsNotVault } from '../restore/target-guard';
import { parseStorageUrl } from '../storage/clients';
import { BackupRequest, PlanRef } from '../types';
import { givenOrDerivedBackupId } from '../repo/backup-id';
import { BackupPlan, pagesPerBatchFor, planExists, readPlan, writePlan } from '../repo/backup-plan';
import { manifestExists } from '../repo/manifest';
import { Vault } from '../repo/vault';
import { snapshotTakenByPagewise } from './backup-context';
import { V1_KIND } from './finalize-backup';
import { backupIdTaken, planDifferences } from './plan-mismatch';
import { resolveSettings } from './settings';
import { openVaultForBackup } from './vault-version';
import { planV2 } from './v2/plan';

export async function planBackup(req: BackupRequest): Promise<PlanRef> {
  return whileBackingUp(req.source, () => makePlan(req));
}

async function makePlan(req: BackupRequest): Promise<PlanRef> {
  const settings = resolveSettings(req);
  const vault = Vault.open(req.vault);
  // Before any request: a snapshot taken there would be a write into the vault.
  assertSourceIsNotVault(parseStorageUrl(req.source.url, 'blob', 'the source disk URL'), vault.parsed);
  const live = await SourceDisk.open(req.source);
  let source = live;
  // The ID names the disk state (the live blob's ETag), so a repeated start resumes the same backup.
  const backupId = givenOrDerivedBackupId(req.backupId, live.identity, settings.pageSize);
  const opened = await openVaultForBackup(vault, req.userKey);
  if (opened.version === 2) return planV2(req, { vault, keyring: opened.keyring, upgraded: opened.upgraded }, live, backupId, settings);

  if (await planExists(vault, backupId)) {
    const plan = await readPlan(vault, backupId);
    // A plan that reads a snapshot Pagewise took resumes from that snapshot, however the live disk has
    // changed since; otherwise the live disk must still be in the planned state.
    const pinnedToSnapshot = snapshotTakenByPagewise(req, plan) !== undefined;
    const sameState = pinnedToSnapshot || (plan.source.etag === live.identity.etag && plan.diskBytes === live.diskBytes);
    if (!sameState && plan.source.etag === req.expectedEtag) {
      // Finished before the disk changed: that backup stands. Unfinished: it can never finish.
      if (await manifestExists(vault, backupId)) return planRef(plan, true);
      throw changedSince(req.expectedEtag, live);
    }
    const differences = planDifferences(plan, live, settings.pageSize, pinnedToSnapshot);
    if (differences.length > 0) throw backupIdTaken(backupId, plan, differences, settings.pageSize);
    if (plan.encryption.keyId !== keyId(req.userKey)) {
      throw new PagewiseError('WrongKey', `backup ${backupId} was started with another key (key ID ${plan.encryption.keyId})`);
    }
    return planRef(plan, await manifestExists(vault, backupId));
  }

  if (req.expectedEtag !== undefined && live.identity.etag !== req.expectedEtag) throw changedSince(req.expectedEtag, live);
  live.assertNotCopying();
  if (req.takeSnapshot && !live.identity.snapshot) source = await live.takeSnapshot(req.source);
  const grid = new PageGrid(source.diskBytes, settings.pageSize);
  const pagesPerBatch = pagesPerBatchFor(settings.pageSize, PAGES_PER_SEGMENT);
  const batches: number[] = [];
  let allocatedBytes = 0;
  let allocatedPages = 0;
  let lastPage = -1;
  for await (const range of source.allocatedRanges()) {
    allocatedBytes += range.length;
    const first = grid.pageOf(range.offset);
    const last = grid.pageOf(range.offset + range.length - 1);
    allocatedPages += last - Math.max(first, lastPage + 1) + 1;
    lastPage = Math.max(lastPage, last);
    for (let b = Math.floor(first / pagesPerBatch); b <= Math.floor(last / pagesPerBatch); b++) {
      if (batches[batches.length - 1] !== b) batches.push(b);
    }
  }
  const dataKey = generateKey();
  const plan: BackupPlan = {
    format: 'pagewise-plan',
    version: 1,
    backupId,
    createdAt: new Date().toISOString(),
    source: source.identity,
    diskBytes: source.diskBytes,
    pageSize: settings.pageSize,
    pageCount: grid.pageCount,
    pagesPerBatch,
    pagesPerSegment: PAGES_PER_SEGMENT,
    allocatedBytes,
    allocatedPages,
    batches,
    encryption: { keyId: keyId(req.userKey), wrappedDataKey: wrapDataKey(req.userKey, dataKey, backupId) },
  };
  await writePlan(vault, plan);
  return planRef(plan, false);
}

/** The disk is no longer in the state its backup ID names: back up that state, never another under its name. */
function changedSince(expectedEtag: string, live: SourceDisk): PagewiseError {
  return new PagewiseError('SourceChanged', `the source disk ${live.identity.url} changed since its backup was started (ETag ${expectedEtag} → ${live.identity.etag}); this backup names the earlier state`);
}

function planRef(plan: BackupPlan, alreadyComplete: boolean): PlanRef {
  return {
    backupId: plan.backupId,
    batchCount: plan.batches.length,
    diskBytes: plan.diskBytes,
    allocatedBytes: plan.allocatedBytes,
    allocatedPages: plan.allocatedPages,
    pageSize: plan.pageSize,
    pagesPerBatch: plan.pagesPerBatch,
    alreadyComplete,
    ...V1_KIND,
    formatVersion: 1,
  };
}
