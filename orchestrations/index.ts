/** Registers the Pagewise orchestrators with the Durable Functions app. */
import * as df from 'durable-functions';
import { backupBatchRangeOrchestrator, backupDiskOrchestrator } from './backupDisk';
import { Orchestrators } from './contracts';
import { restoreDiskOrchestrator, verifyBackupOrchestrator } from './restoreAndVerify';
import { settleBlobOrchestrator } from './settleBlob';

df.app.orchestration(Orchestrators.backupDisk, backupDiskOrchestrator);
df.app.orchestration(Orchestrators.backupBatchRange, backupBatchRangeOrchestrator);
df.app.orchestration(Orchestrators.restoreDisk, restoreDiskOrchestrator);
df.app.orchestration(Orchestrators.verifyBackup, verifyBackupOrchestrator);
df.app.orchestration(Orchestrators.settleBlob, settleBlobOrchestrator);
