/**
 * What verify windows found, added up (in window order), and the verification's result made from its
 * plan and that sum: one definition for the one-process verify and the orchestration (pure, no I/O).
 */
import type { VerifyResult } from '../types';
import type { VerifyPlan } from './verify-plan';

/** Problems a verification reports at most (the first ones, in page order). */
export const MAX_PROBLEMS = 100;

/** Notes problems into `problems` until it holds MAX_PROBLEMS. */
export function noteInto(problems: string[]): (problem: string) => void {
  return (problem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(problem);
  };
}

/** The counts of one or more windows (the fields of VerifyResult they add to) and their first problems. */
export interface VerifyWindowSummary {
  windows: number;
  pagesChecked: number;
  /** Bytes of the pages checked at their real lengths (the progress' bytesDone). */
  pageBytes: number;
  blocksChecked: number;
  bytesChecked: number;
  tablesChecked: number;
  segmentsChecked: number;
  packsChecked: number;
  blocksRelocated: number;
  /** At most MAX_PROBLEMS. */
  problems: string[];
}

export const NO_VERIFY_WINDOWS: VerifyWindowSummary = {
  windows: 0,
  pagesChecked: 0,
  pageBytes: 0,
  blocksChecked: 0,
  bytesChecked: 0,
  tablesChecked: 0,
  segmentsChecked: 0,
  packsChecked: 0,
  blocksRelocated: 0,
  problems: [],
};

/** `total` then `part` (a later window or range): counts added, problems concatenated up to MAX_PROBLEMS. */
export function addVerifySummaries(total: VerifyWindowSummary, part: VerifyWindowSummary): VerifyWindowSummary {
  const counts = Object.fromEntries(
    (Object.keys(NO_VERIFY_WINDOWS) as Array<keyof VerifyWindowSummary>).filter((k) => k !== 'problems').map((k) => [k, (total[k] as number) + (part[k] as number)]),
  ) as Omit<VerifyWindowSummary, 'problems'>;
  return { ...counts, problems: total.problems.length >= MAX_PROBLEMS ? total.problems : [...total.problems, ...part.problems].slice(0, MAX_PROBLEMS) };
}

/** The verification's result: the plan's problems first, then the windows' (ok when none). */
export function verifyResultOf(plan: VerifyPlan, windows: VerifyWindowSummary, durationMs: number): VerifyResult {
  const problems = [...plan.problems, ...windows.problems].slice(0, MAX_PROBLEMS);
  return {
    backupId: plan.backupId,
    formatVersion: plan.formatVersion,
    ok: problems.length === 0,
    readData: plan.readData,
    comparedWithSource: plan.comparedWithSource,
    pagesChecked: windows.pagesChecked,
    segmentsChecked: plan.segmentsChecked + windows.segmentsChecked,
    packsChecked: windows.packsChecked,
    tablesChecked: windows.tablesChecked,
    blocksRelocated: windows.blocksRelocated,
    blocksChecked: windows.blocksChecked,
    bytesChecked: windows.bytesChecked,
    problems,
    durationMs,
  };
}
