// Case tables for the GC decision (FORMAT.md §26.4–§26.7): liveness, holders, candidates, blocked, two-phase, repack, marks.
import { chooseRepack, decide, GcSnapshot, marksToDelete, sweepable } from '../core/prune/decide';
import { checkGcParams, DEFAULT_GC_PARAMS, GcParams, mayRelyOnExisting, planExpired, resolveGcParams } from '../core/prune/protocol';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const L = DEFAULT_GC_PARAMS.abandonAfterMs;
const D = DEFAULT_GC_PARAMS.deleteAfterMs;
const NOW = 1_000 * DAY;
const OLD = NOW - L - HOUR; // older than L
const YOUNG = NOW - L + HOUR; // younger than L
const p: GcParams = { ...DEFAULT_GC_PARAMS };

const cid = (n: number) => n.toString(16).padStart(64, '0');
const ZERO = '0'.repeat(64);

/** A vault: manifest m1 (tables t1, t2), tables t1 {c1,c2}, t2 {c3, zero}, t3 {c4} (nobody's); packs pA {c1,c2}, pB {c3}, pC {c4}. */
function vault(over: Partial<GcSnapshot> = {}): GcSnapshot {
  return {
    nowMs: NOW,
    manifests: [{ name: 'manifests/d/1-m1.pwm', backupId: 'b1', tableIds: ['t1', 't2'] }],
    tombstonesWithoutManifest: [],
    tables: new Map([
      ['t1', { createdMs: OLD, contentIds: [cid(1), cid(2)] }],
      ['t2', { createdMs: OLD, contentIds: [cid(3), ZERO] }],
      ['t3', { createdMs: OLD, contentIds: [cid(4)] }],
    ]),
    allTables: new Map([['t1', { createdMs: OLD, bytes: 100 }], ['t2', { createdMs: OLD, bytes: 100 }], ['t3', { createdMs: OLD, bytes: 100 }]]),
    packs: new Map([['pA', { createdMs: OLD, bytes: 1000 }], ['pB', { createdMs: OLD, bytes: 1000 }], ['pC', { createdMs: OLD, bytes: 1000 }]]),
    deltas: [
      delta('dA', 'pA', [1, 2]), delta('dB', 'pB', [3]), delta('dC', 'pC', [4]),
    ],
    staging: [],
    ...over,
  };
}
function delta(name: string, packId: string, ids: number[], createdMs = OLD, storedLength = 400) {
  return { name, packId, createdMs, bytes: 16 + 64 * ids.length, entries: ids.map((n, i) => ({ contentId: cid(n), offset: i * storedLength, storedLength })) };
}
function staging(nameTag: string, o: Partial<GcSnapshot['staging'][number]> = {}): GcSnapshot['staging'][number] {
  return { nameTag, createdMs: YOUNG, planCreatedMs: YOUNG, hasManifest: false, baseTableIds: null, contentIds: [], blobs: [{ name: `staging/${nameTag}/plan.pwe`, bytes: 500 }], ...o };
}

