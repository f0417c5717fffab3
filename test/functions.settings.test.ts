/** App settings parsing (functions/settings.ts): one place, strict, secrets never echoed. */
import { randomBytes } from 'node:crypto';
import { encodeKeyFile } from '../core';
import { assertAllowedAccount, assertAllowedSource, readSettings, readUserKey, watchedContainers } from '../functions/settings';
import { disksDue, parsePolicy } from '../functions/policy';

const base = {
  PAGEWISE_VAULT_URL: 'https://vaultacct.blob.core.windows.net/vault',
  PAGEWISE_ALLOWED_ACCOUNTS: 'SrcAcct, vaultacct',
};

test('settings: allow list, vault, engine limits', () => {
  const settings = readSettings({ ...base, PAGEWISE_PAGE_SIZE: '4194304', PAGEWISE_CONCURRENCY: '8', PAGEWISE_VAULT_CONNECTION_STRING: 'UseDevelopmentStorage=true' });
  expect([...settings.allowedAccounts]).toEqual(['srcacct', 'vaultacct']);
  expect(settings.engine).toEqual({ pageSize: 4194304, concurrency: 8 });
  expect(settings.vault.connectionString).toBe('UseDevelopmentStorage=true');
  expect(() => readSettings({ ...base, PAGEWISE_CACHE_BYTES: '-1' })).toThrow(/PAGEWISE_CACHE_BYTES must be a positive whole number/);
  expect(settings.batchesInFlight).toBeUndefined(); // the orchestration's default applies
  expect(readSettings({ ...base, PAGEWISE_BATCHES_IN_FLIGHT: '4' }).batchesInFlight).toBe(4);
  expect(() => readSettings({ ...base, PAGEWISE_BATCHES_IN_FLIGHT: '33' })).toThrow(/PAGEWISE_BATCHES_IN_FLIGHT must be a whole number from 1 to 32, got "33"/);
  expect(() => readSettings({ ...base, PAGEWISE_BATCHES_IN_FLIGHT: 'two' })).toThrow(/PAGEWISE_BATCHES_IN_FLIGHT/);
  expect(() => readSettings({ PAGEWISE_ALLOWED_ACCOUNTS: 'a' })).toThrow(/PAGEWISE_VAULT_URL is not set/);
  expect(() => readSettings({ ...base, PAGEWISE_VAULT_URL: 'https://other.blob.core.windows.net/vault' })).toThrow(/not in PAGEWISE_ALLOWED_ACCOUNTS/);
  expect(() => assertAllowedAccount(settings, 'https://srcacct.blob.core.windows.net/vhds/a.vhd', 'blob', 'x')).not.toThrow();
  expect(() => assertAllowedAccount(settings, 'http://127.0.0.1:10000/evil/vhds/a.vhd', 'blob', 'x')).toThrow(/"evil" is not in/);
  // A Compute-granted snapshot SAS is accepted only on the managed-disk export domain.
  expect(() => assertAllowedSource(settings, { url: 'https://md-x.z1.blob.storage.azure.net/a/abcd?sig=1', grantedBy: 'compute' }, 'x')).not.toThrow();
  expect(() => assertAllowedSource(settings, { url: 'https://attacker.example/a/abcd', grantedBy: 'compute' }, 'x')).toThrow(/blob\.storage\.azure\.net/);
  expect(watchedContainers({ PAGEWISE_WATCHED_CONTAINERS: ' Disks, src/vhds ,' })).toEqual(['disks', 'src/vhds']);
});

test('the user key: base64 of 32 bytes or a key file; errors do not echo it', () => {
  const key = randomBytes(32);
  expect(readUserKey({ PAGEWISE_USER_KEY: key.toString('base64') }).equals(key)).toBe(true);
  expect(readUserKey({ PAGEWISE_USER_KEY: encodeKeyFile(key) }).equals(key)).toBe(true);
  const short = randomBytes(16).toString('base64');
  let message = '';
  try {
    readUserKey({ PAGEWISE_USER_KEY: short });
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message).toMatch(/base64 of 32 bytes/);
  expect(message).not.toContain(short);
});

test('the backup policy: schema and weekdays', () => {
  const policy = parsePolicy(JSON.stringify({ disks: [{ url: 'https://a.blob.core.windows.net/c/x.vhd', days: ['Sat', 'Sun'] }, { url: 'https://a.blob.core.windows.net/c/y.vhd' }] }));
  expect(disksDue(policy, new Date('2024-05-04T03:00:00Z')).length).toBe(2); // a Saturday
  expect(disksDue(policy, new Date('2024-05-06T03:00:00Z')).map((d) => d.url)).toEqual(['https://a.blob.core.windows.net/c/y.vhd']);
  expect(() => parsePolicy('{"disks":[{"url":"https://a/b/c","days":["Funday"]}]}')).toThrow(/policy is invalid/);
  expect(() => parsePolicy('nope')).toThrow(/not JSON/);
});

test('the telemetry event of a finished backup carries counts and a source without its SAS', () => {
  const { backupCompletedEvent } = require('../functions/telemetry') as typeof import('../functions/telemetry');
  const event = backupCompletedEvent(
    { backupId: 'pw-1', diskBytes: 100, allocatedBytes: 50, bytesRead: 50, bytesStored: 20, pages: 3, storedBlocks: 2, zeroPages: 1, dedupedPages: 0, pageSize: 512, segments: 1, cacheCapacityBytes: 512, cacheHighWaterBytes: 512, alreadyExisted: false, bytesReadNow: 50, completedAt: '2024-05-06T03:00:00.000Z', durationMs: 9 },
    'https://acct.blob.core.windows.net/disks/vm.vhd?sv=2024&sig=SECRETSIGNATURE',
  );
  expect(event.name).toBe('PagewiseBackupCompleted');
  expect(event.properties).toEqual({ backupId: 'pw-1', source: 'https://acct.blob.core.windows.net/disks/vm.vhd' });
  expect(event.measurements).toMatchObject({ bytesRead: 50, allocatedBytes: 50, bytesStored: 20 });
  expect(JSON.stringify(event)).not.toContain('SECRET');
});

test('PAGEWISE_SCRATCH_DIR reaches the engine settings of the activities', () => {
  const { readSettings, engineSettings } = require('../functions/settings') as typeof import('../functions/settings');
  const settings = readSettings({
    PAGEWISE_VAULT_URL: 'https://vaultacct.blob.core.windows.net/vault?sv=1&sig=x',
    PAGEWISE_ALLOWED_ACCOUNTS: 'vaultacct',
    PAGEWISE_SCRATCH_DIR: '/mnt/scratch',
  });
  expect(engineSettings(settings)).toMatchObject({ scratchDir: '/mnt/scratch' });
});
