/** Registers the Pagewise orchestrators with the Durable Functions app. */
import * as df from 'durable-functions';
import { backupBatchRangeOrchestrator, backupDiskOrchestrator } from './backupDisk';
import { Orchestrators } from './contracts';
import { markingFailure } from './failedStatus';
import { restoreDiskOrchestrator, verifyBackupOrchestrator } from './restoreAndVerify';
import { settleBlobOrchestrator } from './settleBlob';

df.app.orchestration(Orchestrators.backupDisk, markingFailure(backupDiskOrchestrator));
df.app.orchestration(Orchestrators.backupBatchRange, backupBatchRangeOrchestrator);
df.app.orchestration(Orchestrators.restoreDisk, markingFailure(restoreDiskOrchestrator));
df.app.orchestration(Orchestrators.verifyBackup, markingFailure(verifyBackupOrchestrator));
df.app.orchestration(Orchestrators.settleBlob, settleBlobOrchestrator);
