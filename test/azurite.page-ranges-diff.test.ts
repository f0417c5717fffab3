/** The Azurite patch (patches/azurite+3.37.0.patch, docs/AZURITE.md): page-range diffs, paging, snapshot SAS reads. */
import { AnonymousCredential, BlobSASPermissions, ContainerClient, generateBlobSASQueryParameters, PageBlobClient, SASProtocol } from '@azure/storage-blob';
import { startEnv, TestEnv, KiB } from './harness/env';

let env: TestEnv;
let disks: ContainerClient;
const DISK = 256 * KiB;

beforeAll(async () => {
  env = await startEnv();
  disks = env.az.accounts.src.service.getContainerClient('disks');
});
afterAll(async () => env?.stop());

type Item = [start: number, end: number, cleared: boolean];

/** The diff as the SDK's paged listing yields it: [start, end (inclusive), cleared]. */
async function diffOf(blob: PageBlobClient, prevSnapshot: string, maxPageSize?: number): Promise<{ items: Item[]; pages: number }> {
  const items: Item[] = [];
  let pages = 0;
  for await (const page of blob.listPageRangesDiff(0, DISK, prevSnapshot).byPage({ maxPageSize })) {
    pages++;
    // Within a page the SDK lists PageRange then ClearRange; order them by offset as the service does.
    const inPage: Item[] = [
      ...(page.pageRange ?? []).map((r): Item => [r.start, r.end, false]),
      ...(page.clearRange ?? []).map((r): Item => [r.start, r.end, true]),
    ].sort((a, b) => a[0] - b[0]);
    items.push(...inPage);
  }
  return { items, pages };
}

async function newDisk(name: string): Promise<PageBlobClient> {
  const blob = disks.getPageBlobClient(name);
  await blob.create(DISK);
  return blob;
}

const fill = (bytes: number, value: number) => Buffer.alloc(bytes, value);

