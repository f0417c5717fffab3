/**
 * Sealed URLs against a hostile task-hub input (what the durable webhook's key holder can start): a seal
 * moved onto another blob, container or the vault, a URL carrying a raw SAS beside a seal, a raw SAS on an
 * endpoint not allowed, a `sealedSas` posted over the public API. Each is refused before any request, and
 * no refusal shows the opened SAS.
 */
import { randomBytes } from 'node:crypto';
import { validators } from '../functions/http/schemas';
import { sealRef } from '../functions/sealedRefs';
import { allowedBlob, allowedSource, readSettings } from '../functions/settings';

const settings = readSettings({ PAGEWISE_VAULT_URL: 'https://vaultacct.blob.core.windows.net/vault', PAGEWISE_ALLOWED_ACCOUNTS: 'srcacct, vaultacct' });
const key = randomBytes(32);
const SAS = 'sv=2024-01-01&sr=b&sp=rw&sig=U0VBTEVEU0VDUkVU';
const DISK = 'https://srcacct.blob.core.windows.net/vhds/a.vhd';
const sealed = sealRef({ url: `${DISK}?${SAS}` }, key);
const refusedSeal = (url: string) => `the sealed SAS of x (${url}) does not open under this app's key: sealed by another key, for another URL, or altered`;

/** Runs `open` and returns its error message, which must name no part of the SAS. */
function refusal(open: () => unknown): string {
  let message = '';
  try {
    open();
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message).not.toMatch(/U0VBTEVEU0VDUkVU|sig=|sp=rw/);
  return message;
}

test('a seal opens for its own URL and for no other: another blob, container, account, snapshot or the vault', () => {
  expect(allowedBlob(settings, sealed, key, 'x')).toEqual({ url: `${DISK}?${SAS}` });
  for (const url of [
    'https://srcacct.blob.core.windows.net/vhds/b.vhd',
    'https://srcacct.blob.core.windows.net/other/a.vhd',
    'https://vaultacct.blob.core.windows.net/vhds/a.vhd',
    'https://vaultacct.blob.core.windows.net/vault/backups/x',
    `${DISK}?snapshot=2024-05-02T01:00:00.0000000Z`,
  ]) {
    expect(refusal(() => allowedBlob(settings, { ...sealed, url }, key, 'x'))).toBe(refusedSeal(url.replace(/\?.*/, url.includes('snapshot=') ? '?snapshot=2024-05-02T01:00:00.0000000Z' : '')));
    expect(refusal(() => allowedSource(settings, { ...sealed, url }, key, 'x'))).toMatch(/^the sealed SAS of x .* does not open under this app's key/);
  }
});

test('a URL with a raw SAS beside a seal is refused, whichever SAS it carries', () => {
  for (const query of [SAS, 'sv=2024-01-01&sr=b&sp=r&sig=T1RIRVI']) {
    expect(refusal(() => allowedBlob(settings, { ...sealed, url: `${DISK}?${query}` }, key, 'x'))).toBe(refusedSeal(DISK));
  }
  // A starter given such a reference refuses it: the raw SAS would otherwise enter the task hub as it is.
  expect(refusal(() => sealRef({ ...sealed, url: `${DISK}?${SAS}` }, key))).toBe(`${DISK} carries a SAS beside a sealed one: give the SAS once`);
  expect(sealRef(sealed, key)).toBe(sealed);
});

test('a raw SAS (no seal) as the durable webhook may pass is still allow-list checked, its SAS not echoed', () => {
  expect(allowedBlob(settings, { url: `${DISK}?${SAS}` }, key, 'x')).toEqual({ url: `${DISK}?${SAS}` });
  for (const url of [`http://127.0.0.1:10000/srcacct/vhds/a.vhd?${SAS}`, `https://evil.blob.core.windows.net/vhds/a.vhd?${SAS}`]) {
    expect(refusal(() => allowedBlob(settings, { url }, key, 'x'))).toMatch(/^x is not on an allowed storage endpoint/);
    expect(refusal(() => allowedSource(settings, { url }, key, 'x'))).toMatch(/^x is not on an allowed storage endpoint/);
  }
  // Sealed for a host not allowed: opened, then refused by the allow list all the same.
  const foreign = sealRef({ url: `https://evil.blob.core.windows.net/vhds/a.vhd?${SAS}` }, key);
  expect(refusal(() => allowedBlob(settings, foreign, key, 'x'))).toMatch(/^x is not on an allowed storage endpoint/);
});

test('the public API refuses a sealedSas field: only a starter seals', () => {
  const ref = { url: DISK, sealedSas: sealed.sealedSas };
  expect(validators.startBackup({ source: ref })).toBe(false);
  expect(validators.startBackup.errors?.[0]).toMatchObject({ keyword: 'additionalProperties', params: { additionalProperty: 'sealedSas' } });
  expect(validators.startRestore({ backupId: 'pw-000000000000000000000000', target: ref })).toBe(false);
  expect(validators.startVerification({ backupId: 'pw-000000000000000000000000', source: ref })).toBe(false);
  expect(validators.startBackup({ source: { url: DISK } })).toBe(true);
});
