/**
 * Retention policy (core/retention/keep-policy.ts): restic's --keep-* semantics over a simulated calendar
 * (a nightly backup at 02:00 UTC for 400 days, 2025-12-01 … 2027-01-04, plus irregular ones at bucket
 * edges), each policy with the exact backups it keeps and why; restic's own test vectors; strict parsing.
 */
import { PagewiseError } from '../core';
import { applyKeepPolicy, describeKeepPolicy, KeepDecision, KeepPolicy, parseKeepDuration, parseKeepPolicy } from '../core/retention/keep-policy';
import restic from './fixtures/restic-keep-policy.json';

const DAY = 86_400_000;
const ymd = (ms: number) => new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');

/** n-YYYYMMDD: the nightly backup of that day at 02:00. */
const nightly = Array.from({ length: 400 }, (_, k) => {
  const ms = Date.UTC(2025, 11, 1, 2) + k * DAY;
  return { backupId: `n-${ymd(ms)}`, time: new Date(ms).toISOString() };
});
/** Backups off the nightly schedule: month, year and ISO-week edges, a tie in time, several in one hour. */
const irregular = [
  ['x-20260228T2330', '2026-02-28T23:30:00.000Z'], // last of February, after its nightly
  ['x-20260301T0015', '2026-03-01T00:15:00.000Z'], // first of March, before its nightly
  ['x-20260630T2300', '2026-06-30T23:00:00.000Z'],
  ['x-20261231T2359', '2026-12-31T23:59:59.999Z'], // 1 ms before the year ends (ISO week 2026-W53 runs on to Sunday 3 January)
  ['x-20270101T0000', '2027-01-01T00:00:00.000Z'],
  ['x-20270104T1000a', '2027-01-04T10:00:00.000Z'], // a tie: the smaller ID counts as the newer (as the catalog lists them)
  ['x-20270104T1000b', '2027-01-04T10:00:00.000Z'],
  ['x-20270104T1115', '2027-01-04T11:15:00.000Z'],
  ['x-20270104T1145', '2027-01-04T11:45:00.000Z'],
  ['x-20270104T1300', '2027-01-04T13:00:00.000Z'], // the newest
].map(([backupId, time]) => ({ backupId, time }));
const calendar = [...nightly, ...irregular];

/** The kept backups, newest first, each with its reasons. */
function kept(decisions: KeepDecision[]): [string, string[]][] {
  return decisions.filter((d) => d.keep).map((d) => [d.backupId, d.reasons]);
}

const monthEnds2026 = ['n-20261130', 'n-20261031', 'n-20260930', 'n-20260831', 'n-20260731', 'x-20260630T2300', 'n-20260531', 'n-20260430', 'n-20260331', 'x-20260228T2330'];