describe('Get Page Ranges with prevsnapshot', () => {
  test('changed ranges come as PageRange, cleared ones as ClearRange; untouched ranges are absent', async () => {
    const blob = await newDisk('changed-cleared');
    await blob.uploadPages(fill(4 * KiB, 1), 0, 4 * KiB);
    await blob.uploadPages(fill(4 * KiB, 2), 8 * KiB, 4 * KiB);
    const { snapshot } = await blob.createSnapshot();
    await blob.uploadPages(fill(512, 3), KiB, 512);
    await blob.clearPages(8 * KiB, KiB);
    await blob.uploadPages(fill(KiB, 4), 20 * KiB, KiB);

    expect((await diffOf(blob, snapshot!)).items).toEqual([
      [KiB, KiB + 511, false],
      [8 * KiB, 9 * KiB - 1, true],
      [20 * KiB, 21 * KiB - 1, false],
    ]);
    // The unpaged call carries the same two lists (its SDK model gives count = end - start).
    const whole = await blob.getPageRangesDiff(0, DISK, snapshot!);
    expect(whole.pageRange).toEqual([{ offset: KiB, count: 511 }, { offset: 20 * KiB, count: KiB - 1 }]);
    expect(whole.clearRange).toEqual([{ offset: 8 * KiB, count: KiB - 1 }]);
  });

  test('overlapping writes after the snapshot give one changed range', async () => {
    const blob = await newDisk('overlapping');
    await blob.uploadPages(fill(16 * KiB, 1), 0, 16 * KiB);
    const { snapshot } = await blob.createSnapshot();
    await blob.uploadPages(fill(4 * KiB, 2), 4 * KiB, 4 * KiB);
    await blob.uploadPages(fill(KiB, 3), 5 * KiB, KiB);
    await blob.uploadPages(fill(3 * KiB, 4), 6 * KiB, 3 * KiB);
    await blob.uploadPages(fill(4 * KiB, 2), 4 * KiB, 4 * KiB); // same bytes again: still a write
    expect((await diffOf(blob, snapshot!)).items).toEqual([[4 * KiB, 9 * KiB - 1, false]]);
  });

  test('a write then a clear of the same pages since the snapshot is a clear; a clear then a write is a change', async () => {
    const blob = await newDisk('write-clear');
    await blob.uploadPages(fill(8 * KiB, 1), 0, 8 * KiB);
    const { snapshot } = await blob.createSnapshot();
    await blob.uploadPages(fill(KiB, 2), 0, KiB);
    await blob.clearPages(0, KiB);
    await blob.clearPages(4 * KiB, KiB);
    await blob.uploadPages(fill(KiB, 1), 4 * KiB, KiB);
    await blob.uploadPages(fill(KiB, 5), 64 * KiB, KiB);
    await blob.clearPages(64 * KiB, KiB); // written and cleared after the snapshot: no difference
    expect((await diffOf(blob, snapshot!)).items).toEqual([
      [0, KiB - 1, true],
      [4 * KiB, 5 * KiB - 1, false],
    ]);
  });

  test('between two snapshots, and from the later snapshot to the live blob', async () => {
    const blob = await newDisk('two-snapshots');
    await blob.uploadPages(fill(8 * KiB, 1), 0, 8 * KiB);
    const s1 = (await blob.createSnapshot()).snapshot!;
    await blob.uploadPages(fill(KiB, 2), 2 * KiB, KiB);
    await blob.clearPages(6 * KiB, KiB);
    const s2 = (await blob.createSnapshot()).snapshot!;
    await blob.uploadPages(fill(KiB, 3), 32 * KiB, KiB);
    await blob.clearPages(0, 512);

    expect((await diffOf(blob.withSnapshot(s2), s1)).items).toEqual([
      [2 * KiB, 3 * KiB - 1, false],
      [6 * KiB, 7 * KiB - 1, true],
    ]);
    expect((await diffOf(blob, s2)).items).toEqual([
      [0, 511, true],
      [32 * KiB, 33 * KiB - 1, false],
    ]);
    expect((await diffOf(blob, s1)).items).toEqual([
      [0, 511, true],
      [2 * KiB, 3 * KiB - 1, false],
      [6 * KiB, 7 * KiB - 1, true],
      [32 * KiB, 33 * KiB - 1, false],
    ]);
    expect((await diffOf(blob.withSnapshot(s1), s1)).items).toEqual([]);
    await expect(diffOf(blob.withSnapshot(s1), s2)).rejects.toMatchObject({ statusCode: 400, code: 'PreviousSnapshotCannotBeNewer' });
  });

  test('paging with a small page size lists exactly what the unpaged call lists', async () => {
    const blob = await newDisk('many-ranges');
    const pages = 120; // one 512-byte write every 2 KiB
    for (let i = 0; i < pages; i++) await blob.uploadPages(fill(512, 1), i * 2 * KiB, 512);
    const { snapshot } = await blob.createSnapshot();
    for (let i = 0; i < pages; i += 2) await blob.uploadPages(fill(512, 2), i * 2 * KiB, 512);
    for (let i = 1; i < pages; i += 4) await blob.clearPages(i * 2 * KiB, 512);

    const unpaged = await diffOf(blob, snapshot!);
    expect(unpaged.pages).toBe(1);
    expect(unpaged.items).toHaveLength(pages / 2 + pages / 4);
    expect(unpaged.items.filter((i) => i[2])).toHaveLength(pages / 4);
    const paged = await diffOf(blob, snapshot!, 7);
    expect(paged.pages).toBe(Math.ceil(unpaged.items.length / 7));
    expect(paged.items).toEqual(unpaged.items);

    // Plain Get Page Ranges pages the same way.
    const all = (await blob.getPageRanges()).pageRange!.map((r) => [r.offset, r.count]);
    const listed: number[][] = [];
    let plainPages = 0;
    for await (const page of blob.listPageRanges().byPage({ maxPageSize: 9 })) {
      plainPages++;
      expect(page.pageRange!.length).toBeLessThanOrEqual(9);
      listed.push(...page.pageRange!.map((r) => [r.start, r.end - r.start]));
    }
    expect(all).toHaveLength(pages - pages / 4);
    expect(plainPages).toBe(Math.ceil(all.length / 9));
    expect(listed).toEqual(all);
  });

  test('a marker the service did not issue is refused', async () => {
    const blob = await newDisk('bad-marker');
    await blob.uploadPages(fill(512, 1), 0, 512);
    await expect(blob.listPageRanges().byPage({ continuationToken: 'not-a-marker', maxPageSize: 2 }).next())
      .rejects.toMatchObject({ statusCode: 400, code: 'InvalidQueryParameterValue' });
  });

  test('x-ms-previous-snapshot-url: a snapshot or blob of this emulator and account', async () => {
    const blob = await newDisk('by-url');
    await blob.uploadPages(fill(8 * KiB, 1), 0, 8 * KiB);
    const { snapshot } = await blob.createSnapshot();
    // A managed-disk snapshot is another blob; here a Copy Blob of the disk at the snapshot, sharing its extents.
    const copy = disks.getPageBlobClient('by-url-copy');
    await (await copy.beginCopyFromURL(blob.withSnapshot(snapshot!).url)).pollUntilDone();
    await blob.uploadPages(fill(KiB, 2), KiB, KiB);
    await blob.clearPages(4 * KiB, KiB);

    const expected = { pageRange: [{ offset: KiB, count: KiB - 1 }], clearRange: [{ offset: 4 * KiB, count: KiB - 1 }] };
    expect(await blob.getPageRangesDiffForManagedDisks(0, DISK, blob.withSnapshot(snapshot!).url)).toMatchObject(expected);
    expect(await blob.getPageRangesDiffForManagedDisks(0, DISK, copy.url)).toMatchObject(expected);

    const elsewhere = blob.withSnapshot(snapshot!).url.replace('127.0.0.1', 'localhost');
    await expect(blob.getPageRangesDiffForManagedDisks(0, DISK, elsewhere)).rejects.toMatchObject({ statusCode: 400, code: 'InvalidHeaderValue' });
    const otherAccount = blob.withSnapshot(snapshot!).url.replace('/src/', '/vault/');
    await expect(blob.getPageRangesDiffForManagedDisks(0, DISK, otherAccount)).rejects.toMatchObject({ statusCode: 400, code: 'InvalidHeaderValue' });
    await expect(blob.getPageRangesDiffForManagedDisks(0, DISK, 'not a url')).rejects.toMatchObject({ statusCode: 400, code: 'InvalidHeaderValue' });
  });

  test('409 PreviousSnapshotOperationNotSupported once Put Blob or Copy Blob replaced the blob', async () => {
    const blob = await newDisk('replaced');
    await blob.uploadPages(fill(4 * KiB, 1), 0, 4 * KiB);
    const s1 = (await blob.createSnapshot()).snapshot!;
    await blob.create(DISK); // Put Blob over it
    await blob.uploadPages(fill(4 * KiB, 1), 0, 4 * KiB);
    await expect(diffOf(blob, s1)).rejects.toMatchObject({ statusCode: 409, code: 'PreviousSnapshotOperationNotSupported' });
    const s2 = (await blob.createSnapshot()).snapshot!;
    await expect(diffOf(blob.withSnapshot(s2), s1)).rejects.toMatchObject({ statusCode: 409, code: 'PreviousSnapshotOperationNotSupported' });
    expect((await diffOf(blob, s2)).items).toEqual([]);

    const other = await newDisk('replaced-source');
    await other.uploadPages(fill(KiB, 7), 0, KiB);
    await (await blob.beginCopyFromURL(other.url)).pollUntilDone(); // Copy Blob over it
    await expect(diffOf(blob, s2)).rejects.toMatchObject({ statusCode: 409, code: 'PreviousSnapshotOperationNotSupported' });
  });

  test('409 PreviousSnapshotNotFound for a snapshot that does not exist or was deleted', async () => {
    const blob = await newDisk('no-previous');
    await blob.uploadPages(fill(KiB, 1), 0, KiB);
    await expect(diffOf(blob, '2020-01-01T00:00:00.0000000Z')).rejects.toMatchObject({ statusCode: 409, code: 'PreviousSnapshotNotFound' });
    const { snapshot } = await blob.createSnapshot();
    await blob.withSnapshot(snapshot!).delete();
    await expect(diffOf(blob, snapshot!)).rejects.toMatchObject({ statusCode: 409, code: 'PreviousSnapshotNotFound' });
    await expect(disks.getPageBlobClient('absent').getPageRangesDiff(0, DISK, snapshot!)).rejects.toMatchObject({ statusCode: 404, code: 'BlobNotFound' });
  });
});

