/** Storage URLs (core/storage/clients.ts): virtual-host and path-style, blob vs container. */
import { parseStorageUrl } from '../core/storage/clients';

test('storage URLs: virtual-host and path-style, blob vs container', () => {
  expect(parseStorageUrl('https://acct.blob.core.windows.net/disks/a/b.vhd?sig=x', 'blob', 's')).toMatchObject({ account: 'acct', container: 'disks', blob: 'a/b.vhd', hasSas: true, pathStyle: false });
  expect(parseStorageUrl('http://127.0.0.1:10000/src/disks/b.vhd', 'blob', 's')).toMatchObject({ account: 'src', container: 'disks', blob: 'b.vhd', pathStyle: true });
  expect(() => parseStorageUrl('https://acct.blob.core.windows.net/Disks/x', 'blob', 'the source')).toThrow(/container name/);
  // A managed-disk snapshot's read SAS (from Compute's grant access) lives on a host with dashes.
  expect(parseStorageUrl('https://md-impexp-t0abcd1234.z1.blob.storage.azure.net/x1y2z3w4v5u6/abcd?sv=2018-03-28&sr=b&sig=s', 'blob', 's')).toMatchObject({ account: 'md-impexp-t0abcd1234', container: 'x1y2z3w4v5u6', blob: 'abcd', hasSas: true });
  expect(() => parseStorageUrl('https://acct.blob.core.windows.net/disks', 'blob', 'the source')).toThrow(/must name a blob/);
  expect(() => parseStorageUrl('https://acct.blob.core.windows.net/disks/x', 'container', 'the vault')).toThrow(/container URL/);
});
