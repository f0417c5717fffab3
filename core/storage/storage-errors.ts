/** Storage errors in Pagewise's terms: one mapping for the source, the vault and restore targets. */
import { RestError } from '@azure/storage-blob';
import { PagewiseError } from '../errors';
import { redact } from '../redact';

/** Maps SDK errors to specific Pagewise errors; the message never carries the SAS. */
export function translateStorageError(
  err: unknown,
  what: string,
  notFound: 'SourceNotFound' | 'BackupNotFound' | 'VaultUnreachable' | 'TargetNotFound',
  unreachable: 'SourceUnreachable' | 'VaultUnreachable' | 'TargetUnreachable',
): Error {
  if (err instanceof PagewiseError) return err;
  const rest = err as RestError & { code?: string };
  const status = rest?.statusCode;
  const code = rest?.code ?? (rest as { details?: { errorCode?: string } })?.details?.errorCode;
  if (status === 404) return new PagewiseError(notFound, `${what} was not found (${code ?? 'HTTP 404'})`, { cause: err });
  if (status === 416) return new PagewiseError('Corrupt', `${what} is shorter than expected (a range past its end was asked for)`, { cause: err });
  if (status === 412 || code === 'ConditionNotMet') {
    return new PagewiseError('SourceChanged', `${what} changed while it was being read; back up a snapshot instead`, { cause: err });
  }
  if (status === 403 || status === 401) {
    const expired = /expired|signed expiry|sig.*not valid/i.test(String(rest?.message ?? ''));
    return new PagewiseError('AccessDenied', `access to ${what} was denied (${code ?? `HTTP ${status}`}${expired ? ': the SAS has expired' : ''}); check the SAS or the identity's role`, { cause: err });
  }
  // The SDK reports a connection cut mid-body as an AbortError too; callers that cancel on purpose
  // check their own signal, so here it counts as a transient failure.
  const detail = code ?? (status ? `HTTP ${status}` : (err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? 'unknown error');
  return new PagewiseError(unreachable, `${what} could not be reached (${redact(String(detail))})`, { cause: err });
}

/**
 * A restore or upload target's failure: a missing container (or account) is TargetNotFound and final,
 * not a transient VaultUnreachable an orchestration would retry for nothing; denial stays AccessDenied.
 */
export function translateTargetError(err: unknown, what: string): Error {
  const rest = err as { code?: string; details?: { errorCode?: string } } | undefined;
  if ((rest?.code ?? rest?.details?.errorCode) === 'ContainerNotFound') {
    return new PagewiseError('TargetNotFound', `the container of ${what} does not exist (ContainerNotFound); create it first: Pagewise does not create a target's container`, { cause: err });
  }
  return translateStorageError(err, what, 'TargetNotFound', 'TargetUnreachable');
}
