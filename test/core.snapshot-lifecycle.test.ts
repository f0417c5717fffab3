/** Releasing older snapshots Pagewise took (core/source/snapshot-lifecycle.ts) against a real Azurite. */
import { SourceDisk, StorageLocation } from '../core';
import { releaseOlderSnapshots } from '../core/source/snapshot-lifecycle';
import { KiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.stop();
});

/** The snapshots of a blob that exist now, oldest first. */
async function snapshotsOf(name: string): Promise<string[]> {
  const out: string[] = [];
  for await (const item of env.az.accounts.src.service.getContainerClient('disks').listBlobsFlat({ prefix: name, includeSnapshots: true })) {
    if (item.name === name && item.snapshot) out.push(item.snapshot);
  }
  return out.sort();
}

/** Takes a snapshot as a backup does (SourceDisk.takeSnapshot) after writing a page. */
async function takeOne(location: StorageLocation, name: string, fill: number): Promise<string> {
  await env.sourceClient(name).uploadPages(Buffer.alloc(512, fill), 0, 512);
  const disk = await SourceDisk.open(location);
  return (await disk.takeSnapshot(location)).identity.snapshot;
}

test('a snapshot Pagewise takes carries pagewise=taken; the blob keeps its own metadata', async () => {
  await env.makeDisk('marked.vhd', 64 * KiB, []);
  await env.sourceClient('marked.vhd').setMetadata({ owner: 'ops' });
  const location = { url: env.az.sasUrl('src', 'disks', 'marked.vhd') };
  const snapshot = await takeOne(location, 'marked.vhd', 1);
  expect((await env.sourceClient('marked.vhd').withSnapshot(snapshot).getProperties()).metadata).toEqual({ pagewise: 'taken' });
  expect((await env.sourceClient('marked.vhd').getProperties()).metadata).toEqual({ owner: 'ops' });
});

test('deletes the older snapshots Pagewise took, keeps `keep`, the user\'s own (even when listed) and anything not listed', async () => {
  await env.makeDisk('lifecycle.vhd', 64 * KiB, []);
  const location = { url: env.az.sasUrl('src', 'disks', 'lifecycle.vhd') };
  const first = await takeOne(location, 'lifecycle.vhd', 1);
  const users = (await env.sourceClient('lifecycle.vhd').createSnapshot({ metadata: { pagewise: 'mine' } })).snapshot!;
  const second = await takeOne(location, 'lifecycle.vhd', 2);
  const unlisted = await takeOne(location, 'lifecycle.vhd', 3);
  const usersPlain = (await env.sourceClient('lifecycle.vhd').createSnapshot()).snapshot!;
  const keep = await takeOne(location, 'lifecycle.vhd', 4);
  const alreadyGone = '2020-01-01T00:00:00.0000000Z';
  expect(await snapshotsOf('lifecycle.vhd')).toEqual([first, users, second, unlisted, usersPlain, keep].sort());

  const released = await releaseOlderSnapshots(location, keep, [first, users, second, usersPlain, keep, alreadyGone, first]);
  expect(released).toEqual({ deleted: [first, second, alreadyGone], failed: [], kept: [users, usersPlain, keep] });
  expect(await snapshotsOf('lifecycle.vhd')).toEqual([users, unlisted, usersPlain, keep].sort());
  // The live blob is untouched.
  expect((await env.sourceClient('lifecycle.vhd').getProperties()).contentLength).toBe(64 * KiB);
  // Again: nothing more to do; the ones deleted before count as gone.
  expect(await releaseOlderSnapshots(location, keep, [first, second])).toEqual({ deleted: [first, second], failed: [], kept: [] });
});

test('never touches the live blob for a value that is not a snapshot time, and reports what it could not delete', async () => {
  await env.makeDisk('guarded.vhd', 64 * KiB, []);
  const writer = { url: env.az.sasUrl('src', 'disks', 'guarded.vhd') };
  const old = await takeOne(writer, 'guarded.vhd', 1);
  const keep = await takeOne(writer, 'guarded.vhd', 2);
  // A read-only SAS cannot delete: the snapshot is reported, not thrown, and stays.
  const readOnly = { url: env.az.sasUrl('src', 'disks', 'guarded.vhd', { permissions: 'r' }) };
  expect(await releaseOlderSnapshots(readOnly, keep, [old, '', 'not-a-time'])).toEqual({ deleted: [], failed: [old, '', 'not-a-time'], kept: [] });
  expect(await snapshotsOf('guarded.vhd')).toEqual([old, keep].sort());
  expect((await env.sourceClient('guarded.vhd').getProperties()).contentLength).toBe(64 * KiB);
});