const cases: Array<{ name: string; policy: KeepPolicy; nowMs?: number; keep: [string, string[]][] }> = [
  { name: 'last 3', policy: { last: 3 }, keep: [['x-20270104T1300', ['last #1']], ['x-20270104T1145', ['last #2']], ['x-20270104T1115', ['last #3']]] },
  {
    name: 'hourly 4: the newest of each hour; of two at the same time the smaller ID',
    policy: { hourly: 4 },
    keep: [['x-20270104T1300', ['hourly #1']], ['x-20270104T1145', ['hourly #2']], ['x-20270104T1000a', ['hourly #3']], ['n-20270104', ['hourly #4']]],
  },
  {
    name: 'hourly 10 across midnight and the year end (1 ms apart, two buckets)',
    policy: { hourly: 10 },
    keep: [
      ['x-20270104T1300', ['hourly #1']], ['x-20270104T1145', ['hourly #2']], ['x-20270104T1000a', ['hourly #3']], ['n-20270104', ['hourly #4']],
      ['n-20270103', ['hourly #5']], ['n-20270102', ['hourly #6']], ['n-20270101', ['hourly #7']], ['x-20270101T0000', ['hourly #8']],
      ['x-20261231T2359', ['hourly #9']], ['n-20261231', ['hourly #10']],
    ],
  },
  {
    name: 'daily 7: the newest of each of the last 7 days',
    policy: { daily: 7 },
    keep: [
      ['x-20270104T1300', ['daily #1']], ['n-20270103', ['daily #2']], ['n-20270102', ['daily #3']], ['n-20270101', ['daily #4']],
      ['x-20261231T2359', ['daily #5']], ['n-20261230', ['daily #6']], ['n-20261229', ['daily #7']],
    ],
  },
  {
    name: 'weekly 3: ISO weeks, Monday first; 2026-W53 runs 28 Dec … 3 Jan across the year end',
    policy: { weekly: 3 },
    keep: [['x-20270104T1300', ['weekly #1']], ['n-20270103', ['weekly #2']], ['n-20261227', ['weekly #3']]],
  },
  {
    name: 'monthly 12: the newest of each month, month ends at 23:xx included',
    policy: { monthly: 12 },
    keep: [['x-20270104T1300', ['monthly #1']], ['x-20261231T2359', ['monthly #2']], ...monthEnds2026.map((id, k): [string, string[]] => [id, [`monthly #${k + 3}`]])],
  },
  { name: 'yearly 2', policy: { yearly: 2 }, keep: [['x-20270104T1300', ['yearly #1']], ['x-20261231T2359', ['yearly #2']]] },
  { name: 'yearly 3: three years, the count used up', policy: { yearly: 3 }, keep: [['x-20270104T1300', ['yearly #1']], ['x-20261231T2359', ['yearly #2']], ['n-20251231', ['yearly #3']]] },
  {
    name: 'yearly 4: count left at the oldest backup keeps it too (restic "oldest")',
    policy: { yearly: 4 },
    keep: [['x-20270104T1300', ['yearly #1']], ['x-20261231T2359', ['yearly #2']], ['n-20251231', ['yearly #3']], ['n-20251201', ['oldest yearly #4']]],
  },
  {
    name: 'yearly -1: every year, and the oldest',
    policy: { yearly: -1 },
    keep: [['x-20270104T1300', ['yearly #1']], ['x-20261231T2359', ['yearly #2']], ['n-20251231', ['yearly #3']], ['n-20251201', ['oldest yearly #4']]],
  },
  {
    name: '7 daily, 4 weekly, 12 monthly: the union, each backup with every rule that keeps it',
    policy: { daily: 7, weekly: 4, monthly: 12 },
    keep: [
      ['x-20270104T1300', ['daily #1', 'weekly #1', 'monthly #1']],
      ['n-20270103', ['daily #2', 'weekly #2']],
      ['n-20270102', ['daily #3']],
      ['n-20270101', ['daily #4']],
      ['x-20261231T2359', ['daily #5', 'monthly #2']],
      ['n-20261230', ['daily #6']],
      ['n-20261229', ['daily #7']],
      ['n-20261227', ['weekly #3']],
      ['n-20261220', ['weekly #4']],
      ...monthEnds2026.map((id, k): [string, string[]] => [id, [`monthly #${k + 3}`]]),
    ],
  },
  {
    name: '3 daily, 2 weekly, monthly -1: every month of the history and the oldest backup',
    policy: { daily: 3, weekly: 2, monthly: -1 },
    keep: [
      ['x-20270104T1300', ['daily #1', 'weekly #1', 'monthly #1']],
      ['n-20270103', ['daily #2', 'weekly #2']],
      ['n-20270102', ['daily #3']],
      ['x-20261231T2359', ['monthly #2']],
      ...monthEnds2026.map((id, k): [string, string[]] => [id, [`monthly #${k + 3}`]]),
      ['n-20260131', ['monthly #13']],
      ['n-20251231', ['monthly #14']],
      ['n-20251201', ['oldest monthly #15']],
    ],
  },
  {
    name: 'within 2d of the newest (13:00 on 4 Jan): strictly after 13:00 on 2 Jan',
    policy: { within: '2d' },
    keep: ['x-20270104T1300', 'x-20270104T1145', 'x-20270104T1115', 'x-20270104T1000a', 'x-20270104T1000b', 'n-20270104', 'n-20270103'].map((id) => [id, ['within 2d']]),
  },
  {
    name: 'within 1d counted from the newest backup not after now (01:00 on 4 Jan: the nightly of 3 Jan); one exactly at the cut is not kept',
    policy: { within: '1d' },
    nowMs: Date.UTC(2027, 0, 4, 1),
    keep: ['x-20270104T1300', 'x-20270104T1145', 'x-20270104T1115', 'x-20270104T1000a', 'x-20270104T1000b', 'n-20270104', 'n-20270103'].map((id) => [id, ['within 1d']]),
  },
  {
    name: 'within 2d and last 1: the reasons in restic order (within first)',
    policy: { last: 1, within: '2d' },
    keep: [
      ['x-20270104T1300', ['within 2d', 'last #1']],
      ...['x-20270104T1145', 'x-20270104T1115', 'x-20270104T1000a', 'x-20270104T1000b', 'n-20270104', 'n-20270103'].map((id): [string, string[]] => [id, ['within 2d']]),
    ],
  },
];

