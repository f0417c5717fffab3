/**
 * The one transient rule (core/errors.ts): which failures a later attempt may cure, and how the
 * in-process retry loop applies it (an interruption is transient for an orchestration, never retried
 * in the process that is stopping).
 */
import { isTransient, PagewiseError, PagewiseErrorCode, TRANSIENT_CODES } from '../core';
import { withRetry } from '../core/retry';

const cases: Array<{ code: PagewiseErrorCode; transient: boolean }> = [
  { code: 'SourceUnreachable', transient: true },
  { code: 'VaultUnreachable', transient: true },
  { code: 'TargetUnreachable', transient: true },
  { code: 'Aborted', transient: true },
  { code: 'TargetNotFound', transient: false },
  { code: 'AccessDenied', transient: false },
  { code: 'SourceNotFound', transient: false },
  { code: 'Corrupt', transient: false },
  { code: 'BadInput', transient: false },
];

test.each(cases)('$code is transient: $transient', ({ code, transient }) => {
  expect(isTransient(new PagewiseError(code, 'x'))).toBe(transient);
  expect(TRANSIENT_CODES.has(code)).toBe(transient);
});

test('errors Pagewise did not raise are not transient by the rule', () => {
  expect(isTransient(new Error('SourceUnreachable'))).toBe(false);
  expect(isTransient({ code: 'VaultUnreachable' })).toBe(false);
  expect(isTransient(undefined)).toBe(false);
});

async function attemptsUntilFailure(code: PagewiseErrorCode): Promise<number> {
  let attempts = 0;
  await expect(
    withRetry(
      async () => {
        attempts++;
        throw new PagewiseError(code, 'failed');
      },
      { maxRetries: 2, retryDelayInMs: 1, maxRetryDelayInMs: 1 },
    ),
  ).rejects.toMatchObject({ code });
  return attempts;
}

test('withRetry retries unreachable storage, and neither an interruption nor a final failure', async () => {
  expect(await attemptsUntilFailure('VaultUnreachable')).toBe(3);
  expect(await attemptsUntilFailure('TargetUnreachable')).toBe(3);
  expect(await attemptsUntilFailure('Aborted')).toBe(1);
  expect(await attemptsUntilFailure('TargetNotFound')).toBe(1);
});
