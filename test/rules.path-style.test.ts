/**
 * Path-style hosts (the emulator's `http://host:port/<account>/<container>`) are told apart by one
 * function (core isPathStyleHost): URL parsing and Event Grid's blob events name the same account and
 * container for the same URL. The URLs are only parsed, never connected to.
 */
import { isPathStyleHost, parseStorageUrl } from '../core';
import { classifyEvent } from '../functions/events/diskEvents';

const hosts: Array<{ host: string; pathStyle: boolean }> = [
  { host: '127.0.0.1', pathStyle: true },
  { host: 'localhost', pathStyle: true },
  { host: 'host.docker.internal', pathStyle: true },
  { host: 'acct.blob.core.windows.net', pathStyle: false },
  { host: 'md-abc.z1.blob.storage.azure.net', pathStyle: false },
];

test.each(hosts)('$host is path-style: $pathStyle', ({ host, pathStyle }) => {
  expect(isPathStyleHost(host)).toBe(pathStyle);
});

const urls = [
  'http://127.0.0.1:10000/devstoreaccount1/disks/a.vhd',
  'http://localhost:10000/devstoreaccount1/disks/a.vhd',
  'http://host.docker.internal:10000/devstoreaccount1/disks/a.vhd',
  'https://acct.blob.core.windows.net/disks/a.vhd',
];

test.each(urls)('a BlobCreated event for %s names the account and container the URL parser does', (url) => {
  const parsed = parseStorageUrl(url, 'blob', 'x');
  const event = classifyEvent(
    { specversion: '1.0', type: 'Microsoft.Storage.BlobCreated', id: 'e1', source: `/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/${parsed.account}`, data: { url, blobType: 'PageBlob' } },
    ['disks'],
  );
  expect(event).toMatchObject({ kind: 'pageBlob', account: parsed.account, container: parsed.container, blob: 'a.vhd' });
});
