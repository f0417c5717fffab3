/**
 * Why an existing plan cannot be resumed by this start: the backup ID is taken by a backup of another
 * disk, disk state or page size. The error says what differs and what to do, so "already used" is
 * never a dead end.
 */
import { PagewiseError } from '../errors';
import { SourceDisk } from '../source/source-disk';
import { BackupPlan } from '../repo/backup-plan';

/** What a plan of either format says of the disk state it reads. */
export type PlannedState = Pick<BackupPlan, 'source' | 'diskBytes' | 'pageSize'>;

/** What differs between the plan and this start; empty when the start resumes the plan. */
export function planDifferences(plan: PlannedState, live: SourceDisk, pageSize: number, readsPagewiseSnapshot: boolean): string[] {
  const differences: string[] = [];
  const planned = plan.source;
  const here = live.identity;
  if (planned.account !== here.account || planned.container !== here.container || planned.blob !== here.blob) {
    differences.push(`its source is ${planned.url}, not ${here.url}`);
  } else if (!readsPagewiseSnapshot) {
    // A plan reading a snapshot Pagewise took resumes from it however the live disk has changed since.
    if (planned.snapshot !== here.snapshot) differences.push(`it reads snapshot "${planned.snapshot}", not "${here.snapshot}"`);
    if (planned.etag !== here.etag) differences.push(`the disk changed since (ETag ${planned.etag} then, ${here.etag} now)`);
    else if (plan.diskBytes !== live.diskBytes) differences.push(`the disk size changed (${plan.diskBytes} bytes then, ${live.diskBytes} now)`);
  }
  if (plan.pageSize !== pageSize) differences.push(`its page size is ${exactSize(plan.pageSize)} (${plan.pageSize} bytes), not ${exactSize(pageSize)}`);
  return differences;
}

export function backupIdTaken(backupId: string, plan: PlannedState, differences: string[], pageSize: number): PagewiseError {
  const onlyPageSize = differences.length === 1 && plan.pageSize !== pageSize;
  const fix = onlyPageSize
    ? `give page size ${exactSize(plan.pageSize).replace(' ', '')} to resume it, or another backup ID for a new backup`
    : 'give another backup ID, or none (the default ID names the disk state and page size)';
  return new PagewiseError('BadInput', `backup ID ${backupId} is already used by another backup: ${differences.join('; ')}; ${fix}`);
}

/** A page size as written on the command line (64KiB, 4MiB), exact: page sizes are multiples of 512. */
function exactSize(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}