describe('protocol parameters', () => {
  it.each([
    [{ abandonAfterMs: 7 * DAY, deleteAfterMs: 8 * DAY, maxUnused: 0.1 }, undefined],
    [{ abandonAfterMs: 0, deleteAfterMs: 1, maxUnused: 0 }, undefined],
    [{ abandonAfterMs: 7 * DAY, deleteAfterMs: 7 * DAY, maxUnused: 0.1 }, /must be longer than the abandonment limit/],
    [{ abandonAfterMs: 7 * DAY, deleteAfterMs: DAY, maxUnused: 0.1 }, /must be longer than the abandonment limit/],
    [{ abandonAfterMs: -1, deleteAfterMs: DAY, maxUnused: 0.1 }, /abandonment limit must be a duration of 0 or more/],
    [{ abandonAfterMs: DAY, deleteAfterMs: 2 * DAY, maxUnused: 1.5 }, /maxUnused must be a fraction from 0 to 1/],
    [{ abandonAfterMs: DAY, deleteAfterMs: Number.NaN, maxUnused: 0.1 }, /deletion delay/],
  ])('checkGcParams(%j)', (params, error) => {
    if (error === undefined) expect(() => checkGcParams(params)).not.toThrow();
    else expect(() => checkGcParams(params)).toThrow(error);
  });

  it('resolveGcParams fills the defaults (7 d, 8 d, 10 %) and checks the result', () => {
    expect(resolveGcParams()).toEqual({ abandonAfterMs: 7 * DAY, deleteAfterMs: 8 * DAY, maxUnused: 0.1 });
    expect(resolveGcParams({ maxUnused: 0.25 }).maxUnused).toBe(0.25);
    expect(() => resolveGcParams({ deleteAfterMs: 6 * DAY })).toThrow(/BadInput|longer/);
  });

  it.each([
    [NOW - L, false], [NOW - L - 1, true], [NOW - L + 1, false], [NOW, false],
  ])('planExpired(plan at now − %#) is strict: now − plan > L', (plan, expired) => {
    expect(planExpired(plan, NOW, p)).toBe(expired);
  });

  it.each([
    [NOW - L, true], [NOW - L - 1, false], [NOW + HOUR, true],
  ])('mayRelyOnExisting(created %#) only for objects not older than the plan by more than L', (created, ok) => {
    expect(mayRelyOnExisting(created, NOW, p)).toBe(ok);
  });
});

describe('decide: manifests, tombstones and live tables', () => {
  it('a plain vault: the kept manifest\'s tables and their chunks are live; the rest is a candidate', () => {
    const v = decide(vault(), p);
    expect(v.keptManifests).toEqual(['manifests/d/1-m1.pwm']);
    expect(v.graceEndedManifests).toEqual([]);
    expect([...v.liveTables].sort()).toEqual(['t1', 't2']);
    expect([...v.liveContentIds].sort()).toEqual([cid(1), cid(2), cid(3)]); // the zero chunk is never live
    expect(v.candidates).toEqual({ packs: ['pC'], tables: ['t3'], deltas: ['dC'], staging: [], generations: [] });
    expect(v.blocked).toBeUndefined();
    expect(v.packUse.get('pA')).toEqual({ liveBytes: 800, bytes: 1000, createdMs: OLD });
    expect(v.packUse.get('pC')!.liveBytes).toBe(0);
  });

  it.each([
    ['no tombstone', undefined, true],
    ['grace ends later', NOW + 1, true],
    ['grace ends now', NOW, false],
    ['grace ended', NOW - DAY, false],
  ])('a manifest with %s is kept: %s', (_what, graceEndsMs, kept) => {
    const s = vault({ manifests: [{ name: 'm1', backupId: 'b1', tableIds: ['t1', 't2'], ...(graceEndsMs !== undefined ? { graceEndsMs } : {}) }] });
    const v = decide(s, p);
    expect(v.keptManifests).toEqual(kept ? ['m1'] : []);
    expect(v.graceEndedManifests).toEqual(kept ? [] : ['m1']);
    expect(v.candidates.tables).toEqual(kept ? ['t3'] : ['t1', 't2', 't3']);
    expect(v.candidates.packs).toEqual(kept ? ['pC'] : ['pA', 'pB', 'pC']);
  });

  it('a table shared by a kept and a grace-ended manifest stays live', () => {
    const s = vault({ manifests: [
      { name: 'm1', backupId: 'b1', tableIds: ['t1', 't2'], graceEndsMs: NOW - 1 },
      { name: 'm2', backupId: 'b2', tableIds: ['t2'] },
    ] });
    const v = decide(s, p);
    expect(v.candidates.tables).toEqual(['t1', 't3']);
    expect(v.candidates.packs).toEqual(['pA', 'pC']);
  });

  it('young objects are never candidates, whatever references them', () => {
    const s = vault({ manifests: [], allTables: new Map([['t1', { createdMs: YOUNG, bytes: 1 }], ['t2', { createdMs: OLD, bytes: 1 }]]),
      packs: new Map([['pA', { createdMs: YOUNG, bytes: 1 }], ['pB', { createdMs: OLD, bytes: 1 }]]),
      deltas: [delta('dA', 'pA', [1], YOUNG), delta('dB', 'pB', [3], OLD), delta('dGone', 'pX', [9], YOUNG), delta('dGoneOld', 'pY', [9], OLD)] });
    const v = decide(s, p);
    expect(v.candidates).toEqual({ packs: ['pB'], tables: ['t2'], deltas: ['dB', 'dGoneOld'], staging: [], generations: [] });
  });
});

