/**
 * Concurrency bounds are defined once (core/limits.ts): the CLI options, the app settings, the engine
 * and the HTTP/policy schemas accept exactly the same range, edges included.
 */
import { BATCHES_IN_FLIGHT, configureRequestsPerAccount, PAGE_CONCURRENCY, REQUESTS_PER_ACCOUNT, resolveSettings } from '../core';
import { parseConcurrency } from '../cli/options';
import { validators } from '../functions/http/schemas';
import { readSettings } from '../functions/settings';
import { BATCHES_IN_FLIGHT as ORCHESTRATION_DEFAULT } from '../orchestrations/backupTree';

const app = {
  PAGEWISE_VAULT_URL: 'https://vaultacct.blob.core.windows.net/vault',
  PAGEWISE_ALLOWED_ACCOUNTS: 'srcacct, vaultacct',
};
const body = (concurrency: number) => ({ source: { url: 'https://srcacct.blob.core.windows.net/vhds/a.vhd' }, concurrency });

afterAll(() => configureRequestsPerAccount({ PAGEWISE_REQUESTS_PER_ACCOUNT: String(REQUESTS_PER_ACCOUNT.default) }));

test('page concurrency: every surface takes min..max and refuses one past either edge', () => {
  const { min, max } = PAGE_CONCURRENCY;
  expect([min, max]).toEqual([1, 64]);
  for (const ok of [min, max]) {
    expect(parseConcurrency(String(ok))).toBe(ok);
    expect(resolveSettings({ concurrency: ok }).concurrency).toBe(ok);
    expect(readSettings({ ...app, PAGEWISE_CONCURRENCY: String(ok) }).engine.concurrency).toBe(ok);
    expect(validators.startBackup(body(ok))).toBe(true);
  }
  for (const bad of [min - 1, max + 1]) {
    expect(() => parseConcurrency(String(bad))).toThrow(`--concurrency ${bad} must be a whole number from 1 to 64`);
    expect(() => resolveSettings({ concurrency: bad })).toThrow(`concurrency ${bad} must be a whole number from 1 to 64`);
    expect(validators.startBackup(body(bad))).toBe(false);
  }
  expect(() => readSettings({ ...app, PAGEWISE_CONCURRENCY: String(max + 1) })).toThrow('app setting PAGEWISE_CONCURRENCY: concurrency 65 must be a whole number from 1 to 64');
  expect(resolveSettings({}).concurrency).toBe(PAGE_CONCURRENCY.default);
});

test('batches in flight: the app setting and the orchestration share one range and default', () => {
  expect(ORCHESTRATION_DEFAULT).toBe(BATCHES_IN_FLIGHT.default);
  expect(readSettings({ ...app, PAGEWISE_BATCHES_IN_FLIGHT: String(BATCHES_IN_FLIGHT.max) }).batchesInFlight).toBe(BATCHES_IN_FLIGHT.max);
  expect(() => readSettings({ ...app, PAGEWISE_BATCHES_IN_FLIGHT: String(BATCHES_IN_FLIGHT.max + 1) })).toThrow(
    `PAGEWISE_BATCHES_IN_FLIGHT must be a whole number from ${BATCHES_IN_FLIGHT.min} to ${BATCHES_IN_FLIGHT.max}, got "${BATCHES_IN_FLIGHT.max + 1}"`,
  );
  expect(() => readSettings({ ...app, PAGEWISE_BATCHES_IN_FLIGHT: '0' })).toThrow(/PAGEWISE_BATCHES_IN_FLIGHT must be a whole number from 1 to 32/);
});

test('requests per account: the same range wherever it is configured', () => {
  expect(() => configureRequestsPerAccount({ PAGEWISE_REQUESTS_PER_ACCOUNT: String(REQUESTS_PER_ACCOUNT.max + 1) })).toThrow(
    `PAGEWISE_REQUESTS_PER_ACCOUNT "10001" must be a whole number from 1 to 10000`,
  );
  expect(() => configureRequestsPerAccount({ PAGEWISE_REQUESTS_PER_ACCOUNT: '0' })).toThrow(/must be a whole number from 1 to 10000/);
  expect(() => configureRequestsPerAccount({ PAGEWISE_REQUESTS_PER_ACCOUNT: String(REQUESTS_PER_ACCOUNT.max) })).not.toThrow();
});