describe('plain Get Page Ranges', () => {
  test('unchanged: every stored range, no ClearRange, no NextMarker', async () => {
    const blob = await newDisk('plain');
    await blob.uploadPages(fill(KiB, 1), 0, KiB);
    await blob.uploadPages(fill(KiB, 1), KiB, KiB); // adjacent writes stay two ranges, as before the patch
    await blob.uploadPages(fill(2 * KiB, 1), 8 * KiB, 2 * KiB);
    await blob.clearPages(9 * KiB, 512);
    const ranges = await blob.getPageRanges();
    expect(ranges.pageRange).toEqual([
      { offset: 0, count: KiB - 1 },
      { offset: KiB, count: KiB - 1 },
      { offset: 8 * KiB, count: KiB - 1 },
      { offset: 9 * KiB + 512, count: 511 },
    ]);
    expect(ranges.clearRange).toEqual([]);
    expect(ranges._response.bodyAsText).toMatch(/^<\?xml[\s\S]*<PageList>/);
    expect(ranges._response.bodyAsText).not.toMatch(/ClearRange|NextMarker/);
    expect((await blob.getPageRanges(KiB + 512, 8 * KiB)).pageRange).toEqual([
      { offset: KiB + 512, count: 511 },
      { offset: 8 * KiB, count: KiB - 1 },
    ]);
  });
});

