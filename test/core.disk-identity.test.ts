/** Disk identity (core/source/disk-identity.ts, FORMAT.md §21.1): one identity per disk whatever URL names it. */
import { parseStorageUrl, SourceDisk } from '../core';
import { diskIdentityOf } from '../core/source/disk-identity';
import type { SourceIdentity } from '../core/source/source-disk';
import { managedDiskOf } from '../functions/compute';
import { KiB, startEnv, TestEnv } from './harness/env';

function identityOf(url: string): SourceIdentity {
  const parsed = parseStorageUrl(url, 'blob', 'the test URL');
  return { url: url.split('?')[0], account: parsed.account, container: parsed.container, blob: parsed.blob!, snapshot: parsed.snapshot ?? '', etag: '"0x1"' };
}

const SAS = 'sv=2022-11-02&sr=b&sp=r&se=2099-01-01T00%3A00%3A00Z&sig=c2lnbmF0dXJl';

describe('a page blob', () => {
  test('is blob:<account>/<container>/<blob> whatever the host form, SAS or snapshot', () => {
    const expected = { identity: 'blob:myacct/disks/vm one/os+disk#1.vhd', kind: 'page-blob', account: 'myacct', container: 'disks', blob: 'vm one/os+disk#1.vhd' };
    const forms = [
      'https://myacct.blob.core.windows.net/disks/vm%20one/os%2Bdisk%231.vhd',
      'https://MYACCT.blob.core.windows.net/disks/vm%20one/os%2Bdisk%231.vhd',
      `https://myacct.blob.core.windows.net/disks/vm%20one/os%2Bdisk%231.vhd?${SAS}`,
      `https://myacct.blob.core.windows.net/disks/vm%20one/os%2Bdisk%231.vhd?snapshot=2026-11-30T01:00:00.1234567Z&${SAS}`,
      'https://myacct.blob.core.chinacloudapi.cn/disks/vm%20one/os%2Bdisk%231.vhd',
      'http://127.0.0.1:10000/MyAcct/disks/vm%20one/os%2Bdisk%231.vhd',
      `http://localhost:10000/myacct/disks/vm%20one/os+disk%231.vhd?snapshot=2026-11-30T02:00:00Z`,
    ];
    for (const url of forms) expect(diskIdentityOf(identityOf(url))).toEqual(expected);
  });

  test('keeps the blob name\'s case and tells other blobs, containers and accounts apart', () => {
    const ids = [
      'https://myacct.blob.core.windows.net/disks/Disk.vhd',
      'https://myacct.blob.core.windows.net/disks/disk.vhd',
      'https://myacct.blob.core.windows.net/disks2/Disk.vhd',
      'https://otheracct.blob.core.windows.net/disks/Disk.vhd',
      'https://myacct.blob.core.windows.net/disks/dir/Disk.vhd',
    ].map((url) => diskIdentityOf(identityOf(url)).identity);
    expect(ids).toEqual([
      'blob:myacct/disks/Disk.vhd',
      'blob:myacct/disks/disk.vhd',
      'blob:myacct/disks2/Disk.vhd',
      'blob:otheracct/disks/Disk.vhd',
      'blob:myacct/disks/dir/Disk.vhd',
    ]);
  });

  describe('opened for real', () => {
    let env: TestEnv;
    beforeAll(async () => {
      env = await startEnv();
    });
    afterAll(async () => {
      await env?.stop();
    });

    test('the live blob, a snapshot Pagewise took and a snapshot URL all name one disk', async () => {
      const disk = await env.makeDisk('Data Disk 1.vhd', 256 * KiB, [{ offset: 0, length: 64 * KiB, kind: 'random' }]);
      const live = await SourceDisk.open(disk.source);
      const taken = await SourceDisk.open({ url: env.az.sasUrl('src', 'disks', 'Data Disk 1.vhd') }).then((d) => d.takeSnapshot({ url: env.az.sasUrl('src', 'disks', 'Data Disk 1.vhd') }));
      const byUrl = await SourceDisk.open({ url: `${disk.source.url}&snapshot=${encodeURIComponent(taken.identity.snapshot)}` });
      const expected = { identity: 'blob:src/disks/Data Disk 1.vhd', kind: 'page-blob', account: 'src', container: 'disks', blob: 'Data Disk 1.vhd' };
      expect(diskIdentityOf(live.identity)).toEqual(expected);
      expect(diskIdentityOf(taken.identity)).toEqual(expected);
      expect(diskIdentityOf(byUrl.identity)).toEqual(expected);
      expect(taken.identity.snapshot).not.toBe('');
    });
  });
});

