/** The backup-start queue message (functions/startMessages.ts, body version 1): what passes, what is refused and why. */
import { encodeStartMessage, parseStartMessage, startIdFor, firedAtOf, invalidStartId, DiskStartMessage } from '../functions/startMessages';
import { startBudget, startMode } from '../functions/startBudget';

const now = new Date('2026-12-01T02:00:41.123Z');
const disk: DiskStartMessage = {
  v: 1,
  kind: 'disk',
  startId: startIdFor(now, 'disk', 'https://acct.blob.core.windows.net/vhds/a.vhd'),
  firedAt: firedAtOf(now),
  deferrals: 0,
  source: { url: 'https://acct.blob.core.windows.net/vhds/a.vhd' },
  settings: { full: true, concurrency: 4 },
};

test('a start ID names the firing to the minute and the disk or VM; a message survives its encoding', () => {
  expect(disk.startId).toMatch(/^start-202612010200-[0-9a-f]{24}$/);
  expect(startIdFor(new Date('2026-12-01T02:00:59Z'), 'disk', 'https://ACCT.blob.core.windows.net/vhds/a.vhd')).toBe(disk.startId);
  expect(startIdFor(now, 'vm', 'https://acct.blob.core.windows.net/vhds/a.vhd')).not.toBe(disk.startId);
  expect(startIdFor(new Date('2026-12-01T02:01:00Z'), 'disk', 'https://acct.blob.core.windows.net/vhds/a.vhd')).not.toBe(disk.startId);
  expect(disk.firedAt).toBe('2026-12-01T02:00:00.000Z');
  const text = Buffer.from(encodeStartMessage(disk), 'base64').toString();
  expect(parseStartMessage(text)).toEqual(disk);
  expect(parseStartMessage(JSON.parse(text))).toEqual(disk);
  const vm = { v: 1, kind: 'vm', startId: disk.startId, firedAt: disk.firedAt, deferrals: 3, vmId: '/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1', consistency: 'crash' };
  expect(parseStartMessage(vm)).toEqual(vm);
});

test.each<[string, unknown, RegExp]>([
  ['a SAS in clear', { ...disk, source: { url: `${disk.source.url}?sv=2024&sig=abc` } }, /\/source\/url/],
  ['an unknown field', { ...disk, extra: 1 }, /extra|additional/i],
  ['an unknown engine override', { ...disk, settings: { turbo: true } }, /settings/],
  ['a version from the future', { ...disk, v: 2 }, /\/v/],
  ['a start ID of another form', { ...disk, startId: 'start-../../x' }, /\/startId/],
  ['a negative deferral count', { ...disk, deferrals: -1 }, /\/deferrals/],
  ['a firing not on the minute', { ...disk, firedAt: '2026-12-01T02:00:41.123Z' }, /\/firedAt/],
  ['no kind', { ...disk, kind: undefined }, /"kind" "disk" or "vm"/],
  ['a VM ID that is not an ARM ID', { v: 1, kind: 'vm', startId: disk.startId, firedAt: disk.firedAt, deferrals: 0, vmId: 'vm1' }, /\/vmId/],
  ['text that is not JSON', 'hello', /not JSON/],
  ['a body too large', 'x'.repeat(20_000), /more than 16384/],
  ['null', null, /"kind"/],
])('refuses %s, naming what is wrong', (_what, body, message) => {
  expect(() => parseStartMessage(body)).toThrow(message);
  expect(() => parseStartMessage(body)).toThrow(expect.objectContaining({ code: 'BadInput' }));
});

test('an invalid body is recorded under a digest of it, never under a name it chose', () => {
  expect(invalidStartId('{"startId":"../../etc"}')).toMatch(/^invalid-[0-9a-f]{24}$/);
  expect(invalidStartId({ a: 1 })).toBe(invalidStartId('{"a":1}'));
});

test('the budget settings: defaults, bounds, and a clear refusal', () => {
  expect(startBudget({})).toEqual({ hub: 8, perAccount: 4, deferSeconds: 60 });
  expect(startBudget({ PAGEWISE_MAX_RUNNING_BACKUPS: '200', PAGEWISE_MAX_RUNNING_PER_ACCOUNT: '1', PAGEWISE_START_DEFER_SECONDS: '5' })).toEqual({ hub: 200, perAccount: 1, deferSeconds: 5 });
  expect(() => startBudget({ PAGEWISE_MAX_RUNNING_BACKUPS: '0' })).toThrow(/PAGEWISE_MAX_RUNNING_BACKUPS must be a whole number from 1 to 1000, got "0"/);
  expect(() => startBudget({ PAGEWISE_MAX_RUNNING_PER_ACCOUNT: '4.5' })).toThrow(/PAGEWISE_MAX_RUNNING_PER_ACCOUNT/);
  expect(() => startBudget({ PAGEWISE_START_DEFER_SECONDS: '99999' })).toThrow(/PAGEWISE_START_DEFER_SECONDS must be a whole number from 1 to 3600/);
  expect(startMode({})).toBe('queue');
  expect(startMode({ PAGEWISE_START_MODE: 'Direct' })).toBe('direct');
  expect(() => startMode({ PAGEWISE_START_MODE: 'later' })).toThrow(/PAGEWISE_START_MODE must be one of queue, direct/);
});

test("a start is recorded poisoned at the host's maxDequeueCount (host.json is the one source)", () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const host = require('../host.json') as { extensions: { queues: { maxDequeueCount: number; messageEncoding: string } } };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { MAX_DEQUEUE_COUNT } = require('../functions/startBudget') as typeof import('../functions/startBudget');
  expect(host.extensions.queues.maxDequeueCount).toBe(MAX_DEQUEUE_COUNT);
  expect(host.extensions.queues.messageEncoding).toBe('base64');
});
