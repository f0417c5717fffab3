/**
 * Which backups a retention policy keeps: restic's `forget --keep-*` rules (internal/data/snapshot_policy.go),
 * with buckets in UTC. Pure: no I/O, no clock but the one passed in.
 *
 * Semantics (restic's, on purpose, so a restic user's policy means the same here):
 * - backups are taken newest first (a tie in time: the one the catalog lists first, the smaller backup ID,
 *   counts as newer — the same "newest" as groupByDisk's);
 * - each count rule (last, hourly, daily, weekly = ISO 8601 week, monthly, yearly) walks them and keeps a
 *   backup whenever its bucket differs from the bucket of the backup that rule kept last, until its count
 *   is used up: so it keeps the newest backup of each of its n most recent buckets. `-1` = no limit;
 * - while a rule still has count left when it reaches the oldest backup, it keeps that one too ("oldest
 *   daily"), so a short history is kept whole rather than trimmed to the rule's buckets (restic ≥ 0.17);
 * - `within` (restic's duration "1y2m3d4h") keeps every backup strictly newer than the newest backup (not
 *   one in the future of `nowMs`) minus that duration, months and years by calendar (Go's AddDate: Mar 31
 *   minus 1m is Mar 3 in a non-leap year);
 * - a backup is kept if any rule keeps it; its reasons say which (`within 30d`, `last #1`, `daily #3`,
 *   `oldest yearly #4`: the rule and the how-manieth bucket of it).
 */
import { PagewiseError } from '../errors';

export interface KeepPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** restic duration, e.g. "30d", "1y2m", "1y2m3d4h": keep every backup made within it of the newest. */
  within?: string;
}

export interface KeepDecision {
  backupId: string;
  time: string;
  keep: boolean;
  /** e.g. "daily #3", "last #1", "within 30d"; empty when not kept. */
  reasons: string[];
}

export interface KeepDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

const COUNT_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type CountRule = (typeof COUNT_RULES)[number];
const FIELDS: readonly string[] = [...COUNT_RULES, 'within'];
/** Far beyond any vault's history; keeps the arithmetic exact. */
export const MAX_KEEP_COUNT = 1_000_000;
/** Each number of a duration; 10,000 years reaches before the first backup ever made. */
const MAX_DURATION_NUMBER = 100_000;
const MAX_DURATION_CHARS = 40;

const bad = (message: string) => new PagewiseError('BadInput', message);
const shown = (v: unknown) => String(JSON.stringify(v) ?? typeof v).slice(0, 60);

/** A restic duration: numbers with units y, m, d, h, each unit at most once, any order ("1y2m3d4h"). */
export function parseKeepDuration(text: unknown, field = 'within'): KeepDuration {
  const odd = (why: string) => bad(`keep-policy field "${field}" ${why}; expected a duration such as "30d", "6m", "1y2m3d4h" (y years, m months, d days, h hours)`);
  if (typeof text !== 'string') throw odd(`is ${shown(text)}, not a string`);
  if (text.length === 0 || text.length > MAX_DURATION_CHARS || !/^(\d+[ymdh])+$/.test(text)) throw odd(`is ${shown(text)}`);
  const d: KeepDuration = { years: 0, months: 0, days: 0, hours: 0 };
  const unitOf = { y: 'years', m: 'months', d: 'days', h: 'hours' } as const;
  const seen = new Set<string>();
  for (const [, digits, unit] of text.matchAll(/(\d+)([ymdh])/g)) {
    if (seen.has(unit)) throw odd(`names the unit "${unit}" twice in ${shown(text)}`);
    seen.add(unit);
    const n = Number(digits);
    if (n > MAX_DURATION_NUMBER) throw odd(`has ${digits}${unit}, over ${MAX_DURATION_NUMBER}`);
    d[unitOf[unit as keyof typeof unitOf]] = n;
  }
  if (d.years + d.months + d.days + d.hours === 0) throw odd(`is ${shown(text)}, which keeps nothing`);
  return d;
}

/** restic's String(): units in the order y m d h, zeros left out ("1y1d1m" → "1y1m1d"). */
export function formatKeepDuration(d: KeepDuration): string {
  return `${d.years ? `${d.years}y` : ''}${d.months ? `${d.months}m` : ''}${d.days ? `${d.days}d` : ''}${d.hours ? `${d.hours}h` : ''}`;
}

/**
 * A keep policy from outside (CLI flags, an HTTP body, a timer's policy file): a plain object of the
 * fields of KeepPolicy only; counts are -1 (no limit) or whole numbers 0 … 1,000,000; `within` a restic
 * duration, returned in restic's order. BadInput naming the field on anything else; a policy that keeps
 * nothing is refused (it would forget every backup).
 */