describe('decide: holders', () => {
  it('duplicate copies: the newest pack (by creation, then packId) holds; the older copy is a candidate', () => {
    const s = vault({
      packs: new Map([['pA', { createdMs: OLD - DAY, bytes: 1000 }], ['pA2', { createdMs: OLD, bytes: 1000 }], ['pB', { createdMs: OLD, bytes: 1000 }], ['pB2', { createdMs: OLD, bytes: 1000 }]]),
      deltas: [delta('dA', 'pA', [1, 2]), delta('dA2', 'pA2', [1, 2]), delta('dB', 'pB', [3]), delta('dB2', 'pB2', [3])],
    });
    const v = decide(s, p);
    expect(v.holders.get(cid(1))).toBe('pA2');
    expect(v.holders.get(cid(3))).toBe('pB2'); // same creation time: the greater packId
    expect(v.candidates.packs).toEqual(['pA', 'pB']);
    expect(v.candidates.deltas).toEqual(['dA', 'dB']);
  });

  // Creation-Time has whole seconds: a repack copy made within its source's second ties with it (§26.4).
  const SEC = Math.floor(OLD / 1000) * 1000;
  const dname = (stamp: string, writer = 'a'.repeat(16)) => `index/d/${stamp}-${writer}.pwx`;
  const tied = (deltas: GcSnapshot['deltas']) =>
    vault({ packs: new Map([['pA', { createdMs: SEC, bytes: 1000 }], ['pA2', { createdMs: SEC, bytes: 1000 }], ['pB', { createdMs: OLD, bytes: 1000 }], ['pC', { createdMs: OLD, bytes: 1000 }]]), deltas: [...deltas, delta('dB', 'pB', [3]), delta('dC', 'pC', [4])] });

  it.each([
    ['the newer delta stamp wins over the greater packId', dname('20260101T120000100Z'), dname('20260101T120000900Z'), 'pA2'],
    ['the newer delta stamp wins, though its pack has the smaller packId', dname('20260101T120000900Z'), dname('20260101T120000100Z'), 'pA'],
    ['a whole second apart in the stamp', dname('20260101T120001000Z'), dname('20260101T120000999Z'), 'pA'],
    ['equal stamps: the greater packId', dname('20260101T120000500Z'), dname('20260101T120000500Z', 'b'.repeat(16)), 'pA2'],
    ['a name that does not parse sorts oldest', dname('20260101T120000500Z'), 'index/d/not-a-stamp.pwx', 'pA'],
    ['a stamp that is no instant (month 13) sorts oldest', dname('20261301T120000500Z'), dname('20260101T120000500Z'), 'pA2'],
    ['a stamp with a second 60 sorts oldest', dname('20260101T120000500Z'), dname('20260101T115960500Z'), 'pA'],
    ['upper-case writerId: no delta name, sorts oldest', dname('20260101T120000500Z'), dname('20260101T120000900Z', 'A'.repeat(16)), 'pA'],
    ['neither parses: the greater packId', 'index/d/x.pwx', 'index/d/y.pwx', 'pA2'],
  ])('same Creation-Time: %s', (_what, nameA, nameA2, holder) => {
    const v = decide(tied([{ ...delta('x', 'pA', [1, 2]), name: nameA }, { ...delta('x', 'pA2', [1, 2]), name: nameA2 }]), p);
    expect(v.holders.get(cid(1))).toBe(holder);
    expect(v.holders.get(cid(2))).toBe(holder);
    expect(v.candidates.packs).toEqual([holder === 'pA' ? 'pA2' : 'pA', 'pC']);
  });

  it('the stamp only breaks ties: a later Creation-Time wins over a newer stamp', () => {
    const s = tied([{ ...delta('x', 'pA', [1, 2]), name: dname('20991231T235959999Z') }, { ...delta('x', 'pA2', [1, 2]), name: dname('20000101T000000000Z') }]);
    s.packs.set('pA', { createdMs: SEC - 1000, bytes: 1000 });
    expect(decide(s, p).holders.get(cid(1))).toBe('pA2');
  });

  it('per content ID, the newest delta naming it in that pack counts; the order of the listing does not matter', () => {
    // pA is named by an old delta (c1, c2) and a newer one (c2 only, a retried delta); pA2's delta lies between.
    const deltas = [
      { ...delta('x', 'pA', [1, 2]), name: dname('20260101T120000100Z') },
      { ...delta('x', 'pA2', [1, 2]), name: dname('20260101T120000500Z') },
      { ...delta('x', 'pA', [2]), name: dname('20260101T120000900Z') },
    ];
    for (const order of [deltas, [...deltas].reverse(), [deltas[2], deltas[0], deltas[1]]]) {
      const v = decide(tied(order), p);
      expect(v.holders.get(cid(1))).toBe('pA2');
      expect(v.holders.get(cid(2))).toBe('pA');
      expect(v.packUse.get('pA')!.liveBytes).toBe(400);
      expect(v.packUse.get('pA2')!.liveBytes).toBe(400);
    }
  });

  it('a pack no delta names holds nothing (a crash between commit and delta): a candidate once older than L', () => {
    const s = vault({ packs: new Map([...vault().packs, ['pLost', { createdMs: OLD, bytes: 1000 }], ['pNew', { createdMs: YOUNG, bytes: 1000 }]]) });
    expect(decide(s, p).candidates.packs).toEqual(['pC', 'pLost']);
  });

  it('a holder that lost half its chunks: packUse counts only the blocks it holds for live content IDs', () => {
    const s = vault({ deltas: [delta('dA', 'pA', [1, 2, 7]), delta('dB', 'pB', [3]), delta('dC', 'pC', [4])] });
    const v = decide(s, p);
    expect(v.packUse.get('pA')).toEqual({ liveBytes: 800, bytes: 1000, createdMs: OLD });
  });

  it('a live content ID no existing pack holds is reported, not protected', () => {
    const s = vault({ packs: new Map([['pA', { createdMs: OLD, bytes: 1000 }], ['pC', { createdMs: OLD, bytes: 1000 }]]) });
    const v = decide(s, p);
    expect(v.liveWithoutHolder).toEqual([cid(3)]);
    expect(v.candidates.deltas).toEqual(['dB', 'dC']); // dB's pack is gone
  });
});

