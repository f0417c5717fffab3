/**
 * Registers the Pagewise orchestrators with the Durable Functions app. #18: the operations an operator
 * follows report how they ended (reportingOperation: an activity sends the telemetry).
 */
import * as df from 'durable-functions';
import { backupBatchRangeOrchestrator, backupDiskOrchestrator } from './backupDisk';
import { Orchestrators } from './contracts';
import { markingFailure } from './failedStatus';
import { restoreDiskOrchestrator, restoreManagedDiskOrchestrator, restoreWindowRangeOrchestrator } from './restoreDisk';
import { verifyBackupOrchestrator, verifyWindowRangeOrchestrator } from './verifyBackup';
import { settleBlobOrchestrator } from './settleBlob';
import { backupVmDiskOrchestrator, backupVmOrchestrator } from './backupVm';
import { VmOrchestrators } from './vmContracts';
import { releasingStartSlots } from './startSlots';
import { reportingOperation } from './operationReport';

df.app.orchestration(Orchestrators.backupDisk, markingFailure(reportingOperation('backup', releasingStartSlots(backupDiskOrchestrator), (input) => input?.vmCapture === true)));
df.app.orchestration(Orchestrators.backupBatchRange, backupBatchRangeOrchestrator);
df.app.orchestration(Orchestrators.restoreDisk, markingFailure(reportingOperation('restore', restoreDiskOrchestrator)));
df.app.orchestration(Orchestrators.restoreWindowRange, restoreWindowRangeOrchestrator);
df.app.orchestration(Orchestrators.verifyBackup, markingFailure(reportingOperation('verify', verifyBackupOrchestrator)));
df.app.orchestration(Orchestrators.verifyWindowRange, verifyWindowRangeOrchestrator);
df.app.orchestration(Orchestrators.settleBlob, settleBlobOrchestrator);
// VM backups (#16): a disk's sub-orchestration reports its outcome rather than fail; the VM's marks its own failure.
df.app.orchestration(VmOrchestrators.backupVm, markingFailure(reportingOperation('vm-backup', releasingStartSlots(backupVmOrchestrator))));
df.app.orchestration(VmOrchestrators.backupVmDisk, backupVmDiskOrchestrator);
// #17 mdrestore: a restore to a new managed disk (its windows are restoreWindowRange's).
df.app.orchestration(Orchestrators.restoreManagedDisk, markingFailure(reportingOperation('restore', restoreManagedDiskOrchestrator)));
