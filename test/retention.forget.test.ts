/**
 * Forget and undelete on Azurite (core/retention/forget.ts, tombstones.ts): a forgotten backup is listed
 * deleted with its grace and still restores byte-identical; a policy's dry run writes nothing; undelete
 * brings it back until the grace ends; forgetting twice keeps the first tombstone; a tombstone that does
 * not authenticate, is moved, names another backup or is oversized is reported, never trusted; bad input
 * (unknown or unfinished backups, a version-1 vault) is refused before anything is written; a version-1
 * backup of an upgraded vault is forgotten by its version-1 manifest.
 */
import { createHash } from 'node:crypto';
import { AnonymousCredential, ContainerClient, PageBlobClient } from '@azure/storage-blob';
import { backupDisk, BackupRequest, forgetBackups, generateKey, listBackups, PagewiseError, planBackup, restoreBackup, StorageLocation, undeleteBackups } from '../core';
import { openVaultKeyring, upgradeVault } from '../core/repo/v2/marker';
import { sealJson } from '../core/repo/v2/envelope';
import { Vault } from '../core/repo/vault';
import { readTombstones, Tombstone, tombstonedNameTags, writeTombstone } from '../core/retention/tombstones';
import { CompleteBackupListing } from '../core/types';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

const PAGE = 64 * KiB;
const DISK_BYTES = 1 * MiB;
const DAY = 86_400_000;
const failureOf = (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => err as PagewiseError);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let env: TestEnv;
let location: StorageLocation;
let container: ContainerClient;
/** SHA-256 of the disk as each backup read it, by backup ID. */
const states = new Map<string, string>();
let disk: string;
/** The tests' clock: ahead of Azurite's real time, as SPEC13 allows. */
const t0 = Date.now() + DAY;

async function blobNames(prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const b of container.listBlobsFlat({ prefix })) out.push(b.name);
  return out.sort();
}

async function listed(id: string): Promise<CompleteBackupListing> {
  const b = (await listBackups(location, { userKey: env.userKey })).find((l) => l.backupId === id);
  if (b?.status !== 'complete') throw new Error(`${id} is not listed complete`);
  return b;
}

async function restoredSha(id: string, target: string): Promise<string> {
  await restoreBackup({ backupId: id, vault: location, userKey: env.userKey, target: { url: env.targetUrl(target) } });
  return sha(await new PageBlobClient(env.targetUrl(target), new AnonymousCredential()).downloadToBuffer());
}

async function tombstoneOf(id: string): Promise<string> {
  return `forgotten/${(await openVaultKeyring(Vault.open(location), env.userKey)).nameTag(id)}.pwe`;
}

beforeAll(async () => {
  env = await startEnv();
  location = await env.makeVault('retention');
  container = env.az.accounts.vault.service.getContainerClient('retention');
  const blob = env.sourceClient('ret.vhd');
  await blob.create(DISK_BYTES);
  const req = (backupId: string): BackupRequest => ({ source: { url: env.sourceUrl('ret.vhd') }, vault: location, userKey: env.userKey, backupId, pageSize: PAGE, cacheBytes: 256 * KiB });
  for (const [k, id] of ['ret-1', 'ret-2', 'ret-3'].entries()) {
    await blob.uploadPages(Buffer.alloc(PAGE, 0x11 * (k + 1)), k * PAGE, PAGE); // each backup sees one more page
    await backupDisk(req(id));
    states.set(id, sha(await blob.downloadToBuffer()));
  }
  disk = (await listed('ret-3')).disk!;
});
afterAll(async () => env?.stop());