export function parseKeepPolicy(raw: unknown): KeepPolicy {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || (Object.getPrototypeOf(raw) !== Object.prototype && Object.getPrototypeOf(raw) !== null)) {
    throw bad(`a keep policy is an object such as { "daily": 7, "weekly": 4 }, not ${shown(raw)}`);
  }
  const o = raw as Record<string, unknown>;
  const policy: KeepPolicy = {};
  for (const key of Object.keys(o)) {
    if (!FIELDS.includes(key)) throw bad(`unknown keep-policy field ${shown(key)}; the fields are ${FIELDS.join(', ')}`);
  }
  for (const rule of COUNT_RULES) {
    const v = o[rule];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -1 || v > MAX_KEEP_COUNT) {
      throw bad(`keep-policy field "${rule}" must be -1 (no limit) or a whole number 0 to ${MAX_KEEP_COUNT}, not ${shown(v)}`);
    }
    if (v !== 0) policy[rule] = v;
  }
  if (o.within !== undefined) policy.within = formatKeepDuration(parseKeepDuration(o.within));
  if (Object.keys(policy).length === 0) {
    throw bad('the keep policy keeps nothing, so it would forget every backup; give at least one of last, hourly, daily, weekly, monthly, yearly (a count, or -1 for all) or within (e.g. "30d")');
  }
  return policy;
}

/** The policy in words, for a tombstone's `rule` and reports: "daily 7, weekly 4, monthly all, within 1m". */
export function describeKeepPolicy(policy: KeepPolicy): string {
  const parts = COUNT_RULES.flatMap((rule) => {
    const n = policy[rule];
    return n === undefined || n === 0 ? [] : [`${rule} ${n === -1 ? 'all' : n}`];
  });
  if (policy.within !== undefined) parts.push(`within ${policy.within}`);
  return parts.join(', ');
}

const HOUR_MS = 3_600_000;

/** YYYYWW of the ISO 8601 week (Monday first; week 1 holds the year's first Thursday). */
function isoWeek(d: Date): number {
  const dayFromMonday = (d.getUTCDay() + 6) % 7;
  const thursday = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - dayFromMonday + 3));
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 24 * HOUR_MS));
  return year * 100 + week;
}

/** The bucket of a backup under each count rule (restic's ymdh, ymd, yw, ym, y; `last`: every backup its own). */
const BUCKET: Record<CountRule, (d: Date, nr: number) => number> = {
  last: (_d, nr) => nr,
  hourly: (d) => d.getUTCFullYear() * 1_000_000 + (d.getUTCMonth() + 1) * 10_000 + d.getUTCDate() * 100 + d.getUTCHours(),
  daily: (d) => d.getUTCFullYear() * 10_000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate(),
  weekly: (d) => isoWeek(d),
  monthly: (d) => d.getUTCFullYear() * 100 + d.getUTCMonth() + 1,
  yearly: (d) => d.getUTCFullYear(),
};

/** `latestMs` minus the duration by calendar (Go's AddDate, then the hours); -Infinity when out of range. */
function cutoffOf(latestMs: number, d: KeepDuration): number {
  const c = new Date(latestMs);
  c.setUTCFullYear(c.getUTCFullYear() - d.years, c.getUTCMonth() - d.months, c.getUTCDate() - d.days);
  const ms = c.getTime() - d.hours * HOUR_MS;
  return Number.isFinite(ms) ? ms : -Infinity;
}

/**
 * Applies `policy` to the backups of one disk: a decision for each, newest first. `options.nowMs`: a
 * backup after it is not "the newest" a `within` counts from (restic: a snapshot in the future).
 */
export function applyKeepPolicy(backups: { backupId: string; time: string }[], policy: KeepPolicy, options: { nowMs?: number } = {}): KeepDecision[] {
  const p = parseKeepPolicy(policy);
  const list = backups.map((b) => {
    const ms = typeof b.time === 'string' ? Date.parse(b.time) : NaN;
    if (!Number.isFinite(ms)) throw bad(`backup ${shown(b.backupId)} has no valid time (${shown(b.time)})`);
    return { ...b, ms };
  });
  list.sort((a, b) => b.ms - a.ms || a.backupId.localeCompare(b.backupId));
  if (list.length === 0) return [];

  let cutoff: number | undefined;
  if (p.within !== undefined) {
    const now = options.nowMs ?? Infinity;
    const latest = list.find((b) => b.ms <= now)?.ms;
    cutoff = latest === undefined ? -Infinity : cutoffOf(latest, parseKeepDuration(p.within));
  }
  const rules = COUNT_RULES.flatMap((rule) => (p[rule] === undefined ? [] : [{ rule, left: p[rule]!, last: undefined as number | undefined, used: 0 }]));

  return list.map((b, nr) => {
    const reasons: string[] = [];
    if (cutoff !== undefined && b.ms > cutoff) reasons.push(`within ${p.within}`);
    const date = new Date(b.ms);
    const oldest = nr === list.length - 1;
    for (const r of rules) {
      if (r.left === 0) continue;
      const bucket = BUCKET[r.rule](date, nr);
      if (bucket === r.last && !oldest) continue;
      r.used++;
      reasons.push(`${bucket === r.last ? 'oldest ' : ''}${r.rule} #${r.used}`);
      r.last = bucket;
      if (r.left > 0) r.left--;
    }
    return { backupId: b.backupId, time: b.time, keep: reasons.length > 0, reasons };
  });
}