describe('a managed-disk snapshot', () => {
  const grant = identityOf(`https://md-impexp-abc123def.blob.storage.azure.net/xk4rp2z1mq0w/abcd?${SAS}`);
  const uid = '3F2504E0-4F89-11D3-9A0C-0305E82C3301';
  const arm = '/subscriptions/00000000-0000-0000-0000-00000000AbCd/resourceGroups/RG-Prod/providers/Microsoft.Compute/disks/VM1_OsDisk';

  test('is azure-disk:<sourceUniqueId>, lower case, with the ARM ID beside it; never the grant host', () => {
    expect(diskIdentityOf(grant, { sourceUniqueId: uid, armDiskId: arm, snapshotResourceId: '/subscriptions/x/snap' })).toEqual({
      identity: 'azure-disk:3f2504e0-4f89-11d3-9a0c-0305e82c3301',
      kind: 'managed-disk',
      sourceUniqueId: '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
      armDiskId: arm.toLowerCase(),
    });
    // Another grant of another snapshot of the same disk: the same identity.
    const other = identityOf(`https://md-zz9.z41.blob.storage.azure.net/qq0w/abcd?${SAS}`);
    expect(diskIdentityOf(other, { sourceUniqueId: uid.toLowerCase() }).identity).toBe('azure-disk:3f2504e0-4f89-11d3-9a0c-0305e82c3301');
  });

  test('takes its facts from the Compute snapshot resource (functions/compute.ts managedDiskOf)', () => {
    const snapshotId = '/subscriptions/00000000-0000-0000-0000-00000000abcd/resourceGroups/rg-prod/providers/Microsoft.Compute/snapshots/nightly-1';
    const facts = managedDiskOf({ id: snapshotId, creationData: { sourceUniqueId: uid, sourceResourceId: arm } });
    expect(facts).toEqual({ sourceUniqueId: uid, armDiskId: arm, snapshotResourceId: snapshotId });
    expect(diskIdentityOf(grant, facts).identity).toBe('azure-disk:3f2504e0-4f89-11d3-9a0c-0305e82c3301');
    expect(managedDiskOf({ id: snapshotId, creationData: { sourceResourceId: arm } })).toEqual({ armDiskId: arm, snapshotResourceId: snapshotId });
    expect(managedDiskOf({})).toEqual({});
  });

  test('is azure-disk-id:<armDiskId> when Compute gives no unique ID', () => {
    expect(diskIdentityOf(grant, { armDiskId: arm })).toEqual({ identity: `azure-disk-id:${arm.toLowerCase()}`, kind: 'managed-disk', armDiskId: arm.toLowerCase() });
  });

  test('refuses a grant without creationData, and creationData of the wrong form', () => {
    expect(() => diskIdentityOf(grant)).toThrow(/creationData .* was not passed/);
    expect(() => diskIdentityOf(grant, { snapshotResourceId: '/subscriptions/x/snap' })).toThrow(/was not passed/);
    expect(() => diskIdentityOf(grant, { sourceUniqueId: 'not-a-guid' })).toThrow(/sourceUniqueId \(a GUID\) is not of the expected form/);
    expect(() => diskIdentityOf(grant, { armDiskId: '/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/snapshots/s1' })).toThrow(/sourceResourceId/);
    expect(() => diskIdentityOf(grant, { sourceUniqueId: uid, armDiskId: `${arm}/../../disks/other` })).toThrow(/sourceResourceId/);
  });
});
