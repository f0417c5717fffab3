/** The start budget's slot blobs (core/fleet/start-slots.ts) against Azurite's blob service: take, refuse when full, release, reclaim. */
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { StartSlots, SlotScope, slotBlobName } from '../core';
import type { ContainerClient } from '@azure/storage-blob';

let az: AzuriteInstance;
let container: ContainerClient;
const running = new Set<string>();
let now = Date.parse('2026-12-01T10:00:00Z');
const slotsOf = () => new StartSlots(container, async (id) => running.has(id), () => now);
const hub = (size: number): SlotScope => ({ kind: 'hub', name: 'hub', size });
const acct = (name: string, size: number): SlotScope => ({ kind: 'account', name, size });

beforeAll(async () => {
  az = await startAzurite({ accounts: ['hub'] });
  container = az.accounts.hub.service.getContainerClient('pagewise-starts');
}, 60_000);
afterAll(async () => az?.stop());

test('a scope of 3 gives 3 holders a slot each and refuses the fourth; released slots are taken again', async () => {
  const scopes = [hub(3)];
  const s = slotsOf();
  const takes = await Promise.all(['backup-a', 'backup-b', 'backup-c', 'backup-d'].map((h) => s.take(h, scopes)));
  const held = takes.filter((t) => t.taken);
  expect(held).toHaveLength(3);
  const refused = takes.find((t) => !t.taken)!;
  expect(refused.taken === false && refused.fullScope).toEqual(hub(3));
  expect(new Set(held.flatMap((t) => (t.taken ? t.slots.map((x) => x.index) : []))).size).toBe(3);
  const holders = await s.holders({ kind: 'hub', name: 'hub' });
  expect(holders.size).toBe(3);
  // One releases: the refused one gets that slot.
  const first = held[0];
  if (!first.taken) throw new Error('unreachable');
  await s.release(first.slots);
  await s.release(first.slots); // twice is no error
  const again = await s.take('backup-e', scopes);
  expect(again.taken && again.slots[0].index).toBe(first.slots[0].index);
  expect((await s.holders({ kind: 'hub', name: 'hub' })).get(first.slots[0].index)).toBe('backup-e');
});

test('the same holder taking again gets its own slot back, not a second one', async () => {
  const s = slotsOf();
  const scopes = [hub(2), acct('srcacct', 2)];
  await container.deleteIfExists();
  const a = await s.take('backup-x', scopes);
  const b = await s.take('backup-x', scopes);
  expect(a.taken && b.taken).toBe(true);
  if (!a.taken || !b.taken) throw new Error('unreachable');
  expect(b.slots).toEqual(a.slots);
  expect((await s.holders({ kind: 'hub', name: 'hub' })).size).toBe(1);
  expect((await s.holders({ kind: 'account', name: 'srcacct' })).size).toBe(1);
  await s.release(a.slots);
  expect((await s.holders({ kind: 'hub', name: 'hub' })).size).toBe(0);
});

test('both scopes or none: an account slot taken is given back when the hub has none free', async () => {
  const s = slotsOf();
  await container.deleteIfExists();
  const first = await s.take('backup-h1', [acct('one', 4), hub(1)]);
  expect(first.taken).toBe(true);
  running.add('backup-h1');
  const second = await s.take('backup-h2', [acct('two', 4), hub(1)]);
  expect(second.taken === false && second.fullScope.kind).toBe('hub');
  expect((await s.holders({ kind: 'account', name: 'two' })).size).toBe(0);
  running.clear();
});

test('a slot whose holder no longer runs is taken over; a young one or a running holder\'s is not', async () => {
  const s = slotsOf();
  await container.deleteIfExists();
  expect((await s.take('backup-gone', [hub(1)])).taken).toBe(true);
  // Within the start grace a missing holder may still be starting: not reclaimed.
  expect((await s.take('backup-next', [hub(1)])).taken).toBe(false);
  now += 10 * 60_000;
  running.add('backup-gone');
  expect((await s.take('backup-next', [hub(1)])).taken).toBe(false);
  running.delete('backup-gone');
  const taken = await s.take('backup-next', [hub(1)]);
  expect(taken.taken && taken.slots[0].index).toBe(0);
  expect((await s.holders({ kind: 'hub', name: 'hub' })).get(0)).toBe('backup-next');
  // The former holder's late release does not free the new holder's slot.
  await s.release([{ kind: 'hub', name: 'hub', index: 0, leaseId: '00000000-0000-4000-8000-000000000000' }]);
  expect((await s.holders({ kind: 'hub', name: 'hub' })).get(0)).toBe('backup-next');
  expect(slotBlobName({ kind: 'account', name: 'acct' }, 3)).toBe('v1/account/acct/3');
});

test('bad scopes and holders are refused by name', async () => {
  const s = slotsOf();
  await expect(s.take('backup-a', [acct('Bad/Name', 2)])).rejects.toThrow(/invalid storage account/);
  await expect(s.take('backup-a', [hub(0)])).rejects.toThrow(/1 to 1000 slots/);
  await expect(s.take('../x', [hub(1)])).rejects.toThrow(/instance ID/);
});

test('hasRoom: a free slot, or a dead holder past the grace; not a full scope of running holders', async () => {
  const s = slotsOf();
  await container.deleteIfExists();
  expect(await s.hasRoom(hub(2))).toBe(true); // no container yet
  await s.take('backup-r1', [hub(2)]);
  expect(await s.hasRoom(hub(2))).toBe(true);
  await s.take('backup-r2', [hub(2)]);
  running.add('backup-r1').add('backup-r2');
  expect(await s.hasRoom(hub(2))).toBe(false);
  now += 10 * 60_000;
  expect(await s.hasRoom(hub(2))).toBe(false);
  running.clear();
  expect(await s.hasRoom(hub(2))).toBe(true);
});