describe('a nightly backup for 400 days, plus irregular ones', () => {
  test.each(cases)('$name', ({ policy, nowMs, keep }) => {
    const decisions = applyKeepPolicy(calendar, policy, { nowMs });
    expect(kept(decisions)).toEqual(keep);
    expect(decisions).toHaveLength(calendar.length);
    expect(decisions.filter((d) => !d.keep).every((d) => d.reasons.length === 0)).toBe(true);
  });

  test('within 1m: months by calendar from 13:00 on 4 Jan 2027 (cut at 13:00 on 4 Dec 2026): 38 backups', () => {
    const ids = kept(applyKeepPolicy(calendar, { within: '1m' })).map(([id]) => id);
    expect(ids).toHaveLength(38);
    expect(ids.slice(-2)).toEqual(['n-20261206', 'n-20261205']);
  });

  test('within 1m from 31 March: Go AddDate normalisation (31 Feb 2026 = 3 March, 12:00), not "28 Feb"', () => {
    const march = Array.from({ length: 40 }, (_, k) => ({ backupId: `m-${ymd(Date.UTC(2026, 1, 20, 2) + k * DAY)}`, time: new Date(Date.UTC(2026, 1, 20, 2) + k * DAY).toISOString() }));
    const latest = { backupId: 'm-20260331T1200', time: '2026-03-31T12:00:00.000Z' };
    const ids = kept(applyKeepPolicy([...march, latest], { within: '1m' })).map(([id]) => id);
    expect(ids).toEqual(['m-20260331T1200', ...Array.from({ length: 28 }, (_, k) => `m-202603${String(31 - k).padStart(2, '0')}`)]);
  });

  test('daily -1: one per day (400), the 10 others forgotten', () => {
    const decisions = applyKeepPolicy(calendar, { daily: -1 });
    expect(decisions.filter((d) => d.keep)).toHaveLength(400);
    expect(decisions.filter((d) => !d.keep).map((d) => d.backupId)).toEqual([
      'x-20270104T1145', 'x-20270104T1115', 'x-20270104T1000a', 'x-20270104T1000b', 'n-20270104',
      'x-20270101T0000', 'n-20261231', 'n-20260630', 'x-20260301T0015', 'n-20260228',
    ]);
  });

  test('last -1 keeps every backup; decisions come newest first whatever the input order', () => {
    const shuffled = [...calendar].sort((a, b) => (a.backupId.split('').reverse().join('') < b.backupId.split('').reverse().join('') ? -1 : 1));
    const decisions = applyKeepPolicy(shuffled, { last: -1 });
    expect(decisions.every((d) => d.keep)).toBe(true);
    expect(decisions.map((d) => d.backupId)).toEqual(applyKeepPolicy(calendar, { last: -1 }).map((d) => d.backupId));
    expect(decisions[0]).toEqual({ backupId: 'x-20270104T1300', time: '2027-01-04T13:00:00.000Z', keep: true, reasons: ['last #1'] });
    expect(decisions[4].backupId).toBe('x-20270104T1000b');
    expect(decisions[409]).toMatchObject({ backupId: 'n-20251201', reasons: ['last #410'] });
  });

  test('no backups: no decisions', () => {
    expect(applyKeepPolicy([], { daily: 7 })).toEqual([]);
  });

  test('a backup without a valid time is refused, named', () => {
    expect(() => applyKeepPolicy([{ backupId: 'b-1', time: 'yesterday' }], { daily: 1 })).toThrow(/backup "b-1" has no valid time \("yesterday"\)/);
  });
});

