/**
 * The nightly verification sample (#18): which complete backups to verify tonight within a byte budget.
 * Never verified first, then least recently verified; ties go to each disk's newest backup, then newer
 * ones. Pure (no clock, no I/O): the scheduler passes the catalog with `lastVerified` and tonight's picks.
 */
import { BackupListing, CompleteBackupListing } from '../types';

export interface VerifyCandidate {
  backupId: string;
  disk: string;
  /** What a read-data verification reads of it: its allocated bytes (version 2), else its logical size. */
  bytes: number;
  lastVerifiedAt?: string;
}

export interface VerifySample {
  picked: VerifyCandidate[];
  /** Sum of the picked backups' bytes: never above the budget. */
  bytes: number;
  budgetBytes: number;
  /** Complete backups that could be verified (not locked, not forgotten). */
  candidates: number;
  /** Backups larger than the whole budget: never picked (the operator raises the budget or verifies them by hand). */
  tooLarge: VerifyCandidate[];
  /** The most picked in one night (the start budget), when one was given. */
  maxStarts?: number;
  /** Backups that fitted the bytes but not the start budget: they lead the next night's order. */
  leftByStarts?: number;
}

/** The bytes a read-data verification of `b` reads (an upper bound: holes are not read). */
export function verificationBytes(b: CompleteBackupListing): number {
  return b.allocatedBytes ?? b.diskBytes ?? b.bytesStored ?? 0;
}

/** Complete, readable, kept backups: what the schedule may verify (a forgotten one is on its way out). */
export function verifyCandidates(listings: BackupListing[]): { candidate: VerifyCandidate; newestOfDisk: boolean; completedAt: string }[] {
  const complete = listings.flatMap((b) => (b.status === 'complete' && !b.locked && !b.deleted ? [b] : []));
  const newest = new Map<string, string>();
  for (const b of complete) {
    const disk = b.disk ?? b.source;
    const seen = newest.get(disk);
    if (seen === undefined || b.completedAt > seen) newest.set(disk, b.completedAt);
  }
  return complete.map((b) => {
    const disk = b.disk ?? b.source;
    return {
      candidate: { backupId: b.backupId, disk, bytes: verificationBytes(b), ...(b.lastVerified ? { lastVerifiedAt: b.lastVerified.at } : {}) },
      newestOfDisk: newest.get(disk) === b.completedAt,
      completedAt: b.completedAt,
    };
  });
}

/**
 * Tonight's sample: first the backups already started tonight (a timer fired again picks the same ones:
 * `tonight`), then in rotation order every candidate that still fits the budget (first fit: a large
 * one that does not fit lets smaller ones after it go tonight; it leads the order until it goes). At most
 * `maxStarts` picked (tonight's earlier ones included: a firing delivered again starts nothing new).
 */
export function pickVerifications(listings: BackupListing[], budgetBytes: number, tonight: ReadonlySet<string> = new Set(), maxStarts = Infinity): VerifySample {
  const all = verifyCandidates(listings);
  const order = [...all].sort(
    (a, b) =>
      Number(a.candidate.lastVerifiedAt !== undefined) - Number(b.candidate.lastVerifiedAt !== undefined) ||
      (a.candidate.lastVerifiedAt ?? '').localeCompare(b.candidate.lastVerifiedAt ?? '') ||
      Number(b.newestOfDisk) - Number(a.newestOfDisk) ||
      b.completedAt.localeCompare(a.completedAt) ||
      a.candidate.backupId.localeCompare(b.candidate.backupId),
  );
  const sample: VerifySample = { picked: [], bytes: 0, budgetBytes, candidates: all.length, tooLarge: [], ...(Number.isFinite(maxStarts) ? { maxStarts, leftByStarts: 0 } : {}) };
  const take = (c: VerifyCandidate) => {
    sample.picked.push(c);
    sample.bytes += c.bytes;
  };
  for (const { candidate } of order) if (tonight.has(candidate.backupId)) take(candidate);
  for (const { candidate } of order) {
    if (tonight.has(candidate.backupId)) continue;
    if (candidate.bytes > budgetBytes) sample.tooLarge.push(candidate);
    else if (sample.bytes + candidate.bytes > budgetBytes) continue;
    else if (sample.picked.length >= maxStarts) sample.leftByStarts = (sample.leftByStarts ?? 0) + 1;
    else take(candidate);
  }
  return sample;
}