test('forget by ID: a tombstone only (nothing deleted); listed deleted with its grace; still restores byte-identical; undelete brings it back', async () => {
  const before = await blobNames();
  const report = await forgetBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-1'], clock: () => t0 });
  const graceEndsAt = new Date(t0 + 14 * DAY).toISOString();
  expect(report).toEqual({ forgotten: [{ backupId: 'ret-1', disk, graceEndsAt }], kept: [], alreadyForgotten: [], dryRun: false });
  const tombstone = await tombstoneOf('ret-1');
  expect(await blobNames()).toEqual([...before, tombstone].sort());
  expect((await listed('ret-1')).deleted).toEqual({ forgottenAt: new Date(t0).toISOString(), graceEndsAt });
  expect((await listed('ret-2')).deleted).toBeUndefined();
  expect(await tombstonedNameTags(Vault.open(location))).toEqual(new Set([tombstone.slice('forgotten/'.length, -'.pwe'.length)]));
  expect(await restoredSha('ret-1', 'forgotten-1.vhd')).toBe(states.get('ret-1'));

  // Forgetting twice is harmless: the first tombstone (and its grace) stands, byte for byte.
  const first = await container.getBlockBlobClient(tombstone).downloadToBuffer();
  const again = await forgetBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-1'], clock: () => t0 + DAY, graceMs: 0 });
  expect(again).toEqual({ forgotten: [], kept: [], alreadyForgotten: ['ret-1'], dryRun: false });
  expect((await container.getBlockBlobClient(tombstone).downloadToBuffer()).equals(first)).toBe(true);
  expect((await listed('ret-1')).deleted?.graceEndsAt).toBe(graceEndsAt);

  expect(await undeleteBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-1', 'ret-2'], clock: () => t0 + 13 * DAY })).toEqual({ restored: ['ret-1'], notForgotten: ['ret-2'], expired: [] });
  expect(await blobNames()).toEqual(before);
  expect((await listed('ret-1')).deleted).toBeUndefined();
  expect(await restoredSha('ret-1', 'undeleted-1.vhd')).toBe(states.get('ret-1'));
});

test('forget by policy, dry run: the forgotten and the kept with their rules, per disk; nothing written', async () => {
  const before = await blobNames();
  const report = await forgetBackups({ vault: location, userKey: env.userKey, policy: { last: 2 }, dryRun: true, clock: () => t0 });
  const graceEndsAt = new Date(t0 + 14 * DAY).toISOString();
  expect(report).toEqual({
    forgotten: [{ backupId: 'ret-1', disk, graceEndsAt }],
    kept: [{ backupId: 'ret-3', disk, reasons: ['last #1'] }, { backupId: 'ret-2', disk, reasons: ['last #2'] }],
    alreadyForgotten: [],
    dryRun: true,
  });
  expect(await blobNames()).toEqual(before);
  // --disk picks one disk; a disk the vault has no backup of is named as such.
  expect((await forgetBackups({ vault: location, userKey: env.userKey, policy: { last: 1 }, disk, dryRun: true })).forgotten.map((f) => f.backupId)).toEqual(['ret-2', 'ret-1']);
  expect(await failureOf(forgetBackups({ vault: location, userKey: env.userKey, policy: { last: 1 }, disk: 'blob:src/disks/none.vhd', dryRun: true }))).toMatchObject({ code: 'BackupNotFound', message: expect.stringContaining('no complete backup of disk blob:src/disks/none.vhd') });
});

test('forget by policy writes a tombstone per forgotten backup with the rule; already forgotten ones hold no bucket; undelete restores', async () => {
  await forgetBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-3'], graceMs: DAY, clock: () => t0 });
  // ret-3 is forgotten by ID: the policy sees ret-2 and ret-1; ret-2 is now the disk's newest and kept.
  const report = await forgetBackups({ vault: location, userKey: env.userKey, policy: { last: 1 }, clock: () => t0 });
  expect(report).toMatchObject({ forgotten: [{ backupId: 'ret-1', disk }], kept: [{ backupId: 'ret-2', disk, reasons: ['last #1'] }], alreadyForgotten: [] });
  const keyring = await openVaultKeyring(Vault.open(location), env.userKey);
  const read = await readTombstones(Vault.open(location), keyring);
  expect([...read.values()].map((r) => r.tombstone).sort((a, b) => a!.backupId.localeCompare(b!.backupId))).toEqual([
    expect.objectContaining({ backupId: 'ret-1', reason: 'policy', rule: 'last 1', formatVersion: 2, manifest: expect.stringMatching(/^manifests\/[0-9a-f]{32}\/\d{13}-[0-9a-f]{32}\.pwm$/) }),
    expect.objectContaining({ backupId: 'ret-3', reason: 'forget', graceEndsAt: new Date(t0 + DAY).toISOString() }),
  ]);
  expect((await undeleteBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-1', 'ret-3'], clock: () => t0 + 1000 })).restored).toEqual(['ret-1', 'ret-3']);
  expect(await blobNames('forgotten/')).toEqual([]);
});

test('undelete after the grace ended says expired and leaves the tombstone for prune', async () => {
  await forgetBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-2'], graceMs: DAY, clock: () => t0 });
  const tombstone = await tombstoneOf('ret-2');
  expect(await undeleteBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-2'], clock: () => t0 + DAY })).toEqual({ restored: [], notForgotten: [], expired: ['ret-2'] });
  expect(await blobNames('forgotten/')).toEqual([tombstone]);
  // Within the grace it is brought back (the same tombstone, a clock before its end).
  expect((await undeleteBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-2'], clock: () => t0 + DAY - 1 })).restored).toEqual(['ret-2']);
});

describe('a tombstone read from the vault is never trusted unchecked', () => {
  test('bytes changed: listed with the problem (not deleted), forget reports it and does not overwrite, undelete removes it and says so', async () => {
    await forgetBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-2'], clock: () => t0 });
    const name = await tombstoneOf('ret-2');
    const bytes = await container.getBlockBlobClient(name).downloadToBuffer();
    bytes[bytes.length - 20] ^= 0x01;
    await container.getBlockBlobClient(name).uploadData(bytes);

    const b = await listed('ret-2');
    expect(b.deleted).toBeUndefined();
    expect(b.tombstoneProblem).toBe(`the tombstone ${name} fails authentication (damaged, moved from another name, or written under another vault key)`);
    const again = await forgetBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-2'], clock: () => t0 });
    expect(again.forgotten).toEqual([]);
    expect(again.problems).toEqual([{ backupId: 'ret-2', problem: expect.stringMatching(/^not forgotten: the tombstone .* fails authentication .*not trusted and not overwritten/) }]);
    expect((await container.getBlockBlobClient(name).downloadToBuffer()).equals(bytes)).toBe(true);

    const undone = await undeleteBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-2'], clock: () => t0 });
    expect(undone).toEqual({ restored: ['ret-2'], notForgotten: [], expired: [], problems: [{ backupId: 'ret-2', problem: expect.stringMatching(/fails authentication .*; not trusted, removed \(the backup is kept\)$/) }] });
    expect(await blobNames('forgotten/')).toEqual([]);
  });

  test("moved from another backup's name, naming another backup, oversized, or under a name no tombstone has: each reported with why", async () => {
    const vault = Vault.open(location);
    const keyring = await openVaultKeyring(vault, env.userKey);
    await forgetBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-1'], clock: () => t0 });
    const [one, two, three] = await Promise.all(['ret-1', 'ret-2', 'ret-3'].map(tombstoneOf));
    // ret-1's valid tombstone copied to ret-2's name: the name is in the AAD.
    await container.getBlockBlobClient(two).uploadData(await container.getBlockBlobClient(one).downloadToBuffer());
    // Sealed with the vault's keys under ret-3's name, but its body names ret-1.
    const body: Tombstone = { format: 'pagewise-tombstone', version: 2, backupId: 'ret-1', manifest: 'backups/ret-1/manifest.json', formatVersion: 1, forgottenAt: new Date(t0).toISOString(), graceEndsAt: new Date(t0).toISOString(), reason: 'forget' };
    await container.getBlockBlobClient(three).uploadData(sealJson(keyring, 4, three, body));
    await container.getBlockBlobClient(`forgotten/${'a'.repeat(32)}.pwe`).uploadData(Buffer.alloc(5000, 1));
    await container.getBlockBlobClient('forgotten/notes.txt').uploadData(Buffer.from('hello'));

    const read = await readTombstones(vault, keyring);
    const tag = (name: string) => name.slice('forgotten/'.length, -'.pwe'.length);
    expect(read.get(tag(one))?.tombstone).toMatchObject({ backupId: 'ret-1' });
    expect(read.get(tag(two))).toEqual({ name: two, problem: expect.stringContaining('fails authentication') });
    expect(read.get(tag(three))).toEqual({ name: three, problem: `the tombstone ${three} names another backup than its blob name does` });
    expect(read.get('a'.repeat(32))).toEqual({ name: `forgotten/${'a'.repeat(32)}.pwe`, problem: expect.stringContaining('larger than the 4096 bytes') });
    expect(read.get('forgotten/notes.txt')).toEqual({ name: 'forgotten/notes.txt', problem: expect.stringContaining('its name is no tombstone name') });
    expect((await listed('ret-3')).tombstoneProblem).toContain('names another backup');

    // A writer refuses to seal such a body too.
    expect(await failureOf(writeTombstone(vault, keyring, { ...(body as Tombstone), backupId: 'ret-3' }))).toMatchObject({ code: 'BadInput', message: expect.stringContaining("names a manifest that is not this backup's") });
    for (const name of [one, two, three, `forgotten/${'a'.repeat(32)}.pwe`, 'forgotten/notes.txt']) await container.deleteBlob(name);
  });
});

describe('refused before anything is written', () => {
  test('an unknown ID among known ones: BackupNotFound, no tombstone at all', async () => {
    expect(await failureOf(forgetBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-1', 'ret-9'] }))).toMatchObject({ code: 'BackupNotFound', message: expect.stringContaining('backup ret-9 is not in the vault') });
    expect(await blobNames('forgotten/')).toEqual([]);
  });

  test('an unfinished backup (a plan, no manifest): BadInput saying prune removes abandoned staging', async () => {
    await planBackup({ source: { url: env.sourceUrl('ret.vhd') }, vault: location, userKey: env.userKey, backupId: 'ret-unfinished', pageSize: PAGE, cacheBytes: 256 * KiB });
    expect(await failureOf(forgetBackups({ vault: location, userKey: env.userKey, backupIds: ['ret-unfinished'] }))).toMatchObject({ code: 'BadInput', message: expect.stringMatching(/backup ret-unfinished is unfinished .*prune removes an abandoned backup's staging/) });
    expect(await blobNames('forgotten/')).toEqual([]);
  });

  test.each([
    ['neither IDs nor a policy', {}, /by ID, or a keep policy/],
    ['both', { backupIds: ['ret-1'], policy: { last: 1 } }, /by ID, or a keep policy/],
    ['a disk with IDs', { backupIds: ['ret-1'], disk: 'x' }, /a disk goes with a keep policy/],
    ['an empty policy', { policy: {} }, /would forget every backup/],
    ['a negative grace', { backupIds: ['ret-1'], graceMs: -1 }, /the grace must be a whole number of milliseconds/],
    ['a malformed ID', { backupIds: ['Ret 1'] }, /is not a backup ID/],
  ])('%s: BadInput', async (_what, options, message) => {
    expect(await failureOf(forgetBackups({ vault: location, userKey: env.userKey, ...options }))).toMatchObject({ code: 'BadInput', message: expect.stringMatching(message) });
  });
});

test('a pure version-1 vault: forget and undelete say to upgrade it first; after the upgrade its version-1 backup is forgotten by its version-1 manifest', async () => {
  const v1 = await env.makeVault('retention-v1', { version: 1 });
  const blob = env.sourceClient('ret-v1.vhd');
  await blob.create(DISK_BYTES);
  await blob.uploadPages(Buffer.alloc(PAGE, 0x5a), 0, PAGE);
  await backupDisk({ source: { url: env.sourceUrl('ret-v1.vhd') }, vault: v1, userKey: env.userKey, backupId: 'old-one', pageSize: PAGE, cacheBytes: 256 * KiB });
  const message = expect.stringContaining('upgrade the vault first (pagewise upgrade)');
  expect(await failureOf(forgetBackups({ vault: v1, userKey: env.userKey, backupIds: ['old-one'] }))).toMatchObject({ code: 'BadInput', message });
  expect(await failureOf(undeleteBackups({ vault: v1, userKey: env.userKey, backupIds: ['old-one'] }))).toMatchObject({ code: 'BadInput', message });

  // A second version-1 backup, of another user key: its clear manifest's MAC cannot be checked with this key,
  // and its completion time is made unreadable.
  await blob.uploadPages(Buffer.alloc(PAGE, 0x5b), PAGE, PAGE);
  await backupDisk({ source: { url: env.sourceUrl('ret-v1.vhd') }, vault: v1, userKey: generateKey(), backupId: 'old-other-key', pageSize: PAGE, cacheBytes: 256 * KiB });
  const v1Container = env.az.accounts.vault.service.getContainerClient('retention-v1');
  const manifest = JSON.parse((await v1Container.getBlockBlobClient('backups/old-other-key/manifest.json').downloadToBuffer()).toString('utf8'));
  manifest.body.completedAt = 'not a time';
  await v1Container.getBlockBlobClient('backups/old-other-key/manifest.json').uploadData(Buffer.from(JSON.stringify(manifest)));

  await upgradeVault(Vault.open(v1), env.userKey);
  const dry = await forgetBackups({ vault: v1, userKey: env.userKey, policy: { last: 1 }, dryRun: true, clock: () => t0 });
  expect(dry).toMatchObject({ forgotten: [], kept: [{ backupId: 'old-one', reasons: ['last #1'] }], problems: [{ backupId: 'old-other-key', problem: 'kept: its completion time "not a time" is not a time, so no keep rule can place it' }] });
  const report = await forgetBackups({ vault: v1, userKey: env.userKey, backupIds: ['old-one'], clock: () => t0 });
  expect(report.forgotten).toEqual([{ backupId: 'old-one', disk: 'blob:src/disks/ret-v1.vhd', graceEndsAt: new Date(t0 + 14 * DAY).toISOString() }]);
  const vault = Vault.open(v1);
  const keyring = await openVaultKeyring(vault, env.userKey);
  expect([...(await readTombstones(vault, keyring)).values()]).toEqual([
    { name: `forgotten/${keyring.nameTag('old-one')}.pwe`, tombstone: expect.objectContaining({ backupId: 'old-one', formatVersion: 1, manifest: 'backups/old-one/manifest.json', reason: 'forget' }) },
  ]);
  const b = (await listBackups(v1, { userKey: env.userKey })).find((l) => l.backupId === 'old-one');
  expect(b).toMatchObject({ status: 'complete', formatVersion: 1, deleted: { forgottenAt: new Date(t0).toISOString() } });
  expect(await undeleteBackups({ vault: v1, userKey: env.userKey, backupIds: ['old-one'], clock: () => t0 })).toMatchObject({ restored: ['old-one'] });
});

test('a forgotten backup is never a base: the next backup of its disk is full (base-forgotten); after it, incrementals resume on the new one', async () => {
  const vault = await env.makeVault('retention-base');
  const blob = env.sourceClient('ret-base.vhd');
  await blob.create(DISK_BYTES);
  await blob.uploadPages(Buffer.alloc(PAGE, 0x21), 0, PAGE);
  const req: BackupRequest = { source: { url: env.az.sasUrl('src', 'disks', 'ret-base.vhd') }, vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB, takeSnapshot: true };
  const first = await backupDisk(req);
  await forgetBackups({ vault, userKey: env.userKey, backupIds: [first.backupId], clock: () => t0 });
  await blob.uploadPages(Buffer.alloc(PAGE, 0x22), PAGE, PAGE);
  const second = await backupDisk(req);
  expect(second).toMatchObject({ formatVersion: 2, kind: 'full', reason: 'base-forgotten', base: null });
  await blob.uploadPages(Buffer.alloc(PAGE, 0x23), 2 * PAGE, PAGE);
  expect(await backupDisk(req)).toMatchObject({ kind: 'incremental', base: { backupId: second.backupId } });
  // The forgotten one still restores as it was.
  await restoreBackup({ backupId: first.backupId, vault, userKey: env.userKey, target: { url: env.targetUrl('ret-base-first.vhd') } });
  const restored = await new PageBlobClient(env.targetUrl('ret-base-first.vhd'), new AnonymousCredential()).downloadToBuffer();
  expect(restored.equals(Buffer.concat([Buffer.alloc(PAGE, 0x21), Buffer.alloc(DISK_BYTES - PAGE)]))).toBe(true);
});
