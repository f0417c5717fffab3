/** App settings parsing (functions/settings.ts): one place, strict, secrets never echoed. */
import { randomBytes } from 'node:crypto';
import { encodeKeyFile } from '../core';
import { allowedSource, assertAllowedAccount, readSettings, readUserKey, watchedContainers } from '../functions/settings';
import { disksDue, fullDue, parsePolicy } from '../functions/policy';
import { grantedSource } from '../functions/compute';

const base = {
  PAGEWISE_VAULT_URL: 'https://vaultacct.blob.core.windows.net/vault',
  PAGEWISE_ALLOWED_ACCOUNTS: 'SrcAcct, vaultacct',
};

test('settings: allow list, vault, engine limits', () => {
  const settings = readSettings({ ...base, PAGEWISE_PAGE_SIZE: '4194304', PAGEWISE_CONCURRENCY: '8', PAGEWISE_VAULT_CONNECTION_STRING: 'UseDevelopmentStorage=true' });
  expect([...settings.allowedEndpoints]).toEqual(['https://srcacct.blob.core.windows.net', 'https://vaultacct.blob.core.windows.net']);
  expect(settings.engine).toEqual({ pageSize: 4194304, concurrency: 8 });
  expect(settings.vault.connectionString).toBe('UseDevelopmentStorage=true');
  expect(() => readSettings({ ...base, PAGEWISE_CACHE_BYTES: '-1' })).toThrow(/PAGEWISE_CACHE_BYTES must be a positive whole number/);
  expect(settings.batchesInFlight).toBeUndefined(); // the orchestration's default applies
  expect(readSettings({ ...base, PAGEWISE_BATCHES_IN_FLIGHT: '4' }).batchesInFlight).toBe(4);
  expect(() => readSettings({ ...base, PAGEWISE_BATCHES_IN_FLIGHT: '33' })).toThrow(/PAGEWISE_BATCHES_IN_FLIGHT must be a whole number from 1 to 32, got "33"/);
  expect(() => readSettings({ ...base, PAGEWISE_BATCHES_IN_FLIGHT: 'two' })).toThrow(/PAGEWISE_BATCHES_IN_FLIGHT/);
  expect(() => readSettings({ PAGEWISE_ALLOWED_ACCOUNTS: 'a' })).toThrow(/PAGEWISE_VAULT_URL is not set/);
  expect(() => readSettings({ ...base, PAGEWISE_VAULT_URL: 'https://other.blob.core.windows.net/vault' })).toThrow(/PAGEWISE_VAULT_URL is not on an allowed storage endpoint: .* listed in PAGEWISE_ALLOWED_ACCOUNTS$/);
  expect(() => assertAllowedAccount(settings, 'https://srcacct.blob.core.windows.net/vhds/a.vhd', 'blob', 'x')).not.toThrow();
  expect(() => assertAllowedAccount(settings, 'http://127.0.0.1:10000/evil/vhds/a.vhd', 'blob', 'x')).toThrow(/^x is not on an allowed storage endpoint/);
  // An allowed name on another host, port or scheme is not its endpoint.
  for (const url of ['http://127.0.0.1:10000/srcacct/vhds/a.vhd', 'https://srcacct.blob.core.windows.net:8443/vhds/a.vhd', 'http://srcacct.blob.core.windows.net/vhds/a.vhd', 'https://srcacct.blob.core.windows.net.evil.example/vhds/a.vhd']) {
    expect(() => assertAllowedAccount(settings, url, 'blob', 'x')).toThrow(/^x is not on an allowed storage endpoint/);
  }
  // A Compute-granted snapshot SAS is accepted only with the seal of the app's own grant.
  const key = randomBytes(32);
  const md = 'https://md-x.z1.blob.storage.azure.net/snapc/abcd?sig=1';
  expect(allowedSource(settings, grantedSource(md, key), key, 'x')).toEqual({ url: md, managedDiskGrant: true });
  expect(() => allowedSource(settings, { url: md, grantedBy: 'compute' }, key, 'x')).toThrow(/^x is not on an allowed storage endpoint/);
  expect(() => allowedSource(settings, { ...grantedSource(md, randomBytes(32)) }, key, 'x')).toThrow(/^x is not on an allowed storage endpoint/);
  expect(() => allowedSource(settings, { ...grantedSource(md, key), url: 'https://md-y.z1.blob.storage.azure.net/snapc/abcd?sig=1' }, key, 'x')).toThrow(/^x is not on an allowed storage endpoint/);
  expect(() => allowedSource(settings, { url: md }, key, 'x')).toThrow(/^x is not on an allowed storage endpoint/);
  expect(() => grantedSource('https://attacker.example/snapc/abcd', key)).toThrow(/the URL the Compute grant returned is not on an allowed storage endpoint/);
  // The snapshot's disk identity (the base of its next backup) travels under the same seal: altered or added, the grant is refused.
  const disk = { sourceUniqueId: '2b8c1f5e-0000-4000-8000-000000000001', armDiskId: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/vm1-os' };
  const withDisk = grantedSource(md, key, new Set(), disk);
  expect(allowedSource(settings, withDisk, key, 'x')).toEqual({ url: md, managedDiskGrant: true, managedDisk: disk });
  expect(() => allowedSource(settings, { ...withDisk, managedDisk: { ...disk, armDiskId: `${disk.armDiskId.slice(0, -3)}-db` } }, key, 'x')).toThrow(/^x is not on an allowed storage endpoint/);
  expect(() => allowedSource(settings, { ...grantedSource(md, key), managedDisk: disk }, key, 'x')).toThrow(/^x is not on an allowed storage endpoint/);
  expect(() => allowedSource(settings, { ...withDisk, managedDisk: undefined }, key, 'x')).toThrow(/^x is not on an allowed storage endpoint/);
  // Endpoint URLs are allowed as entries; anything else is a setting error.
  const local = readSettings({ PAGEWISE_VAULT_URL: 'http://127.0.0.1:10000/vault/vault', PAGEWISE_ALLOWED_ACCOUNTS: 'http://127.0.0.1:10000/vault, srcacct' });
  expect([...local.allowedEndpoints]).toEqual(['http://127.0.0.1:10000/vault', 'https://srcacct.blob.core.windows.net']);
  expect(() => readSettings({ ...base, PAGEWISE_ALLOWED_ACCOUNTS: 'http://127.0.0.1:10000' })).toThrow(/PAGEWISE_ALLOWED_ACCOUNTS: "http:\/\/127\.0\.0\.1:10000" must name the account/);
  expect(() => readSettings({ ...base, PAGEWISE_ALLOWED_ACCOUNTS: 'https://vaultacct.blob.core.windows.net/vault' })).toThrow(/must have no path/);
  expect(() => readSettings({ ...base, PAGEWISE_ALLOWED_ACCOUNTS: 'vault acct' })).toThrow(/is neither a storage account name nor an endpoint URL/);
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

test('the backup policy: incremental by default, full on the days it says', () => {
  const policy = parsePolicy(
    JSON.stringify({ disks: [{ url: 'https://a.blob.core.windows.net/c/x.vhd', fullOn: ['Sun'] }, { url: 'https://a.blob.core.windows.net/c/y.vhd', full: true }, { url: 'https://a.blob.core.windows.net/c/z.vhd' }] }),
  );
  const sunday = new Date('2024-05-05T03:00:00Z');
  const monday = new Date('2024-05-06T03:00:00Z');
  expect(policy.disks.map((d) => [fullDue(d, sunday), fullDue(d, monday)])).toEqual([[true, false], [true, true], [false, false]]);
  expect(() => parsePolicy('{"disks":[{"url":"https://a/b/c","fullOn":["Someday"]}]}')).toThrow(/policy is invalid/);
  expect(() => parsePolicy('{"disks":[{"url":"https://a/b/c","full":"yes"}]}')).toThrow(/policy is invalid/);
});

test('the backup policy: one weekday list for the days and fullOn of disks and of VMs, each day at most once', () => {
  const sub = '00000000-0000-0000-0000-000000000001';
  const vm = { id: `/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v1` };
  const policy = parsePolicy(JSON.stringify({ disks: [{ url: 'https://a.blob.core.windows.net/c/x.vhd', days: ['Mon'], fullOn: ['Mon'] }], vms: [{ ...vm, days: ['Tue'], fullOn: ['Tue'] }] }));
  expect([policy.disks[0].days, policy.disks[0].fullOn, policy.vms?.[0].days, policy.vms?.[0].fullOn]).toEqual([['Mon'], ['Mon'], ['Tue'], ['Tue']]);
  for (const field of ['days', 'fullOn']) {
    expect(() => parsePolicy(JSON.stringify({ disks: [{ url: 'https://a/b/c', [field]: ['Mon', 'Mon'] }] }))).toThrow(/policy is invalid.*duplicate/);
    expect(() => parsePolicy(JSON.stringify({ vms: [{ ...vm, [field]: ['Sun', 'Sun'] }] }))).toThrow(/policy is invalid.*duplicate/);
    expect(() => parsePolicy(JSON.stringify({ vms: [{ ...vm, [field]: ['Caturday'] }] }))).toThrow(/policy is invalid/);
  }
});

test('the telemetry event of a finished backup carries its figures and the disk without its SAS', () => {
  const { operationEvent } = require('../functions/telemetry') as typeof import('../functions/telemetry');
  const event = operationEvent(
    'backup',
    'Completed',
    { instanceId: 'backup-pw-1', trigger: 'timer', disk: 'https://acct.blob.core.windows.net/disks/vm.vhd?sv=2024&sig=SECRETSIGNATURE', backupId: 'pw-1' },
    { bytesRead: 50, bytesStored: 20, bytesNew: 20 },
  );
  expect(event.name).toBe('PagewiseBackupCompleted');
  expect(event.properties).toEqual({ operation: 'backup', instanceId: 'backup-pw-1', trigger: 'timer', disk: 'https://acct.blob.core.windows.net/disks/vm.vhd', backupId: 'pw-1' });
  expect(event.measurements).toEqual({ bytesRead: 50, bytesStored: 20, bytesNew: 20 });
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