describe('decide: the compacted index generation (#15, §26.4–§26.5)', () => {
  const covered = (name: string, createdMs = OLD) => ({ name, packId: '', createdMs, bytes: 100, entries: [], covered: true });
  const gen = (n: number, entries: [number, string][]) => ({ gen: n, entries: entries.map(([c, packId]) => ({ contentId: cid(c), packId, offset: 0, storedLength: 400 })) });
  const listed = (...gens: [number, number][]) => gens.map(([n, createdMs]) => ({ gen: n, createdMs, blobs: [{ name: `index/c/${String(n).padStart(8, '0')}/covers.pwe`, bytes: 10 }] }));

  it('the generation\'s entries give the holders of covered deltas; covered deltas are candidates once older than L', () => {
    const s = vault({
      deltas: [covered('dA'), covered('dB'), covered('dYoung', YOUNG), delta('dC', 'pC', [4])],
      generation: gen(2, [[1, 'pA'], [2, 'pA'], [3, 'pB'], [4, 'pC']]),
      generations: listed([1, OLD], [2, OLD], [3, OLD]),
    });
    const v = decide(s, p);
    expect(Object.fromEntries(v.holders)).toEqual({ [cid(1)]: 'pA', [cid(2)]: 'pA', [cid(3)]: 'pB' });
    expect(v.packUse.get('pA')!.liveBytes).toBe(800);
    expect(v.candidates.packs).toEqual(['pC']);
    expect(v.candidates.deltas).toEqual(['dA', 'dB', 'dC']); // dYoung: covered but younger than L
    // 1 (older complete or incomplete) goes; 2 (the one read) and 3 (above it: being written, or complete since) never
    expect(v.candidates.generations).toEqual(['00000001']);
  });

  it('an uncovered delta\'s entry wins over the generation\'s, whatever the Creation-Times (§18.3 order)', () => {
    const s = vault({
      packs: new Map([['pA', { createdMs: OLD, bytes: 1000 }], ['pOld', { createdMs: OLD - DAY, bytes: 1000 }], ['pB', { createdMs: OLD, bytes: 1000 }], ['pC', { createdMs: OLD, bytes: 1000 }]]),
      deltas: [covered('dA'), delta('dOld', 'pOld', [1]), covered('dB'), covered('dC')],
      generation: gen(1, [[1, 'pA'], [2, 'pA'], [3, 'pB'], [4, 'pC']]),
    });
    const v = decide(s, p);
    expect(v.holders.get(cid(1))).toBe('pOld');
    expect(v.holders.get(cid(2))).toBe('pA');
  });

  it('a generation entry whose pack is not listed holds nothing; an uncovered delta of a gone pack does not hide it', () => {
    const s = vault({
      deltas: [covered('dA'), covered('dB'), delta('dGone', 'pGone', [3]), delta('dC', 'pC', [4])],
      generation: gen(1, [[1, 'pA'], [2, 'pMissing'], [3, 'pB']]),
    });
    const v = decide(s, p);
    expect(v.holders.get(cid(2))).toBeUndefined();
    expect(v.liveWithoutHolder).toEqual([cid(2)]);
    expect(v.holders.get(cid(3))).toBe('pB');
  });

  it('no complete generation: no generation is a candidate (an incomplete one may be a compaction in progress)', () => {
    const v = decide(vault({ generations: listed([1, OLD]) }), p);
    expect(v.candidates.generations).toEqual([]);
  });

  it('a shard that cannot be read blocks the run: no pack, delta or generation candidates', () => {
    const s = vault({ deltas: [covered('dA'), covered('dB'), covered('dC')], generation: { gen: 2, entries: undefined }, generations: listed([1, OLD], [2, OLD]) });
    const v = decide(s, p);
    expect(v.blocked).toMatch(/a shard of the index generation 00000002 cannot be read/);
    expect(v.candidates).toMatchObject({ packs: [], deltas: [], generations: [] });
  });

  it('sweepable: a generation needs a mark ≥ D old too; marks written before #15 (no generations field) condemn none', () => {
    const s = vault({ deltas: [covered('dA'), covered('dB'), delta('dC', 'pC', [4])], generation: gen(2, [[1, 'pA'], [2, 'pA'], [3, 'pB']]), generations: listed([1, OLD], [2, OLD]) });
    const v = decide(s, p);
    const old = { markedAtMs: NOW - D, candidates: { packs: ['pC'], tables: ['t3'], deltas: ['dA', 'dB', 'dC'], staging: [] } };
    expect(sweepable(v, [old], NOW, p)).toEqual({ packs: ['pC'], tables: ['t3'], deltas: ['dA', 'dB', 'dC'], staging: [], generations: [] });
    expect(sweepable(v, [{ ...old, candidates: { ...old.candidates, generations: ['00000001'] } }], NOW, p).generations).toEqual(['00000001']);
    expect(sweepable(v, [{ ...old, markedAtMs: NOW - D + 1, candidates: { ...old.candidates, generations: ['00000001'] } }], NOW, p).generations).toEqual([]);
  });
});

