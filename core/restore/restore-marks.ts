/**
 * The metadata a fan-out restore puts on its page-blob target (docs/DURABLE.md "Restore fan-out"):
 * `pagewise_restore` (incomplete → complete), `pagewise_backup`, `pagewise_operation`. Later steps
 * write, finish or delete only a blob whose marks name their own operation: never another blob.
 */
import { PageBlobClient, RestError } from '@azure/storage-blob';
import { PagewiseError } from '../errors';
import { translateTargetError } from '../storage/storage-errors';

export type RestoreState = 'incomplete' | 'complete';

/** An operation ID (the orchestration's instance ID): what a metadata value may hold, bounded. */
export const RESTORE_OPERATION_RE = /^[A-Za-z0-9][A-Za-z0-9:+._-]{0,199}$/;

export function restoreMarks(state: RestoreState, backupId: string, operationId: string): Record<string, string> {
  return { pagewise_restore: state, pagewise_backup: backupId, pagewise_operation: operationId };
}

export interface TargetState {
  etag: string;
  /** The restore state, when the marks name this backup and operation; undefined for any other blob. */
  own?: RestoreState;
}

/** The target's state as this operation sees it; undefined when there is no blob. */
export async function readTargetState(client: PageBlobClient, backupId: string, operationId: string, what: string): Promise<TargetState | undefined> {
  try {
    const props = await client.getProperties();
    const m = props.metadata ?? {};
    const mine = m.pagewise_backup === backupId && m.pagewise_operation === operationId;
    const state = m.pagewise_restore === 'incomplete' || m.pagewise_restore === 'complete' ? m.pagewise_restore : undefined;
    return { etag: props.etag ?? '', ...(mine && state ? { own: state } : {}) };
  } catch (err) {
    if ((err as RestError).statusCode === 404) return undefined;
    throw translateTargetError(err, what);
  }
}

/** The target must be this operation's incomplete restore (a later step never writes another blob). */
export async function assertOwnIncomplete(client: PageBlobClient, backupId: string, operationId: string, what: string): Promise<TargetState> {
  const state = await readTargetState(client, backupId, operationId, what);
  if (!state) throw new PagewiseError('TargetNotFound', `${what} is gone: the restore ${operationId} was abandoned or its target deleted`);
  if (state.own !== 'incomplete') {
    throw new PagewiseError('BadInput', `${what} is not the incomplete target restore ${operationId} of backup ${backupId} created; it was left as it is`);
  }
  return state;
}