describe('snapshots through a SAS', () => {
  function sasFor(blobName: string | undefined, permissions: string, snapshotTime?: string): string {
    const key = env.az.accounts.src.credential;
    return generateBlobSASQueryParameters({
      containerName: 'disks',
      blobName,
      snapshotTime,
      permissions: BlobSASPermissions.parse(permissions),
      startsOn: new Date(Date.now() - 5 * 60_000),
      expiresOn: new Date(Date.now() + 60 * 60_000),
      protocol: SASProtocol.HttpsAndHttp,
    }, key).toString();
  }

  test('a blob SAS and a container SAS read a snapshot: properties, content, ranges, diff', async () => {
    const owner = await newDisk('sas-read');
    await owner.uploadPages(fill(KiB, 9), 0, KiB);
    const s1 = (await owner.createSnapshot()).snapshot!;
    await owner.uploadPages(fill(KiB, 8), 2 * KiB, KiB);
    for (const url of [env.az.sasUrl('src', 'disks', 'sas-read', { permissions: 'r' }), env.az.sasUrl('src', 'disks', undefined, { permissions: 'rl' }).replace('?', '/sas-read?')]) {
      const blob = new PageBlobClient(url, new AnonymousCredential());
      const snap = blob.withSnapshot(s1);
      expect((await snap.getProperties()).contentLength).toBe(DISK);
      expect((await snap.downloadToBuffer(0, KiB)).equals(fill(KiB, 9))).toBe(true);
      expect((await snap.getPageRanges()).pageRange).toEqual([{ offset: 0, count: KiB - 1 }]);
      expect((await diffOf(blob, s1)).items).toEqual([[2 * KiB, 3 * KiB - 1, false]]);
    }
  });

  test('a snapshot SAS (sr=bs) reads its snapshot and not the blob', async () => {
    const owner = await newDisk('sas-bs');
    await owner.uploadPages(fill(KiB, 3), 0, KiB);
    const s1 = (await owner.createSnapshot()).snapshot!;
    const url = `${owner.url}?${sasFor('sas-bs', 'r', s1)}`;
    const snap = new PageBlobClient(url, new AnonymousCredential()).withSnapshot(s1);
    expect((await snap.downloadToBuffer(0, KiB)).equals(fill(KiB, 3))).toBe(true);
    await expect(new PageBlobClient(url, new AnonymousCredential()).getProperties()).rejects.toMatchObject({ statusCode: 403 });
  });

  test('createSnapshot through a blob SAS needs write or create permission, as in Azure', async () => {
    const owner = await newDisk('sas-snapshot');
    await owner.uploadPages(fill(KiB, 1), 0, KiB);
    const writer = new PageBlobClient(env.az.sasUrl('src', 'disks', 'sas-snapshot', { permissions: 'rw' }), new AnonymousCredential());
    const { snapshot } = await writer.createSnapshot();
    expect((await writer.withSnapshot(snapshot!).getPageRanges()).pageRange).toEqual([{ offset: 0, count: KiB - 1 }]);
    const reader = new PageBlobClient(env.az.sasUrl('src', 'disks', 'sas-snapshot', { permissions: 'r' }), new AnonymousCredential());
    await expect(reader.createSnapshot()).rejects.toMatchObject({ statusCode: 403, code: 'AuthorizationPermissionMismatch' });
  });
});

describe('Copy Blob', () => {
  test('writing the copy leaves the source snapshot as it was (the copy used to share its range list)', async () => {
    const source = await newDisk('copy-source');
    for (let i = 0; i < 4; i++) await source.uploadPages(fill(512, 1 + i), i * 2 * KiB, 512);
    const { snapshot } = await source.createSnapshot();
    const restored = disks.getPageBlobClient('copy-restored');
    await (await restored.beginCopyFromURL(source.withSnapshot(snapshot!).url)).pollUntilDone();
    await restored.uploadPages(fill(512, 9), 512, 512);
    await restored.clearPages(0, 512);
    const snap = source.withSnapshot(snapshot!);
    expect((await snap.getPageRanges()).pageRange).toEqual([0, 1, 2, 3].map((i) => ({ offset: i * 2 * KiB, count: 511 })));
    expect((await snap.downloadToBuffer(0, 512)).equals(fill(512, 1))).toBe(true);
    // The copy shares the snapshot's extents: compared by URL, only what was written to the copy differs.
    expect(await restored.getPageRangesDiffForManagedDisks(0, DISK, snap.url)).toMatchObject({
      pageRange: [{ offset: 512, count: 511 }],
      clearRange: [{ offset: 0, count: 511 }],
    });
    // prevsnapshot names a snapshot of the blob itself, which the copy does not have.
    await expect(diffOf(restored, snapshot!)).rejects.toMatchObject({ statusCode: 409, code: 'PreviousSnapshotNotFound' });
  });
});