describe('decide: staging and in-flight backups', () => {
  it.each([
    ['complete (has a manifest)', { hasManifest: true }, true],
    ['young, in flight', {}, false],
    ['abandoned (plan older than L)', { planCreatedMs: OLD, createdMs: OLD }, true],
    ['plan exactly L old', { planCreatedMs: NOW - L }, false],
    ['unreadable plan, old', { planCreatedMs: undefined, createdMs: OLD }, true],
  ])('staging %s → candidate %s', (_what, over, candidate) => {
    const st = staging('s1', over as Partial<GcSnapshot['staging'][number]>);
    if ('planCreatedMs' in over && over.planCreatedMs === undefined) delete st.planCreatedMs;
    const v = decide(vault({ staging: [st] }), p);
    expect(v.candidates.staging).toEqual(candidate ? ['s1'] : []);
    expect(v.blocked).toBeUndefined();
  });

  it('an in-flight incremental keeps its base tables live through baseTables, even when the base manifest is gone', () => {
    const s = vault({ manifests: [], staging: [staging('s1', { baseTableIds: ['t1'] })] });
    const v = decide(s, p);
    expect([...v.liveTables]).toEqual(['t1']);
    expect(v.candidates.tables).toEqual(['t2', 't3']);
    expect(v.candidates.packs).toEqual(['pB', 'pC']);
  });

  it('an in-flight backup\'s batch records keep their chunks live; an abandoned one\'s do not', () => {
    const inflight = decide(vault({ manifests: [], staging: [staging('s1', { contentIds: [cid(4)] })] }), p);
    expect(inflight.candidates.packs).toEqual(['pA', 'pB']);
    const abandoned = decide(vault({ manifests: [], staging: [staging('s1', { contentIds: [cid(4)], planCreatedMs: OLD })] }), p);
    expect(abandoned.candidates.packs).toEqual(['pA', 'pB', 'pC']);
    expect(abandoned.candidates.staging).toEqual(['s1']);
  });

  it('a complete backup\'s staging goes even while its batch records name chunks; they are live through its manifest', () => {
    const v = decide(vault({ staging: [staging('s1', { hasManifest: true, contentIds: [cid(1)] })] }), p);
    expect(v.candidates.staging).toEqual(['s1']);
    expect(v.candidates.packs).toEqual(['pC']);
  });
});

