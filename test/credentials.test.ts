/**
 * A caller's TokenCredential (StorageLocation.credential) is the one storage clients use when the URL
 * has no SAS and no connection string is given; otherwise the process's one default credential
 * (core defaultCredential, also used for Compute). Only clients are built: no request is sent.
 */
import type { AccessToken } from '@azure/identity';
import { configureStorageEndpoints, defaultCredential, TokenCredential } from '../core';
import { sourceBlobClient, vaultContainerClient } from '../core/storage/clients';

const callerCredential: TokenCredential = {
  async getToken(): Promise<AccessToken> {
    return { token: 'not-used', expiresOnTimestamp: Date.now() + 3_600_000 };
  },
};

beforeAll(() => configureStorageEndpoints(['https://srcacct.blob.core.windows.net', 'https://vaultacct.blob.core.windows.net'], 'the test'));

test("a location's own credential is used when its URL carries no SAS", () => {
  expect(sourceBlobClient({ url: 'https://srcacct.blob.core.windows.net/vhds/a.vhd', credential: callerCredential }).client.credential).toBe(callerCredential);
  expect(vaultContainerClient({ url: 'https://vaultacct.blob.core.windows.net/vault', credential: callerCredential }).client.credential).toBe(callerCredential);
});

test('without one, every client shares the one default credential', () => {
  const a = sourceBlobClient({ url: 'https://srcacct.blob.core.windows.net/vhds/a.vhd' }).client.credential;
  const b = vaultContainerClient({ url: 'https://vaultacct.blob.core.windows.net/vault' }).client.credential;
  expect(a).toBe(defaultCredential());
  expect(b).toBe(defaultCredential());
});

test('a SAS in the URL wins over a given credential (the SAS is what the caller scoped)', () => {
  const client = sourceBlobClient({ url: 'https://srcacct.blob.core.windows.net/vhds/a.vhd?sv=2022-11-02&sp=r&sig=abc', credential: callerCredential }).client;
  expect(client.credential).not.toBe(callerCredential);
  expect(client.credential.constructor.name).toBe('AnonymousCredential');
});