describe("restic's own policy vectors (restic internal/data/testdata)", () => {
  const snapshots = restic.snapshots.map((time, k) => ({ backupId: `s${String(k).padStart(3, '0')}`, time }));
  /** Pagewise's "daily #3" / "oldest yearly #4" is restic's "daily snapshot" / "oldest yearly snapshot". */
  const asRestic = (reason: string) => reason.replace(/^((?:oldest )?(last|hourly|daily|weekly|monthly|yearly)) #\d+$/, '$1 snapshot');
  test.each(restic.cases)('$golden $policy', ({ policy, keep }) => {
    const decisions = applyKeepPolicy(snapshots, policy as KeepPolicy);
    expect(decisions.filter((d) => d.keep).map((d) => [d.time, d.reasons.map(asRestic)])).toEqual(keep);
  });
});

describe('parseKeepPolicy', () => {
  test('a sound policy comes back with within in restic order and zero counts left out', () => {
    expect(parseKeepPolicy({ daily: 7, weekly: 4, monthly: -1, yearly: 0, within: '1y1d1m' })).toEqual({ daily: 7, weekly: 4, monthly: -1, within: '1y1m1d' });
    expect(describeKeepPolicy({ last: 3, monthly: -1, within: '30d' })).toBe('last 3, monthly all, within 30d');
    expect(parseKeepDuration('1y2m3d4h')).toEqual({ years: 1, months: 2, days: 3, hours: 4 });
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', [7], /a keep policy is an object/],
    ['null', null, /a keep policy is an object/],
    ['an unknown field', { daily: 7, keepDaily: 7 }, /unknown keep-policy field "keepDaily"/],
    ['a count as a string', { daily: '7' }, /keep-policy field "daily" must be -1 \(no limit\) or a whole number 0 to 1000000, not "7"/],
    ['a fraction', { weekly: 1.5 }, /field "weekly" must be -1/],
    ['below -1', { monthly: -2 }, /field "monthly" must be -1/],
    ['too large', { last: 1e7 }, /field "last" must be -1/],
    ['null count', { hourly: null }, /field "hourly" must be -1/],
    ['a within that is not a string', { within: 30 }, /field "within" is 30, not a string/],
    ['a within without a unit', { within: '30' }, /field "within" is "30"/],
    ['a within with an unknown unit', { within: '2w' }, /field "within" is "2w"/],
    ['a negative within', { within: '-1d' }, /field "within" is "-1d"/],
    ['a unit twice', { within: '1d2d' }, /names the unit "d" twice/],
    ['a zero within', { within: '0d' }, /which keeps nothing/],
    ['spaces', { within: ' 1d' }, /field "within" is " 1d"/],
    ['a huge number', { within: '999999y' }, /has 999999y, over 100000/],
    ['an empty policy', {}, /keeps nothing, so it would forget every backup/],
    ['only zeros', { daily: 0, last: 0 }, /keeps nothing, so it would forget every backup/],
  ];
  test.each(bad)('%s is BadInput', (_what, raw, message) => {
    let err: unknown;
    try {
      parseKeepPolicy(raw);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PagewiseError);
    expect(err).toMatchObject({ code: 'BadInput', message: expect.stringMatching(message) });
  });

  test('applyKeepPolicy refuses an empty policy too', () => {
    expect(() => applyKeepPolicy(calendar, {})).toThrow(/would forget every backup/);
  });
});