describe('decide: blocked (references unknown → no table, pack or delta candidates)', () => {
  it.each([
    ['an unreadable kept manifest', { manifests: [{ name: 'm1', backupId: 'b1', tableIds: undefined }] }, /manifest m1 cannot be read/],
    ['an unreadable live table', { tables: new Map([['t1', { createdMs: OLD, contentIds: undefined }]]) }, /table t1 cannot be read/],
    ['a missing live table', { allTables: new Map([['t2', { createdMs: OLD, bytes: 1 }]]), tables: new Map([['t2', { createdMs: OLD, contentIds: [cid(3)] }]]) }, /table t1 a backup names is missing/],
    ['an in-flight plan of unknown base', { staging: [staging('s1', { baseTableIds: 'unknown' })] }, /base of the unfinished backup staging\/s1\/ cannot be read/],
    ['an in-flight plan without baseTables', { staging: [staging('s1', { baseTableIds: undefined })] }, /base of the unfinished backup/],
    ['an unreadable in-flight batch record', { staging: [staging('s1', { contentIds: 'unknown' })] }, /a batch record of the unfinished backup staging\/s1\//],
    ['an unreadable young plan', { staging: [(() => { const st = staging('s1'); delete st.planCreatedMs; return st; })()] }, /plan of the unfinished backup staging\/s1\/ cannot be read/],
    ['an unreadable delta', { deltas: [...vault().deltas, { name: 'dX', packId: '', createdMs: OLD, bytes: 80, entries: undefined }] }, /index delta dX cannot be read/],
  ])('%s', (_what, over, why) => {
    const s = vault({ ...over as Partial<GcSnapshot>, staging: [...((over as Partial<GcSnapshot>).staging ?? []), staging('done', { hasManifest: true })] });
    const v = decide(s, p);
    expect(v.blocked).toMatch(why);
    expect(v.candidates.packs).toEqual([]);
    expect(v.candidates.tables).toEqual([]);
    expect(v.candidates.deltas).toEqual([]);
    expect(v.candidates.staging).toContain('done'); // staging still goes
    expect(chooseRepack(v, { ...p, maxUnused: 0 }).packs).toEqual([]);
  });

  it('an unreadable manifest whose grace ended does not block: it is deleted anyway', () => {
    const v = decide(vault({ manifests: [{ name: 'm1', backupId: 'b1', tableIds: undefined, graceEndsMs: NOW - 1 }] }), p);
    expect(v.blocked).toBeUndefined();
    expect(v.graceEndedManifests).toEqual(['m1']);
  });

  it('an abandoned backup with an unknown base does not block', () => {
    const v = decide(vault({ staging: [staging('s1', { baseTableIds: 'unknown', planCreatedMs: OLD })] }), p);
    expect(v.blocked).toBeUndefined();
  });
});

describe('sweepable: two-phase', () => {
  const v = decide(vault(), p);
  const mark = (markedAtMs: number, packs: string[], tables: string[] = [], staging: string[] = [], deltas: string[] = []) => ({ markedAtMs, candidates: { packs, tables, deltas, staging } });
  it.each([
    ['no mark', [], { packs: [], tables: [], deltas: [], staging: [], generations: [] }],
    ['a mark younger than D', [mark(NOW - D + 1, ['pC'], ['t3'], [], ['dC'])], { packs: [], tables: [], deltas: [], staging: [], generations: [] }],
    ['a mark exactly D old', [mark(NOW - D, ['pC'], ['t3'], [], ['dC'])], { packs: ['pC'], tables: ['t3'], deltas: ['dC'], staging: [], generations: [] }],
    ['an old mark that did not list them', [mark(NOW - 2 * D, ['pA'], ['t1'])], { packs: [], tables: [], deltas: [], staging: [], generations: [] }],
    ['an old mark of items no longer candidates', [mark(NOW - 2 * D, ['pA', 'pC'], ['t1'])], { packs: ['pC'], tables: [], deltas: [], staging: [], generations: [] }],
    ['two marks, each listing part', [mark(NOW - 2 * D, ['pC']), mark(NOW - D, [], ['t3'])], { packs: ['pC'], tables: ['t3'], deltas: [], staging: [], generations: [] }],
  ])('%s', (_what, marks, expected) => {
    expect(sweepable(v, marks, NOW, p)).toEqual(expected);
  });

  it('staging needs a mark too; a blocked verdict sweeps staging only', () => {
    const s = vault({ staging: [staging('s1', { hasManifest: true }), staging('s2', { contentIds: 'unknown' })] });
    const blocked = decide(s, p);
    expect(blocked.blocked).toBeDefined();
    expect(sweepable(blocked, [mark(NOW - D, ['pC'], ['t3'], ['s1'])], NOW, p)).toEqual({ packs: [], tables: [], deltas: [], staging: ['s1'], generations: [] });
    expect(sweepable(blocked, [mark(NOW - D + 1, [], [], ['s1'])], NOW, p).staging).toEqual([]);
  });
});

describe('chooseRepack (restic --max-unused)', () => {
  /** Packs of 1000 bytes with the given live blocks of 100 bytes (content IDs from `base` up). */
  function repackVault(lives: number[], createdMs = OLD) {
    const packs = new Map<string, { createdMs: number; bytes: number }>();
    const deltas: GcSnapshot['deltas'] = [];
    const ids: string[] = [];
    let n = 100;
    lives.forEach((live, i) => {
      const id = `p${i}`;
      packs.set(id, { createdMs, bytes: 1000 });
      const mine = Array.from({ length: 10 }, () => n++);
      deltas.push(delta(`d${i}`, id, mine, createdMs, 100));
      ids.push(...mine.slice(0, live).map(cid));
    });
    return vault({ manifests: [{ name: 'm', backupId: 'b', tableIds: ['tr'] }], tables: new Map([['tr', { createdMs: OLD, contentIds: ids }]]),
      allTables: new Map([['tr', { createdMs: OLD, bytes: 1 }]]), packs, deltas });
  }
  it.each([
    ['all full', [10, 10, 10], 0.1, []],
    ['10 % unused exactly: nothing', [10, 10, 10, 10, 10, 10, 10, 10, 8, 2], 0.1, []],
    ['one mostly empty pack of many', [10, 10, 10, 10, 10, 10, 10, 1], 0.1, ['p7']],
    ['half used is not "mostly unused"', [5, 5, 5, 5], 0.1, []],
    ['lowest live fraction first, stop at the target', [1, 4, 3, 10, 10, 10, 10, 10, 10, 10], 0.1, ['p0', 'p2']],
    ['maxUnused 0: every mostly unused pack', [1, 4, 3, 10], 0, ['p0', 'p2', 'p1']],
    ['maxUnused 1: never', [1, 1, 1], 1, []],
  ])('%s', (_what, lives, maxUnused, expected) => {
    const v = decide(repackVault(lives as number[]), p);
    expect(chooseRepack(v, { ...p, maxUnused: maxUnused as number }).packs).toEqual(expected);
  });

  it('reports the live and unused bytes of what it chose', () => {
    const v = decide(repackVault([1, 4, 3, 10, 10, 10, 10, 10, 10, 10]), p);
    expect(chooseRepack(v, p)).toEqual({ packs: ['p0', 'p2'], liveBytes: 400, unusedBytes: 1600 });
  });

  it('young packs are never repacked (they may still gain references); empty packs are candidates, not repacked', () => {
    expect(chooseRepack(decide(repackVault([1, 1, 1], YOUNG), p), { ...p, maxUnused: 0 }).packs).toEqual([]);
    const v = decide(repackVault([0, 1, 10]), p);
    expect(v.candidates.packs).toEqual(['p0']);
    expect(chooseRepack(v, { ...p, maxUnused: 0 }).packs).toEqual(['p1']);
  });
});

describe('marksToDelete', () => {
  const m = (name: string, age: number, blocked?: boolean) => ({ name, markedAtMs: NOW - age, ...(blocked ? { blocked } : {}) });
  it.each([
    ['none old enough', [m('a', D - 1), m('b', HOUR)], []],
    ['the newest old mark stays, older ones go', [m('a', 3 * D), m('b', 2 * D), m('c', D), m('d', HOUR)], ['a', 'b']],
    ['exactly D old counts as old', [m('a', D + 1), m('b', D)], ['a']],
    ['a blocked mark is never the reference', [m('a', 3 * D), m('b', D, true), m('c', HOUR)], []],
    ['a blocked mark older than the reference goes', [m('a', 3 * D, true), m('b', 2 * D), m('c', HOUR)], ['a']],
  ])('%s', (_what, marks, expected) => {
    expect(marksToDelete(marks, NOW, p)).toEqual(expected);
  });
});
